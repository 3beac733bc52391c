"""Environment parsing that fails fast with the variable name and the expected form.

django-environ does the parsing; this module wraps it so that a malformed value stops
start-up with a message an operator can act on instead of a stack trace deep in Django.
"""

from __future__ import annotations

import ipaddress
import secrets
from pathlib import Path
from typing import Any

import environ
from django.core.exceptions import ImproperlyConfigured

env = environ.Env()


class ConfigError(ImproperlyConfigured):
    pass


def _wrap(name: str, expected: str, fn, *args: Any, **kwargs: Any) -> Any:
    try:
        return fn(name, *args, **kwargs)
    except ImproperlyConfigured:
        raise
    except Exception as exc:  # django-environ raises ValueError, TypeError, KeyError...
        raise ConfigError(
            f"Environment variable {name}={env.str(name, default='')!r} is malformed: "
            f"expected {expected} ({exc})"
        ) from None


def env_bool(name: str, default: bool) -> bool:
    raw = env.str(name, default="")
    if raw == "":
        return default
    lowered = raw.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ConfigError(f"Environment variable {name}={raw!r} is malformed: expected true or false")


def env_int(name: str, default: int, *, minimum: int | None = None, maximum: int | None = None) -> int:
    raw = env.str(name, default="")
    if raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(
            f"Environment variable {name}={raw!r} is malformed: expected an integer"
        ) from None
    if minimum is not None and value < minimum:
        raise ConfigError(f"Environment variable {name}={raw!r} must be at least {minimum}")
    if maximum is not None and value > maximum:
        raise ConfigError(f"Environment variable {name}={raw!r} must be at most {maximum}")
    return value


def env_float(name: str, default: float, *, low: float, high: float) -> float:
    """A float strictly between ``low`` and ``high``."""
    raw = env.str(name, default="")
    if raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"Environment variable {name}={raw!r} is malformed: expected a number") from None
    if not low < value < high:
        raise ConfigError(f"Environment variable {name}={raw!r} must be between {low} and {high}")
    return value


def env_str(name: str, default: str) -> str:
    return env.str(name, default=default)


def env_list(name: str, default: list[str]) -> list[str]:
    raw = env.str(name, default="")
    if raw == "":
        return list(default)
    return [item.strip() for item in raw.split(",") if item.strip()]


def env_cidrs(name: str, default: list[str]) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    nets = []
    for item in env_list(name, default):
        try:
            nets.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ConfigError(
                f"Environment variable {name} has {item!r}: expected comma-separated CIDR "
                "networks such as 127.0.0.1/32,10.0.0.0/8"
            ) from None
    return nets


def env_db(name: str, default: str) -> dict[str, Any]:
    raw = env.str(name, default="") or default
    if "://" not in raw:
        raise ConfigError(
            f"Environment variable {name}={raw!r} is malformed: expected a URL such as "
            "postgres://user:password@host:5432/dbname or sqlite:////absolute/path.sqlite3"
        )
    try:
        return environ.Env.db_url_config(raw)
    except Exception as exc:
        raise ConfigError(
            f"Environment variable {name}={raw!r} is malformed: expected a database URL ({exc})"
        ) from None


def env_url(name: str, default: str, *, schemes: tuple[str, ...]) -> str:
    raw = env.str(name, default="") or default
    scheme = raw.split("://", 1)[0] if "://" in raw else ""
    if scheme not in schemes:
        raise ConfigError(
            f"Environment variable {name}={raw!r} is malformed: expected a URL with one of the "
            f"schemes {', '.join(s + '://' for s in schemes)}"
        )
    return raw


def require(name: str, *, hint: str) -> str:
    value = env.str(name, default="")
    if not value:
        raise ConfigError(f"Environment variable {name} is required in this profile: {hint}")
    return value


def local_secret(path: Path, *, nbytes: int = 48) -> str:
    """A per-installation secret kept under var/, for the embedded profile only.

    Production never reaches this: it requires the variable instead.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        return path.read_text().strip()
    value = secrets.token_urlsafe(nbytes)
    path.write_text(value)
    path.chmod(0o600)
    return value


def fernet_keys(name: str, *, fallback_file: Path | None) -> list[str]:
    """Fernet keys from ``name`` (comma-separated: the first encrypts, all decrypt), or - for
    the embedded profile only - one generated key kept in ``fallback_file``.

    Each key is 32 bytes, url-safe base64 (``Fernet.generate_key()``); a malformed one stops
    the start-up rather than failing on the first protected row."""
    import base64
    import binascii

    keys = env_list(name, [])
    if not keys:
        if fallback_file is None:
            raise ConfigError(f"Environment variable {name} is required in this profile")
        fallback_file.parent.mkdir(parents=True, exist_ok=True)
        if not fallback_file.exists():
            fallback_file.write_text(base64.urlsafe_b64encode(secrets.token_bytes(32)).decode())
            fallback_file.chmod(0o600)
        keys = [fallback_file.read_text().strip()]
    for i, key in enumerate(keys, start=1):
        try:
            ok = len(base64.urlsafe_b64decode(key.encode("ascii"))) == 32
        except (binascii.Error, ValueError, UnicodeEncodeError):
            ok = False
        if not ok:
            raise ConfigError(
                f"{name}: key {i} of {len(keys)} is not a Fernet key (32 bytes, url-safe base64); "
                "make one with: python -c 'from cryptography.fernet import Fernet; "
                "print(Fernet.generate_key().decode())'"
            )
    return keys
