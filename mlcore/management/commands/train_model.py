from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from mlcore.management.commands._common import open_store_or_fail


class Command(BaseCommand):
    help = "Train a model on a dataset store with Lightning (or Ray Train), log to MLflow, register it."

    def add_arguments(self, parser):
        from mlcore.ml.models import DEFAULT_MODEL

        parser.add_argument("--store", help="dataset store URI (default RADVIEWER_DATASET_URI)")
        parser.add_argument("--model", default=DEFAULT_MODEL, help="variant name (see --list-models)")
        parser.add_argument("--list-models", action="store_true")
        parser.add_argument("--epochs", type=int, default=10)
        parser.add_argument("--batch-size", type=int, default=32)
        parser.add_argument("--lr", type=float, default=1e-3)
        parser.add_argument("--seed", type=int, default=42)
        parser.add_argument("--max-time", type=float, help="wall-clock budget for fitting, seconds")
        parser.add_argument("--backend", choices=("local", "ray"), default="local")
        parser.add_argument("--ray-workers", type=int, default=2)
        parser.add_argument("--alias", help="alias to point at the new version, e.g. candidate or production")
        parser.add_argument("--include-feedback", action="store_true", help="add the feedback split to train")
        parser.add_argument("--no-register", action="store_true")

    def handle(self, *args, **o):
        from mlcore.ml.models import list_models
        from mlcore.ml.training import TrainConfig, train
        from mlcore.services.registry import registry_sync
        from radviewer.audit.services import audit_event_create

        if o["list_models"]:
            self.stdout.write("\n".join(list_models()))
            return
        store = open_store_or_fail(o["store"])
        try:
            config = TrainConfig(
                store_uri=o["store"] or settings.DATASET_STORE_URI,
                tracking_uri=settings.MLFLOW_TRACKING_URI,
                registered_model_name=settings.MLFLOW_REGISTERED_MODEL,
                model_name=o["model"], epochs=o["epochs"], batch_size=o["batch_size"], lr=o["lr"],
                seed=o["seed"], max_time_s=o["max_time"], backend=o["backend"],
                num_workers_ray=o["ray_workers"], alias=o["alias"], register=not o["no_register"],
                include_feedback=o["include_feedback"], progress=True,
            )
            del store
            result = train(config)
        except (ValueError, KeyError) as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(f"MLflow run: {result.run_id}")
        for key in sorted(result.metrics):
            if key.startswith(("test_", "val_")) and isinstance(result.metrics[key], float):
                self.stdout.write(f"  {key}: {result.metrics[key]:.4f}")
        if result.model_version:
            registry_sync(name=settings.MLFLOW_REGISTERED_MODEL)
            audit_event_create(
                actor=None, actor_label="cli:train_model", action="model.registered",
                object_type="mlcore.modelversion",
                object_id=f"{settings.MLFLOW_REGISTERED_MODEL}/{result.model_version}",
                details={"run_id": result.run_id, "alias": o["alias"], "model": o["model"]},
            )
            self.stdout.write(self.style.SUCCESS(
                f"registered {settings.MLFLOW_REGISTERED_MODEL} version {result.model_version}"
                + (f" with alias {o['alias']}" if o["alias"] else "")
            ))
