"""Clinical domain: studies, images, predictions as readers see them, reviews.

Every prediction records the model version that made it, one per (image, model version);
review history is kept and the latest review counts. Original DICOM identifiers live only in
``OriginalIdentifiers`` (the protected re-identification mapping), never on these rows.
"""

from __future__ import annotations

import uuid
from typing import Any

from django.conf import settings
from django.db import models
from django.db.models import Q

from radviewer.lib.phi_crypto import EncryptedTextField, phi_lookup_hmac


def new_uid() -> str:
    """A DICOM UID under the UUID-derived root 2.25 (PS3.5 B.2): unique without a registry."""
    return f"2.25.{uuid.uuid4().int}"


class Study(models.Model):
    class Status(models.TextChoices):
        PROCESSING = "processing", "AI triage running"
        AWAITING_REVIEW = "awaiting_review", "Awaiting review"
        REVIEWED = "reviewed", "Reviewed"
        SIGNED_OFF = "signed_off", "Signed off"
        FAILED = "failed", "AI triage failed"

    class Source(models.TextChoices):
        UPLOAD = "upload", "Upload page"
        API = "api", "REST API"
        DICOMWEB = "dicomweb", "DICOMweb STOW-RS"

    class Scope(models.TextChoices):
        CXR = "cxr", "Chest X-ray"
        OCT = "oct", "Retinal OCT"
        UNKNOWN = "unknown", "Unknown"

    uid = models.CharField(max_length=64, unique=True, default=new_uid)
    accession_number = models.CharField(max_length=64, blank=True, db_index=True)
    modality = models.CharField(max_length=16, blank=True)
    class ScopeSource(models.TextChoices):
        HEADER = "header", "from the DICOM header"
        MODEL = "model", "inferred by the AI from the image"
        NONE = "", "not decided"

    scope = models.CharField(max_length=16, choices=Scope.choices, default=Scope.UNKNOWN)
    # Where the scope came from: the header at ingest, or (PNG/JPEG, DICOM that does not say)
    # the model's decision once the first prediction lands.
    scope_source = models.CharField(max_length=8, choices=ScopeSource.choices, blank=True)
    scope_warning = models.TextField(blank=True)
    patient_key = models.CharField(max_length=64, blank=True, db_index=True)
    # What tells worklist rows apart without PHI, taken from the original header at ingest and
    # reduced there (``clinical.ingest.descriptors``): a coarse age band (ages over 89 are
    # "90+"), M/F/O, coded body part and view, and a description of vocabulary words only.
    age_band = models.CharField(max_length=8, blank=True)
    sex = models.CharField(max_length=1, blank=True)
    body_part = models.CharField(max_length=16, blank=True)
    view_position = models.CharField(max_length=16, blank=True)
    description = models.CharField(max_length=64, blank=True)
    received_at = models.DateTimeField(auto_now_add=True)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PROCESSING)
    # 0..1: probability mass on urgent classes; out-of-scope images get 1.0 for a human look.
    triage_priority = models.FloatField(default=0.0)
    priority_hint = models.CharField(max_length=16, blank=True)
    top_class = models.CharField(max_length=40, blank=True)  # denormalised for worklist filters
    out_of_scope = models.BooleanField(default=False)
    # Any image of it has Burned In Annotation YES (denormalised for the worklist badge).
    burned_in_annotation = models.BooleanField(default=False)
    # A blinded read (a configurable share, chosen at ingest): the AI stays hidden from readers
    # until a verdict is saved, then is revealed (``ai_revealed_at``).
    blinded_read = models.BooleanField(default=False)
    ai_revealed_at = models.DateTimeField(null=True, blank=True)
    source = models.CharField(max_length=16, choices=Source.choices, default=Source.UPLOAD)
    submitted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    # The integration client that sent it; None for the upload page. PROTECT: clients are
    # revoked, never deleted (their studies and audit rows name them).
    api_client = models.ForeignKey(
        "clinical.ApiClient", null=True, blank=True, on_delete=models.PROTECT, related_name="studies"
    )
    callback_url = models.URLField(max_length=500, blank=True)
    idempotency_key = models.CharField(max_length=128, blank=True)
    signed_off_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    signed_off_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ("-received_at",)
        indexes = [
            models.Index(fields=["status", "-triage_priority", "received_at"], name="worklist_idx"),
            models.Index(fields=["status", "received_at"], name="study_status_received_idx"),
            models.Index(fields=["api_client", "received_at"], name="study_client_received_idx"),
            # The worklist's column sorts (clinical.selectors.worklist.SORTS). One column each, not
            # (status, column): the open list filters on four statuses, so PostgreSQL orders by
            # walking the column's index with an incremental sort for the tie-break (16 -> 4 ms
            # at 10,000 studies, benchmarks/worklist.py). patient_key has its own index already.
            models.Index(fields=["age_band"], name="worklist_age_idx"),
            models.Index(fields=["sex"], name="worklist_sex_idx"),
            models.Index(fields=["modality"], name="worklist_modality_idx"),
            models.Index(fields=["body_part", "view_position"], name="worklist_view_idx"),
            models.Index(fields=["description"], name="worklist_description_idx"),
            models.Index(fields=["source"], name="worklist_source_idx"),
            models.Index(fields=["top_class"], name="worklist_ai_idx"),
            # The Done tab is one status: there (status, column) orders the whole scan.
            models.Index(fields=["status", "signed_off_at"], name="worklist_signed_off_idx"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["api_client", "idempotency_key"],
                condition=~Q(idempotency_key=""),
                name="study_unique_idempotency_key_per_client",
            )
        ]

    def __str__(self) -> str:
        return f"Study {self.uid}"

    @property
    def is_signed_off(self) -> bool:
        return self.status == self.Status.SIGNED_OFF


class Image(models.Model):
    class Format(models.TextChoices):
        PNG = "png", "PNG"
        JPEG = "jpeg", "JPEG"
        DICOM = "dicom", "DICOM"

    study = models.ForeignKey(Study, on_delete=models.PROTECT, related_name="images")
    file = models.FileField(upload_to="images/%Y/%m/%d/", max_length=255)
    # The 8-bit viewer PNG, rendered from ``file`` after ingest (the inference task or the
    # first view does it: ``clinical.services.display``); blank until then.
    display_file = models.FileField(upload_to="display/%Y/%m/%d/", max_length=255, blank=True)
    original_name = models.CharField(max_length=255)
    format = models.CharField(max_length=8, choices=Format.choices)
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    sha256 = models.CharField(max_length=64, unique=True)
    size_bytes = models.PositiveBigIntegerField()
    # De-identified DICOM UIDs (the originals are in OriginalIdentifiers).
    sop_instance_uid = models.CharField(max_length=64, blank=True, db_index=True)
    series_instance_uid = models.CharField(max_length=64, blank=True)
    sop_class_uid = models.CharField(max_length=64, blank=True)
    frame_index = models.PositiveIntegerField(null=True, blank=True)
    window_center = models.FloatField(null=True, blank=True)
    window_width = models.FloatField(null=True, blank=True)
    # Physical pixel size in mm for the viewer's measurements, captured at ingest from the DICOM
    # header: row spacing (vertical) and column spacing (horizontal), and which attribute gave
    # them. Null/blank for PNG/JPEG and for DICOM without spacing (the viewer measures in px).
    pixel_spacing_row = models.FloatField(null=True, blank=True)
    pixel_spacing_col = models.FloatField(null=True, blank=True)
    spacing_source = models.CharField(max_length=32, blank=True, default="")
    # The header said Burned In Annotation YES: text in the pixels may identify the patient
    # and de-identification cannot remove it.
    burned_in_annotation = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ("id",)

    def __str__(self) -> str:
        return f"{self.display_name} ({self.width}x{self.height} {self.format})"

    @property
    def display_name(self) -> str:
        """What readers and integrations see. A file name often carries the patient's name or
        MRN, so it is stored but shown only where ``RADVIEWER_SHOW_FILE_NAMES`` is true;
        otherwise "image N", N counting the study's images in the order they arrived."""
        if settings.SHOW_FILE_NAMES:
            return self.original_name
        return f"image {self.ordinal}"

    @staticmethod
    def number_in_study(images: list[Image]) -> list[Image]:
        """Give every image of one study (all of them, in arrival order) its ordinal without a
        query each: pages and API answers list whole studies."""
        for position, image in enumerate(images, start=1):
            image.__dict__["_ordinal"] = position
        return images

    @property
    def ordinal(self) -> int:
        if "_ordinal" not in self.__dict__:
            self.__dict__["_ordinal"] = Image.objects.filter(study_id=self.study_id, pk__lt=self.pk).count() + 1
        return self.__dict__["_ordinal"]

    def latest_prediction(self) -> Prediction | None:
        preds = [p for p in self.predictions.all() if p.arm != Prediction.Arm.SHADOW]
        return max(preds, key=lambda p: p.created_at, default=None)

    def latest_review(self) -> Review | None:
        return max(self.reviews.all(), key=lambda r: r.created_at, default=None)


class OriginalIdentifiers(models.Model):
    """Protected re-identification mapping; read only through an audited selector
    (``clinical.selectors.phi.original_identifiers_read``), never shown to readers.

    Every identifying value is encrypted at rest (``radviewer.lib.phi_crypto``); the three
    that are looked up (the sender's Study and SOP Instance UIDs, the accession number) have a
    keyed hash beside them, filled on save."""

    image = models.OneToOneField(Image, on_delete=models.PROTECT, related_name="original_ids")
    study_instance_uid = EncryptedTextField()
    series_instance_uid = EncryptedTextField()
    sop_instance_uid = EncryptedTextField()
    sop_class_uid = models.CharField(max_length=64)  # a standard UID: names no one
    accession_number = EncryptedTextField(blank=True)
    # The patient module as the source sent it, so results returned to that PACS file under
    # the same patient there.
    patient_id = EncryptedTextField(blank=True)
    patient_name = EncryptedTextField(blank=True)
    issuer_of_patient_id = EncryptedTextField(blank=True)
    patient_birth_date = EncryptedTextField(blank=True)
    patient_sex = EncryptedTextField(blank=True)
    study_uid_hmac = models.CharField(max_length=64, db_index=True, editable=False)
    sop_uid_hmac = models.CharField(max_length=64, unique=True, editable=False)
    accession_hmac = models.CharField(max_length=64, blank=True, db_index=True, editable=False)

    ENCRYPTED_FIELDS = (
        "study_instance_uid", "series_instance_uid", "sop_instance_uid", "accession_number",
        "patient_id", "patient_name", "issuer_of_patient_id", "patient_birth_date", "patient_sex",
    )

    def __str__(self) -> str:
        return f"original ids of image {self.image_id}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        self.study_uid_hmac = phi_lookup_hmac(self.study_instance_uid)
        self.sop_uid_hmac = phi_lookup_hmac(self.sop_instance_uid)
        self.accession_hmac = phi_lookup_hmac(self.accession_number)
        if kwargs.get("update_fields") is not None:
            kwargs["update_fields"] = {*kwargs["update_fields"], "study_uid_hmac", "sop_uid_hmac", "accession_hmac"}
        super().save(*args, **kwargs)


class Prediction(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"

    class Arm(models.TextChoices):
        PRODUCTION = "production", "Production"
        CANARY = "canary", "Canary"
        SHADOW = "shadow", "Shadow"

    image = models.ForeignKey(Image, on_delete=models.PROTECT, related_name="predictions")
    model_name = models.CharField(max_length=100, blank=True)
    model_version = models.CharField(max_length=40, blank=True)
    arm = models.CharField(max_length=16, choices=Arm.choices, default=Arm.PRODUCTION)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    failure_reason = models.TextField(blank=True)
    attempts = models.PositiveIntegerField(default=0)
    probabilities = models.JSONField(default=dict, blank=True)
    top_class = models.CharField(max_length=40, blank=True)
    confidence = models.FloatField(null=True, blank=True)
    out_of_scope = models.BooleanField(default=False)
    ood_score = models.FloatField(null=True, blank=True)
    ood_reason = models.CharField(max_length=300, blank=True)
    # How unusual the image is, as a reader can weigh it: the share of the model's in-scope
    # validation images that scored lower, and the share at which the model flags.
    ood_percentile = models.FloatField(null=True, blank=True)
    ood_threshold_percentile = models.FloatField(null=True, blank=True)
    # The scope the probabilities are over ("" = undecided: no class, read without the AI).
    scope = models.CharField(max_length=8, blank=True)
    scope_source = models.CharField(max_length=10, blank=True)  # header | model | undecided
    scope_probability = models.FloatField(null=True, blank=True)
    heatmap_png = models.FileField(upload_to="heatmaps/%Y/%m/%d/", blank=True, max_length=255)
    heatmap_array = models.FileField(upload_to="heatmaps/%Y/%m/%d/", blank=True, max_length=255)
    # method -> {"status": ..., "png": storage name, "reason": ...}; computed on demand.
    attributions = models.JSONField(default=dict, blank=True)
    latency_ms = models.FloatField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    # When its task was last sent (the sweeper re-sends a prediction queued too long), when
    # the running attempt started (the reaper re-queues one whose worker is gone), and the
    # Celery task id of that attempt (a duplicate message never runs it twice).
    queued_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    task_id = models.CharField(max_length=64, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ("-created_at",)
        indexes = [models.Index(fields=["status", "queued_at"], name="prediction_status_queued")]
        constraints = [
            models.UniqueConstraint(
                fields=["image", "model_name", "model_version"], name="one_prediction_per_image_version"
            )
        ]

    def __str__(self) -> str:
        return f"Prediction {self.pk} {self.model_name}@{self.model_version} {self.status}"

    def sorted_probabilities(self) -> list[tuple[str, float]]:
        return sorted(self.probabilities.items(), key=lambda kv: kv[1], reverse=True)


class Review(models.Model):
    class Verdict(models.TextChoices):
        AGREE = "agree", "Agree with AI"
        CORRECTED = "corrected", "Corrected to another class"
        UNCERTAIN = "uncertain", "Uncertain"
        NON_DIAGNOSTIC = "non_diagnostic", "Non-diagnostic image"

    class Source(models.TextChoices):
        READER = "reader", "Radiologist"
        API = "api", "PACS/RIS"

    image = models.ForeignKey(Image, on_delete=models.PROTECT, related_name="reviews")
    prediction = models.ForeignKey(
        Prediction, null=True, blank=True, on_delete=models.PROTECT, related_name="reviews"
    )
    reader = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    source = models.CharField(max_length=8, choices=Source.choices, default=Source.READER)
    source_label = models.CharField(max_length=150, blank=True)
    verdict = models.CharField(max_length=16, choices=Verdict.choices)
    label = models.CharField(max_length=40, blank=True)  # the confirmed class key, if any
    note = models.TextField(blank=True)
    # The reader's short structured impression (free text); the study's impression is the
    # confirmed class's display name plus this text (FHIR conclusion, SR "Impression").
    impression = models.CharField(max_length=500, blank=True)
    amendment = models.BooleanField(default=False)
    # Saved with the AI hidden (the first verdict of a blinded read).
    blinded = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ("-created_at", "-id")
        indexes = [models.Index(fields=["image", "-created_at"])]

    def __str__(self) -> str:
        return f"Review {self.pk} {self.verdict} {self.label}"
