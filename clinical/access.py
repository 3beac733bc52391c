"""Access functions: the only way views reach a study or image (DESIGN.md section 8).

A missing study and one the user may not see give the same 404, so existence does not leak.
"""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.http import Http404

from clinical.models import Image, Study
from radviewer.audit.actions import AuditAction
from radviewer.audit.services import audit_event_create


def can_read_studies(user: Any) -> bool:
    return bool(user and user.is_authenticated and user.has_perm("accounts.view_worklist"))


def access_study_by_uid(user: Any, uid: str, *, request: Any = None, audit: bool = True) -> Study:
    if not can_read_studies(user):
        raise Http404("No such study")
    study = Study.objects.filter(uid=uid).first()
    if study is None:
        raise Http404("No such study")
    if audit:
        audit_event_create(actor=user, action=AuditAction.STUDY_VIEWED, obj=study, request=request,
                           details={"uid": study.uid})
    return study


def access_image(user: Any, study: Study, image_id: int) -> Image:
    image = study.images.filter(pk=image_id).first()
    if image is None:
        raise Http404("No such image in this study")
    return image


def access_study_for_client(client: Any, uid: str, *, queryset: QuerySet[Study] | None = None) -> Study:
    """API clients see only the studies they submitted (404 otherwise: no existence leak).
    ``queryset`` adds prefetches to the same single lookup."""
    qs = Study.objects.all() if queryset is None else queryset
    try:  # uid is unique: get() compiles no ORDER BY, unlike first()
        return qs.get(uid=uid, api_client_id=getattr(client, "pk", -1))
    except Study.DoesNotExist:
        raise Http404("No such study") from None
