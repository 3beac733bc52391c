"""Display helpers for the reader pages: class names, probabilities, waiting time, bands."""

from __future__ import annotations

from datetime import datetime, timedelta

from django import template
from django.utils import timezone

from clinical.selectors.worklist import PSEUDONYM_SHORT, URGENT_BAND_THRESHOLD
from mlcore.selectors import class_display_name

register = template.Library()


@register.filter
def pseudonym_short(key: str) -> str:
    """The worklist's short form of a patient pseudonym: "pt-" and its first 8 hex digits."""
    return (key or "")[:PSEUDONYM_SHORT]


@register.filter
def class_name(key: str) -> str:
    """Clinical display name of a class key; unknown keys are shown as they are."""
    return class_display_name(key or "")


@register.filter
def percent(value: float | None) -> str:
    if value is None:
        return ""
    return f"{100 * float(value):.1f} %"


@register.filter
def percent_width(value: float | None) -> str:
    """CSS width for a probability bar (at least 0.5 % so a tiny bar is still visible)."""
    return f"{max(0.5, 100 * float(value or 0)):.1f}%"


def format_duration(delta: timedelta) -> str:
    """``3 h 12 min``, ``2 d 4 h``, ``45 min``, ``< 1 min``."""
    minutes = max(0, int(delta.total_seconds() // 60))
    days, rest = divmod(minutes, 24 * 60)
    hours, mins = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {mins} min"
    return f"{mins} min" if mins else "< 1 min"


@register.filter
def waiting_since(value: datetime | None, now: datetime | None = None) -> str:
    if value is None:
        return ""
    return format_duration((now or timezone.now()) - value)


@register.filter
def priority_band(study) -> str:
    """escalated | blinded | out-of-scope | urgent | routine | pending, in that precedence."""
    if getattr(study, "escalated", False):
        return "escalated"
    if study.blinded_read and study.ai_revealed_at is None:
        return "blinded"  # placed by arrival time, not by the AI (clinical.services.triage)
    if study.out_of_scope:
        return "out-of-scope"
    if study.status in ("processing", "failed") and not study.top_class:
        return "pending"
    return "urgent" if study.triage_priority >= URGENT_BAND_THRESHOLD else "routine"
