"""Integration clients (PACS/RIS) and the log of webhook deliveries made to them.

A client authenticates with a bearer token of which only the SHA-256 is stored; the token's
public prefix finds the row, the hash is compared in constant time. The webhook secret, by
contrast, is kept in clear: signing needs it (HMAC), so it is shown once and guarded like a
password in the admin (never listed, never logged).
"""

from __future__ import annotations

from django.core.validators import MinValueValidator, RegexValidator
from django.db import models

from clinical.models.domain import Study

CLIENT_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"


class ApiClient(models.Model):
    class Scope(models.TextChoices):
        SUBMIT = "submit", "Submit studies (REST, STOW-RS)"
        READ = "read", "Read results (JSON, FHIR, SR, heat maps)"
        FEEDBACK = "feedback", "Send readings back"
        # Webhooks about the models rather than a study (the canary guard's rollback).
        ML_ALERTS = "ml_alerts", "Receive model alerts (canary rolled back)"

    # Also the HTTP Basic user name (Orthanc's DICOMweb client) and the audit label api:<name>.
    name = models.CharField(
        max_length=64, unique=True,
        validators=[RegexValidator(CLIENT_NAME_PATTERN, "letters, digits, '.', '_' and '-' only")],
    )
    token_prefix = models.CharField(max_length=16, unique=True, editable=False)
    token_hash = models.CharField(max_length=64, editable=False)  # sha256 hex of the whole token
    webhook_secret = models.CharField(max_length=128, editable=False)
    scopes = models.JSONField(default=list, blank=True)
    active = models.BooleanField(default=True)
    rate_limit_per_minute = models.PositiveIntegerField(default=600, validators=[MinValueValidator(1)])
    # Host names callbacks may go to (exact, or "*.example.org"); empty = any public host.
    allowed_callback_hosts = models.JSONField(default=list, blank=True)
    allow_private_callbacks = models.BooleanField(
        default=False, help_text="Allow callback URLs on loopback/private/link-local addresses in production.",
    )
    # Used for studies submitted without their own callback_url (e.g. over STOW-RS).
    default_callback_url = models.URLField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ("name",)
        verbose_name = "API client"

    def __str__(self) -> str:
        return self.name

    # DRF treats the authenticated principal as request.user; these make a client one.
    @property
    def is_authenticated(self) -> bool:
        return True

    @property
    def is_anonymous(self) -> bool:
        return False

    @property
    def actor_label(self) -> str:
        return f"api:{self.name}"

    def has_scope(self, scope: str) -> bool:
        return scope in (self.scopes or [])


class WebhookDelivery(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        RETRYING = "retrying", "Retrying"
        DELIVERED = "delivered", "Delivered"
        FAILED = "failed", "Failed"

    client = models.ForeignKey(ApiClient, on_delete=models.PROTECT, related_name="deliveries")
    # Empty for an event about the models (``model.canary_rolled_back``), not a study.
    study = models.ForeignKey(Study, on_delete=models.PROTECT, related_name="webhook_deliveries", null=True,
                              blank=True)
    event = models.CharField(max_length=40, default="study.ready")
    url = models.URLField(max_length=500)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    response_code = models.PositiveSmallIntegerField(null=True, blank=True)
    error = models.TextField(blank=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    signature_timestamp = models.PositiveBigIntegerField(null=True, blank=True)
    # The exact body, so every retry sends (and signs) the same bytes and receivers can dedupe.
    payload = models.TextField()
    payload_sha256 = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ("-created_at", "-id")
        verbose_name_plural = "webhook deliveries"
        indexes = [models.Index(fields=["client", "-created_at"], name="webhook_client_created_idx")]
        constraints = [
            # The same result is announced once per URL, however often the ready signal fires.
            models.UniqueConstraint(fields=["study", "url", "payload_sha256"], name="webhook_once_per_payload"),
        ]

    def __str__(self) -> str:
        return f"Delivery {self.pk} {self.event} -> {self.url} ({self.status})"


class ResultDestination(models.Model):
    """Where a client's results are pushed as a DICOM SR: a DICOMweb STOW-RS service or a
    DICOM C-STORE peer (``clinical.services.result_delivery``).

    The password or bearer token is kept sealed (``radviewer.lib.sealed``: Fernet under a key
    derived from the Django secret key); it is never shown back, only replaced.
    """

    class Kind(models.TextChoices):
        DICOMWEB = "dicomweb", "DICOMweb STOW-RS"
        DIMSE = "dimse", "DICOM C-STORE"

    class Auth(models.TextChoices):
        NONE = "none", "None"
        BASIC = "basic", "HTTP Basic (user name + password)"
        BEARER = "bearer", "Bearer token"

    client = models.ForeignKey(ApiClient, on_delete=models.PROTECT, related_name="result_destinations")
    name = models.CharField(max_length=64, validators=[RegexValidator(CLIENT_NAME_PATTERN,
                                                                      "letters, digits, '.', '_' and '-' only")])
    kind = models.CharField(max_length=10, choices=Kind.choices)
    enabled = models.BooleanField(default=True)
    # DICOMweb: the service root (the SR is POSTed to <url>/studies), its authentication.
    url = models.URLField(max_length=500, blank=True, help_text="DICOMweb root, e.g. https://pacs/dicom-web/")
    auth = models.CharField(max_length=10, choices=Auth.choices, default=Auth.NONE)
    username = models.CharField(max_length=128, blank=True)
    secret_sealed = models.TextField(blank=True, editable=False)
    # C-STORE: the peer (host, port, its AE title) and the AE title RadViewer calls from.
    host = models.CharField(max_length=255, blank=True)
    port = models.PositiveIntegerField(null=True, blank=True, validators=[MinValueValidator(1)])
    called_ae = models.CharField(max_length=16, blank=True, help_text="the peer's AE title")
    calling_ae = models.CharField(max_length=16, blank=True, default="RADVIEWER",
                                  help_text="RadViewer's AE title towards this peer")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ("client__name", "name")
        constraints = [models.UniqueConstraint(fields=["client", "name"], name="result_destination_name_per_client")]

    def __str__(self) -> str:
        return f"{self.client.name}/{self.name}"

    @property
    def target(self) -> str:
        """Where it goes, without credentials (for logs and the admin)."""
        if self.kind == self.Kind.DIMSE:
            return f"{self.called_ae}@{self.host}:{self.port}"
        return self.url

    @property
    def has_secret(self) -> bool:
        return bool(self.secret_sealed)


class ResultDelivery(models.Model):
    """One push of a study's SR to one destination, for one trigger; every attempt recorded."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        RETRYING = "retrying", "Retrying"
        DELIVERED = "delivered", "Delivered"
        FAILED = "failed", "Failed"

    class Trigger(models.TextChoices):
        TRIAGE_DONE = "triage_done", "Triage done"
        SIGNED_OFF = "signed_off", "Signed off"
        AMENDED = "amended", "Amended"

    destination = models.ForeignKey(ResultDestination, on_delete=models.PROTECT, related_name="deliveries")
    study = models.ForeignKey(Study, on_delete=models.PROTECT, related_name="result_deliveries")
    trigger = models.CharField(max_length=12, choices=Trigger.choices)
    # What made this delivery (the predictions, the sign-off, the amendment): a trigger that
    # fires again for the same event does not send twice.
    event_key = models.CharField(max_length=200)
    sop_instance_uid = models.CharField(max_length=64, blank=True)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    response = models.CharField(max_length=200, blank=True, help_text="HTTP status or DIMSE status of the last attempt")
    last_error = models.TextField(blank=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ("-created_at", "-id")
        verbose_name_plural = "result deliveries"
        indexes = [models.Index(fields=["destination", "-created_at"], name="result_dest_created_idx")]
        constraints = [models.UniqueConstraint(fields=["destination", "study", "trigger", "event_key"],
                                               name="result_delivery_once_per_event")]

    def __str__(self) -> str:
        return f"Result delivery {self.pk} {self.trigger} -> {self.destination} ({self.status})"
