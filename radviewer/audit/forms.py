from django import forms


class AuditFilterForm(forms.Form):
    actor = forms.CharField(required=False, max_length=150)
    action = forms.CharField(required=False, max_length=80, help_text="prefix, e.g. study.")
    object_type = forms.CharField(required=False, max_length=80)
    object_id = forms.CharField(required=False, max_length=128)
    since = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    until = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
