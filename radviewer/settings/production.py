"""Production profile: no secret defaults, secure cookies, HSTS; fails fast on what is missing.

Required: DJANGO_SECRET_KEY, DJANGO_ALLOWED_HOSTS, DATABASE_URL, RADVIEWER_PSEUDONYM_KEY,
RADVIEWER_PHI_KEY, CELERY_BROKER_URL. See README.md for the whole table.
"""

from __future__ import annotations

import os
import warnings

from radviewer.settings.env import ConfigError, env_bool, env_int, fernet_keys, require

_missing_hint = {
    "DJANGO_SECRET_KEY": (
        "a long random string, e.g. python -c 'import secrets; print(secrets.token_urlsafe(50))'"
    ),
    "DJANGO_ALLOWED_HOSTS": "comma-separated host names, e.g. radviewer.hospital.org",
    "DATABASE_URL": "postgres://user:password@host:5432/radviewer",
    "RADVIEWER_PSEUDONYM_KEY": "a long random string used to key patient pseudonyms; never change it",
    "RADVIEWER_PHI_KEY": (
        "Fernet key(s) encrypting the protected re-identification mapping, comma-separated "
        "(first encrypts): python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'"
    ),
    "CELERY_BROKER_URL": "redis://host:6379/0 or amqp://user:password@host:5672//",
}
for _name, _hint in _missing_hint.items():
    require(_name, hint=_hint)

from radviewer.settings.base import *  # noqa: E402,F403

PROFILE = "production"
PHI_KEYS = fernet_keys("RADVIEWER_PHI_KEY", fallback_file=None)  # never a key file under var/
DEBUG = env_bool("DJANGO_DEBUG", False)
ALLOW_DEMO_ACCOUNTS = False

SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT", True)
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
SESSION_COOKIE_HTTPONLY = True
SECURE_HSTS_SECONDS = env_int("DJANGO_SECURE_HSTS_SECONDS", 31536000, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", True)
SECURE_HSTS_PRELOAD = env_bool("DJANGO_SECURE_HSTS_PRELOAD", True)
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_AGE = env_int("DJANGO_SESSION_COOKIE_AGE", 8 * 3600, minimum=300)

if os.environ.get("CELERY_BROKER_URL", "").startswith("filesystem://"):
    raise ConfigError(
        "CELERY_BROKER_URL=filesystem:// is for the embedded profile only; "
        "production needs redis:// or amqp://"
    )

WHITENOISE_USE_FINDERS = False
STORAGES = {
    **STORAGES,  # noqa: F405
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}

# Undo the embedded profile's silencing of Celery's superuser warning (settings/base.py).
warnings.filters[:] = [f for f in warnings.filters
                       if not (f[1] is not None and "superuser" in getattr(f[1], "pattern", ""))]
