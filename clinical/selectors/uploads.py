"""The upload page's own history: what this user uploaded lately, read back from the database
(so the page's results survive a reload; refused files are not stored and do not come back)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.utils import timezone

from clinical.models import Image, Study

RECENT_UPLOADS_HOURS = 24
RECENT_UPLOADS_LIMIT = 20


def recent_uploads(*, user: Any, hours: int = RECENT_UPLOADS_HOURS, limit: int = RECENT_UPLOADS_LIMIT) -> list[Image]:
    """Images of studies ``user`` created through the upload page in the last ``hours``,
    newest first, at most ``limit``, each with its study (one query)."""
    if not getattr(user, "is_authenticated", False):
        return []
    since = timezone.now() - timedelta(hours=hours)
    qs = (
        Image.objects.filter(study__submitted_by=user, study__source=Study.Source.UPLOAD, created_at__gte=since)
        .select_related("study")
        .order_by("-created_at", "-id")
    )
    images = list(qs[:limit])
    return images
