from django.apps import AppConfig


class ClinicalConfig(AppConfig):
    name = "clinical"
    verbose_name = "Clinical"

    def ready(self) -> None:
        # Connects the study_ready_signal receiver and registers the webhook delivery task
        # (Celery autodiscovery only imports clinical.tasks).
        from clinical.api import webhooks  # noqa: F401
