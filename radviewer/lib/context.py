"""Template context: the navigation entries the current user may open."""

from __future__ import annotations

from django.http import HttpRequest
from django.urls import NoReverseMatch, reverse

# (label, url name, permission or None)
NAVIGATION = (
    ("Home", "home", None),
    ("Worklist", "clinical:worklist", "accounts.view_worklist"),
    ("Upload", "clinical:upload", "accounts.upload_studies"),
    ("Models", "mlcore:dashboard", "accounts.manage_models"),
    ("Audit log", "audit:list", "accounts.view_audit_log"),
)


def navigation(request: HttpRequest) -> dict:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {"nav_items": []}
    items = []
    for label, url_name, perm in NAVIGATION:
        if perm and not user.has_perm(perm):
            continue
        try:
            url = reverse(url_name)
        except NoReverseMatch:
            continue
        active = request.path == url or (url != "/" and request.path.startswith(url))
        items.append({"label": label, "url": url, "active": active})
    return {"nav_items": items}
