"""The OpenAPI schema view: YAML for tools, readable in place for a person with a browser.

drf-spectacular answers ``application/vnd.oai.openapi``, which browsers download instead of
showing. A browser navigation (``Accept`` that prefers ``text/html``) gets the same YAML as
``text/plain`` shown inline; tools (``*/*``, the OpenAPI media types, JSON) are unchanged.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from drf_spectacular.views import SpectacularAPIView


def _prefers_html(accept: str) -> bool:
    first = accept.split(",", 1)[0].split(";", 1)[0].strip().lower()
    return first in ("text/html", "application/xhtml+xml")


class SchemaView(SpectacularAPIView):
    def finalize_response(self, request: HttpRequest, response: HttpResponse, *args, **kwargs) -> HttpResponse:
        response = super().finalize_response(request, response, *args, **kwargs)
        if _prefers_html(request.META.get("HTTP_ACCEPT", "")) and response.status_code == 200:
            response.content_type = "text/plain; charset=utf-8"  # used when the response renders
            response["Content-Disposition"] = 'inline; filename="radviewer-openapi.yaml"'
        return response
