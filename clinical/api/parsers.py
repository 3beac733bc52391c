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
            return super().parse(stream, media_type, parser_context)
        except RecursionError:  # "[" x 50,000: json's C decoder recurses per level
            raise ParseError("JSON parse error - the body is nested too deeply; "
                             "a reading is a flat object of a few fields") from None


class MultiPartParser(parsers.MultiPartParser):
    def parse(self, stream, media_type=None, parser_context=None):
        try:
            return super().parse(stream, media_type, parser_context)
        except ParseError as exc:
            cause = exc.__context__  # DRF raises its ParseError while handling Django's error
            if isinstance(cause, MultiPartParserError):
                raise ParseError(f"Multipart form parse error - {multipart_error_message(cause)}") from None
            raise
