"""Settings for every profile, read from the environment (DESIGN.md section 4).

Nothing set = the embedded default: SQLite, media and MLflow under ``var/``, and a Celery
broker that needs no server (kombu's filesystem transport) consumed by a real worker process.
Set ``DATABASE_URL``, ``CELERY_BROKER_URL``, ``AWS_STORAGE_BUCKET_NAME`` and
``MLFLOW_TRACKING_URI`` to run on real services. ``production.py`` tightens this further.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

from radviewer.lib.queues import QUEUES, make_queue
from radviewer.settings.env import (
    ConfigError,
    env_bool,
    env_cidrs,
    env_db,
    env_float,
    env_int,
    env_list,
    env_str,
    env_url,
    fernet_keys,
    local_secret,
)

BASE_DIR = Path(__file__).resolve().parent.parent.parent
VAR_DIR = Path(env_str("RADVIEWER_VAR_DIR", str(BASE_DIR / "var"))).resolve()
VAR_DIR.mkdir(parents=True, exist_ok=True)

PROFILE = "embedded"

SECRET_KEY = env_str("DJANGO_SECRET_KEY", "") or local_secret(VAR_DIR / "secret_key")
# Off in every profile, `make run` included: a hospital pilots that first, and the debug
# page shows settings, the URLconf and tracebacks to anyone. DJANGO_DEBUG=true is the
# developer's switch (README, "Runtime profiles").
DEBUG = env_bool("DJANGO_DEBUG", False)
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_htmx",
    "template_partials",
    "django_prometheus",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI assets served locally: no CDN
    "radviewer.accounts",
    "radviewer.audit",
    "radviewer.ops",
    "mlcore",
    "clinical",
]

MIDDLEWARE = [
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # Above whitenoise and the guards: static files and early refusals carry the headers too.
    "radviewer.lib.middleware.SecurityHeadersMiddleware",
    # Before the session and the user are read: a NUL in the URL never reaches the database.
    "radviewer.lib.middleware.RequestGuardMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "radviewer.lib.middleware.LoginRequiredByDefaultMiddleware",
    "radviewer.lib.middleware.DatabaseUnavailableMiddleware",
    "django_prometheus.middleware.PrometheusAfterMiddleware",
]

ROOT_URLCONF = "radviewer.urls"
WSGI_APPLICATION = "radviewer.wsgi.application"
ASGI_APPLICATION = "radviewer.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "radviewer.lib.context.navigation",
            ],
        },
    }
]

# --- database -------------------------------------------------------------------------------
DATABASES = {"default": env_db("DATABASE_URL", f"sqlite:///{VAR_DIR / 'radviewer.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL + immediate transactions let the web process and the worker write side by side;
    # radviewer.lib.sqlite queues a process's writers in-process (see its docstring).
    DATABASES["default"]["ENGINE"] = "radviewer.lib.sqlite"
    DATABASES["default"]["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
    }
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test-radviewer.sqlite3")}
# Persistent connections, SQLite included: opening one costs the PRAGMAs and a schema parse,
# and closing the last connection to a WAL database checkpoints it -- about a fifth of the CPU
# of a STOW-RS request when every request did both (py-spy, benchmarks/api_latency.py).
DATABASES["default"]["CONN_MAX_AGE"] = env_int("DATABASE_CONN_MAX_AGE", 60, minimum=0)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- auth -------------------------------------------------------------------------------------
LOGIN_URL = "accounts:login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "accounts:login"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
# Failed sign-ins: LOGIN_FAILURE_LIMIT wrong passwords for one user name, or
# LOGIN_IP_FAILURE_LIMIT from one client address (any names), within the window lock that
# name or address for LOGIN_LOCKOUT_S; the right password is refused meanwhile.
LOGIN_FAILURE_LIMIT = env_int("RADVIEWER_LOGIN_FAILURE_LIMIT", 5, minimum=1)
LOGIN_IP_FAILURE_LIMIT = env_int("RADVIEWER_LOGIN_IP_FAILURE_LIMIT", 20, minimum=1)
LOGIN_FAILURE_WINDOW_S = env_int("RADVIEWER_LOGIN_FAILURE_WINDOW_S", 900, minimum=1)
LOGIN_LOCKOUT_S = env_int("RADVIEWER_LOGIN_LOCKOUT_S", 900, minimum=1)
# URL names (or prefixes) reachable without login; everything else needs it.
LOGIN_EXEMPT_PREFIXES = ("/accounts/login/", "/favicon.ico", "/healthz", "/readyz", "/metrics", "/static/")

# --- browser policies (radviewer.lib.middleware.SecurityHeadersMiddleware) -----------------
# Same origin only, no inline script or style (the templates have none: a test walks them);
# data: and blob: images for the viewer's canvas and the plots.
CONTENT_SECURITY_POLICY = {
    "default-src": ["'self'"],
    "script-src": ["'self'"],
    "style-src": ["'self'"],
    "img-src": ["'self'", "data:", "blob:"],
    "object-src": ["'none'"],
    "frame-ancestors": ["'none'"],
    "base-uri": ["'self'"],
    "form-action": ["'self'"],
}
# Powerful browser features no page uses, switched off for the page and anything it embeds.
PERMISSIONS_POLICY = dict.fromkeys(
    ("accelerometer", "camera", "geolocation", "gyroscope", "magnetometer", "microphone", "payment", "usb"), "()")

# --- i18n -------------------------------------------------------------------------------------
LANGUAGE_CODE = "en-gb"
TIME_ZONE = env_str("RADVIEWER_TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

# --- files ------------------------------------------------------------------------------------
STATIC_URL = "/static/"
STATIC_ROOT = VAR_DIR / "staticfiles"
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
STATICFILES_DIRS = [BASE_DIR / "static"]
# Serve from the app directories in the embedded profile; production runs collectstatic.
WHITENOISE_USE_FINDERS = True
MEDIA_ROOT = Path(env_str("RADVIEWER_MEDIA_ROOT", str(VAR_DIR / "media")))
MEDIA_URL = "/media/"

AWS_STORAGE_BUCKET_NAME = env_str("AWS_STORAGE_BUCKET_NAME", "")
if AWS_STORAGE_BUCKET_NAME:
    # S3 or any S3-compatible server (MinIO, Ceph): files are private, served by signed URL.
    _default_storage = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": AWS_STORAGE_BUCKET_NAME,
            "endpoint_url": env_str("AWS_S3_ENDPOINT_URL", "") or None,
            "region_name": env_str("AWS_S3_REGION_NAME", "") or None,
            "access_key": env_str("AWS_ACCESS_KEY_ID", "") or None,
            "secret_key": env_str("AWS_SECRET_ACCESS_KEY", "") or None,
            "location": env_str("AWS_LOCATION", "media"),
            "default_acl": None,
            "querystring_auth": True,
            "file_overwrite": False,
        },
    }
else:
    _default_storage = {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": str(MEDIA_ROOT)},
    }
STORAGES = {
    "default": _default_storage,
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}

# --- celery -----------------------------------------------------------------------------------
# The embedded default names its (meaningless) host so kombu does not warn "No hostname was
# supplied" in every process that connects: the same transport as "filesystem://".
CELERY_BROKER_URL = env_url(
    "CELERY_BROKER_URL", "filesystem://localhost//", schemes=("filesystem", "redis", "rediss", "amqp", "amqps")
)
CELERY_BROKER_TRANSPORT_OPTIONS: dict = {}
if CELERY_BROKER_URL.startswith("filesystem://"):
    _broker_dir = VAR_DIR / "celery" / "broker"
    _broker_dir.mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir),
        "data_folder_out": str(_broker_dir),
        "control_folder": str(_broker_dir.parent / "control"),
        "store_processed": False,
        # Safe at this rate since writes are atomic (radviewer.lib.kombu_fs); halves the
        # upload-to-prediction latency against kombu's default 1 s.
        "polling_interval": 0.1,
    }
    # The filesystem transport has no fanout exchange, which remote control (pidbox),
    # gossip and mingle need; they are off in the embedded profile.
    CELERY_WORKER_ENABLE_REMOTE_CONTROL = False
# The longest hard time limit a task may declare (radviewer.lib.tasks.house_task refuses a
# longer one): the training queue's 6 h soft limit plus its 30 s to clean up.
TASK_HARD_TIME_LIMIT_MAX_S = 6 * 3600 + 30
if CELERY_BROKER_URL.startswith(("redis://", "rediss://")):
    # Redis hands an unacknowledged message to another worker after the visibility timeout.
    # Shorter than a task's hard limit, a slow task would run twice; kombu's default is 1 h,
    # below a training job's 6 h. A worker that dies is covered sooner by the reapers
    # (predictions: clinical.predictions_recover; training: mlcore.stale_work_reap).
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": TASK_HARD_TIME_LIMIT_MAX_S + 600}
# RabbitMQ: quorum queues (replicated, durable; Celery turns off global QoS for them, which
# quorum queues refuse) and publisher confirms, so an accepted study's message is on the broker
# before the request answers. RabbitMQ closes a consumer's channel when a message stays unacked
# longer than its consumer_timeout (30 min by default): a 6 h training task needs the broker's
# rabbitmq.conf `consumer_timeout` raised above TASK_HARD_TIME_LIMIT_MAX_S (docs/kubernetes.md).
CELERY_QUORUM_QUEUES = CELERY_BROKER_URL.startswith(("amqp://", "amqps://"))
if CELERY_QUORUM_QUEUES:
    CELERY_BROKER_TRANSPORT_OPTIONS = {"confirm_publish": True}
CELERY_TASK_QUEUES = [make_queue(name, quorum=CELERY_QUORUM_QUEUES) for name in QUEUES]
CELERY_TASK_ALWAYS_EAGER = False
CELERY_WORKER_HEARTBEAT_SECONDS = env_int("RADVIEWER_WORKER_HEARTBEAT_SECONDS", 30, minimum=5)
# A running training job stamps its row this often; the reaper (beat, every minute) fails a
# job whose stamp is older than the stale limit: its worker died (SIGKILL, OOM, power).
TRAINING_HEARTBEAT_SECONDS = env_int("RADVIEWER_TRAINING_HEARTBEAT_SECONDS", 10, minimum=1)
TRAINING_STALE_SECONDS = env_int("RADVIEWER_TRAINING_STALE_SECONDS", 120, minimum=2)
# Predictions (clinical.predictions_recover, beat, every PREDICTION_SWEEP_SECONDS): one still
# queued this long after its task was sent is sent again (the broker was down, or lost it);
# one running longer than its task's hard limit (150 s) plus 60 s lost its worker and is
# re-queued, or failed once it has had PREDICTION_MAX_ATTEMPTS attempts.
PREDICTION_SWEEP_SECONDS = env_int("RADVIEWER_PREDICTION_SWEEP_SECONDS", 30, minimum=1)
# Degradation from reader feedback (mlcore.selectors.degradation): a Bernoulli CUSUM per
# version on its decisive reads, its baseline the version's first BASELINE_READS reads, tuned
# to an agreement drop of AGREEMENT_CUSUM_DROP_PERCENT points with an in-control average run
# length of AGREEMENT_CUSUM_ARL0 reads (the simulated ARLs are shown on /ml/monitoring/).
AGREEMENT_CUSUM_BASELINE_READS = env_int("RADVIEWER_AGREEMENT_CUSUM_BASELINE_READS", 100, minimum=10)
AGREEMENT_CUSUM_DROP_PERCENT = env_int("RADVIEWER_AGREEMENT_CUSUM_DROP_PERCENT", 10, minimum=1, maximum=50)
AGREEMENT_CUSUM_ARL0 = env_int("RADVIEWER_AGREEMENT_CUSUM_ARL0", 500, minimum=20)
# Continuous training (mlcore.services.pipeline): a run starts after PIPELINE_CORRECTIONS
# confirmed corrections since the last data snapshot (0 = off), every PIPELINE_SCHEDULE_HOURS
# (0 = off), on a drift alarm or an admin's click. A run that failed on something passing
# (the dataset store unreachable) is retried after PIPELINE_RETRY_SECONDS, at most
# PIPELINE_MAX_ATTEMPTS times. PIPELINE_AUTO_CANARY: a candidate passing every gate criterion
# goes to canary at PIPELINE_CANARY_PERCENT by itself (default off: the admin decides).
# PIPELINE_RECIPE: JSON of training-form fields (variant, epochs, ...) overriding the
# production version's recipe.
PIPELINE_CORRECTIONS = env_int("RADVIEWER_PIPELINE_CORRECTIONS", 50, minimum=0)
# A drift alarm (mlcore.drift_check) starts a run, or joins the one queued.
PIPELINE_ON_DRIFT = env_bool("RADVIEWER_PIPELINE_ON_DRIFT", True)
PIPELINE_SCHEDULE_HOURS = env_int("RADVIEWER_PIPELINE_SCHEDULE_HOURS", 0, minimum=0)
PIPELINE_CHECK_SECONDS = env_int("RADVIEWER_PIPELINE_CHECK_SECONDS", 300, minimum=5)
PIPELINE_RETRY_SECONDS = env_int("RADVIEWER_PIPELINE_RETRY_SECONDS", 900, minimum=1)
PIPELINE_MAX_ATTEMPTS = env_int("RADVIEWER_PIPELINE_MAX_ATTEMPTS", 5, minimum=1)
PIPELINE_AUTO_CANARY = env_bool("RADVIEWER_PIPELINE_AUTO_CANARY", False)
PIPELINE_CANARY_PERCENT = env_int("RADVIEWER_PIPELINE_CANARY_PERCENT", 5, minimum=1, maximum=50)
PIPELINE_RECIPE = json.loads(env_str("RADVIEWER_PIPELINE_RECIPE", "") or "{}")
PREDICTION_REQUEUE_AFTER_SECONDS = env_int("RADVIEWER_PREDICTION_REQUEUE_AFTER_SECONDS", 60, minimum=1)
PREDICTION_STALE_SECONDS = env_int("RADVIEWER_PREDICTION_STALE_SECONDS", 150 + 60, minimum=1)
# A reader may undo a reading this long after saving it (before sign-off); its confirmed label
# goes to the dataset store only after the window (clinical.services.reviews.review_undo).
REVIEW_UNDO_SECONDS = env_int("RADVIEWER_REVIEW_UNDO_SECONDS", 10, minimum=1)
PREDICTION_MAX_ATTEMPTS = env_int("RADVIEWER_PREDICTION_MAX_ATTEMPTS", 3, minimum=1)

# --- ML ---------------------------------------------------------------------------------------
MLFLOW_TRACKING_URI = env_str(
    "MLFLOW_TRACKING_URI", f"sqlite:///{VAR_DIR / 'mlflow' / 'mlflow.db'}"
)
if MLFLOW_TRACKING_URI.startswith("sqlite:///"):
    (VAR_DIR / "mlflow").mkdir(parents=True, exist_ok=True)
MLFLOW_REGISTERED_MODEL = env_str("RADVIEWER_REGISTERED_MODEL", "radviewer-triage")
# The MLflow web UI, when one runs (e.g. http://mlflow.hospital.org:5000): the console links
# to it; empty = no UI, the console then names the store without showing its path.
MLFLOW_UI_URL = env_str("MLFLOW_UI_URL", "").rstrip("/")
DATASET_STORE_URI = env_str("RADVIEWER_DATASET_URI", str(VAR_DIR / "datasets" / "current"))
# Where training jobs run: "local" (Lightning in the training worker) or "ray" (Ray Train:
# a local Ray in the worker's process tree, or the cluster at RADVIEWER_RAY_ADDRESS, whose
# checkpoints go to RADVIEWER_RAY_STORAGE, a folder or s3:// URI every node sees; a group that
# loses a node restarts from its last checkpoint up to RADVIEWER_RAY_MAX_FAILURES times).
TRAINING_BACKEND = env_str("RADVIEWER_TRAINING_BACKEND", "local")
if TRAINING_BACKEND not in ("local", "ray"):
    raise ConfigError(f"RADVIEWER_TRAINING_BACKEND must be 'local' or 'ray', got {TRAINING_BACKEND!r}")
RAY_ADDRESS = env_str("RADVIEWER_RAY_ADDRESS", "")
RAY_STORAGE_PATH = env_str("RADVIEWER_RAY_STORAGE", "")
RAY_WORKERS = env_int("RADVIEWER_RAY_WORKERS", 2, minimum=1)
RAY_USE_GPU = env_bool("RADVIEWER_RAY_USE_GPU", False)
RAY_MAX_FAILURES = env_int("RADVIEWER_RAY_MAX_FAILURES", 2, minimum=0)
# Drift (beat task mlcore.drift_check, every DRIFT_CHECK_SECONDS): the newest DRIFT_WINDOW
# studies of each served version against its reference; each detector alarms at p < alpha.
DRIFT_WINDOW = env_int("RADVIEWER_DRIFT_WINDOW", 200, minimum=20)
DRIFT_ALPHA = env_float("RADVIEWER_DRIFT_ALPHA", 0.05, low=0.0, high=0.5)
DRIFT_PERMUTATIONS = env_int("RADVIEWER_DRIFT_PERMUTATIONS", 200, minimum=19)
DRIFT_CHECK_SECONDS = env_int("RADVIEWER_DRIFT_CHECK_SECONDS", 3600, minimum=10)

# --- clinical ---------------------------------------------------------------------------------
PSEUDONYM_KEY = env_str("RADVIEWER_PSEUDONYM_KEY", "") or local_secret(VAR_DIR / "pseudonym_key")
# Encrypts the protected mapping back to the source (clinical.OriginalIdentifiers) at rest:
# Fernet keys, comma-separated, the first encrypts and all decrypt (rotate: put a new key
# first, run `manage.py rotate_phi_key`, then drop the old one). Embedded default: a key
# generated under var/; production requires the variable.
PHI_KEYS = fernet_keys("RADVIEWER_PHI_KEY", fallback_file=VAR_DIR / "phi_key")
# Burned In Annotation YES: warn (default) or refuse the instance.
REFUSE_BURNED_IN = env_bool("RADVIEWER_REFUSE_BURNED_IN", False)
# File names often carry PHI: stored, but shown as "image 1", "image 2" unless this is true.
SHOW_FILE_NAMES = env_bool("RADVIEWER_SHOW_FILE_NAMES", False)
MAX_UPLOAD_BYTES = env_int("RADVIEWER_MAX_UPLOAD_BYTES", 50 * 1024 * 1024, minimum=1024)
MAX_IMAGE_PIXELS = env_int("RADVIEWER_MAX_IMAGE_PIXELS", 80_000_000, minimum=10_000)
WORKLIST_MAX_WAIT_MINUTES = env_int("RADVIEWER_MAX_WAIT_MINUTES", 240, minimum=1)
# A study opened for reading is claimed by its reader; the claim lapses after this long
# without activity on the page (clinical.models.StudyClaim, issue 14 item 9).
CLAIM_TIMEOUT_MINUTES = env_int("RADVIEWER_CLAIM_TIMEOUT_MINUTES", 10, minimum=1)
# Share of studies read with the AI hidden until the verdict, until the console sets one
# (mlcore RolloutPolicy.blinded_percent; issue 11, docs/ml.md "Blinded reads").
BLINDED_READS_DEFAULT_PERCENT = 3.0
DATA_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024
FILE_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024

# --- observability ----------------------------------------------------------------------------
# /metrics is served only to these networks (Prometheus scrapes from inside the cluster).
METRICS_ALLOWED_NETWORKS = env_cidrs("RADVIEWER_METRICS_ALLOWED_CIDRS", ["127.0.0.0/8", "::1/128"])
# Multiprocess metrics (docs/operations.md): every gunicorn and Celery process of this host
# writes its samples under this folder and /metrics sums them. prometheus_client reads the
# variable itself when it is imported, so it must be in the environment before Python starts
# (scripts/supervise.py sets it to var/prometheus-multiproc for `make run` and empties it on
# start); it is only checked here. Unset = each process exports only its own samples.
PROMETHEUS_MULTIPROC_DIR = env_str("PROMETHEUS_MULTIPROC_DIR", "")
if PROMETHEUS_MULTIPROC_DIR:
    try:
        Path(PROMETHEUS_MULTIPROC_DIR).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"Environment variable PROMETHEUS_MULTIPROC_DIR={PROMETHEUS_MULTIPROC_DIR!r} "
                          f"is not a folder that can be created: {exc.strerror or exc}") from None
# Queue, heartbeat, agreement, drift and job metrics are read from the database (and the
# broker) at most this often per web process.
METRICS_CACHE_SECONDS = env_int("RADVIEWER_METRICS_CACHE_SECONDS", 10, minimum=0)
# A Celery worker on a host of its own serves its metrics on this port (0 = off: on one host
# the web process's /metrics already includes the workers' samples).
WORKER_METRICS_PORT = env_int("RADVIEWER_WORKER_METRICS_PORT", 0, minimum=0, maximum=65535)
WORKER_METRICS_ADDR = env_str("RADVIEWER_WORKER_METRICS_ADDR", "127.0.0.1")
LOG_LEVEL = env_str("RADVIEWER_LOG_LEVEL", "INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "filters": {"permission_denied": {"()": "radviewer.lib.logging.PermissionDeniedWithoutTraceback"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain",
                             "filters": ["permission_denied"]}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        # highdicom names the source instance (its original SOP Instance UID, PHI here) at
        # INFO while building the SR from the protected mapping.
        "highdicom": {"level": "WARNING"},
        # Django's own console handler (DEBUG only) and mail_admins (no ADMINS here) replaced:
        # its records reach the root's console once, not twice under DJANGO_DEBUG=true.
        "django": {"handlers": [], "level": LOG_LEVEL, "propagate": True},
    },
}

# --- API --------------------------------------------------------------------------------------
# Integration clients authenticate per view (clinical.api.authentication): bearer tokens, and
# HTTP Basic with the client name for DICOMweb senders such as Orthanc. No session auth here.
REST_FRAMEWORK = {
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_AUTHENTICATION_CLASSES": [],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "EXCEPTION_HANDLER": "clinical.api.errors.api_exception_handler",
    # DRF's default set, with the JSON and multipart parsers that refuse bad bodies with a 400 parse_error.
    "DEFAULT_PARSER_CLASSES": ["clinical.api.parsers.JSONParser", "rest_framework.parsers.FormParser",
                               "clinical.api.parsers.MultiPartParser"],
    "URL_FORMAT_OVERRIDE": None,  # media types come from Accept only, never from ?format=
}
SPECTACULAR_SETTINGS = {
    "TITLE": "RadViewer API",
    "DESCRIPTION": (
        "PACS/RIS integration: submit studies (multipart or DICOMweb STOW-RS), poll or receive "
        "signed webhooks, read triage results as JSON, FHIR R4 DiagnosticReport, DICOM SR and "
        "heat-map PNG, send readings back. See docs/integration.md."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SERVE_AUTHENTICATION": [],
    "SCHEMA_PATH_PREFIX": r"/api/v[0-9]+",
    "COMPONENT_SPLIT_REQUEST": True,
    # Swagger UI from the drf-spectacular-sidecar package (static files), never from a CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}
# Absolute base of links in webhook bodies (no request to build them from), e.g.
# https://radviewer.hospital.org; empty = links relative to the server root.
PUBLIC_BASE_URL = env_str("RADVIEWER_PUBLIC_URL", "").rstrip("/")

# Per-client API rate limits count in this cache. LocMem (the default) counts per process, so
# with N gunicorn workers a client gets up to N x its limit; set RADVIEWER_CACHE_URL to a Redis
# URL to share the counters (production).
CACHE_URL = env_str("RADVIEWER_CACHE_URL", "")
if CACHE_URL:
    CACHES = {"default": {"BACKEND": "radviewer.lib.cache.RedisCache",
                          "LOCATION": env_url("RADVIEWER_CACHE_URL", "", schemes=("redis", "rediss"))}}
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "radviewer"}}

# Failed API token authentication (a wrong, malformed or revoked token, Bearer or Basic):
# API_AUTH_FAILURE_LIMIT from one client address within the window -> every request from
# that address gets 429 for API_AUTH_LOCKOUT_S (counted in the cache above).
API_AUTH_FAILURE_LIMIT = env_int("RADVIEWER_API_AUTH_FAILURE_LIMIT", 20, minimum=1)
API_AUTH_FAILURE_WINDOW_S = env_int("RADVIEWER_API_AUTH_FAILURE_WINDOW_S", 300, minimum=1)
API_AUTH_LOCKOUT_S = env_int("RADVIEWER_API_AUTH_LOCKOUT_S", 300, minimum=1)

# Repeated reads by an integration (a RIS polling a study's status every few seconds) are
# audited once per client, object and action in this window, not once per request; 0 records
# every read. Changes and exports are always recorded. Per process with the LocMem cache.
AUDIT_READ_WINDOW_S = env_int("RADVIEWER_AUDIT_READ_WINDOW_S", 300, minimum=0)
# `manage.py flush` may empty the append-only audit log without --include-audit-log: the test
# profile only (pytest-django flushes between transactional tests). Not read from the environment.
AUDIT_FLUSH_ALLOWED = False

DEMO_PASSWORD = env_str("RADVIEWER_DEMO_PASSWORD", "")
ALLOW_DEMO_ACCOUNTS = True

# The embedded profile runs its workers as whoever typed `make run` -- root in a container or
# a CI box -- and Celery's four-line superuser warning per worker buried the login box. The
# production profile (radviewer.settings.production) keeps the warning: there it matters.
warnings.filterwarnings("ignore", message=r"(?s)You're running the worker with superuser privileges")
