"""Django-side mirror of the MLflow registry, rollout policy and review outcomes.

MLflow is the source of truth for versions and aliases (DESIGN.md section 7); these rows are
a mirror for the UI, the audit trail and fast routing without a registry round trip.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models


class ModelVersion(models.Model):
    name = models.CharField(max_length=100)
    version = models.CharField(max_length=20)
    run_id = models.CharField(max_length=64, blank=True)
    variant = models.CharField(max_length=60, blank=True)
    # Trained on synthetic phantoms (the demo): labelled so wherever the version is shown,
    # never a model for real images.
    synthetic = models.BooleanField(default=False)
    metrics = models.JSONField(default=dict, blank=True)
    # The MLflow run's parameters and tags (recipe, dataset URI and manifest hash, commit,
    # parent version): lineage for the version page and the change record.
    params = models.JSONField(default=dict, blank=True)
    tags = models.JSONField(default=dict, blank=True)
    description = models.TextField(blank=True)
    registered_at = models.DateTimeField(null=True, blank=True)
    synced_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ("name", "-registered_at")
        constraints = [models.UniqueConstraint(fields=["name", "version"], name="unique_model_version")]

    SYNTHETIC_LABEL = "synthetic demo — not for real images"

    def __str__(self) -> str:
        return f"{self.name} v{self.version}" + (f" ({self.SYNTHETIC_LABEL})" if self.synthetic else "")


class ModelAlias(models.Model):
    class Alias(models.TextChoices):
        PRODUCTION = "production", "Production"
        CANARY = "canary", "Canary"
        CANDIDATE = "candidate", "Candidate"

    name = models.CharField(max_length=100)
    alias = models.CharField(max_length=20, choices=Alias.choices)
    model_version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="aliases")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["name", "alias"], name="unique_alias_per_model")]

    def __str__(self) -> str:
        return f"{self.name}@{self.alias} -> v{self.model_version.version}"


class RolloutPolicy(models.Model):
    """How studies are routed between production and canary for one registered model."""

    name = models.CharField(max_length=100, unique=True)
    canary_percent = models.PositiveSmallIntegerField(default=0)  # 0..50, set from the console
    # When the canary alias last moved onto its version (the guard counts reads from here).
    canary_started_at = models.DateTimeField(null=True, blank=True)
    shadow_candidate = models.BooleanField(default=False)
    # Share of studies (1..100) the shadow candidate predicts, after production.
    shadow_percent = models.PositiveSmallIntegerField(default=100)
    shadow_started_at = models.DateTimeField(null=True, blank=True)
    # Share of studies read with the AI hidden until the reader saves a verdict (automation bias);
    # None = the installation's default (settings.BLINDED_READS_DEFAULT_PERCENT, 3 %) until an
    # ML admin sets one, so a row created for another policy change does not fix a share.
    blinded_percent = models.FloatField(null=True, blank=True, default=None)
    # The canary guard's sequential test: false-rollback rate, power to detect ``guard_drop``
    # (an agreement drop, 0..1), the minimum reads per arm before it decides, and the
    # operations limits (error rate, p95 latency) that roll back on their own.
    guard_enabled = models.BooleanField(default=True)
    guard_alpha = models.FloatField(default=0.05)
    guard_power = models.FloatField(default=0.8)
    guard_drop = models.FloatField(default=0.10)
    guard_min_reads = models.PositiveIntegerField(default=30)
    guard_max_error_rate = models.FloatField(default=0.05)
    guard_max_latency_ratio = models.FloatField(default=2.0)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.name}: canary {self.canary_percent}%"


class ReviewOutcome(models.Model):
    """One reader verdict on one model prediction, as the model side needs it.

    Written by the clinical side through ``review_outcome_record`` (mlcore never reads
    clinical tables); agreement per model version and class is computed from these rows.
    """

    model_name = models.CharField(max_length=100)
    model_version = models.CharField(max_length=20)
    prediction_ref = models.CharField(max_length=64)  # opaque id from the caller
    predicted_class = models.CharField(max_length=40)
    confirmed_class = models.CharField(max_length=40, blank=True)  # "" for uncertain etc.
    verdict = models.CharField(max_length=16)
    # Which arm made the prediction (production | canary | shadow); ``case_ref`` (opaque, the
    # same for every prediction on one image) pairs a shadow outcome with production's.
    arm = models.CharField(max_length=16, default="production")
    case_ref = models.CharField(max_length=64, blank=True, db_index=True)
    # The reader saved the verdict with the AI hidden (a blinded read).
    blinded = models.BooleanField(default=False)
    # That first, blinded verdict, kept when the reader amends after the reveal (``verdict``
    # and ``confirmed_class`` then follow the final reading): the automation-bias report
    # scores blinded reads on these.
    blinded_verdict = models.CharField(max_length=16, blank=True)
    blinded_confirmed_class = models.CharField(max_length=40, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [models.Index(fields=["model_name", "model_version"]),
                   models.Index(fields=["model_name", "arm", "created_at"])]
        constraints = [
            models.UniqueConstraint(fields=["prediction_ref"], name="one_outcome_per_prediction")
        ]

    def __str__(self) -> str:
        return f"{self.model_name}@{self.model_version} {self.predicted_class}->{self.confirmed_class}"


class AliasEvent(models.Model):
    """One interval of the alias timeline: ``version`` held ``alias`` from ``started_at``
    until ``ended_at`` (open while it still does).

    Answers "what served at time t" with one indexed query. Written by the alias-moving
    services and by the registry sync when it observes a move made in MLflow directly.
    ``version`` empty = the alias was removed (nothing held it).
    """

    name = models.CharField(max_length=100)
    alias = models.CharField(max_length=20, choices=ModelAlias.Alias.choices)
    version = models.CharField(max_length=20, blank=True)
    started_at = models.DateTimeField()
    ended_at = models.DateTimeField(null=True, blank=True)
    change_record = models.ForeignKey("ChangeRecord", null=True, blank=True, on_delete=models.PROTECT,
                                      related_name="alias_events")

    class Meta:
        ordering = ("name", "alias", "-started_at")
        indexes = [models.Index(fields=["name", "alias", "started_at"])]
        constraints = [
            # At most one open interval per alias.
            models.UniqueConstraint(fields=["name", "alias"], condition=models.Q(ended_at__isnull=True),
                                    name="one_open_alias_event"),
        ]

    def __str__(self) -> str:
        return f"{self.name}@{self.alias} v{self.version or '-'} from {self.started_at:%Y-%m-%d %H:%M}"


class ChangeRecord(models.Model):
    """Why and how an alias moved, shaped like an FDA predetermined change control plan
    entry: the modification, data management, retraining, performance evaluation against
    the acceptance criteria, the update procedure, who and why. Append-only."""

    class Kind(models.TextChoices):
        PROMOTION = "promotion", "Promotion"
        ROLLBACK = "rollback", "Rollback"
        REMOVAL = "removal", "Alias removed"
        SYSTEM = "system", "System action"
        OBSERVED = "observed", "Move observed in the MLflow registry"

    name = models.CharField(max_length=100)
    alias = models.CharField(max_length=20, choices=ModelAlias.Alias.choices)
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.PROMOTION)
    from_version = models.CharField(max_length=20, blank=True)
    to_version = models.CharField(max_length=20, blank=True)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT,
                              related_name="+")
    actor_label = models.CharField(max_length=100, blank=True)
    reason = models.TextField(blank=True)
    # The gate's verdict: {"passed": bool, "criteria": [{"name", "required", "value", "passed",
    # "detail"}], "evaluation_id": ...}; an override keeps the failing verdict and says so.
    gate = models.JSONField(default=dict, blank=True)
    overridden = models.BooleanField(default=False)
    override_justification = models.TextField(blank=True)
    # The PCCP sections: modification, data_management, retraining, performance_evaluation,
    # update_procedure (each a dict), built by the service from the registry and the reports.
    sections = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ("-created_at", "-id")
        indexes = [models.Index(fields=["name", "alias", "created_at"])]

    def __str__(self) -> str:
        return f"{self.name}@{self.alias}: v{self.from_version or '-'} -> v{self.to_version or '-'} ({self.kind})"


class AcceptanceCriteria(models.Model):
    """The promotion gate's thresholds for one registered model (defaults = the issue's).

    A challenger moving to ``canary`` or ``production`` must meet every criterion on the
    locked evaluation set, compared with the version then in ``production`` (the champion);
    ``candidate`` needs only an evaluation report on that set.
    """

    name = models.CharField(max_length=100, unique=True)
    # Urgent CXR class sensitivity: challenger - champion, lower 95 % bound of the paired
    # bootstrap, must be >= -max_urgent_sensitivity_drop.
    max_urgent_sensitivity_drop = models.FloatField(default=0.02)
    max_ece = models.FloatField(default=0.05)
    # Macro-F1 (CXR classes): challenger - champion >= -max_macro_f1_drop.
    max_macro_f1_drop = models.FloatField(default=0.01)
    forbid_synthetic_in_production = models.BooleanField(default=True)
    updated_at = models.DateTimeField(auto_now=True)
    updated_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")

    def __str__(self) -> str:
        return f"acceptance criteria for {self.name}"


class GuardRun(models.Model):
    """One run of the canary guard (a beat task): the sequential test's state and decision."""

    class Decision(models.TextChoices):
        WAITING = "waiting", "Waiting for reads"
        CONTINUE = "continue", "Continue"
        ACCEPT = "accept", "Canary no worse (boundary crossed)"
        ROLLBACK = "rollback", "Rolled back"
        IDLE = "idle", "No canary"

    name = models.CharField(max_length=100)
    canary_version = models.CharField(max_length=20, blank=True)
    production_version = models.CharField(max_length=20, blank=True)
    ran_at = models.DateTimeField(auto_now_add=True)
    decision = models.CharField(max_length=16, choices=Decision.choices)
    reason = models.TextField(blank=True)
    # {"n_canary", "n_production", "agree_canary", "agree_production", "llr", "upper", "lower",
    #  "error_rate", "latency_p95_ms", ...}: the figures the decision was made on.
    stats = models.JSONField(default=dict, blank=True)
    change_record = models.ForeignKey(ChangeRecord, null=True, blank=True, on_delete=models.PROTECT,
                                      related_name="+")

    class Meta:
        ordering = ("-ran_at", "-id")
        indexes = [models.Index(fields=["name", "ran_at"])]

    def __str__(self) -> str:
        return f"guard {self.name} canary v{self.canary_version or '-'}: {self.decision}"


class OperatingPoint(models.Model):
    """A per-class decision threshold for a version: the point that keeps the champion's
    sensitivity on the locked set. Proposed in the comparison; ``applied_at`` set (and the
    change record linked) when a promotion applies it; the worklist's urgency uses the
    applied points of the version in production."""

    name = models.CharField(max_length=100)
    version = models.CharField(max_length=20)
    class_key = models.CharField(max_length=40)
    threshold = models.FloatField()
    target_sensitivity = models.FloatField()  # the champion's, on the locked set
    sensitivity = models.FloatField()  # this version's at ``threshold`` on the same set
    specificity = models.FloatField(null=True, blank=True)
    set_hash = models.CharField(max_length=64, blank=True)
    champion_version = models.CharField(max_length=20, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    applied_at = models.DateTimeField(null=True, blank=True)
    change_record = models.ForeignKey(ChangeRecord, null=True, blank=True, on_delete=models.PROTECT,
                                      related_name="operating_points")

    class Meta:
        ordering = ("name", "version", "class_key", "-created_at")
        indexes = [models.Index(fields=["name", "version", "class_key"])]

    def __str__(self) -> str:
        return f"{self.name} v{self.version} {self.class_key} >= {self.threshold:.3f}"
