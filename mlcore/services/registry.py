"""Registry mirror and aliases. MLflow is the truth; these functions keep the mirror in step."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.db import transaction

from mlcore.models import ModelAlias, ModelVersion
from radviewer.audit.actions import AuditAction
from radviewer.audit.services import audit_event_create

ALIASES = tuple(ModelAlias.Alias.values)


def _client():
    from mlcore.ml import tracking  # MLflow (seconds to import): only when the registry is used

    tracking.configure(settings.MLFLOW_TRACKING_URI)
    return tracking.client(settings.MLFLOW_TRACKING_URI)


@transaction.atomic
def registry_sync(*, name: str | None = None) -> list[ModelVersion]:
    """Mirror every version and alias of ``name`` from MLflow. Idempotent."""
    name = name or settings.MLFLOW_REGISTERED_MODEL
    client = _client()
    from mlflow.exceptions import MlflowException  # MLflow: see _client

    try:
        registered = client.get_registered_model(name)
        versions = client.search_model_versions(f"name='{name}'")
    except MlflowException:
        return []
    mirrored = []
    for mv in versions:
        metrics: dict[str, Any] = {}
        variant = ""
        synthetic = False
        params: dict[str, str] = {}
        tags: dict[str, str] = {}
        if mv.run_id:
            try:
                run = client.get_run(mv.run_id)
                metrics = {k: v for k, v in run.data.metrics.items()
                           if k.startswith(("test_", "val_", "final_eval_"))}
                variant = run.data.params.get("model_name", "")
                synthetic = run.data.tags.get("radviewer.data_synthetic") == "true"
                # Lineage for the version page, the evaluation set and the change record.
                params = dict(run.data.params)
                tags = {k: v for k, v in run.data.tags.items() if not k.startswith("mlflow.log-model")}
            except MlflowException:
                pass
        row, _ = ModelVersion.objects.update_or_create(
            name=name,
            version=str(mv.version),
            defaults={
                "run_id": mv.run_id or "",
                "variant": variant,
                "synthetic": synthetic,
                "metrics": metrics,
                "params": params,
                "tags": tags,
                "description": mv.description or "",
                "registered_at": datetime.fromtimestamp(mv.creation_timestamp / 1000, tz=UTC),
            },
        )
        mirrored.append(row)
    aliases = dict(getattr(registered, "aliases", {}) or {})
    ModelAlias.objects.filter(name=name).exclude(alias__in=list(aliases)).delete()
    for alias, version in aliases.items():
        if alias not in ALIASES:
            continue
        ModelAlias.objects.update_or_create(
            name=name, alias=alias,
            defaults={"model_version": ModelVersion.objects.get(name=name, version=str(version))},
        )
    return mirrored


def model_alias_set(*, actor: Any, alias: str, version: str, name: str | None = None) -> ModelAlias:
    """Point ``alias`` at ``version`` in MLflow, mirror it and audit the move."""
    from mlcore.ml import tracking  # MLflow: see _client

    if alias not in ALIASES:
        raise ValueError(f"unknown alias {alias!r}; accepted: {', '.join(ALIASES)}")
    name = name or settings.MLFLOW_REGISTERED_MODEL
    tracking.configure(settings.MLFLOW_TRACKING_URI)
    previous = tracking.get_version_by_alias(name, alias, tracking_uri=settings.MLFLOW_TRACKING_URI)
    tracking.set_alias(name, alias, str(version))
    registry_sync(name=name)
    with transaction.atomic():
        row = ModelAlias.objects.select_related("model_version").get(name=name, alias=alias)
        audit_event_create(
            actor=actor if getattr(actor, "is_authenticated", False) else None,
            actor_label="" if getattr(actor, "is_authenticated", False) else str(actor or "system"),
            action=AuditAction.MODEL_ALIAS_SET,
            object_type="mlcore.modelversion",
            object_id=f"{name}/{version}",
            details={"alias": alias, "version": str(version), "previous_version": previous},
        )
    return row
