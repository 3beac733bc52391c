"""Training as a write: train -> mirror the registry -> audit. The one service every entry
point (``manage.py train_model``, the phantom demo, the console's training jobs) goes
through, so a registered version always leaves the same trace."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.conf import settings

from mlcore.services.registry import registry_sync
from radviewer.audit.actions import AuditAction
from radviewer.audit.services import audit_event_create

# Kept out of the module top level: importing torch/Lightning/MLflow costs seconds and
# hundreds of MB, and web processes import this module without ever training.


def train_config(**fields: Any):
    """A ``TrainConfig`` for the app's registry and dataset store, defaults from the recipe
    (``mlcore.ml.training.config``). ``ValueError`` names any bad field."""
    from mlcore.ml.training import TrainConfig  # torch: see module note

    # Where training runs (local Lightning, or a Ray cluster) is the deployment's choice.
    fields.setdefault("backend", settings.TRAINING_BACKEND)
    if fields["backend"] == "ray":
        fields.setdefault("ray_address", settings.RAY_ADDRESS)
        fields.setdefault("ray_storage_path", settings.RAY_STORAGE_PATH)
        fields.setdefault("num_workers_ray", settings.RAY_WORKERS)
        fields.setdefault("ray_use_gpu", settings.RAY_USE_GPU)
        fields.setdefault("ray_max_failures", settings.RAY_MAX_FAILURES)
    fields.setdefault("store_uri", str(settings.DATASET_STORE_URI))
    fields.setdefault("tracking_uri", settings.MLFLOW_TRACKING_URI)
    fields.setdefault("registered_model_name", settings.MLFLOW_REGISTERED_MODEL)
    return TrainConfig(**fields)


def model_train(*, config, actor: Any = None, actor_label: str = "system",
                details: dict[str, Any] | None = None,
                on_epoch: Callable[[dict[str, Any]], None] | None = None,
                on_step: Callable[[dict[str, Any]], None] | None = None,
                should_stop: Callable[[], bool] | None = None):
    """Train ``config`` (a ``TrainConfig``), then mirror the registry and audit the new
    version (``model.registered``). Returns the ``TrainResult`` (``cancelled`` when
    ``should_stop`` stopped it: then nothing was registered). The hooks are
    ``mlcore.ml.training.train``'s."""
    from mlcore.ml.training import train  # torch: see module note

    result = train(config, on_epoch=on_epoch, on_step=on_step, should_stop=should_stop)
    if result.model_version:
        registry_sync(name=config.registered_model_name)
        user = actor if getattr(actor, "is_authenticated", False) else None
        audit_event_create(
            actor=user, actor_label="" if user else actor_label, action=AuditAction.MODEL_REGISTERED,
            object_type="mlcore.modelversion",
            object_id=f"{config.registered_model_name}/{result.model_version}",
            details={"run_id": result.run_id, "alias": config.alias,
                     "model": config.model_name, "store": config.store_uri, **(details or {})},
        )
    return result
