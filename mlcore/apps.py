from django.apps import AppConfig


class MlcoreConfig(AppConfig):
    name = "mlcore"
    verbose_name = "ML core"

    def ready(self) -> None:
        # Services send the mlcore tasks by name (radviewer.lib.tasks.enqueue_on_commit):
        # declare them in every process, web included, not only in workers.
        from mlcore import tasks  # noqa: F401
