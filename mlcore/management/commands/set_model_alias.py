from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from mlcore.services.registry import model_alias_set


class Command(BaseCommand):
    help = "Point an alias (production, canary, candidate) at a registered version. Audited."

    def add_arguments(self, parser):
        parser.add_argument("alias", choices=("production", "canary", "candidate"))
        parser.add_argument("version")
        parser.add_argument("--name", default=None)

    def handle(self, *args, alias, version, name, **opts):
        from mlflow.exceptions import MlflowException  # MLflow (seconds): only once the command runs


        try:
            row = model_alias_set(actor="cli:set_model_alias", alias=alias, version=version, name=name)
        except (ValueError, MlflowException) as exc:
            raise CommandError(f"could not set {alias} -> {version}: {exc}") from None
        self.stdout.write(self.style.SUCCESS(
            f"{row.name}@{alias} now points at version {row.model_version.version}"
            f" ({settings.MLFLOW_TRACKING_URI})"
        ))
