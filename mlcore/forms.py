"""Console forms: parsing only (types, required fields). Ranges, gates and the rules on
dataset versions live in the services, which answer the CLI and the UI alike; views copy a
service's ``errors`` onto the form's fields."""

from __future__ import annotations

from typing import Any

from django import forms

from mlcore.models import AcceptanceCriteria, DatasetVersion, ModelAlias
from mlcore.selectors.training import dataset_versions_for_training
from mlcore.services.dataset_imports import IMPORT_FORMATS


class TrainingJobForm(forms.Form):
    dataset_version = forms.ModelChoiceField(
        queryset=dataset_versions_for_training(), empty_label="— choose a dataset version —",
        help_text="Must be a ready training set; evaluation-only sets are never trained on.")
    # Plain text with a drop-down widget: an unknown name reaches the service, which names
    # the accepted ones.
    variant = forms.CharField(widget=forms.Select, help_text="Model variant (architecture).")
    image_size = forms.IntegerField(
        required=False, help_text="Input size in px, 32 to 512; empty = the variant's own.")
    epochs = forms.IntegerField(help_text="1 to 500.")
    batch_size = forms.IntegerField(help_text="1 to 512.")
    seed = forms.IntegerField()
    lr = forms.FloatField(label="Learning rate", help_text="Greater than 0, at most 1.")
    precision = forms.CharField(widget=forms.Select)

    def __init__(self, *args: Any, variants: list[str], precisions: tuple[str, ...],
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["dataset_version"].queryset = dataset_versions_for_training()
        self.fields["variant"].widget.choices = [(v, v) for v in variants]
        self.fields["precision"].widget.choices = [(p, p) for p in precisions]

    def recipe(self) -> dict[str, Any]:
        """The cleaned recipe fields, as ``training_job_create`` takes them."""
        return {k: v for k, v in self.cleaned_data.items() if k != "dataset_version"}


_TEXT = {"rows": 3, "cols": 60}


class PromotionForm(forms.Form):
    alias = forms.ChoiceField(choices=ModelAlias.Alias.choices)
    reason = forms.CharField(required=False, max_length=2000, widget=forms.Textarea(attrs=_TEXT),
                             help_text="Why this move (required for canary and production).")
    override_justification = forms.CharField(
        required=False, max_length=4000, widget=forms.Textarea(attrs=_TEXT), label="Override justification",
        help_text="Only when the gate fails: why the version may move anyway. Recorded and audited.")
    apply_operating_points = forms.BooleanField(
        required=False, initial=True, label="Apply the recalibrated urgent thresholds",
        help_text="Production only: the operating points proposed for this version in its comparison with the "
                  "current production version (each keeps the champion's sensitivity on the locked set); "
                  "the worklist's urgency then uses them, and the change record lists them.")
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


class DatasetImportForm(forms.Form):
    source_path = forms.CharField(
        label="Folder on this server", max_length=500,
        help_text="Absolute, or relative to the project folder, e.g. ../shared/data/real-cxr")
    source_format = forms.ChoiceField(label="Layout", choices=[(k, f"{k}: {v}") for k, v in IMPORT_FORMATS.items()])
    slug = forms.SlugField(label="Name (slug)", max_length=80)
    kind = forms.ChoiceField(label="Kind", choices=DatasetVersion.Kind.choices)
    seed = forms.IntegerField(label="Split seed", min_value=0, max_value=2**31 - 1, initial=42)


class RolloutPolicyForm(forms.Form):
    """The console's rollout form. Types only: the ranges and the rules between aliases are
    ``mlcore.services.rollout``'s (the CLI and the UI get the same messages)."""

    canary_percent = forms.IntegerField(
        label="Canary share (%)", help_text="0 to 50: the share of studies the canary version serves, "
        "chosen by a hash of the study UID (sticky). 0 stops the canary.",
        error_messages={"invalid": "The canary share must be a whole number from 0 to 50."},
        widget=forms.NumberInput(attrs={"min": 0, "max": 50, "step": 1}))
    shadow_candidate = forms.BooleanField(
        required=False, label="Run the candidate in shadow",
        help_text="The candidate predicts after production, at lower priority; readers and integrations "
        "never see it. Its results are paired with the readers' verdicts.")
    shadow_percent = forms.IntegerField(
        label="Shadow share (%)", help_text="1 to 100: the share of studies the shadow predicts.",
        error_messages={"invalid": "The shadow share must be a whole number from 1 to 100."},
        widget=forms.NumberInput(attrs={"min": 1, "max": 100, "step": 1}))
    reason = forms.CharField(max_length=2000, widget=forms.Textarea(attrs={"rows": 2, "cols": 60}),
                             help_text="Why this change; recorded in the change record and the audit log.",
                             error_messages={"required": "A reason is required to change the rollout policy."})
