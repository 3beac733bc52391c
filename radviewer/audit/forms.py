from django import forms

from radviewer.audit.actions import AuditAction


class AuditFilterForm(forms.Form):
    actor = forms.CharField(required=False, max_length=150)
    action = forms.CharField(required=False, max_length=80,
                             help_text="an action or its start, e.g. study. (the list: docs/audit.md)")
    object_type = forms.CharField(required=False, max_length=80)
    object_id = forms.CharField(required=False, max_length=128)
    since = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    until = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))

    def clean_action(self) -> str:
        value = self.cleaned_data["action"].strip()
        if value and not any(action.startswith(value) for action in AuditAction.values):
            raise forms.ValidationError(f"no audit action starts with {value!r}")
        return value
