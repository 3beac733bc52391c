from django.apps import AppConfig


class ClinicalConfig(AppConfig):
    name = "clinical"
    verbose_name = "Clinical"

    def ready(self) -> None:
        # Services send the clinical tasks by name (radviewer.lib.tasks.enqueue_on_commit):
        # web processes must declare them too, with their queues, before the first upload.
        from clinical import tasks  # noqa: F401
