"""A fresh process (as a `make run` worker is) loads the production model from the configured store.

MLflow resolves models:/ URIs through its process-wide registry URI, which defaults to
./mlruns; nothing but our own configuration may point it at RADVIEWER's store (no
MLFLOW_TRACKING_URI in the environment, as under `make run`).
"""

import os
import subprocess
import sys
from pathlib import Path

from tests.support.models import register_random_model

REPO = Path(__file__).resolve().parents[2]

CODE = """
import django; django.setup()
from mlcore.services.inference import ModelRoute, get_predictor
predictor = get_predictor(ModelRoute("radviewer-triage", "1", "production"))
print("loaded", predictor.version)
"""


def test_fresh_worker_process_loads_the_model_from_the_configured_store(tmp_path):
    var = tmp_path / "var"
    register_random_model(tracking_uri=f"sqlite:///{var / 'mlflow' / 'mlflow.db'}", name="radviewer-triage")
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("MLFLOW_", "DJANGO_", "DATABASE_", "CELERY_"))}
    env.update(RADVIEWER_VAR_DIR=str(var), DJANGO_SETTINGS_MODULE="radviewer.settings.base")
    result = subprocess.run([sys.executable, "-c", CODE], cwd=tmp_path, env={**env, "PYTHONPATH": str(REPO)},
                            capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "loaded 1" in result.stdout
