"""Start-up configuration: profiles, fail-fast messages, production hardening."""

import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def manage(*args: str, env: dict) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "DATABASE_", "CELERY_"))}
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=REPO, env={**clean, **env},
        capture_output=True, text=True, timeout=120,
    )


PROD = {
    "DJANGO_SETTINGS_MODULE": "radviewer.settings.production",
    "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
    "DJANGO_ALLOWED_HOSTS": "radviewer.example.org",
    "DATABASE_URL": "postgres://radviewer@127.0.0.1:5432/radviewer",
    "RADVIEWER_PSEUDONYM_KEY": secrets.token_urlsafe(32),
    "RADVIEWER_PHI_KEY": "Y6kUpSiu0ZqW0wJ2oMBbY1hYm1e8W5p3oHqD0y9RZ2w=,2dKQfHfo8O5gq7Xk2gUePpmBN6A1H6e5v7Qm3Qm1c3w=",
    "CELERY_BROKER_URL": "redis://127.0.0.1:6379/0",
    "RADVIEWER_CACHE_URL": "redis://127.0.0.1:6379/1",
}


def test_production_check_deploy_is_clean():
    result = manage("check", "--deploy", "--fail-level", "WARNING", env=PROD)
    assert result.returncode == 0, result.stdout + result.stderr


def test_production_without_a_shared_cache_is_warned():
    """Lockouts and rate limits in each web process's memory: N workers, N times the tries."""
    env = {k: v for k, v in PROD.items() if k != "RADVIEWER_CACHE_URL"}
    result = manage("check", "--deploy", "--fail-level", "WARNING", env=env)
    assert result.returncode != 0 and "radviewer.W001" in result.stdout + result.stderr


@pytest.mark.parametrize("missing", ["DJANGO_SECRET_KEY", "DATABASE_URL", "RADVIEWER_PSEUDONYM_KEY",
                                     "RADVIEWER_PHI_KEY"])
def test_production_names_missing_variable(missing):
    env = {k: v for k, v in PROD.items() if k != missing}
    result = manage("check", env=env)
    assert result.returncode == 2
    assert f"Environment variable {missing} is required" in result.stderr
    assert "Traceback" not in result.stderr


def test_production_refuses_a_malformed_phi_key_by_position():
    result = manage("check", env={**PROD, "RADVIEWER_PHI_KEY": PROD["RADVIEWER_PHI_KEY"] + ",not-a-key"})
    assert result.returncode == 2
    assert "RADVIEWER_PHI_KEY: key 3 of 3 is not a Fernet key" in result.stderr
    assert "not-a-key" not in result.stderr and "Traceback" not in result.stderr


def test_production_refuses_embedded_broker():
    result = manage("check", env={**PROD, "CELERY_BROKER_URL": "filesystem://"})
    assert result.returncode == 2 and "embedded profile only" in result.stderr


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("DATABASE_URL", "not-a-url", "expected a URL such as postgres://"),
        ("CELERY_BROKER_URL", "kafka://x", "redis://"),
        ("DJANGO_DEBUG", "maybe", "expected true or false"),
        ("RADVIEWER_MAX_UPLOAD_BYTES", "lots", "expected an integer"),
        ("RADVIEWER_METRICS_ALLOWED_CIDRS", "10.0.0.0/99", "CIDR"),
        ("RADVIEWER_WORKER_METRICS_PORT", "70000", "must be at most 65535"),
        ("RADVIEWER_METRICS_CACHE_SECONDS", "soon", "expected an integer"),
        ("PROMETHEUS_MULTIPROC_DIR", "/dev/null/metrics", "is not a folder that can be created"),
    ],
)
def test_malformed_value_stops_startup_with_message(name, value, expected):
    result = manage("check", env={name: value})
    assert result.returncode == 2, result.stderr
    assert name in result.stderr and expected in result.stderr
    assert "Traceback" not in result.stderr


def test_profile_follows_environment():
    """Unset = embedded default; CI's second pass sets DATABASE_URL/CELERY_BROKER_URL."""
    from django.conf import settings

    engine = settings.DATABASES["default"]["ENGINE"]
    if os.environ.get("DATABASE_URL", "").startswith("postgres"):
        assert engine == "django.db.backends.postgresql"
    else:
        assert engine == "radviewer.lib.sqlite"  # django.db.backends.sqlite3 + in-process writer queue
    assert settings.CELERY_BROKER_URL == (os.environ.get("CELERY_BROKER_URL") or "filesystem://localhost//")
    # Tests run on the MLflow store the environment names, else on one of their own
    # (decided at start-up, so asked of fresh processes: tests here move os.environ).
    code = "from django.conf import settings; print(settings.MLFLOW_TRACKING_URI)"
    unset = {"DJANGO_SETTINGS_MODULE": "radviewer.settings.test", "MLFLOW_TRACKING_URI": "", "RADVIEWER_TEST_MLFLOW_URI": ""}
    own = manage("shell", "-v", "0", "-c", code, env=unset)
    assert own.returncode == 0, own.stderr
    assert re.fullmatch(r"sqlite:///.*/var/test-mlflow/session-\d+/mlflow\.db", own.stdout.strip())
    named = manage("shell", "-v", "0", "-c", code, env={**unset, "MLFLOW_TRACKING_URI": "http://mlflow.test:5000"})
    assert named.stdout.strip() == "http://mlflow.test:5000", named.stderr


def test_s3_profile_selects_s3_storage():
    code = (
        "from django.conf import settings; s = settings.STORAGES['default']; "
        "print(s['BACKEND'], s['OPTIONS']['bucket_name'], s['OPTIONS']['endpoint_url'])"
    )
    result = manage(
        "shell", "-v", "0", "-c", code,
        env={"AWS_STORAGE_BUCKET_NAME": "rad-bucket", "AWS_S3_ENDPOINT_URL": "http://127.0.0.1:9000"},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["storages.backends.s3.S3Storage", "rad-bucket", "http://127.0.0.1:9000"]


# The embedded profile as `make run` starts it (manage.py's default settings, nothing set),
# asked through Django's test client in a fresh process: no database is touched on these paths.
EMBEDDED_PROBE = """
from django.conf import settings
from django.test import Client
c = Client(HTTP_HOST="127.0.0.1")
css = c.get("/static/css/radviewer.css")
missing = c.get("/static/no-such-page")
print("DEBUG", settings.DEBUG)
print("CSS", css.status_code, b"".join(css.streaming_content)[:200].decode() if css.streaming else "")
print("NOTFOUND", missing.status_code)
print(missing.content.decode())
"""


def test_embedded_profile_has_debug_off_and_still_serves_static_files():
    """Issue 13 item 14: `make run` used to run with DEBUG=True (tracebacks, settings and the
    URLconf on every error page)."""
    result = manage("shell", "-v", "0", "-c", EMBEDDED_PROBE, env={})
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "DEBUG False" in out
    assert "CSS 200 :root" in out  # whitenoise serves from the finders
    assert "NOTFOUND 404" in out and "Back to the home page" in out
    for leak in ("Traceback", "URLconf", "Django tried these URL patterns", "DEBUG = True", "SECRET_KEY"):
        assert leak not in out


def test_debug_is_a_developer_switch():
    code = "from django.conf import settings; print(settings.DEBUG)"
    assert manage("shell", "-v", "0", "-c", code, env={"DJANGO_DEBUG": "true"}).stdout.strip() == "True"
    assert manage("shell", "-v", "0", "-c", code, env={}).stdout.strip() == "False"
