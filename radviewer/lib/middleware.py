"""Request-wide middleware.

``LoginRequiredByDefaultMiddleware``: every page needs login unless its path is listed in
``settings.LOGIN_EXEMPT_PREFIXES``. Secure by default: a new view cannot be forgotten open.
The API authenticates its own clients by token, so ``/api/`` and ``/dicomweb/`` answer 401
themselves instead of redirecting.

``RequestGuardMiddleware``: a NUL character in the path, the query string or a cookie (the
session key) is refused (400), and so is a Content-Length that is not a number,
before any view runs. No UID, accession number or filter contains one, PostgreSQL refuses
NUL in text (a 500 from every lookup) and SQLite would silently match nothing; one guard
here covers every view, selector and access function.

``DatabaseUnavailableMiddleware``: a view that cannot reach the database answers 503 with
a message instead of a 500 (or the debug page).

``SecurityHeadersMiddleware``: ``Content-Security-Policy`` and ``Permissions-Policy`` on
every response (``settings.CONTENT_SECURITY_POLICY``, ``settings.PERMISSIONS_POLICY``): no
inline script or style runs, nothing loads from another origin, no page may be framed, and
no page may ask for the camera, microphone or location. The templates hold no inline script,
style or event handler (tests/radviewer/test_security_headers.py walks them).

Errors on the token-authenticated surface are JSON in the API's shape (``{"code", "detail"}``,
docs/integration.md section 8); pages get a short standalone HTML page (``error.html``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template.loader import render_to_string

log = logging.getLogger(__name__)

TOKEN_AUTH_PREFIXES = ("/api/", "/dicomweb/")
NUL = "\x00"


def error_response(request: HttpRequest, *, status: int, code: str, title: str, detail: str,
                   retry: bool = False) -> HttpResponse:
    """An error answer without touching the database: JSON on the API, a small page otherwise."""
    if request.path_info.startswith(TOKEN_AUTH_PREFIXES):
        response: HttpResponse = JsonResponse({"code": code, "detail": detail}, status=status)
    else:
        html = render_to_string("error.html", {"title": title, "detail": detail, "retry": retry})
        response = HttpResponse(html, status=status)
    if retry:
        response["Retry-After"] = "30"
    return response


def database_unavailable(request: HttpRequest, exc: Exception) -> HttpResponse:
    log.error("database unavailable during %s %s: %s", request.method, request.path_info, exc)
    return error_response(
        request, status=503, code="database_unavailable", title="Service temporarily unavailable",
        detail="The database cannot be reached right now; nothing was saved. Try again shortly.",
        retry=True)


def _policy(directives: dict[str, list[str]], *, joiner: str) -> str:
    return joiner.join(f"{name} {' '.join(values)}".strip() for name, values in directives.items())


class SecurityHeadersMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self.csp = _policy(settings.CONTENT_SECURITY_POLICY, joiner="; ")
        self.permissions = ", ".join(f"{feature}={allow}" for feature, allow in settings.PERMISSIONS_POLICY.items())

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        # Django's own debug pages (DJANGO_DEBUG=true, a developer's machine only) are inline
        # styles and scripts: the policy would leave them unreadable.
        if not (settings.DEBUG and response.status_code >= 400):
            # A view may set a stricter policy of its own; none sets a looser one.
            response.headers.setdefault("Content-Security-Policy", self.csp)
        response.headers.setdefault("Permissions-Policy", self.permissions)
        return response


class RequestGuardMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if NUL in request.path_info or any(NUL in key or any(NUL in v for v in values)
                                           for key, values in request.GET.lists()):
            return error_response(
                request, status=400, code="invalid_characters", title="Bad request",
                detail="The address contains a NUL character (%00); no study UID, accession number "
                       "or filter can contain one.")
        length = request.META.get("CONTENT_LENGTH")
        if length and not (length.isascii() and length.strip().isdigit()):
            # gunicorn refuses one itself; behind another server it would reach the metrics
            # middleware's int() (a 500) and every body reader.
            return error_response(
                request, status=400, code="bad_content_length", title="Bad request",
                detail="The Content-Length header is not a number of bytes.")
        # A quoted cookie may carry an octal escape ("\000"): the session lookup would hit it.
        if any(NUL in key or NUL in value for key, value in request.COOKIES.items()):
            return error_response(
                request, status=400, code="invalid_characters", title="Bad request",
                detail="A cookie contains a NUL character; clear this site's cookies and sign in again.")
        return self.get_response(request)


class DatabaseUnavailableMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        # OperationalError: cannot connect or the connection broke; InterfaceError: psycopg's
        # "connection already closed" after a database restart. Anything else stays a 500.
        if not isinstance(exception, OperationalError | InterfaceError):
            return None
        return database_unavailable(request, exception)


class LoginRequiredByDefaultMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        path = request.path_info
        exempt = path.startswith(tuple(settings.LOGIN_EXEMPT_PREFIXES) + TOKEN_AUTH_PREFIXES)
        if not exempt:
            try:  # the first read of the session and the user: the database is needed here
                authenticated = request.user.is_authenticated
            except (OperationalError, InterfaceError) as exc:
                return database_unavailable(request, exc)
            if not authenticated:
                return redirect_to_login(request.get_full_path(), settings.LOGIN_URL)
        return self.get_response(request)
