from django.contrib import admin

from radviewer.audit.models import AuditEvent
from radviewer.lib.admin import ReadOnlyAdmin


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    """Read-only (append-only log), and visible only to those who may read the audit log."""

    list_display = ("created_at", "actor", "actor_label", "action", "object_type", "object_id", "client_ip")
    list_filter = ("action", "object_type")
    search_fields = ("action", "object_id", "actor__username", "actor_label")
    date_hierarchy = "created_at"

    def has_view_permission(self, request, obj=None):
        return request.user.has_perm("accounts.view_audit_log")
