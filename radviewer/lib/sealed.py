"""Secrets RadViewer must use but never show back (a destination's password or bearer token),
sealed at rest with Fernet (AES-128-CBC + HMAC-SHA256, ``cryptography``).

The key is derived (HKDF-SHA256, one key per ``purpose``) from Django's ``SECRET_KEY``; keys
from ``SECRET_KEY_FALLBACKS`` still open what they sealed (MultiFernet), so rotating the
secret key keeps stored secrets readable until they are saved again. A database dump alone
does not reveal them.
"""

from __future__ import annotations

import base64

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings


class SealError(Exception):
    """A sealed value cannot be opened (the secret key it was sealed under is gone)."""


def _fernet(secret: str, purpose: str) -> Fernet:
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=b"radviewer-sealed",
               info=purpose.encode()).derive(secret.encode())
    return Fernet(base64.urlsafe_b64encode(key))


def _keys(purpose: str) -> MultiFernet:
    secrets = [settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", [])]
    return MultiFernet([_fernet(s, purpose) for s in secrets if s])


def seal(value: str, *, purpose: str) -> str:
    return _keys(purpose).encrypt(value.encode()).decode() if value else ""


def unseal(token: str, *, purpose: str) -> str:
    if not token:
        return ""
    try:
        return _keys(purpose).decrypt(token.encode()).decode()
    except InvalidToken:
        raise SealError("the stored secret cannot be opened (was DJANGO_SECRET_KEY changed without "
                        "keeping the old one in the fallbacks?); enter the secret again") from None
