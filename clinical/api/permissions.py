"""Scopes: each view names the one it needs (``required_scope``); a client without it -> 403."""

from __future__ import annotations

from rest_framework.permissions import BasePermission

from clinical.models import ApiClient


class HasScope(BasePermission):
    """Authenticated API client holding the view's ``required_scope`` (submit, read, feedback)."""

    def has_permission(self, request, view) -> bool:
        client = request.auth
        if not isinstance(client, ApiClient):
            return False  # -> 401 from DRF, since authentication did not succeed
        scope = getattr(view, "required_scope", None)
        if isinstance(scope, dict):
            scope = scope.get(request.method, scope.get("GET"))  # HEAD/OPTIONS read
        if scope is None:
            raise RuntimeError(f"{type(view).__name__} must declare required_scope")
        self.message = f"this API client lacks the '{scope}' scope"
        return client.has_scope(scope)
