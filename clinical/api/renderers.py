"""Renderers for the media types the API answers with besides JSON.

DRF negotiates against ``Accept`` before the view runs, so every type a client may ask for
(``application/fhir+json``, ``application/dicom``, ``image/png``, ``application/dicom+json``,
``application/dicom+xml``) must have a renderer, or the client gets 406.
"""

from __future__ import annotations

from typing import Any
from xml.sax.saxutils import escape, quoteattr

from rest_framework.renderers import BaseRenderer, JSONRenderer


class FhirJSONRenderer(JSONRenderer):
    media_type = "application/fhir+json"
    format = "fhir"


class DicomJSONRenderer(JSONRenderer):
    media_type = "application/dicom+json"
    format = "dicomjson"


class BinaryRenderer(BaseRenderer):
    """Passes bytes through; anything else (an error body) is a programming error here."""

    charset = None
    render_style = "binary"

    def render(self, data: Any, accepted_media_type: str | None = None, renderer_context: Any = None) -> bytes:
        if isinstance(data, bytes | bytearray):
            return bytes(data)
        raise TypeError(f"{type(self).__name__} renders bytes, got {type(data).__name__}")


class DicomRenderer(BinaryRenderer):
    media_type = "application/dicom"
    format = "dcm"


class PNGRenderer(BinaryRenderer):
    media_type = "image/png"
    format = "png"


class DicomXMLRenderer(BaseRenderer):
    """PS3.19 Native DICOM Model XML from a DICOM JSON dataset (PS3.18 F.2)."""

    media_type = "application/dicom+xml"
    format = "dicomxml"
    charset = "utf-8"

    def render(self, data: Any, accepted_media_type: str | None = None, renderer_context: Any = None) -> bytes:
        if not _is_dicom_json(data):
            # An error body: keep it readable in the same media type.
            inner = "".join(f"<{k}>{escape(str(v))}</{k}>" for k, v in (data or {}).items()
                            if isinstance(k, str) and k.isidentifier())
            return f'<?xml version="1.0" encoding="UTF-8"?>\n<error>{inner}</error>'.encode()
        return ('<?xml version="1.0" encoding="UTF-8"?>\n'
                f'<NativeDicomModel xml:space="preserve">{_dataset_xml(data)}</NativeDicomModel>').encode()


def _is_dicom_json(data: Any) -> bool:
    return isinstance(data, dict) and all(
        isinstance(k, str) and len(k) == 8 and isinstance(v, dict) and "vr" in v for k, v in data.items()
    )


def _dataset_xml(dataset: dict[str, Any]) -> str:
    out = []
    for tag in sorted(dataset):
        element = dataset[tag]
        vr = element["vr"]
        out.append(f"<DicomAttribute tag={quoteattr(tag)} vr={quoteattr(vr)}>")
        for number, value in enumerate(element.get("Value", []), start=1):
            if vr == "SQ":
                out.append(f'<Item number="{number}">{_dataset_xml(value)}</Item>')
            else:
                out.append(f'<Value number="{number}">{escape(str(value))}</Value>')
        out.append("</DicomAttribute>")
    return "".join(out)


__all__ = ["DicomJSONRenderer", "DicomRenderer", "DicomXMLRenderer", "FhirJSONRenderer", "JSONRenderer",
           "PNGRenderer"]
