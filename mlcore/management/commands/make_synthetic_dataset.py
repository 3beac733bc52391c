from django.core.management.base import BaseCommand

from mlcore.management.commands._common import open_store_or_fail
from mlcore.ml.data import make_synthetic_dataset


class Command(BaseCommand):
    help = (
        "Write a synthetic phantom data set (nine classes, CXR- and OCT-like) for demos and "
        "tests. Marked synthetic in the manifest; never a measure of clinical accuracy."
    )

    def add_arguments(self, parser):
        parser.add_argument("--dest", help="store URI (default RADVIEWER_DATASET_URI)")
        parser.add_argument("--per-class", type=int, default=40)
        parser.add_argument("--size", type=int, default=128)
        parser.add_argument("--seed", type=int, default=0)

    def handle(self, *args, dest, per_class, size, seed, **opts):
        store = open_store_or_fail(dest)
        report = make_synthetic_dataset(store, per_class=per_class, size=size, seed=seed)
        self.stdout.write(report.to_markdown())
        self.stdout.write(self.style.SUCCESS(f"synthetic dataset written; manifest hash {store.manifest_hash()}"))
