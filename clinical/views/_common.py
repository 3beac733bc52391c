"""Small helpers shared by the clinical views."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest

from clinical.access import access_image, access_study_by_uid
from clinical.models import Image, Study


def study_and_image(
    request: HttpRequest, uid: str, image_id: int, *, audit: bool = False
) -> tuple[Study, Image]:
    """The study (404 unless the user may read it) and one of its images (404 otherwise)."""
    study = access_study_by_uid(request.user, uid, request=request, audit=audit)
    return study, access_image(request.user, study, image_id)


def require_perm(request: HttpRequest, perm: str) -> None:
    """403 for a user who may see the study but not do this to it (checked after access)."""
    if not request.user.has_perm(perm):
        raise PermissionDenied(f"requires {perm}")


def error_messages(exc: ValidationError) -> list[str]:
    """Flat, human messages of a service's ValidationError (field names dropped)."""
    if hasattr(exc, "message_dict"):
        return [m for messages in exc.message_dict.values() for m in messages]
    return list(exc.messages)
