"""Audit details as a reader can scan them: one ``key: value`` per line, not a dict repr."""

from __future__ import annotations

import json
from typing import Any

from django import template

register = template.Library()


def detail_value(value: Any) -> str:
    """A value as text: strings bare, lists comma-separated, nested structures as compact JSON."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, str):
        return value
    if isinstance(value, (list, tuple)) and all(isinstance(v, (str, int, float)) for v in value):
        return ", ".join(str(v) for v in value)
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value, sort_keys=True, separators=(", ", ": "), default=str)
    return str(value)


@register.filter
def detail_items(details: Any) -> list[tuple[str, str]]:
    """``details`` (the event's JSON) as sorted (key, text) pairs; a non-dict as one pair."""
    if not details:
        return []
    if not isinstance(details, dict):
        return [("value", detail_value(details))]
    return [(str(key).replace("_", " "), detail_value(details[key])) for key in sorted(details)]
