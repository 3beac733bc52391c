"""Make a client-supplied file name safe to show and to use as a storage name suffix.

The name is kept only as a label (the stored object is addressed by hash or id), but it is
still shown in pages, written to logs and may end up in a Content-Disposition header, so it
must not carry paths, control characters or unbounded length.
"""

from __future__ import annotations

import re
import unicodedata

DEFAULT_NAME = "upload"
MAX_NAME_LENGTH = 100
MAX_EXTENSION_LENGTH = 10

_UNSAFE = re.compile(r"[^A-Za-z0-9._ -]+")
_REPEATS = re.compile(r"([_ ])[_ ]+")
_EXTENSION = re.compile(rf"^[a-z0-9]{{1,{MAX_EXTENSION_LENGTH}}}$")
# Device names that Windows refuses as file names whatever the extension.
_WINDOWS_RESERVED = {"con", "prn", "aux", "nul"} | {f"{p}{i}" for p in ("com", "lpt") for i in range(1, 10)}


def sanitize_filename(name: str) -> str:
    """Return the last path component of ``name`` reduced to safe ASCII, <= 100 characters.

    ``"../../etc/passwd"`` -> ``"passwd"``; ``"C:\\\\scans\\\\chest.png"`` -> ``"chest.png"``;
    control characters and NUL are dropped; an empty result becomes ``"upload"``. A short
    alphanumeric extension is kept (lower-cased) when the name has to be shortened.
    """
    name = (name or "").replace("\\", "/").split("/")[-1]
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C")
    # Decompose accents so "Röntgen" keeps its letters as "Rontgen" rather than "R_ntgen".
    name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")
    name = _UNSAFE.sub("_", name)
    name = _REPEATS.sub(r"\1", name).strip(" ._")

    stem, dot, ext = name.rpartition(".")
    if not dot:
        stem, ext = name, ""
    ext = ext.lower()
    if ext and not _EXTENSION.match(ext):
        stem, ext = name, ""
    stem = stem.strip(" ._") or DEFAULT_NAME
    if stem.lower() in _WINDOWS_RESERVED:
        stem = f"_{stem}"
    suffix = f".{ext}" if ext else ""
    stem = stem[: MAX_NAME_LENGTH - len(suffix)].rstrip(" ._") or DEFAULT_NAME
    return f"{stem}{suffix}"
