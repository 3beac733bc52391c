from django.apps import AppConfig


class OpsConfig(AppConfig):
    name = "radviewer.ops"
    label = "ops"
    verbose_name = "Operations"

    def ready(self) -> None:
        from radviewer.ops import system_checks  # noqa: F401 (registers the deploy checks)
