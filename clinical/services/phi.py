"""Writes on the protected re-identification mapping (reads: ``clinical.selectors.phi``)."""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.db import models, transaction
from django.db.models.functions import Cast

from clinical.models import OriginalIdentifiers
from radviewer.audit.actions import AuditAction
from radviewer.audit.services import audit_event_create
from radviewer.lib.phi_crypto import phi_is_current, phi_rotate


@dataclass(frozen=True)
class PhiRotation:
    rows: int  # rows in the mapping
    rotated: int  # rows that had a value under an older key


def phi_key_rotate(*, actor_label: str = "manage.py rotate_phi_key") -> PhiRotation:
    """Re-encrypt every protected value not under the first ``RADVIEWER_PHI_KEY``.

    Works on the stored tokens (``MultiFernet.rotate``): no identifier is decrypted into the
    application, so this is not a read of the mapping; it is audited as a rotation. One
    transaction: a token no key opens stops it with nothing changed.
    """
    fields = OriginalIdentifiers.ENCRYPTED_FIELDS
    raw = {f"raw_{name}": Cast(name, output_field=models.TextField()) for name in fields}
    rows = rotated = 0
    with transaction.atomic():
        tokens = (OriginalIdentifiers.objects.select_for_update().order_by("pk")
                  .annotate(**raw).values("pk", *raw))
        for row in tokens.iterator(chunk_size=500):
            rows += 1
            stale = {name: row[f"raw_{name}"] for name in fields if not phi_is_current(row[f"raw_{name}"] or "")}
            if not stale:
                continue
            # Value(..., TextField) writes the new token as it is (the model field would
            # encrypt it a second time).
            OriginalIdentifiers.objects.filter(pk=row["pk"]).update(
                **{name: models.Value(phi_rotate(token), output_field=models.TextField())
                   for name, token in stale.items()}
            )
            rotated += 1
        audit_event_create(
            actor=None, actor_label=actor_label, action=AuditAction.PHI_KEY_ROTATED,
            object_type="clinical.originalidentifiers",
            details={"rows": rows, "rotated": rotated, "keys_configured": len(settings.PHI_KEYS)},
        )
    return PhiRotation(rows=rows, rotated=rotated)
