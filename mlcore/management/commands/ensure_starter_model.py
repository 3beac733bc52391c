"""`make run` calls this: without a production model there is nothing to triage with.

Registers the shipped starter model (``mlcore/starter/``, docs/model-card.md) as a new version
with alias ``production`` -- seconds, no training. A no-op when a production model exists. A
broken or mismatched starter file stops here with a message naming it, registering nothing.
It also registers the app's dataset store as the dataset version ``current`` (the data page's
first row, where confirmed corrections land): one query when it is already known.
"""

from django.core.management.base import BaseCommand, CommandError

from mlcore.services.datasets import dataset_version_ensure_current
from mlcore.services.starter import STARTER_FILE, StarterModelError, starter_model_register


class Command(BaseCommand):
    help = "Register the shipped starter model as production when no production model exists."

    def add_arguments(self, parser):
        parser.add_argument("--file", default=None, help="starter model file (default mlcore/starter/...)")

    def handle(self, *args, file, **opts):
        try:
            outcome = starter_model_register(path=file or STARTER_FILE)
        except StarterModelError as exc:
            raise CommandError(str(exc)) from None
        if outcome.registered:
            self.stdout.write(self.style.SUCCESS(
                f"starter model registered: {outcome.name} version {outcome.version} is production"))
        else:
            self.stdout.write(f"production model: {outcome.name} version {outcome.version}")
        try:
            dataset_version_ensure_current()
        except Exception as exc:  # an unreachable store (S3 down) must not stop `make run`
            self.stderr.write(f"the dataset store could not be registered yet: {exc}")
