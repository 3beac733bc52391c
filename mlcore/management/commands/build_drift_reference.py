"""`manage.py build_drift_reference`: a model version's drift reference.

    --starter            the shipped starter model's, from ../shared/data/real-cxr's val split,
                         written to mlcore/starter/radviewer-starter.drift.npz (tens of KB; make
                         run's registration logs it with the version)
    --model-version N    a registered version's, from --store's --split (default: the
                         configured dataset store, val), logged to its MLflow run

Versions trained in the console or with train_model get theirs at training time.
"""

from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from mlcore.services.drift import (
    STARTER_REFERENCE,
    DriftError,
    drift_reference_build,
    starter_drift_reference_build,
)
from mlcore.services.starter import STARTER_DATA, StarterModelError


class Command(BaseCommand):
    help = "Compute a model version's drift reference (its validation images' statistics)."

    def add_arguments(self, parser):
        who = parser.add_mutually_exclusive_group(required=True)
        who.add_argument("--starter", action="store_true",
                         help=f"the shipped starter model (writes {STARTER_REFERENCE.name})")
        who.add_argument("--model-version", dest="model_version", help="a registered version number")
        parser.add_argument("--name", default=None, help="registered model (default: the configured one)")
        parser.add_argument("--store", default=None,
                            help="dataset store URI (default: the configured store; --starter: "
                                 "var/datasets/real-cxr)")
        parser.add_argument("--split", default="val")
        parser.add_argument("--data", type=Path, default=STARTER_DATA,
                            help="real-cxr tree for --starter")

    def handle(self, *args, starter, model_version, name, store, split, data, **opts):
        try:
            if starter:
                ref = starter_drift_reference_build(
                    data_dir=data, store_uri=store or str(Path(settings.VAR_DIR) / "datasets" / "real-cxr"))
                where = str(STARTER_REFERENCE)
            else:
                ref = drift_reference_build(name=name or settings.MLFLOW_REGISTERED_MODEL,
                                            version=str(model_version),
                                            store_uri=store or settings.DATASET_STORE_URI,
                                            split=split, actor_label="cli:build_drift_reference")
                where = f"v{model_version}'s MLflow run (drift/reference.npz)"
        except (DriftError, StarterModelError) as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(f"drift reference of {ref.n} images ({ref.embeddings_pca.shape[1]} "
                          f"embedding components) saved to {where}")
