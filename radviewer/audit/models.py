"""Append-only audit trail (after Zulip's RealmAuditLog): who did what to which object, when."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone


class AuditEventQuerySet(models.QuerySet):
    def update(self, **kwargs):
        raise PermissionError("audit events are append-only: updates are refused")

    def delete(self):
        raise PermissionError("audit events are append-only: deletes are refused")


class AuditEvent(models.Model):
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    # Non-user actors (API clients, the system, a worker) are named here.
    actor_label = models.CharField(max_length=150, blank=True)
    action = models.CharField(max_length=80, db_index=True)
    object_type = models.CharField(max_length=80, blank=True, db_index=True)
    object_id = models.CharField(max_length=128, blank=True, db_index=True)
    # Set by the service before the row is hashed (auto_now_add would set it after).
    created_at = models.DateTimeField(default=timezone.now, editable=False, db_index=True)
    client_ip = models.GenericIPAddressField(null=True, blank=True)
    details = models.JSONField(default=dict, blank=True)
    # Tamper evidence (radviewer.audit.integrity): the previous event's hash, and SHA-256 over
    # this event's fields and prev_hash. ``manage.py verify_audit`` walks the chain.
    prev_hash = models.CharField(max_length=64, blank=True, editable=False)
    hash = models.CharField(max_length=64, blank=True, editable=False)

    objects = AuditEventQuerySet.as_manager()

    class Meta:
        ordering = ("-created_at", "-id")
        indexes = [models.Index(fields=["object_type", "object_id", "created_at"])]

    def __str__(self) -> str:
        who = self.actor_label or (self.actor and self.actor.get_username()) or "system"
        return f"{self.created_at:%Y-%m-%d %H:%M:%S} {who} {self.action} {self.object_type}:{self.object_id}"

    def save(self, *args, **kwargs):
        if self.pk is not None and not kwargs.get("force_insert"):
            raise PermissionError("audit events are append-only: updates are refused")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise PermissionError("audit events are append-only: deletes are refused")
