from django.apps import AppConfig


class MlcoreConfig(AppConfig):
    name = "mlcore"
    verbose_name = "ML core"

    def ready(self) -> None:
        # Services send the mlcore tasks by name (radviewer.lib.tasks.enqueue_on_commit): web
        # processes must declare them too, with their queues, before the first request.
        from mlcore import tasks  # noqa: F401
