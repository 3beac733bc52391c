"""Change records: the sections of an alias move, shaped like an FDA predetermined change
control plan (PCCP) entry, and their audited export.

The sections are built once, when the move happens, from what the registry mirror, the
dataset store and the stored evaluations say then; a record is never rewritten afterwards.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from mlcore.models import ChangeRecord, DatasetVersion, ModelVersion, RolloutPolicy
from mlcore.services.gate import GateVerdict
from radviewer.audit.actions import AuditAction
from radviewer.audit.services import audit_event_create

ROLLBACK_PLAN = "one action: /ml/ Roll back (production returns to the version that held it before)"

# Params that describe the recipe (what a retraining changes on purpose), in display order.
RECIPE_KEYS = (
    "model_name", "image_size", "epochs", "batch_size", "lr", "weight_decay", "warmup_epochs",
    "augment", "augment_noise", "augment_downscale", "intensity", "class_weighting", "label_smoothing",
    "mixup_alpha", "focal_gamma",
    "source_balance", "ema_decay", "gradient_clip_val", "include_feedback", "max_train_batches",
)
# Params that differ between any two runs without a recipe change: left out of "what changed".
_NOISE_PREFIXES = ("data.counts.", "data.class_weights", "tracking_uri", "run_name", "output_dir",
                   "n_parameters", "git_commit", "trained_commit", "trained_at", "starter_sha256",
                   "data.manifest_hash", "manifest_hash", "split_counts")
_RECORDED_METRICS = ("test_macro_f1", "test_macro_f1_cxr4", "test_accuracy", "final_eval_macro_f1_cxr4",
                     "final_eval_accuracy", "val_macro_f1")


def _version(name: str, version: str) -> ModelVersion | None:
    return ModelVersion.objects.filter(name=name, version=version).first() if version else None


def _first(params: dict[str, str], *keys: str) -> str:
    return next((params[k] for k in keys if params.get(k) not in (None, "")), "")


def _recipe_changes(old: ModelVersion | None, new: ModelVersion | None) -> list[dict[str, str]]:
    if old is None or new is None:
        return []
    keys = sorted(set(old.params) | set(new.params))
    return [
        {"param": k, "from": old.params.get(k, "—"), "to": new.params.get(k, "—")}
        for k in keys
        if not k.startswith(_NOISE_PREFIXES) and old.params.get(k) != new.params.get(k)
    ][:60]


def _train_counts(params: dict[str, str]) -> int | None:
    values = [v for k, v in params.items() if k.startswith("data.counts.train.")]
    try:
        return sum(int(v) for v in values) if values else None
    except ValueError:
        return None


def _label_provenance(mv: ModelVersion, dataset_uri: str, manifest_hash: str) -> dict[str, Any]:
    """How many training images came from the original sources and how many from confirmed
    reader feedback: counted in the store's manifest when it is reachable and still the one
    the version was trained on, else what the run's parameters say."""
    from mlcore.ml.data import open_store  # the store reader is light; imported where a record is built

    include_feedback = mv.params.get("include_feedback", "False") == "True"
    from_params = {"original_sources": _train_counts(mv.params), "confirmed_feedback": None,
                   "feedback_in_training": include_feedback, "counted_from": "run parameters"}
    if not dataset_uri:
        return {**from_params, "note": "the version's run names no dataset store"}
    try:
        store = open_store(dataset_uri)
        current_hash = store.manifest_hash()
        rows = store.manifest()
    except Exception as exc:  # any store error (S3 included): the record says so, the move goes on
        return {**from_params, "note": f"dataset store not readable now: {exc}"}
    if not rows:
        return {**from_params, "note": "the dataset store is empty or gone"}
    if manifest_hash and current_hash != manifest_hash:
        return {**from_params, "note": "the dataset store changed since training (manifest hash differs)"}
    train = [r for r in rows if r.split == "train"]
    feedback = [r for r in rows if r.split == "feedback"]
    return {
        "original_sources": len(train),
        "confirmed_feedback": len(feedback) if include_feedback else 0,
        "feedback_in_training": include_feedback,
        "sources": dict(sorted({r.source: sum(1 for t in train if t.source == r.source) for r in train}.items())),
        "counted_from": "dataset store manifest",
    }


def _data_management(mv: ModelVersion | None) -> dict[str, Any]:
    if mv is None:
        return {"note": "no version holds the alias after this change"}
    uri = _first(mv.params, "store_uri", "trained_on")
    manifest_hash = _first(mv.params, "data.manifest_hash", "manifest_hash")
    dataset = DatasetVersion.objects.filter(store_uri=uri).first() if uri else None
    return {
        "dataset_uri": uri or "unknown",
        "dataset_version": dataset.slug if dataset else "",
        "manifest_hash": manifest_hash or "unknown",
        "synthetic": mv.synthetic,
        "label_provenance": _label_provenance(mv, uri, manifest_hash),
    }


def _retraining(mv: ModelVersion | None) -> dict[str, Any]:
    if mv is None:
        return {}
    p = mv.params
    return {
        "variant": mv.variant,
        "recipe": {k: p[k] for k in RECIPE_KEYS if k in p},
        "code_commit": _first(p, "git_commit", "trained_commit") or "unknown",
        "seed": p.get("seed", "unknown"),
        "precision": _first(p, "precision_resolved", "precision") or "unknown",
        "hardware": {"accelerator": p.get("accelerator", "unknown"), "devices": p.get("devices", "unknown"),
                     "torch": p.get("torch_version", "unknown"), "backend": mv.tags.get("radviewer.backend", "")},
        "mlflow_run_id": mv.run_id,
        "parent_version": mv.tags.get("radviewer.parent_version", ""),
    }


def _update_procedure(name: str, alias: str, from_version: str) -> dict[str, Any]:
    policy = RolloutPolicy.objects.filter(name=name).first()
    percent = policy.canary_percent if policy else 0
    shadow = bool(policy and policy.shadow_candidate)
    routing = {
        "production": f"serves every study not routed to canary (canary share now {percent} %)",
        "canary": f"serves {percent} % of studies, chosen by a deterministic hash of the study UID",
        "candidate": ("runs in shadow after production, invisible to readers" if shadow
                      else "serves no study; under evaluation"),
    }[alias]
    rollback = (ROLLBACK_PLAN + (f": v{from_version}" if from_version else "") if alias == "production"
                else f"one action: /ml/ Remove {alias} (or move it back to v{from_version})" if from_version
                else f"one action: /ml/ Remove {alias}")
    return {"alias": alias, "canary_percent": percent, "shadow_candidate": shadow, "routing": routing,
            "rollback_plan": rollback, "effective": "at once: routing reads the mirror on the next study"}


def change_record_sections(*, name: str, alias: str, from_version: str, to_version: str, kind: str,
                           verdict: GateVerdict | None, actor_label: str, reason: str,
                           override_justification: str, at: datetime) -> dict[str, Any]:
    """The PCCP sections of one alias move, as stored on its ``ChangeRecord``."""
    old, new = _version(name, from_version), _version(name, to_version)
    criteria = verdict.to_dict()["criteria"] if verdict else []
    return {
        "modification": {
            "summary": f"{name}@{alias}: {'v' + from_version if from_version else 'none'} -> "
                       f"{'v' + to_version if to_version else 'none'} ({kind})",
            "from_version": from_version, "to_version": to_version,
            "variant": new.variant if new else "", "previous_variant": old.variant if old else "",
            "recipe_changes": _recipe_changes(old, new),
        },
        "data_management": _data_management(new),
        "retraining": _retraining(new),
        "performance_evaluation": {
            "gate_applied": kind in (ChangeRecord.Kind.PROMOTION,) and verdict is not None,
            "passed": verdict.passed if verdict else None,
            "champion_version": verdict.champion_version if verdict else None,
            "evaluation_id": verdict.evaluation_id if verdict else None,
            "criteria": criteria,
            "registered_metrics": {k: new.metrics[k] for k in _RECORDED_METRICS if new and k in new.metrics},
        },
        "update_procedure": _update_procedure(name, alias, from_version),
        "who_and_why": {"actor": actor_label, "reason": reason, "override_justification": override_justification,
                        "at": at.isoformat()},
    }


def change_record_export(*, actor: Any, record: ChangeRecord, fmt: str, request: Any = None) -> dict[str, Any]:
    """The record as a JSON-ready dict; the export (JSON or printable page) is audited."""
    audit_event_create(actor=actor, action=AuditAction.CHANGE_RECORD_EXPORTED, obj=record, request=request,
                       details={"format": fmt, "alias": record.alias, "to_version": record.to_version})
    return {
        "id": record.pk, "name": record.name, "alias": record.alias, "kind": record.kind,
        "from_version": record.from_version, "to_version": record.to_version,
        "actor": record.actor.get_username() if record.actor else record.actor_label,
        "reason": record.reason, "overridden": record.overridden,
        "override_justification": record.override_justification, "gate": record.gate,
        "sections": record.sections, "created_at": record.created_at.isoformat(),
    }
