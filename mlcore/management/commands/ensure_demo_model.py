"""`make demo-model`: a model trained on synthetic phantoms, for demos and tests only.

Never a model for real images: its version is labelled "synthetic demo — not for real images"
wherever it is shown (the run is tagged ``radviewer.data_synthetic``). It is registered
without an alias unless ``--alias`` says otherwise, so it never replaces the starter model
by accident. The recipe deviates from the real-data one on purpose: 64 px input, no dropout
and a higher learning rate -- phantoms are easy, and the demo should finish in minutes.
Fixed epochs, fixed seed: the same model whatever the machine's load.
"""

import time

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from mlcore.ml.data import make_synthetic_dataset, open_store
from mlcore.services.training import model_train, train_config


class Command(BaseCommand):
    help = "Train (and optionally alias) a demo model on synthetic phantoms. Not for real images."

    def add_arguments(self, parser):
        parser.add_argument("--per-class", type=int, default=120)
        parser.add_argument("--size", type=int, default=96)
        parser.add_argument("--epochs", type=int, default=40)
        parser.add_argument("--image-size", type=int, default=64,
                            help="input size for the demo (the default variant's stem and tokens scale with it)")
        parser.add_argument("--lr", type=float, default=2e-3)

    def handle(self, *args, per_class, size, epochs, image_size, lr, **opts):
        started = time.monotonic()
        store_uri = str(settings.VAR_DIR / "datasets" / "demo-synthetic")
        store = open_store(store_uri)
        if not store.manifest():
            self.stdout.write(f"writing a synthetic phantom set ({per_class} per class) to {store_uri}")
            make_synthetic_dataset(store, per_class=per_class, size=size, seed=0)
        self.stdout.write("training the demo model on synthetic phantoms (not a model for real images)...")
        try:
            config = train_config(store_uri=store_uri, image_size=image_size, model_overrides={"dropout": 0.0},
                                  epochs=epochs, lr=lr, run_name="demo-synthetic",
                                  precision="32-true", log_system_metrics=False)
            result = model_train(config=config, actor_label="cli:ensure_demo_model",
                                 details={"data": "synthetic phantoms"})
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        f1 = result.metrics.get("test_macro_f1")
        where = (f" without an alias; a synthetic version never goes to production, but a demo can route a "
                 f"share of studies to it as a canary: `manage.py set_model_alias canary {result.model_version} "
                 f"--reason demo --override \"synthetic demo installation, not for real images\"`")
        self.stdout.write(self.style.SUCCESS(
            f"demo model {config.registered_model_name} version {result.model_version} registered{where} "
            f"(synthetic demo — not for real images; synthetic test macro-F1 "
            f"{f1 if f1 is None else round(f1, 3)}; {time.monotonic() - started:.0f} s)"
        ))
