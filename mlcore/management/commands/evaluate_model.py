import json

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from mlcore.management.commands._common import open_store_or_fail


class Command(BaseCommand):
    help = "Evaluate a registered model version on a split of a dataset store; log the report to MLflow."

    def add_arguments(self, parser):
        parser.add_argument("--model-uri", default=None, help="models:/<name>@<alias> or models:/<name>/<version>")
        parser.add_argument("--store", help="dataset store URI (default RADVIEWER_DATASET_URI)")
        parser.add_argument("--split", default="test", choices=("val", "test", "final_eval", "feedback"))
        parser.add_argument("--json", action="store_true", help="print the report as JSON")

    def handle(self, *args, model_uri, store, split, json: bool, **opts):
        # torch and MLflow (seconds): only once the command runs, not when Django loads it for help
        from mlcore.ml import tracking
        from mlcore.ml.bundle import ModelBundle
        from mlcore.ml.evaluation import evaluate_bundle, log_evaluation

        model_uri = model_uri or f"models:/{settings.MLFLOW_REGISTERED_MODEL}@production"
        tracking.configure(settings.MLFLOW_TRACKING_URI)
        try:
            version = tracking.resolve_version(model_uri, tracking_uri=settings.MLFLOW_TRACKING_URI)
            name, _, _ = tracking.parse_model_uri(model_uri)
            bundle = ModelBundle.load(tracking.download_bundle(
                f"models:/{name}/{version}", tracking_uri=settings.MLFLOW_TRACKING_URI))
            report = evaluate_bundle(bundle, open_store_or_fail(store), split=split)
        except (LookupError, ValueError) as exc:
            raise CommandError(str(exc)) from None
        run_id = tracking.client(settings.MLFLOW_TRACKING_URI).get_model_version(name, version).run_id
        log_evaluation(report, run_id)
        self.stdout.write(_dumps(report.to_dict()) if json else report.to_markdown())
        self.stdout.write(self.style.SUCCESS(f"evaluated {name} v{version} on {split}; logged to run {run_id}"))


def _dumps(obj) -> str:
    return json.dumps(obj, indent=2)
