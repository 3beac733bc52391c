"""Forms of the console's promotion pages: they parse input; the services decide."""

from __future__ import annotations

from django import forms

from mlcore.models import AcceptanceCriteria, ModelAlias

_TEXT = {"rows": 3, "cols": 60}


class PromotionForm(forms.Form):
    alias = forms.ChoiceField(choices=ModelAlias.Alias.choices)
    reason = forms.CharField(required=False, max_length=2000, widget=forms.Textarea(attrs=_TEXT),
                             help_text="Why this move (required for canary and production).")
    override_justification = forms.CharField(
        required=False, max_length=4000, widget=forms.Textarea(attrs=_TEXT), label="Override justification",
        help_text="Only when the gate fails: why the version may move anyway. Recorded and audited.")
    # The holder of each alias as the page showed it: a move made meanwhile is refused.
    expected_production = forms.CharField(required=False, widget=forms.HiddenInput)
    expected_canary = forms.CharField(required=False, widget=forms.HiddenInput)
    expected_candidate = forms.CharField(required=False, widget=forms.HiddenInput)

    def expected_current(self) -> str:
        return self.cleaned_data.get(f"expected_{self.cleaned_data['alias']}", "")


class RollbackForm(forms.Form):
    reason = forms.CharField(max_length=2000, widget=forms.Textarea(attrs={"rows": 2, "cols": 50}))
    expected_current = forms.CharField(required=False, widget=forms.HiddenInput)


class AliasRemoveForm(forms.Form):
    reason = forms.CharField(max_length=2000, widget=forms.TextInput(attrs={"size": 30}))
    expected_current = forms.CharField(required=False, widget=forms.HiddenInput)


class CriteriaForm(forms.ModelForm):
    class Meta:
        model = AcceptanceCriteria
        fields = ("max_urgent_sensitivity_drop", "max_ece", "max_macro_f1_drop", "forbid_synthetic_in_production")
        labels = {
            "max_urgent_sensitivity_drop": "Largest urgent CXR sensitivity drop vs champion (lower 95 % bound)",
            "max_ece": "Largest expected calibration error (ECE)",
            "max_macro_f1_drop": "Largest macro-F1 drop vs champion",
            "forbid_synthetic_in_production": "A version trained on synthetic data never goes to production",
        }
