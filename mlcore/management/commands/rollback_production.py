from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from mlcore.services.promotion import PromotionError, production_rollback


class Command(BaseCommand):
    help = "Move production back to the version that held it before (from the alias timeline). Audited."

    def add_arguments(self, parser):
        parser.add_argument("--reason", required=True, help="why production is rolled back")
        parser.add_argument("--name", default=None)

    def handle(self, *args, reason, name, **opts):
        name = name or settings.MLFLOW_REGISTERED_MODEL
        try:
            record = production_rollback(actor="cli:rollback_production", reason=reason, name=name)
        except PromotionError as exc:
            raise CommandError(f"could not roll back: {exc}") from None
        self.stdout.write(self.style.SUCCESS(
            f"{name}@production rolled back from version {record.from_version} to {record.to_version}"
            f" (change record {record.pk})"
        ))
