"""The one exception the ingest core raises for bad input.

Callers (the upload page, the REST API, the STOW-RS endpoint) turn it into a 4xx response
without knowing the cause: ``code`` is stable and machine-readable, ``message`` is meant for
the person who sent the file, ``http_status`` is the status that fits the cause.
"""

from __future__ import annotations

from typing import Any

# code -> (http status, default message). 413 is only for "the upload itself is too big";
# a small file that *decodes* to too many pixels is unprocessable content (422).
_CODES: dict[str, tuple[int, str]] = {
    "empty_file": (400, "the uploaded file is empty (0 bytes)"),
    "too_large": (413, "the uploaded file is larger than the allowed maximum"),
    "unsupported_type": (415, "content is not an accepted image; accepted: PNG, JPEG, DICOM"),
    "unsupported_transfer_syntax": (
        415,
        "the DICOM transfer syntax cannot be decoded; send uncompressed, RLE, JPEG, JPEG-LS or JPEG 2000",
    ),
    "too_many_pixels": (422, "the image has more pixels than allowed"),
    "corrupt_image": (422, "the image is corrupt or truncated and cannot be decoded"),
    "corrupt_dicom": (422, "the DICOM file is corrupt or truncated and cannot be read"),
    "dicom_no_pixels": (422, "the DICOM object has no Pixel Data (7FE0,0010)"),
    "unsupported_image": (422, "the image's pixel layout is not supported"),
    "burned_in_annotation": (
        422,
        "the image is marked Burned In Annotation YES (text in the pixels may identify the patient) "
        "and this installation refuses such images (RADVIEWER_REFUSE_BURNED_IN); send a copy without "
        "burned-in text, or ask the administrator",
    ),
    "multiframe_not_supported": (
        422,
        "multi-frame chest X-ray objects are not accepted; send one frame per instance",
    ),
}

INGEST_ERROR_CODES: frozenset[str] = frozenset(_CODES)


class IngestError(Exception):
    """Bad input, with a stable ``code``, a human ``message`` and the ``http_status`` to return.

    ``details`` carries the numbers behind the message (dimensions, limits, UIDs) so an API can
    return them as fields instead of making clients parse text.
    """

    def __init__(
        self,
        code: str,
        message: str | None = None,
        *,
        http_status: int | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        if code not in _CODES:
            # A typo in a code would silently break every client that switches on it.
            raise ValueError(f"unknown IngestError code {code!r}; known: {sorted(_CODES)}")
        default_status, default_message = _CODES[code]
        self.code = code
        self.message = message or default_message
        self.http_status = http_status or default_status
        self.details = dict(details or {})
        super().__init__(f"{code}: {self.message}")

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready body for API error responses."""
        return {"code": self.code, "message": self.message, **self.details}
