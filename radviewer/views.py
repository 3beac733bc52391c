import sys

from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, HttpResponsePermanentRedirect
from django.shortcuts import render
from django.templatetags.static import static
from django.views import defaults
from django.views.decorators.http import require_GET

from clinical.selectors.worklist import worklist_band_counts
from radviewer.lib.middleware import database_unavailable


def home(request: HttpRequest) -> HttpResponse:
    """The start page; a reader also sees the open studies per priority band."""
    counts = worklist_band_counts() if request.user.has_perm("accounts.view_worklist") else None
    return render(request, "home.html", {"counts": counts})


@require_GET
def favicon(request: HttpRequest) -> HttpResponse:
    """Browsers ask for /favicon.ico whatever the page links: send them to the static icon
    (resolved per request, so a hashed static name from collectstatic is followed)."""
    return HttpResponsePermanentRedirect(static("img/favicon.svg"))


def server_error(request: HttpRequest) -> HttpResponse:
    """``handler500``. ``DatabaseUnavailableMiddleware`` answers 503 for a view that cannot reach
    the database; this does the same where no view is running: a middleware (the session's
    save), or an error page's own rendering (a 404 page reads the session for its header).
    Django calls it while handling the exception, so the exception is the one in flight."""
    exc = sys.exc_info()[1]
    if isinstance(exc, OperationalError | InterfaceError):
        return database_unavailable(request, exc)
    return defaults.server_error(request)
