"""Every audit action: the one list the code writes, the audit log's filter offers and
``docs/audit.md`` documents (a test keeps the three in step). Dotted ``<object>.<verb>``."""

from __future__ import annotations

from django.db import models


class AuditAction(models.TextChoices):
    # people and integration clients
    ACCOUNT_DEMO_CREATED = "account.demo_created", "Demo account created"
    ACCOUNT_DEMO_PASSWORD_RESET = "account.demo_password_reset", "Demo account password reset"
    ACCOUNT_LOGIN_LOCKED = "account.login_locked", "Sign-in locked after repeated wrong passwords"
    API_CLIENT_CREATED = "api_client.created", "API client created"
    API_CLIENT_TOKEN_ROTATED = "api_client.token_rotated", "API client token rotated"
    API_CLIENT_REVOKED = "api_client.revoked", "API client revoked"
    API_CLIENT_AUTH_THROTTLED = "api_client.auth_throttled", "API access from an address throttled after failed tokens"
    # studies and images
    STUDY_SUBMITTED = "study.submitted", "Study submitted over the API"
    STUDY_SUBMISSION_REPLAYED = "study.submission_replayed", "Submission replayed (same Idempotency-Key)"
    STUDY_LISTED = "study.listed", "Studies listed over the API"
    STUDY_VIEWED = "study.viewed", "Study viewed"
    STUDY_RESULT_EXPORTED = "study.result_exported", "Result exported (FHIR, SR, heat map)"
    STUDY_SIGNED_OFF = "study.signed_off", "Study signed off"
    IMAGE_INGESTED = "image.ingested", "Image ingested"
    IMAGE_DUPLICATE_LINKED = "image.duplicate_linked", "Duplicate image linked to its study"
    IMAGE_VIEWED = "image.viewed", "Image viewed"
    PHI_ORIGINAL_IDS_READ = "phi.original_ids_read", "Original DICOM identifiers read"
    PHI_KEY_ROTATED = "phi.key_rotated", "Protected mapping re-encrypted under the current PHI key"
    DICOMWEB_STOW_REFUSED = "dicomweb.stow_refused", "STOW-RS instances refused"
    DICOMWEB_QIDO = "dicomweb.qido", "QIDO-RS search"
    # AI results and readings
    PREDICTION_RETRIED = "prediction.retried", "Prediction retried"
    ATTRIBUTION_REQUESTED = "attribution.requested", "Attribution map requested"
    REVIEW_CREATED = "review.created", "Reading recorded"
    REVIEW_AMENDED = "review.amended", "Reading amended after sign-off"
    # webhooks
    WEBHOOK_DELIVERED = "webhook.delivered", "Webhook delivered"
    WEBHOOK_FAILED = "webhook.failed", "Webhook failed"
    WEBHOOK_REDELIVERY_REQUESTED = "webhook.redelivery_requested", "Webhook redelivery requested"
    # results pushed to PACS destinations (DICOM SR over STOW-RS or C-STORE)
    RESULT_DESTINATION_SAVED = "result_destination.saved", "Result destination created or changed"
    RESULT_DELIVERED = "result_delivery.delivered", "SR delivered to a result destination"
    RESULT_DELIVERY_FAILED = "result_delivery.failed", "SR delivery to a result destination failed"
    RESULT_REDELIVERY_REQUESTED = "result_delivery.redelivery_requested", "SR redelivery requested"
    # models
    MODEL_REGISTERED = "model.registered", "Model version registered"
    MODEL_ALIAS_SET = "model.alias_set", "Model alias moved"
    MODEL_ALIAS_REMOVED = "model.alias_removed", "Model alias removed"
    MODEL_ROLLED_BACK = "model.rolled_back", "Production rolled back to the previous version"
    MODEL_GATE_BLOCKED = "model.gate_blocked", "Promotion blocked by the gate"
    MODEL_GATE_OVERRIDDEN = "model.gate_overridden", "Promotion gate overridden with a justification"
    MODEL_CRITERIA_CHANGED = "model.criteria_changed", "Acceptance criteria changed"
    MODEL_CANARY_GUARD_ROLLBACK = "model.canary_guard_rollback", "Canary rolled back by the guard (routing stopped)"
    MODEL_ROLLOUT_CHANGED = "model.rollout_changed", "Rollout policy changed (canary share, shadow)"
    CHANGE_RECORD_EXPORTED = "change_record.exported", "Change record exported"
    # the audit log itself
    AUDIT_EXPORTED = "audit.exported", "Audit log exported (CSV)"
    # threshold recalibration and blinded reads (issue 11)
    MODEL_OPERATING_POINTS_APPLIED = "model.operating_points_applied", "Operating points (urgent thresholds) applied"
    ROLLOUT_BLINDED_SHARE_CHANGED = "rollout.blinded_share_changed", "Blinded-read share changed"
    STUDY_AI_REVEALED = "study.ai_revealed", "AI revealed after a blinded read's verdict"
    # reading claims: several readers (issue 14 item 9)
    STUDY_CLAIMED = "study.claimed", "Study claimed for reading (opened by a reader; not repeated while held)"
    STUDY_CLAIM_TAKEN_OVER = "study.claim_taken_over", "Reading claim taken over from another reader"
    STUDY_CLAIM_RELEASED = "study.claim_released", "Reading claim released (by its reader or at sign-off)"
    # the ML admin's console
    DATASET_IMPORT_REQUESTED = "dataset.import_requested", "Dataset import requested"
    DATASET_IMPORTED = "dataset.imported", "Dataset imported"
    DATASET_IMPORT_FAILED = "dataset.import_failed", "Dataset import failed"
    DATASET_REGISTERED = "dataset.registered", "Existing dataset store registered"
    TRAINING_JOB_CREATED = "training_job.created", "Training job created"
    TRAINING_JOB_CANCEL_REQUESTED = "training_job.cancel_requested", "Training job cancellation requested"
    TRAINING_JOB_SUCCEEDED = "training_job.succeeded", "Training job succeeded"
    TRAINING_JOB_FAILED = "training_job.failed", "Training job failed"
    TRAINING_JOB_CANCELLED = "training_job.cancelled", "Training job cancelled"
    EVALUATION_REQUESTED = "evaluation.requested", "Evaluation requested"
    EVALUATION_COMPLETED = "evaluation.completed", "Evaluation completed"
    EVALUATION_FAILED = "evaluation.failed", "Evaluation failed"
    DRIFT_REFERENCE_SAVED = "drift.reference_saved", "Drift reference saved for a model version"
    DRIFT_ALARM = "drift.alarm", "Drift alarm raised"
    ROLLOUT_POLICY_CHANGED = "rollout.policy_changed", "Rollout policy changed (canary or shadow)"
    DATASET_SNAPSHOT_CREATED = "dataset.snapshot_created", "Dataset snapshot built for continuous training"
    PIPELINE_TRIGGERED = "pipeline.triggered", "Continuous-training run triggered"
    PIPELINE_SUCCEEDED = "pipeline.succeeded", "Continuous-training run put a candidate in shadow"
    PIPELINE_RETRY_SCHEDULED = "pipeline.retry_scheduled", "Continuous-training run failed; retried later"
    PIPELINE_FAILED = "pipeline.failed", "Continuous-training run failed"

