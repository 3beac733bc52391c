from django.apps import AppConfig


class AuditConfig(AppConfig):
    name = "radviewer.audit"
    label = "audit"
    verbose_name = "Audit log"
