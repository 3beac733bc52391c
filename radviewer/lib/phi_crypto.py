"""Encryption at rest for the protected re-identification mapping.

Values are Fernet tokens (AES-128-CBC + HMAC-SHA256, cryptography's ``MultiFernet``) under
``settings.PHI_KEYS`` (env ``RADVIEWER_PHI_KEY``, comma-separated): the first key encrypts,
every key decrypts, so a key is rotated by putting the new one first, re-encrypting
(``manage.py rotate_phi_key``) and then dropping the old one.

Equality lookups cannot use a randomised ciphertext, so the columns that are looked up have
a keyed hash beside them (``phi_lookup_hmac``): HMAC-SHA256 under the pseudonym key, which
never rotates, so the hashes survive a PHI-key rotation; without the key they cannot be
matched against guessed UIDs or accession numbers.
"""

from __future__ import annotations

import hashlib
import hmac
from functools import lru_cache
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import FieldError, ImproperlyConfigured
from django.db import models


class PhiDecryptionError(ImproperlyConfigured):
    """A stored value no configured key opens: a key was dropped before rotating."""


@lru_cache(maxsize=8)
def _fernet(keys: tuple[str, ...]) -> MultiFernet:
    if not keys:
        raise ImproperlyConfigured("settings.PHI_KEYS is empty; set RADVIEWER_PHI_KEY")
    return MultiFernet([Fernet(k.encode("ascii")) for k in keys])


def _keys() -> tuple[str, ...]:
    return tuple(settings.PHI_KEYS)


def phi_encrypt(value: str) -> str:
    """A Fernet token of ``value`` under the first key ("" stays "": nothing to hide)."""
    if value == "":
        return ""
    return _fernet(_keys()).encrypt(value.encode("utf-8")).decode("ascii")


def phi_decrypt(token: str) -> str:
    if token == "":
        return ""
    try:
        return _fernet(_keys()).decrypt(token.encode("ascii")).decode("utf-8")
    except (InvalidToken, UnicodeEncodeError) as exc:
        raise PhiDecryptionError(
            "a protected value cannot be decrypted with any key in RADVIEWER_PHI_KEY; was a key "
            "removed before `manage.py rotate_phi_key` re-encrypted the rows?"
        ) from exc


def phi_is_current(token: str) -> bool:
    """True when ``token`` is empty or was encrypted under the first (current) key."""
    if token == "":
        return True
    try:
        Fernet(_keys()[0].encode("ascii")).decrypt(token.encode("ascii"))
    except InvalidToken:
        return False
    return True


def phi_lookup_hmac(value: str) -> str:
    """The keyed hash an encrypted column is looked up by ("" for an empty value)."""
    value = value.strip()
    if value == "":
        return ""
    key = settings.PSEUDONYM_KEY.encode()
    return hmac.new(key, b"phi-lookup|" + value.encode("utf-8"), hashlib.sha256).hexdigest()


class EncryptedTextField(models.TextField):
    """A text column stored as a Fernet token, read back as plain text.

    Only ``isnull`` lookups are allowed: an equality filter on a randomised token would
    silently match nothing, so it is an error (look up the ``*_hmac`` column instead).
    """

    description = "Text encrypted at rest (Fernet)"

    def from_db_value(self, value: Any, expression: Any, connection: Any) -> str | None:
        return None if value is None else phi_decrypt(value)

    def get_prep_value(self, value: Any) -> Any:
        value = super().get_prep_value(value)
        return None if value is None else phi_encrypt(str(value))

    def get_lookup(self, lookup_name: str) -> Any:
        if lookup_name != "isnull":
            raise FieldError(
                f"{self.name} is encrypted; it cannot be filtered with '{lookup_name}' "
                "(filter on its keyed-hash column)"
            )
        return super().get_lookup(lookup_name)


def phi_rotate(token: str) -> str:
    """``token`` re-encrypted under the first key (the plain text never leaves MultiFernet)."""
    if token == "":
        return ""
    try:
        return _fernet(_keys()).rotate(token.encode("ascii")).decode("ascii")
    except (InvalidToken, UnicodeEncodeError) as exc:
        raise PhiDecryptionError(
            "a protected value cannot be decrypted with any key in RADVIEWER_PHI_KEY; keep the "
            "old key in the list (after the new one) until the rotation has run"
        ) from exc
