"""A small, strict multipart/related reader for STOW-RS bodies (PS3.18 10.5, RFC 2046/2387).

Django's multipart parser handles only multipart/form-data, so STOW-RS gets its own. The
boundary comes from the Content-Type header (quoted or not); parts are split on CRLF "--"
boundary, their headers parsed with ``email``; the closing delimiter is required (a body
cut short in transfer must not be half-stored).
"""

from __future__ import annotations

from dataclasses import dataclass
from email.message import Message
from email.parser import HeaderParser

MAX_BOUNDARY = 200


class MultipartError(ValueError):
    """The body is not well-formed multipart; ``str(exc)`` says where."""


@dataclass(frozen=True)
class ContentType:
    media_type: str
    params: dict[str, str]


@dataclass(frozen=True)
class Part:
    headers: Message
    body: bytes

    @property
    def content_type(self) -> str:
        return (self.headers.get_content_type() if self.headers.get("Content-Type") else "").lower()


def parse_content_type(value: str) -> ContentType:
    message = Message()
    message["Content-Type"] = value or ""
    params = {k.lower(): (v or "") for k, v in (message.get_params() or [])[1:]}
    main = (value or "").split(";", 1)[0].strip().lower()
    return ContentType(main, params)


def split_multipart(body: bytes, boundary: str) -> list[Part]:
    """The parts of ``body`` (without preamble and epilogue)."""
    # RFC 2046 caps boundaries at 70 characters, but Orthanc's STOW-RS client sends 73: be
    # liberal in what is accepted (a boundary only has to be absent from the content).
    if not boundary or len(boundary) > MAX_BOUNDARY:
        raise MultipartError(f"the Content-Type has no valid boundary parameter (1-{MAX_BOUNDARY} characters)")
    delimiter = b"--" + boundary.encode("latin-1")
    if body.startswith(delimiter):
        position = 0
    else:
        position = body.find(b"\r\n" + delimiter)
        if position < 0:
            raise MultipartError("the body does not contain the boundary given in the Content-Type")
        position += 2
    parts = []
    while True:
        position += len(delimiter)
        if body[position:position + 2] == b"--":
            return parts
        line_end = body.find(b"\r\n", position)
        if line_end < 0 or body[position:line_end].strip(b" \t"):
            raise MultipartError("a boundary line is not followed by CRLF")
        start = line_end + 2
        next_delimiter = body.find(b"\r\n" + delimiter, start)
        if next_delimiter < 0:
            raise MultipartError("the body ends without the closing boundary (truncated?)")
        parts.append(_part(body[start:next_delimiter], len(parts) + 1))
        position = next_delimiter + 2


def _part(raw: bytes, number: int) -> Part:
    if raw.startswith(b"\r\n"):
        header_bytes, content = b"", raw[2:]
    else:
        split = raw.find(b"\r\n\r\n")
        if split < 0:
            raise MultipartError(f"part {number} has no blank line between its headers and its content")
        header_bytes, content = raw[:split], raw[split + 4:]
    headers = HeaderParser().parsestr(header_bytes.decode("latin-1"))
    if headers.defects:
        raise MultipartError(f"part {number} has malformed headers")
    return Part(headers=headers, body=content)
