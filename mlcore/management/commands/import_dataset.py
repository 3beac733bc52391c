from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from mlcore.management.commands._common import TqdmProgress, open_store_or_fail
from mlcore.ml import data

FORMATS = ("covid19-radiography", "tb-cxr", "kermany-oct", "plain")


class Command(BaseCommand):
    help = (
        "Import a public data set layout into a dataset store: de-duplicate (exact and "
        "perceptual hash), split by patient, write images + manifest, print the split report."
    )

    def add_arguments(self, parser):
        parser.add_argument("source", type=Path, help="root folder of the data set")
        parser.add_argument("--format", choices=FORMATS, required=True)
        parser.add_argument("--manifest", type=Path, help="plain format: CSV with file,class,patient_id")
        parser.add_argument("--dest", help="store URI (default RADVIEWER_DATASET_URI)")
        parser.add_argument("--seed", type=int, default=42)
        parser.add_argument("--near-dup-hamming", type=int, default=12)
        parser.add_argument("--max-side", type=int, default=512)

    def handle(self, *args, source: Path, format: str, manifest, dest, seed, near_dup_hamming, max_side, **opts):
        scanners = {
            "covid19-radiography": data.scan_covid19_radiography,
            "tb-cxr": data.scan_tb_cxr,
            "kermany-oct": data.scan_kermany_oct,
        }
        try:
            if format == "plain":
                csv = manifest or (source / "manifest.csv" if (source / "manifest.csv").exists() else None)
                candidates = data.scan_plain_tree(source, manifest_csv=csv)
            else:
                candidates = scanners[format](source)
        except (ValueError, FileNotFoundError, NotADirectoryError) as exc:
            raise CommandError(str(exc)) from None
        store = open_store_or_fail(dest)
        self.stderr.write(f"{len(candidates)} candidate images found in {source}")
        progress = TqdmProgress("importing")
        try:
            report = data.build_dataset(
                candidates, store, seed=seed, near_dup_hamming=near_dup_hamming,
                max_side=max_side, progress=progress,
            )
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        finally:
            progress.close()
        self.stdout.write(report.to_markdown())
        self.stdout.write(self.style.SUCCESS(f"dataset written to {dest or 'RADVIEWER_DATASET_URI'}; "
                                             f"manifest hash {store.manifest_hash()}"))
