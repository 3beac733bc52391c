"""``manage.py train_model``: the real-data recipe from the command line.

Every option defaults to the recipe (``mlcore.ml.training.config.TrainConfig``), so this
command, ``benchmarks/real_cxr.py``, the starter model (``make starter-model``) and the
console's training jobs train the same way unless told otherwise. It goes through the
console's service: a ``TrainingJob`` row (created by "cli:train_model") run inline, so a CLI
run shows on the training page with its progress. One line per epoch.
"""

from dataclasses import fields

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from mlcore.management.commands._common import open_store_or_fail, require_migrated_database
from mlcore.models import ModelVersion, TrainingJob
from mlcore.selectors.evaluations import version_aliases
from mlcore.services.datasets import dataset_version_ensure
from mlcore.services.training_jobs import training_job_create, training_job_run


def _default(name: str):
    # Read from the dataclass without importing torch at command-load time.
    from mlcore.ml.training.config import TrainConfig

    return next(f.default for f in fields(TrainConfig) if f.name == name)


class Command(BaseCommand):
    help = "Train a model on a dataset store with Lightning (or Ray Train), log to MLflow, register it."

    def add_arguments(self, parser):
        from mlcore.ml.models import DEFAULT_MODEL  # torch (seconds): only once the command runs

        parser.add_argument("--store", help="dataset store URI (default RADVIEWER_DATASET_URI)")
        parser.add_argument("--model", default=DEFAULT_MODEL, help="variant name (see --list-models)")
        parser.add_argument("--list-models", action="store_true")
        parser.add_argument("--image-size", type=int, default=None,
                            help="input size in px (default: the variant's own)")
        parser.add_argument("--epochs", type=int, default=_default("epochs"))
        parser.add_argument("--batch-size", type=int, default=_default("batch_size"))
        parser.add_argument("--lr", type=float, default=_default("lr"))
        parser.add_argument("--weight-decay", type=float, default=_default("weight_decay"))
        parser.add_argument("--warmup-epochs", type=float, default=_default("warmup_epochs"))
        parser.add_argument("--class-weighting", choices=("inverse", "sqrt_inverse", "none"),
                            default=_default("class_weighting"))
        parser.add_argument("--intensity", choices=("equalize", "none"), default=_default("intensity"),
                            help="per-image intensity standardisation, identical in serving")
        parser.add_argument("--augment-noise", type=float, default=_default("augment_noise"))
        parser.add_argument("--augment-downscale", type=float, default=_default("augment_downscale"))
        parser.add_argument("--source-balance", type=float, default=_default("source_balance"),
                            help="share each class's draws among its sources (0 off .. 1 equal)")
        parser.add_argument("--mixup-alpha", type=float, default=_default("mixup_alpha"),
                            help="mixup of training images, Beta(alpha, alpha) weights (0 = off)")
        parser.add_argument("--focal-gamma", type=float, default=_default("focal_gamma"),
                            help="focal loss exponent (0 = cross-entropy)")
        parser.add_argument("--ema-decay", type=float, default=_default("ema_decay"),
                            help="exponential moving average of the weights per step (off by default)")
        parser.add_argument("--ema-start-epoch", type=int, default=_default("ema_start_epoch"),
                            help="the epoch the moving average starts from")
        parser.add_argument("--no-augment", action="store_true")
        parser.add_argument("--dropout", type=float, default=None, help="override the variant's dropout")
        parser.add_argument("--precision", default=_default("precision"),
                            help="Lightning precision: 32-true, bf16-mixed, ... or auto (measured)")
        parser.add_argument("--seed", type=int, default=_default("seed"))
        parser.add_argument("--max-time", type=float,
                            help="wall-clock cap for fitting, seconds (a safety stop only: results "
                                 "then depend on the machine's speed; epochs are the recipe)")
        parser.add_argument("--backend", choices=("local", "ray"), default=None,
                            help="default: RADVIEWER_TRAINING_BACKEND (local)")
        parser.add_argument("--ray-workers", type=int, default=None,
                            help="default: RADVIEWER_RAY_WORKERS (2)")
        parser.add_argument("--alias", help="alias to point at the new version, e.g. candidate or production")
        parser.add_argument("--include-feedback", action="store_true", help="add the feedback split to train")
        parser.add_argument("--run-name", default=None)
        parser.add_argument("--output-dir", default=None, help="where the model bundle is written")
        parser.add_argument("--no-register", action="store_true")

    def handle(self, *args, **o):
        from mlcore.ml.models import list_models  # torch: see add_arguments

        if o["list_models"]:
            self.stdout.write("\n".join(list_models()))
            return
        open_store_or_fail(o["store"])  # a bad URI fails before anything heavy starts
        require_migrated_database(doing="training (the job and the version are recorded there)")
        store_uri = o["store"] or settings.DATASET_STORE_URI
        overrides = {} if o["dropout"] is None else {"dropout": o["dropout"]}
        try:
            job = training_job_create(
                actor=None, actor_label="cli:train_model", enqueue=False,
                dataset_version=dataset_version_ensure(store_uri=str(store_uri), actor="cli:train_model"),
                store_uri=str(store_uri),
                variant=o["model"], model_overrides=overrides, image_size=o["image_size"],
                epochs=o["epochs"], batch_size=o["batch_size"], lr=o["lr"],
                weight_decay=o["weight_decay"], warmup_epochs=o["warmup_epochs"],
                class_weighting=o["class_weighting"], intensity=o["intensity"],
                augment=not o["no_augment"], augment_noise=o["augment_noise"],
                augment_downscale=o["augment_downscale"], source_balance=o["source_balance"],
                mixup_alpha=o["mixup_alpha"], focal_gamma=o["focal_gamma"],
                ema_decay=o["ema_decay"], ema_start_epoch=o["ema_start_epoch"],
                precision=o["precision"], seed=o["seed"],
                max_time_s=o["max_time"],
                **{k: v for k, v in (("backend", o["backend"]), ("num_workers_ray", o["ray_workers"]))
                   if v is not None},
                alias=o["alias"], register=not o["no_register"],
                include_feedback=o["include_feedback"], run_name=o["run_name"],
                output_dir=o["output_dir"], progress=True,
            )
        except (ValueError, KeyError) as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(f"training job {job.pk}")
        job = training_job_run(job_id=job.pk, echo=self.stdout.write)
        if job.state != TrainingJob.State.SUCCEEDED:
            raise CommandError(f"training job {job.pk} {job.state}: "
                               f"{job.failure_reason or 'stopped on request'}")
        self.stdout.write(f"MLflow run: {job.run_id}")
        metrics = _run_metrics(job.run_id, job.config["tracking_uri"])
        for key in sorted(metrics):
            if key.startswith(("test_", "final_eval_", "val_")):
                self.stdout.write(f"  {key}: {metrics[key]:.4f}")
        if o["output_dir"]:
            self.stdout.write(f"bundle: {o['output_dir']}")
        if job.model_version:
            held = version_aliases(version=ModelVersion.objects.get(name=job.model_name, version=job.model_version))
            self.stdout.write(self.style.SUCCESS(
                f"registered {job.model_name} version {job.model_version}"
                + (f" with alias {', '.join(held)}" if held else "")))
            wanted = o["alias"] or "candidate"
            if wanted not in held:
                self.stdout.write(self.style.WARNING(
                    f"{wanted} was not moved to version {job.model_version}: see the log above "
                    f"(set_model_alias {wanted} {job.model_version} --reason ... once the gate passes)"))


def _run_metrics(run_id: str, tracking_uri: str) -> dict[str, float]:
    from mlcore.ml import tracking  # MLflow (seconds): only once the command runs

    return dict(tracking.client(tracking_uri).get_run(run_id).data.metrics)
