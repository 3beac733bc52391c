"""WSGI wrapper: chunked request bodies (``Transfer-Encoding: chunked``) reach Django with a
Content-Length, under the same size limits as any other body.

A PACS's DICOMweb client streams (Orthanc's default, ``ChunkedTransfers: true``), so a STOW-RS
or REST request may come without a Content-Length. gunicorn de-chunks such a body and says so
with ``wsgi.input_terminated`` (its ``wsgi.input`` ends at the body's end), but Django reads
``CONTENT_LENGTH`` only: without one it sees an empty body (``LimitedStream(..., 0)``), so the
views would answer "no parts" or "no files".

This wrapper reads a de-chunked body into a spooled temporary file (memory up to
``FILE_UPLOAD_MAX_MEMORY_SIZE``, then disk), at most ``chunked_body_cap()`` + 1 bytes, and
hands Django that file with ``CONTENT_LENGTH`` set to what was read: a body of up to the cap
is then exactly a body sent with its length, and a longer one carries a Content-Length over
every view's limit, so the view refuses it with its usual 413 ``too_large`` before parsing
anything (nothing is stored). The rest of an over-long body is left unread; gunicorn discards
it (or closes the connection) after the answer.

A server that does NOT de-chunk (no ``wsgi.input_terminated``: Django's development server,
wsgiref) cannot give the body at all: such a request gets 411 ``length_required`` in the API's
JSON error shape instead of being read as empty.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable, Iterable
from typing import Any

from django.conf import settings

READ_STEP = 256 * 1024
# Multipart framing around a file of the maximum size (the web upload's own margin is 16 KiB).
FRAMING_MARGIN = 1024 * 1024


def chunked_body_cap() -> int:
    """The most bytes of a chunked body that are read: the largest body any view accepts."""
    return max(settings.MAX_UPLOAD_BYTES + FRAMING_MARGIN, settings.DATA_UPLOAD_MAX_MEMORY_SIZE)


def _is_chunked(environ: dict[str, Any]) -> bool:
    codings = [c.strip().lower() for c in environ.get("HTTP_TRANSFER_ENCODING", "").split(",") if c.strip()]
    return bool(codings) and codings[-1] == "chunked" and not environ.get("CONTENT_LENGTH")


def _error(start_response: Callable, status: str, code: str, detail: str) -> list[bytes]:
    body = json.dumps({"code": code, "detail": detail}).encode()
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(body))),
                            ("Connection", "close")])
    return [body]


class ChunkedBodyMiddleware:
    def __init__(self, app: Callable) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        if not _is_chunked(environ):
            return self.app(environ, start_response)
        if not environ.get("wsgi.input_terminated"):
            return _error(start_response, "411 Length Required", "length_required",
                          "this server cannot read a chunked request body; serve RadViewer with gunicorn "
                          "(as make run and the deployment do), or send a Content-Length")
        cap = chunked_body_cap()
        spool = tempfile.SpooledTemporaryFile(  # noqa: SIM115 (handed to the request; closed below)
            max_size=settings.FILE_UPLOAD_MAX_MEMORY_SIZE, dir=settings.FILE_UPLOAD_TEMP_DIR)
        total = 0
        try:
            stream = environ["wsgi.input"]
            while total <= cap:
                chunk = stream.read(min(READ_STEP, cap + 1 - total))
                if not chunk:
                    break
                spool.write(chunk)
                total += len(chunk)
        except Exception as exc:  # gunicorn: NoMoreData, InvalidChunkSize, ChunkMissingTerminator
            spool.close()
            return _error(start_response, "400 Bad Request", "malformed_body",
                          f"the chunked request body could not be read ({type(exc).__name__}); "
                          "nothing was stored")
        spool.seek(0)
        environ["wsgi.input"] = spool
        environ["CONTENT_LENGTH"] = str(total)  # cap + 1 when longer: over every view's limit
        environ["radviewer.chunked_body"] = True
        del environ["HTTP_TRANSFER_ENCODING"]
        try:
            result = self.app(environ, start_response)
        except BaseException:
            spool.close()
            raise
        return _ClosingIterable(result, spool)


class _ClosingIterable:
    """The app's response, closing the spooled body when the server closes the response."""

    def __init__(self, result: Iterable[bytes], spool: Any) -> None:
        self._result, self._spool = result, spool

    def __iter__(self):
        return iter(self._result)

    def close(self) -> None:
        try:
            close = getattr(self._result, "close", None)
            if close is not None:
                close()
        finally:
            self._spool.close()
