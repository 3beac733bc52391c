import json

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from mlcore.management.commands._common import open_store_or_fail
from mlcore.models import Evaluation
from mlcore.selectors.evaluations import model_version_get
from mlcore.services.datasets import dataset_version_ensure
from mlcore.services.evaluations import (
    SET_NAMES,
    EvaluationError,
    evaluation_request,
    evaluation_run,
)
from mlcore.services.registry import registry_sync

ACTOR = "cli:evaluate_model"


class Command(BaseCommand):
    help = ("Evaluate a registered model version on a set of a dataset store. The result is stored as "
            "its own evaluation record; the metrics the version was registered with are never changed.")

    def add_arguments(self, parser):
        parser.add_argument("--model-uri", default=None, help="models:/<name>@<alias> or models:/<name>/<version>")
        parser.add_argument("--store", help="dataset store URI (default RADVIEWER_DATASET_URI)")
        parser.add_argument("--split", default="test", choices=SET_NAMES,
                            help="a split, or 'locked' (final_eval + feedback not used in training)")
        parser.add_argument("--json", action="store_true", help="print the report as JSON")

    def handle(self, *args, model_uri, store, split, json: bool, **opts):
        # MLflow (seconds): only once the command runs, not when Django loads it for help
        from mlcore.ml import tracking
        from mlcore.ml.evaluation.metrics import EvaluationReport

        model_uri = model_uri or f"models:/{settings.MLFLOW_REGISTERED_MODEL}@production"
        tracking.configure(settings.MLFLOW_TRACKING_URI)
        try:
            version = tracking.resolve_version(model_uri, tracking_uri=settings.MLFLOW_TRACKING_URI)
            name, _, _ = tracking.parse_model_uri(model_uri)
        except (LookupError, ValueError) as exc:
            raise CommandError(str(exc)) from None
        registry_sync(name=name)
        mv = model_version_get(name=name, version=version)
        if mv is None:
            raise CommandError(f"{name} v{version} is not in the registry")
        store_uri = store or settings.DATASET_STORE_URI
        open_store_or_fail(store_uri)
        dataset = dataset_version_ensure(store_uri=store_uri, actor=ACTOR)
        try:
            evaluation = evaluation_request(model_version=mv, dataset_version=dataset, set_name=split,
                                            actor_label=ACTOR, enqueue=False)
        except EvaluationError as exc:
            raise CommandError(str(exc)) from None
        evaluation = evaluation_run(evaluation_id=evaluation.pk)
        if evaluation.status != Evaluation.Status.SUCCEEDED:
            raise CommandError(f"evaluation {evaluation.pk} failed: {evaluation.failure_reason}")
        report = EvaluationReport.from_dict(evaluation.report)
        self.stdout.write(_dumps(report.to_dict()) if json else report.to_markdown())
        self.stdout.write(self.style.SUCCESS(
            f"evaluated {name} v{version} on {split} of {dataset.slug}; stored as evaluation {evaluation.pk} "
            "(the version's registered metrics are unchanged)"))


def _dumps(obj) -> str:
    return json.dumps(obj, indent=2)
