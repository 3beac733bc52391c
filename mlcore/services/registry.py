"""Registry mirror and aliases. MLflow is the truth; these functions keep the mirror in step."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from mlcore.models import AliasEvent, ChangeRecord, ModelAlias, ModelVersion
from mlcore.services.change_records import change_record_sections
from mlcore.services.gate import gate_check
from radviewer.audit.actions import AuditAction
from radviewer.audit.services import audit_event_create

ALIASES = tuple(ModelAlias.Alias.values)


def _client():
    from mlcore.ml import tracking  # MLflow (seconds to import): only when the registry is used

    tracking.configure(settings.MLFLOW_TRACKING_URI)
    return tracking.client(settings.MLFLOW_TRACKING_URI)


OBSERVED_ACTOR = "mlflow registry"


def _run_facts(client: Any, run_id: str) -> dict[str, Any]:
    """Metrics, params and tags of a version's run ({} parts when the run is gone)."""
    from mlflow.exceptions import MlflowException  # MLflow: see _client

    facts: dict[str, Any] = {"metrics": {}, "params": {}, "tags": {}, "variant": "", "synthetic": False}
    if not run_id:
        return facts
    try:
        run = client.get_run(run_id)
    except MlflowException:
        return facts
    facts["metrics"] = {k: v for k, v in run.data.metrics.items()
                        if k.startswith(("test_", "val_", "final_eval_"))}
    facts["params"] = dict(run.data.params)
    # MLflow's own bookkeeping of logged models is a large JSON blob, not lineage.
    facts["tags"] = {k: v for k, v in run.data.tags.items() if not k.startswith("mlflow.log-model")}
    facts["variant"] = run.data.params.get("model_name", "")
    facts["synthetic"] = run.data.tags.get("radviewer.data_synthetic") == "true"
    return facts


def lock_model(*, name: str) -> None:
    """Serialise alias changes of one registered model: its version rows are locked (on
    SQLite every write transaction is serialised already; ``select_for_update`` is a no-op)."""
    list(ModelVersion.objects.select_for_update().filter(name=name).values_list("pk", flat=True))


@transaction.atomic
def registry_sync(*, name: str | None = None) -> list[ModelVersion]:
    """Mirror every version and alias of ``name`` from MLflow. Idempotent.

    An alias that MLflow shows elsewhere than the alias timeline (a move made in MLflow
    directly: the starter model's registration, the MLflow UI, a training run's
    ``--alias``) is recorded as observed: the open interval is closed, a new one opened,
    with a change record of kind ``observed``.
    """
    name = name or settings.MLFLOW_REGISTERED_MODEL
    client = _client()
    from mlflow.exceptions import MlflowException  # MLflow: see _client

    # Locked before MLflow is read, so a promotion committing meanwhile is not undone by an
    # alias read before it.
    lock_model(name=name)
    try:
        registered = client.get_registered_model(name)
        versions = client.search_model_versions(f"name='{name}'")
    except MlflowException:
        return []
    mirrored = []
    for mv in versions:
        facts = _run_facts(client, mv.run_id or "")
        row, _ = ModelVersion.objects.update_or_create(
            name=name,
            version=str(mv.version),
            defaults={
                "run_id": mv.run_id or "",
                "variant": facts["variant"],
                "synthetic": facts["synthetic"],
                "metrics": facts["metrics"],
                "params": facts["params"],
                "tags": facts["tags"],
                "description": mv.description or "",
                "registered_at": datetime.fromtimestamp(mv.creation_timestamp / 1000, tz=UTC),
            },
        )
        mirrored.append(row)
    aliases = {a: str(v) for a, v in dict(getattr(registered, "aliases", {}) or {}).items() if a in ALIASES}
    ModelAlias.objects.filter(name=name).exclude(alias__in=list(aliases)).delete()
    for alias, version in aliases.items():
        ModelAlias.objects.update_or_create(
            name=name, alias=alias,
            defaults={"model_version": ModelVersion.objects.get(name=name, version=version)},
        )
    for alias in ALIASES:
        _observe_alias(name=name, alias=alias, version=aliases.get(alias, ""))
    return mirrored


def _observe_alias(*, name: str, alias: str, version: str) -> None:
    """Keep the alias timeline in step with what MLflow shows (``version`` "" = no holder)."""
    open_event = AliasEvent.objects.filter(name=name, alias=alias, ended_at__isnull=True).first()
    held = open_event.version if open_event else ""
    if held == version:
        return
    now = timezone.now()
    # Recorded for the reader of the record; a move made outside RadViewer was not gated.
    verdict = gate_check(name=name, alias=alias, version=version) if version else None
    record = ChangeRecord.objects.create(
        name=name, alias=alias, kind=ChangeRecord.Kind.OBSERVED, from_version=held, to_version=version,
        actor_label=OBSERVED_ACTOR, gate=verdict.to_dict() if verdict else {},
        reason="Alias moved in the MLflow registry outside RadViewer; seen by the registry sync.",
        sections=change_record_sections(name=name, alias=alias, from_version=held, to_version=version,
                                        kind=ChangeRecord.Kind.OBSERVED, verdict=verdict,
                                        actor_label=OBSERVED_ACTOR, reason="", override_justification="",
                                        at=now),
    )
    if open_event is not None:
        open_event.ended_at = now
        open_event.save(update_fields=["ended_at"])
    AliasEvent.objects.create(name=name, alias=alias, version=version, started_at=now, change_record=record)
    audit_event_create(
        actor=None, actor_label=OBSERVED_ACTOR,
        action=AuditAction.MODEL_ALIAS_SET if version else AuditAction.MODEL_ALIAS_REMOVED,
        object_type="mlcore.modelversion", object_id=f"{name}/{version or held}",
        details={"alias": alias, "version": version, "previous_version": held, "observed": True,
                 "change_record": record.pk},
    )


def model_alias_set(*, actor: Any, alias: str, version: str, name: str | None = None, reason: str = "",
                    override_justification: str = "") -> ModelAlias:
    """Point ``alias`` at ``version`` through the gated, recorded move
    (``mlcore.services.promotion.alias_move``) and return the mirrored alias."""
    from mlcore.services.promotion import alias_move  # cycle: promotion uses registry_sync

    record = alias_move(actor=actor, alias=alias, version=version, name=name, reason=reason,
                        override_justification=override_justification)
    return ModelAlias.objects.select_related("model_version").get(name=record.name, alias=alias)
