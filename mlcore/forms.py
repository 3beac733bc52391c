"""Console forms: parsing only (types, required fields). Ranges and the rules on dataset
versions live in the services, which answer the CLI and the UI alike; views copy a
service's ``errors`` onto the form's fields."""

from __future__ import annotations

from typing import Any

from django import forms

from mlcore.selectors.training import dataset_versions_for_training


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
