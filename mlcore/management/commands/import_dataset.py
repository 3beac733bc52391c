"""Import a data set folder into a dataset store: the same services as the console's import
form (validation, the ``DatasetVersion`` row, audit), run in this process with a progress bar."""

from pathlib import Path

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.utils.text import slugify

from mlcore.management.commands._common import TqdmProgress
from mlcore.ml.data import open_store
from mlcore.models import DatasetVersion
from mlcore.services.dataset_imports import IMPORT_FORMATS, dataset_import_request, dataset_import_run
from mlcore.services.datasets import CURRENT_SLUG

FORMATS = tuple(IMPORT_FORMATS)


class Command(BaseCommand):
    help = (
        "Import a public data set layout into a dataset store: de-duplicate (exact and "
        "perceptual hash), split by patient, write images + manifest, print the split report."
    )

    def add_arguments(self, parser):
        parser.add_argument("source", type=Path, help="root folder of the data set")
        parser.add_argument("--format", choices=FORMATS, required=True)
        parser.add_argument("--manifest", type=Path, help="plain format: CSV with file,class,patient_id")
        parser.add_argument("--slug", help="name of the dataset version (default: 'current' for the "
                                           "app's store, else the --dest folder's name); without --dest "
                                           "the store is var/datasets/<slug>")
        parser.add_argument("--dest", help="store URI (default: RADVIEWER_DATASET_URI, or "
                                           "var/datasets/<slug> with --slug)")
        parser.add_argument("--evaluation-only", action="store_true",
                            help="every image goes to final_eval; the set is never trained on")
        parser.add_argument("--seed", type=int, default=42)
        parser.add_argument("--near-dup-hamming", type=int, default=12)
        parser.add_argument("--max-side", type=int, default=512)

    def handle(self, *args, source: Path, format: str, manifest, slug, dest, evaluation_only, seed,
               near_dup_hamming, max_side, **opts):
        from django.conf import settings

        if slug is None and dest is None:
            slug, dest = CURRENT_SLUG, str(settings.DATASET_STORE_URI)
        elif slug is None:
            slug = slugify(Path(str(dest).rstrip("/")).name) or "imported"
        kind = DatasetVersion.Kind.EVALUATION if evaluation_only else DatasetVersion.Kind.TRAINING
        try:
            dataset = dataset_import_request(
                actor="cli:import_dataset", source_path=source.expanduser().absolute(),
                source_format=format, slug=slug, kind=kind, seed=seed,
                near_dup_hamming=near_dup_hamming, max_side=max_side,
                manifest_csv=manifest, store_uri=dest, enqueue=False,
            )
        except ValidationError as exc:
            raise CommandError("; ".join(exc.messages)) from None
        self.stderr.write(f"{dataset.progress_total} candidate images found in {dataset.source_path}")
        progress = TqdmProgress("importing")
        try:
            dataset = dataset_import_run(dataset_id=dataset.pk, progress=progress)
        finally:
            progress.close()
        if dataset.status != DatasetVersion.Status.READY:
            raise CommandError(f"import failed: {dataset.failure_reason}")
        self.stdout.write(open_store(dataset.store_uri).split_report().to_markdown())
        self.stdout.write(self.style.SUCCESS(
            f"dataset {dataset.slug} ({dataset.get_kind_display()}) written to {dataset.store_uri}; "
            f"manifest hash {dataset.manifest_hash}"))
