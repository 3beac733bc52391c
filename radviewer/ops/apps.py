from django.apps import AppConfig


class OpsConfig(AppConfig):
    name = "radviewer.ops"
    label = "ops"
    verbose_name = "Operations"
