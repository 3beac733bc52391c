from django.contrib import admin

from radviewer.ops.models import WorkerHeartbeat


@admin.register(WorkerHeartbeat)
class WorkerHeartbeatAdmin(admin.ModelAdmin):
    list_display = ("queue", "hostname", "seen_at", "beats")
    readonly_fields = ("queue", "hostname", "seen_at", "beats")
