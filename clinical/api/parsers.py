"""The API's body parsers: DRF's, with failures that would escape as a 500 or as a message
naming parser internals turned into a ``parse_error`` that says what to fix."""

from __future__ import annotations

from django.http.multipartparser import MultiPartParserError
from rest_framework import parsers
from rest_framework.exceptions import ParseError

from radviewer.lib.http import multipart_error_message


class JSONParser(parsers.JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:  # "[" x 50,000: json's C decoder recurses per level
            raise ParseError("JSON parse error - the body is nested too deeply; "
                             "a reading is a flat object of a few fields") from None
        if _has_lone_surrogate(data):
            # json accepts "\ud800" alone; no database, log or answer can encode it as UTF-8.
            raise ParseError("JSON parse error - a string holds an unpaired surrogate escape (\\ud800-\\udfff); "
                             "send text as valid UTF-8")
        return data


def _has_lone_surrogate(value) -> bool:
    if isinstance(value, str):
        return any("\ud800" <= ch <= "\udfff" for ch in value)
    if isinstance(value, dict):
        return any(_has_lone_surrogate(k) or _has_lone_surrogate(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_lone_surrogate(v) for v in value)
    return False


class MultiPartParser(parsers.MultiPartParser):
    def parse(self, stream, media_type=None, parser_context=None):
        try:
            return super().parse(stream, media_type, parser_context)
        except ParseError as exc:
            cause = exc.__context__  # DRF raises its ParseError while handling Django's error
            if isinstance(cause, MultiPartParserError):
                raise ParseError(f"Multipart form parse error - {multipart_error_message(cause)}") from None
            raise
