"""Roles are Django groups; what a role may do is a set of permissions on ``accounts.Role``.

Views check permissions, never group names, so a hospital can build its own groups.
"""

from __future__ import annotations

RADIOLOGIST = "Radiologist"
ML_ADMIN = "ML admin"
INTEGRATION = "Integration"

# codename -> description (declared on accounts.Role.Meta.permissions)
PERMISSIONS: dict[str, str] = {
    "view_worklist": "Can view the worklist and open studies",
    "upload_studies": "Can upload studies",
    "review_studies": "Can review (confirm or correct) AI labels",
    "sign_off_studies": "Can sign off studies",
    "manage_models": "Can train, compare, promote and roll back models",
    "view_audit_log": "Can read the audit log",
    "view_phi_mapping": "Can read the protected original-UID mapping",
    "api_submit": "API: can submit studies",
    "api_read": "API: can read results",
    "api_feedback": "API: can send readings",
}

ROLE_PERMISSIONS: dict[str, tuple[str, ...]] = {
    RADIOLOGIST: ("view_worklist", "upload_studies", "review_studies", "sign_off_studies"),
    ML_ADMIN: ("manage_models", "view_audit_log", "view_phi_mapping", "view_worklist"),
    INTEGRATION: ("api_submit", "api_read", "api_feedback"),
}

# Django model permissions of other apps, as ``app_label.codename``: what a role may do in
# /admin/. The ML admin manages the integration clients (issue, rotate, revoke; never
# delete: the admin refuses it) and reads their webhook deliveries (redelivering failed
# ones), configures where their SR is pushed (result destinations) and reads that log,
# and reads the model registry mirror, the alias timeline and the change records
# (those change only through the audited console services).
ROLE_MODEL_PERMISSIONS: dict[str, tuple[str, ...]] = {
    ML_ADMIN: (
        "clinical.view_apiclient", "clinical.add_apiclient", "clinical.change_apiclient",
        "clinical.view_webhookdelivery",
        "clinical.view_resultdestination", "clinical.add_resultdestination", "clinical.change_resultdestination",
        "clinical.view_resultdelivery",
        "mlcore.view_modelversion", "mlcore.view_modelalias", "mlcore.view_rolloutpolicy",
        "mlcore.view_aliasevent", "mlcore.view_changerecord", "mlcore.view_acceptancecriteria",
        "mlcore.view_datasetversion", "mlcore.view_trainingjob", "mlcore.view_evaluation",
    ),
}
