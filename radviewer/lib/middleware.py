"""Every page needs login unless its path is listed in ``settings.LOGIN_EXEMPT_PREFIXES``.

Secure by default: a new view cannot be forgotten open. The API authenticates its own
clients by token, so ``/api/`` and ``/dicomweb/`` answer 401 themselves instead of redirecting.
"""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse

TOKEN_AUTH_PREFIXES = ("/api/", "/dicomweb/")


class LoginRequiredByDefaultMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        path = request.path_info
        exempt = path.startswith(tuple(settings.LOGIN_EXEMPT_PREFIXES) + TOKEN_AUTH_PREFIXES)
        if not exempt and not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path(), settings.LOGIN_URL)
        return self.get_response(request)
