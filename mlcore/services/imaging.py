"""The model's pixel rules, for the clinical ingest (which reaches mlcore only through
``mlcore.services`` and ``mlcore.selectors``): decoding a PNG/JPEG with these functions gives
exactly the pixels training saw for the same file (``mlcore.ml.data.imaging``)."""

from mlcore.ml.data.imaging import gray8, linear_to_uint8, stretch_to_uint8, upright

__all__ = ["gray8", "linear_to_uint8", "stretch_to_uint8", "upright"]
