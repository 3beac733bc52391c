"""Django admin for mlcore: read-only views of the registry mirror, the alias timeline, the
change records and the console's rows. Every change goes through the audited console
services (a change record is append-only; an alias moves only through the gate)."""

from __future__ import annotations

from django.contrib import admin

from mlcore.models import (
    AcceptanceCriteria,
    AliasEvent,
    ChangeRecord,
    DatasetVersion,
    Evaluation,
    ModelAlias,
    ModelVersion,
    OperatingPoint,
    RolloutPolicy,
    TrainingJob,
)
from radviewer.lib.admin import ReadOnlyAdmin


@admin.register(ModelVersion)
class ModelVersionAdmin(ReadOnlyAdmin):
    list_display = ("name", "version", "variant", "synthetic", "registered_at", "run_id")
    list_filter = ("name", "synthetic", "variant")
    search_fields = ("version", "run_id")


@admin.register(ModelAlias)
class ModelAliasAdmin(ReadOnlyAdmin):
    list_display = ("name", "alias", "model_version", "updated_at")
    list_filter = ("name", "alias")


@admin.register(RolloutPolicy)
class RolloutPolicyAdmin(ReadOnlyAdmin):
    list_display = ("name", "canary_percent", "shadow_candidate", "updated_at")


@admin.register(AliasEvent)
class AliasEventAdmin(ReadOnlyAdmin):
    list_display = ("name", "alias", "version", "started_at", "ended_at", "change_record")
    list_filter = ("name", "alias")
    date_hierarchy = "started_at"


@admin.register(ChangeRecord)
class ChangeRecordAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "name", "alias", "kind", "from_version", "to_version", "actor", "actor_label",
                    "overridden")
    list_filter = ("kind", "alias", "overridden")
    search_fields = ("reason", "override_justification", "actor__username", "actor_label")
    date_hierarchy = "created_at"


@admin.register(AcceptanceCriteria)
class AcceptanceCriteriaAdmin(ReadOnlyAdmin):
    list_display = ("name", "max_urgent_sensitivity_drop", "max_ece", "max_macro_f1_drop",
                    "forbid_synthetic_in_production", "updated_by", "updated_at")


@admin.register(DatasetVersion)
class DatasetVersionAdmin(ReadOnlyAdmin):
    list_display = ("slug", "kind", "status", "store_uri", "created_at", "finished_at")
    list_filter = ("kind", "status")
    search_fields = ("slug", "store_uri")
    exclude = ("report",)  # large; shown on the console's data page


@admin.register(TrainingJob)
class TrainingJobAdmin(ReadOnlyAdmin):
    list_display = ("pk", "state", "dataset_version", "epoch", "epochs", "model_version", "created_at",
                    "finished_at")
    list_filter = ("state",)
    exclude = ("history",)  # per-epoch curves; shown on the console's job page


@admin.register(Evaluation)
class EvaluationAdmin(ReadOnlyAdmin):
    list_display = ("pk", "model_version", "dataset_version", "set_name", "status", "n", "finished_at")
    list_filter = ("status", "set_name")
    exclude = ("report", "plots")  # large; shown on the console's version page


@admin.register(OperatingPoint)
class OperatingPointAdmin(ReadOnlyAdmin):
    """Proposed in a comparison, applied by a promotion (issue 11)."""

    list_display = ("name", "version", "class_key", "threshold", "target_sensitivity", "sensitivity",
                    "specificity", "champion_version", "created_at", "applied_at", "change_record")
    list_filter = ("name", "class_key", "applied_at")
