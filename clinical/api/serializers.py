"""Request validation and the documented shape of responses (the OpenAPI schema).

Responses are built by ``clinical.selectors.results`` as plain dicts; the response serializers here
describe them for drf-spectacular, and the contract tests (schemathesis) check the two agree.
"""

from __future__ import annotations

from rest_framework import serializers

from clinical.models import Review
from mlcore.selectors import class_keys

PRIORITY_HINTS = ("routine", "urgent", "stat")


# --- requests ---------------------------------------------------------------------------------
class StudySubmitSerializer(serializers.Serializer):
    files = serializers.ListField(
        child=serializers.FileField(allow_empty_file=True), allow_empty=False, min_length=1,
        help_text="One or more PNG, JPEG or DICOM files; all become one study.",
    )
    accession_number = serializers.CharField(max_length=64, required=False, allow_blank=True, default="")
    priority_hint = serializers.ChoiceField(choices=PRIORITY_HINTS, required=False, allow_blank=True, default="")
    callback_url = serializers.CharField(
        max_length=500, required=False, allow_blank=True, default="",
        help_text="Where to POST the signed result when it is ready (see docs/integration.md).",
    )


class FeedbackSerializer(serializers.Serializer):
    image = serializers.IntegerField(required=False, min_value=1,
                                     help_text="Image id; optional when the study has one image.")
    verdict = serializers.ChoiceField(choices=Review.Verdict.choices)
    label = serializers.ChoiceField(choices=class_keys(), required=False, allow_blank=True, default="",
                                    help_text="Class key; required for verdict 'corrected'.")
    note = serializers.CharField(required=False, allow_blank=True, default="", max_length=4000)
    impression = serializers.CharField(
        required=False, allow_blank=True, default="", max_length=500,
        help_text="Short free-text impression; the report's impression is the class's name plus this.")
    amendment = serializers.BooleanField(required=False, default=False,
                                         help_text="Amend a signed-off study (needs a note).")


# --- responses (documentation) ----------------------------------------------------------------
class ErrorSerializer(serializers.Serializer):
    code = serializers.CharField()
    detail = serializers.CharField()


class FileErrorSerializer(serializers.Serializer):
    name = serializers.CharField()
    code = serializers.CharField()
    detail = serializers.CharField()
    status = serializers.IntegerField()


class SubmitErrorSerializer(ErrorSerializer):
    files = FileErrorSerializer(many=True, required=False)
    fields = serializers.DictField(required=False)
    study_instance_uids = serializers.ListField(child=serializers.CharField(), required=False)


class LinksSerializer(serializers.Serializer):
    self = serializers.URLField()
    fhir = serializers.URLField()
    sr = serializers.URLField()
    heatmap = serializers.URLField()
    feedback = serializers.URLField()


class StudySummarySerializer(serializers.Serializer):
    uid = serializers.CharField()
    status = serializers.CharField()
    accession_number = serializers.CharField(allow_blank=True)
    priority_hint = serializers.CharField(allow_blank=True)
    received_at = serializers.DateTimeField()
    top_class = serializers.CharField(allow_blank=True)
    top_class_display = serializers.CharField(allow_blank=True)
    triage_priority = serializers.FloatField(allow_null=True, help_text="null while the AI is withheld (blinded read)")
    out_of_scope = serializers.BooleanField(allow_null=True, help_text="null while the AI is withheld (blinded read)")
    burned_in_annotation = serializers.BooleanField(
        help_text="An image is marked Burned In Annotation YES: text in the pixels may identify the patient.")
    warnings = serializers.ListField(child=serializers.CharField(), help_text="Scope and burned-in warnings.")
    blinded_read = serializers.BooleanField(
        help_text="Chosen to be read with the AI hidden until a verdict (docs/integration.md)")
    ai_withheld = serializers.BooleanField(help_text="True until a reader saves a verdict on this blinded read: "
                                                     "no AI class, probability, heat map, FHIR observation or SR")
    ai_withheld_reason = serializers.CharField(allow_blank=True)
    links = LinksSerializer()


class ImageRefSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    created = serializers.BooleanField(help_text="False when this file had been received before.")


class SubmitAcceptedSerializer(StudySummarySerializer):
    replayed = serializers.BooleanField(help_text="True when the Idempotency-Key was seen before.")
    images = ImageRefSerializer(many=True)
    warnings = serializers.ListField(child=serializers.CharField())


class FindingSerializer(serializers.Serializer):
    key = serializers.CharField()
    display_name = serializers.CharField()
    probability = serializers.FloatField()
    urgent = serializers.BooleanField()


class PredictionSerializer(serializers.Serializer):
    status = serializers.CharField()
    model_name = serializers.CharField(allow_blank=True)
    model_version = serializers.CharField(allow_blank=True)
    arm = serializers.CharField()
    top_class = serializers.CharField(allow_blank=True)
    top_class_display = serializers.CharField(allow_blank=True)
    confidence = serializers.FloatField(allow_null=True)
    out_of_scope = serializers.BooleanField()
    out_of_scope_reason = serializers.CharField(allow_blank=True)
    ood_score = serializers.FloatField(allow_null=True)
    ood_percentile = serializers.FloatField(
        allow_null=True, help_text="Share (0-100) of the model's in-scope validation images that "
                                   "scored lower: how unusual this image is.")
    ood_threshold_percentile = serializers.FloatField(
        allow_null=True, help_text="The model flags images above this percentile.")
    scope = serializers.CharField(allow_blank=True, help_text='"cxr", "oct", or "" when undecided '
                                  "(no class: read without the AI).")
    scope_source = serializers.CharField(allow_blank=True, help_text='"header", "model" or "undecided".')
    probabilities = serializers.DictField(
        child=serializers.FloatField(), help_text="Calibrated, over the scope's classes only "
                                                  "(all nine when the scope is undecided).")
    findings = FindingSerializer(many=True)
    failure_reason = serializers.CharField(allow_blank=True)
    completed_at = serializers.DateTimeField(allow_null=True)


class ReviewSerializer(serializers.Serializer):
    verdict = serializers.CharField()
    label = serializers.CharField(allow_blank=True)
    label_display = serializers.CharField(allow_blank=True)
    note = serializers.CharField(allow_blank=True)
    impression = serializers.CharField(allow_blank=True)
    source = serializers.CharField()
    reader = serializers.CharField(allow_blank=True)
    amendment = serializers.BooleanField()
    created_at = serializers.DateTimeField()


class SourceIdsSerializer(serializers.Serializer):
    study_instance_uid = serializers.CharField()
    series_instance_uid = serializers.CharField()
    sop_instance_uid = serializers.CharField()
    sop_class_uid = serializers.CharField(allow_blank=True)
    accession_number = serializers.CharField(allow_blank=True)


class SourceStudySerializer(serializers.Serializer):
    study_instance_uid = serializers.CharField()
    accession_number = serializers.CharField(allow_blank=True)


class ImageLinksSerializer(serializers.Serializer):
    heatmap = serializers.URLField(allow_null=True)


class ImageResultSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    format = serializers.CharField()
    width = serializers.IntegerField()
    height = serializers.IntegerField()
    source_ids = SourceIdsSerializer(allow_null=True)
    prediction = PredictionSerializer(allow_null=True)
    reviews = ReviewSerializer(many=True)
    links = ImageLinksSerializer()


class StudyResultSerializer(StudySummarySerializer):
    submitted_via = serializers.CharField()
    modality = serializers.CharField(allow_blank=True, help_text="From the DICOM header; for PNG/JPEG "
                                     "the modality the inferred scope implies (DX, OPT), else OT.")
    scope = serializers.CharField()
    scope_source = serializers.CharField(allow_blank=True, help_text='"header", "model" (inferred from '
                                         'the image) or "" (undecided).')
    scope_warning = serializers.CharField(allow_blank=True)
    signed_off_at = serializers.DateTimeField(allow_null=True)
    source_study = SourceStudySerializer(allow_null=True)
    images = ImageResultSerializer(many=True)


class FeedbackAcceptedSerializer(serializers.Serializer):
    image = serializers.IntegerField()
    verdict = serializers.CharField()
    label = serializers.CharField(allow_blank=True)
    study_status = serializers.CharField()
