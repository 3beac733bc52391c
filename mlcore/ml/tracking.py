"""MLflow helpers: where runs and models go, how a model version is logged and found.

Registry rule (DESIGN.md section 7): versions are addressed by number or by alias
(``production``, ``canary``, ``candidate``); the deprecated stages and "latest" are refused,
because "latest" silently changes meaning when someone trains a model.

Embedded default: ``sqlite:///<repo>/var/mlflow/mlflow.db`` with artifacts in
``<repo>/var/mlflow/artifacts``; production: an MLflow server URL. Same code either way.
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
import time
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import mlflow
import numpy as np
from mlflow import MlflowClient
from mlflow.entities import Metric, Param
from mlflow.exceptions import MlflowException
from mlflow.models import Model, infer_signature

DEFAULT_EXPERIMENT = "radviewer"
DEFAULT_REGISTERED_MODEL = "radviewer-triage"
MODEL_ARTIFACT_NAME = "model"
_MODEL_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/@]+)|/(?P<version>\d+))$")


# -- configuration -----------------------------------------------------------------------
def _sqlite_path(uri: str) -> Path | None:
    """File of a ``sqlite:///relative.db`` or ``sqlite:////absolute/path.db`` URI."""
    prefix = "sqlite:///"
    if not uri.startswith(prefix):
        return None
    rest = unquote(uri[len(prefix):].split("?", 1)[0])
    return Path(rest).resolve()


def default_artifact_root(tracking_uri: str) -> str | None:
    """``<dir of the sqlite file>/artifacts`` for a sqlite store, else None (server decides)."""
    db = _sqlite_path(tracking_uri)
    return None if db is None else (db.parent / "artifacts").as_uri()


def configure(tracking_uri: str, registry_uri: str | None = None) -> None:
    """Point this process at a tracking store (and registry; default: the same store)."""
    db = _sqlite_path(tracking_uri)
    if db is not None:
        db.parent.mkdir(parents=True, exist_ok=True)
    _quiet_progress()
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(registry_uri or tracking_uri)


def _quiet_progress() -> None:
    # tqdm bars of artifact transfers are noise in worker logs; an operator may re-enable.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")


def client(tracking_uri: str | None = None) -> MlflowClient:
    """A client for ``tracking_uri`` (registry: the same store), or the configured one."""
    if tracking_uri is None:
        return MlflowClient()
    return MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)


def ensure_experiment(
    name: str = DEFAULT_EXPERIMENT, *, artifact_location: str | None = None
) -> str:
    """Experiment id of ``name``, created (with a local artifact root for sqlite) if missing."""
    exp = mlflow.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    location = artifact_location or default_artifact_root(mlflow.get_tracking_uri())
    if location is not None:
        location = f"{location.rstrip('/')}/{name}"
    try:
        return mlflow.create_experiment(name, artifact_location=location)
    except MlflowException:  # created concurrently by another worker
        exp = mlflow.get_experiment_by_name(name)
        if exp is None:
            raise
        return exp.experiment_id


def _psutil_available() -> bool:
    try:
        import psutil  # noqa: F401
    except ImportError:
        return False
    return True


@contextmanager
def start_run(
    *,
    experiment: str = DEFAULT_EXPERIMENT,
    run_name: str | None = None,
    tags: Mapping[str, str] | None = None,
    log_system_metrics: bool = True,
    system_metrics_interval_s: float = 2.0,
) -> Iterator[mlflow.ActiveRun]:
    """Start a run in ``experiment``; system metrics (CPU/RAM/GPU) sampled if psutil is there."""
    exp_id = ensure_experiment(experiment)
    system = bool(log_system_metrics and _psutil_available())
    if system:
        mlflow.set_system_metrics_sampling_interval(system_metrics_interval_s)
        mlflow.set_system_metrics_samples_before_logging(1)
    with mlflow.start_run(experiment_id=exp_id, run_name=run_name, tags=dict(tags or {}),
                          log_system_metrics=system) as run:
        yield run


def git_commit(cwd: str | Path | None = None) -> str:
    """``git rev-parse HEAD`` of the code (this package's checkout), else "unknown"."""
    where = Path(cwd) if cwd is not None else Path(__file__).resolve().parent
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=where, capture_output=True,
                             text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    sha = out.stdout.strip()
    return sha if out.returncode == 0 and re.fullmatch(r"[0-9a-f]{40}", sha) else "unknown"


def git_dirty(cwd: str | Path | None = None) -> bool | None:
    """True if tracked files differ from HEAD (the commit alone does not reproduce the run);
    None when git cannot tell."""
    where = Path(cwd) if cwd is not None else Path(__file__).resolve().parent
    try:
        out = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=where,
                             capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return bool(out.stdout.strip()) if out.returncode == 0 else None


def flatten_params(params: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested dict -> ``{"a.b": "value"}`` strings (MLflow params are strings, <= 6000 chars)."""
    out: dict[str, str] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten_params(value, prefix=f"{name}."))
        else:
            out[name] = str(value)[:6000]
    return out


def log_params(params: Mapping[str, Any], *, run_id: str) -> None:
    """Log (flattened) params in batches of 100 (the store's per-call limit)."""
    flat = [Param(k, v) for k, v in flatten_params(params).items()]
    for i in range(0, len(flat), 100):
        client().log_batch(run_id, params=flat[i:i + 100])


def log_metrics(metrics: Mapping[str, float], *, run_id: str, step: int | None = None) -> None:
    ts = int(time.time() * 1000)
    batch = [Metric(k, float(v), ts, step or 0) for k, v in metrics.items()
             if v is not None and np.isfinite(float(v))]
    for i in range(0, len(batch), 900):  # server batch limit is 1000
        client().log_batch(run_id, metrics=batch[i:i + 900])


def log_bytes(data: bytes, artifact_file: str, *, run_id: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / Path(artifact_file).name
        path.write_bytes(data)
        parent = str(Path(artifact_file).parent)
        client().log_artifact(run_id, str(path), None if parent == "." else parent)


def read_artifact_bytes(run_id: str, artifact_file: str) -> bytes | None:
    """The bytes of one run artefact, or None when the run has no such artefact."""
    listed = {a.path for a in client().list_artifacts(run_id, str(Path(artifact_file).parent))}
    if artifact_file not in listed:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        local = client().download_artifacts(run_id, artifact_file, tmp)
        return Path(local).read_bytes()


# -- model logging and registry ----------------------------------------------------------
class RadViewerPyfunc(mlflow.pyfunc.PythonModel):
    """pyfunc view of a bundle: float32 (-1, 1, S, S) normalised images -> (-1, C)
    calibrated probabilities.

    For generic MLflow tooling (``mlflow.pyfunc.load_model``, batch scoring); RadViewer
    itself loads the bundle through :class:`mlcore.ml.predictor.Predictor` (OOD, heat
    maps). Needs the ``radviewer`` package (``mlcore.ml``) importable where it is loaded.
    """

    # The explicit tensor signature is the schema; MLflow 3 would otherwise derive one from
    # (absent) type hints of predict() and warn about their absence at class creation.
    _skip_type_hint_validation = True

    def load_context(self, context: Any) -> None:
        # torch: this module is also the registry client of web processes, which never load it
        from mlcore.ml.bundle import ModelBundle

        self.bundle = ModelBundle.load(context.artifacts["bundle"])
        self.model = self.bundle.build()

    def predict(self, context, model_input, params=None):
        import torch  # torch: see load_context

        x = torch.as_tensor(np.asarray(model_input, dtype=np.float32))
        with torch.inference_mode():
            logits = self.model(x).double() / self.bundle.temperature
        return torch.softmax(logits, dim=1).float().numpy()


def _pip_requirements() -> list[str]:
    import torch  # torch: see RadViewerPyfunc.load_context

    return [f"mlflow=={mlflow.__version__}", f"torch=={torch.__version__.split('+')[0]}",
            f"numpy=={np.__version__}", "einops", "Pillow"]


def log_model_bundle(
    bundle_dir: str | Path,
    *,
    image_size: int,
    class_keys: list[str] | tuple[str, ...],
    preprocess: Mapping[str, Any],
    temperature: float,
    registered_model_name: str | None,
) -> tuple[str, str | None]:
    """Log the bundle as a pyfunc model in the ACTIVE run; register it if a name is given.

    Returns ``(model_uri, registered version or None)``.
    """
    if mlflow.active_run() is None:
        raise RuntimeError("log_model_bundle needs an active MLflow run (use start_run)")
    x = np.zeros((1, 1, image_size, image_size), dtype=np.float32)
    y = np.full((1, len(class_keys)), 1.0 / len(class_keys), dtype=np.float32)
    with warnings.catch_warnings():
        # MLflow nags about type hints, input examples and cloudpickle; the signature is
        # explicit and the pyfunc class is importable code of this package.
        warnings.simplefilter("ignore", UserWarning)
        info = _log_pyfunc(bundle_dir, x, y, class_keys, preprocess, temperature,
                           registered_model_name)
    version = info.registered_model_version
    return info.model_uri, (None if version is None else str(version))


def _log_pyfunc(bundle_dir: str | Path, x: np.ndarray, y: np.ndarray,
                class_keys: list[str] | tuple[str, ...], preprocess: Mapping[str, Any],
                temperature: float, registered_model_name: str | None) -> Any:
    # "Models from code": the logged model is this two-line script, not a cloudpickle of an
    # object, so loading a registered model never unpickles arbitrary code.
    with tempfile.TemporaryDirectory(prefix="radviewer-pyfunc-") as tmp:
        script = Path(tmp) / "radviewer_model.py"
        script.write_text(_PYFUNC_SCRIPT)
        return mlflow.pyfunc.log_model(
            name=MODEL_ARTIFACT_NAME,
            python_model=str(script),
            artifacts={"bundle": str(bundle_dir)},
            signature=infer_signature(x, y),
            metadata={"class_keys": list(class_keys), "preprocess": dict(preprocess),
                      "temperature": float(temperature)},
            registered_model_name=registered_model_name,
            pip_requirements=_pip_requirements(),
        )


_PYFUNC_SCRIPT = """\
import mlflow

from mlcore.ml.tracking import RadViewerPyfunc

mlflow.models.set_model(RadViewerPyfunc())
"""


def parse_model_uri(model_uri: str) -> tuple[str, str | None, str | None]:
    """``models:/name@alias`` or ``models:/name/3`` -> (name, alias, version)."""
    m = _MODEL_URI.match(model_uri or "")
    if m is None:
        raise ValueError(
            f"unsupported model URI {model_uri!r}; accepted: 'models:/<name>@<alias>' or "
            "'models:/<name>/<version number>' (stages and 'latest' are not used)"
        )
    return m["name"], m["alias"], m["version"]


def set_alias(name: str, alias: str, version: str | int) -> None:
    if alias.lower() == "latest" or alias.isdigit():
        raise ValueError(f"alias {alias!r} is not allowed; use e.g. production, canary, candidate")
    client().set_registered_model_alias(name, alias, str(version))


def get_version_by_alias(name: str, alias: str, *, tracking_uri: str | None = None) -> str | None:
    """Version number the alias points at, or None if the model or alias does not exist."""
    try:
        return str(client(tracking_uri).get_model_version_by_alias(name, alias).version)
    except MlflowException as exc:
        if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND"):
            return None
        raise


def resolve_version(model_uri: str, *, tracking_uri: str | None = None) -> str:
    """Concrete version number behind ``model_uri``; LookupError for an unknown alias."""
    name, alias, version = parse_model_uri(model_uri)
    if version is not None:
        return version
    found = get_version_by_alias(name, alias or "", tracking_uri=tracking_uri)
    if found is None:
        raise LookupError(f"registered model {name!r} has no alias {alias!r}")
    return found


def download_bundle(model_uri: str, dst: str | Path | None = None, *,
                    tracking_uri: str | None = None) -> Path:
    """Download the registered model and return its local bundle directory.

    ``models:/name@alias`` resolves the alias at download time; callers that must record
    which version they got resolve it first (:func:`resolve_version`) and download
    ``models:/name/<version>``, so a concurrent alias move cannot make the two disagree.
    """
    parse_model_uri(model_uri)
    _quiet_progress()
    target = Path(dst) if dst is not None else Path(tempfile.mkdtemp(prefix="radviewer-model-"))
    target.mkdir(parents=True, exist_ok=True)
    local = Path(mlflow.artifacts.download_artifacts(
        artifact_uri=model_uri, dst_path=str(target), tracking_uri=tracking_uri,
        registry_uri=tracking_uri))
    meta = Model.load(str(local / "MLmodel"))
    try:
        rel = meta.flavors["python_function"]["artifacts"]["bundle"]["path"]
    except KeyError:
        raise ValueError(f"{model_uri} is not a RadViewer model (no 'bundle' artifact)") from None
    return local / rel
