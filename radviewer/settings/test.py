"""Test profile: the embedded default (or the services named in the environment), fast hashing."""

import os

from radviewer.settings.base import *  # noqa: F403
from radviewer.settings.env import env_str

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
# No blinded reads unless a test sets a share (a random UID would otherwise hide the AI from
# ~3 % of the studies other tests look at); tests of blinding set RolloutPolicy.blinded_percent.
BLINDED_READS_DEFAULT_PERCENT = 0.0
# pytest-django flushes the database between transactional tests, audit log included.
AUDIT_FLUSH_ALLOWED = True
STORAGES = {
    **STORAGES,  # noqa: F405
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}

# Tests keep their own broker folder and media so a developer's `make run` state is untouched.
TEST_FILESYSTEM_BROKER_DIR = VAR_DIR / "test-celery" / "broker"  # noqa: F405
TEST_FILESYSTEM_BROKER_DIR.mkdir(parents=True, exist_ok=True)
TEST_FILESYSTEM_TRANSPORT_OPTIONS = {
    "data_folder_in": str(TEST_FILESYSTEM_BROKER_DIR),
    "data_folder_out": str(TEST_FILESYSTEM_BROKER_DIR),
    "control_folder": str(TEST_FILESYSTEM_BROKER_DIR.parent / "control"),
    "store_processed": False,
}
if CELERY_BROKER_URL.startswith("filesystem://"):  # noqa: F405
    CELERY_BROKER_TRANSPORT_OPTIONS = TEST_FILESYSTEM_TRANSPORT_OPTIONS
MEDIA_ROOT = VAR_DIR / "test-media"  # noqa: F405
if STORAGES["default"]["BACKEND"].endswith("FileSystemStorage"):
    STORAGES["default"] = {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": str(MEDIA_ROOT)},
    }

# A separate MLflow store and dataset store for tests (the session fixture registers a tiny
# model there), unless the environment names real ones.
if env_str("RADVIEWER_TEST_MLFLOW_URI", ""):  # a worker started by a test joins its session's store
    MLFLOW_TRACKING_URI = env_str("RADVIEWER_TEST_MLFLOW_URI", "")
elif not env_str("MLFLOW_TRACKING_URI", ""):
    # One store per test process, so a session never sees another run's registry and never
    # has to delete a store that a worker or an earlier test still holds open.
    TEST_MLFLOW_DIR = VAR_DIR / "test-mlflow" / f"session-{os.getpid()}"  # noqa: F405
    TEST_MLFLOW_DIR.mkdir(parents=True, exist_ok=True)
    MLFLOW_TRACKING_URI = f"sqlite:///{TEST_MLFLOW_DIR / 'mlflow.db'}"
DATASET_STORE_URI = env_str("RADVIEWER_DATASET_URI", "") or str(VAR_DIR / "test-datasets" / "current")  # noqa: F405
PIPELINE_ON_DRIFT = False  # tests register the drift hook themselves (tests/mlcore/test_pipeline.py)
