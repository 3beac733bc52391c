"""Permission checks for function views: anonymous -> login (middleware), lacking -> 403."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps

from django.core.exceptions import PermissionDenied


def permission_required_403(*perms: str) -> Callable:
    def decorate(view: Callable) -> Callable:
        @wraps(view)
        def wrapper(request, *args, **kwargs):
            if not request.user.is_authenticated or not request.user.has_perms(perms):
                raise PermissionDenied(f"requires {', '.join(perms)}")
            return view(request, *args, **kwargs)

        return wrapper

    return decorate
