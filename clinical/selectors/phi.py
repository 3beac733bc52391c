"""The protected re-identification mapping, read only here and always audited."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied

from clinical.models import Image, OriginalIdentifiers
from radviewer.audit.actions import AuditAction
from radviewer.audit.services import audit_event_create


def original_identifiers_read(
    *, image: Image, user: Any = None, api_client: Any = None, purpose: str, request: Any = None,
    coalesce_s: int = 0, preloaded: bool = False,
) -> OriginalIdentifiers | None:
    """Original DICOM UIDs of ``image``, for admins or for returning results to the source PACS.

    ``coalesce_s``: a sender polling its own study's result (whose UIDs it sent us) is audited
    once per window rather than on every poll (``audit_event_create``). ``preloaded``: the
    caller fetched ``image`` with ``select_related("original_ids")``; read that, audited alike.
    """
    if api_client is None and not (user and user.has_perm("accounts.view_phi_mapping")):
        raise PermissionDenied("reading original identifiers needs the view_phi_mapping permission")
    if preloaded:
        try:
            ids = image.original_ids
        except OriginalIdentifiers.DoesNotExist:
            ids = None
    else:
        ids = OriginalIdentifiers.objects.filter(image=image).first()
    audit_event_create(
        actor=user, actor_label=f"api:{api_client.name}" if api_client is not None else "",
        action=AuditAction.PHI_ORIGINAL_IDS_READ, obj=image, request=request,
        details={"purpose": purpose, "found": ids is not None}, coalesce_s=coalesce_s,
    )
    return ids
