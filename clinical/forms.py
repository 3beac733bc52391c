"""Forms of the reader pages: they parse input; the services validate the clinical rules.

The review form keeps ``label`` a free ``CharField`` on purpose: ``review_create`` is the
one place that knows which class keys exist, so a forged key gets the service's message
("unknown class key ...; accepted: ...") rather than a generic form error.
"""

from __future__ import annotations

from django import forms

from clinical.models import Review
from clinical.selectors.worklist import OPEN_STATUSES, WorklistFilters, sort_key
from mlcore.selectors import class_catalogue

CLASS_CHOICES = [(c.key, c.display_name) for c in class_catalogue()]
MODALITY_CHOICES = [
    ("", "Any modality"),
    ("cxr", "Chest X-ray (CR, DX, or inferred from a PNG/JPEG)"),
    ("oct", "Retinal OCT (OPT, OP, or inferred from a PNG/JPEG)"),
    ("CR", "CR (computed radiography)"),
    ("DX", "DX (digital radiography, or inferred)"),
    ("OPT", "OPT (retinal OCT, or inferred)"),
    ("OT", "OT (PNG/JPEG whose scope is undecided)"),
]
TRI_STATE = [("", "Any"), ("yes", "Yes"), ("no", "No")]


class WorklistFilterForm(forms.Form):
    q = forms.CharField(
        required=False, max_length=64, label="Patient or accession",
        widget=forms.TextInput(attrs={"type": "search", "placeholder": "pt-1a2b3c4d or accession",
                                      "autocomplete": "off"}),
    )
    status = forms.ChoiceField(
        required=False,
        choices=[("", "Any open status")] + [(s.value, s.label) for s in OPEN_STATUSES],
    )
    modality = forms.ChoiceField(required=False, choices=MODALITY_CHOICES)
    predicted_class = forms.ChoiceField(
        required=False, label="AI class", choices=[("", "Any class"), *CLASS_CHOICES]
    )
    out_of_scope = forms.ChoiceField(required=False, label="Out of scope", choices=TRI_STATE)
    since = forms.DateField(
        required=False, label="Received from", widget=forms.DateInput(attrs={"type": "date"})
    )
    until = forms.DateField(
        required=False, label="Received to", widget=forms.DateInput(attrs={"type": "date"})
    )
    done = forms.BooleanField(required=False, widget=forms.HiddenInput)
    mine = forms.BooleanField(required=False, widget=forms.HiddenInput)  # the "Mine" tab
    sort = forms.CharField(required=False, max_length=20, widget=forms.HiddenInput)

    def clean_sort(self) -> str:
        """An unknown column is not an error worth losing the filters for: triage order."""
        return sort_key(self.cleaned_data.get("sort") or "")

    def filters(self) -> WorklistFilters:
        """The selector's filters; invalid input falls back to the unfiltered list."""
        if not self.is_valid():
            done = self.data.get("done") in ("1", "true", "True", "on")
            return WorklistFilters(done=done, mine=not done and self.data.get("mine") in ("1", "true", "True", "on"),
                                   sort=sort_key(str(self.data.get("sort") or "")))
        data = self.cleaned_data
        scope = {"yes": True, "no": False}.get(data["out_of_scope"])
        return WorklistFilters(
            status="" if data["done"] else data["status"],
            modality=data["modality"],
            predicted_class=data["predicted_class"],
            out_of_scope=scope,
            since=data["since"],
            until=data["until"],
            done=data["done"],
            mine=data["mine"] and not data["done"],
            sort=data["sort"],
            q=data["q"],
        )


class ReviewForm(forms.Form):
    verdict = forms.ChoiceField(choices=Review.Verdict.choices, widget=forms.RadioSelect)
    label = forms.CharField(required=False, max_length=40)
    note = forms.CharField(required=False, max_length=4000, widget=forms.Textarea(attrs={"rows": 2}))
    impression = forms.CharField(required=False, max_length=500)
    amendment = forms.BooleanField(required=False)
