from django.apps import AppConfig


class MlcoreConfig(AppConfig):
    name = "mlcore"
    verbose_name = "ML core"

    def ready(self) -> None:
        # Services send the mlcore tasks by name (radviewer.lib.tasks.enqueue_on_commit):
        # web processes must declare them too, with their queues, before the first import.
        # A drift alarm starts continuous training (both are mlcore services).
        from django.conf import settings

        from mlcore import tasks  # noqa: F401

        if settings.PIPELINE_ON_DRIFT:
            from mlcore.services.drift import drift_alarm_hook_register
            from mlcore.services.pipeline import drift_alarm_retrains

            drift_alarm_hook_register(drift_alarm_retrains)
