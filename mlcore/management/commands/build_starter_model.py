"""`make starter-model`: reproduce the shipped starter model from the real images.

Builds the real-cxr dataset store (de-duplicated, split by patient with seed 42) when it is
missing, trains the recipe (TrainConfig defaults: the default variant at 128 px; fp32; fixed epochs and seed;
an EMA of the weights from epoch 10),
registers the run, computes the model card's figures and replaces
``mlcore/starter/radviewer-starter.pt`` only when the new model is better on ``final_eval``
(``--force`` replaces it regardless). Then ``manage.py model_card`` rewrites the card's figures.
"""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from mlcore.management.commands._common import require_migrated_database


class Command(BaseCommand):
    help = "Train the starter model recipe on real-cxr and replace the shipped file if it is better."

    def add_arguments(self, parser):
        parser.add_argument("--data", type=Path, default=None,
                            help="the real-cxr tree (default ../shared/data/real-cxr)")
        parser.add_argument("--store", default=None, help="dataset store URI (default var/datasets/real-cxr)")
        parser.add_argument("--out", type=Path, default=None, help="file to write (default mlcore/starter/...)")
        parser.add_argument("--epochs", type=int, default=None)
        parser.add_argument("--seed", type=int, default=None)
        parser.add_argument("--ema-decay", type=float, default=None,
                            help="moving average of the weights, decay per step (the recipe: 0.998)")
        parser.add_argument("--ema-start-epoch", type=int, default=None,
                            help="the epoch the moving average starts from (the recipe: 10)")
        parser.add_argument("--label-smoothing", type=float, default=None,
                            help="candidate: label smoothing of the training loss (0 = off)")
        parser.add_argument("--mixup-alpha", type=float, default=None,
                            help="candidate: mixup of training images, Beta(alpha, alpha) weights (0 = off)")
        parser.add_argument("--focal-gamma", type=float, default=None,
                            help="candidate: focal loss exponent (0 = cross-entropy)")
        parser.add_argument("--source-balance", type=float, default=None,
                            help="candidate: 0..1, how far sampling evens out sources within a class")
        parser.add_argument("--force", action="store_true", help="write the file even if it is not better")
        parser.add_argument("--refresh-figures", action="store_true",
                            help="no training: recompute the figures stored in the shipped file (weights unchanged)")
        parser.add_argument("--refit-ood", action="store_true",
                            help="no training: refit the shipped file's out-of-scope detector on its own weights")

    def handle(self, *args, data, store, out, epochs, seed, ema_decay, ema_start_epoch, label_smoothing,
               mixup_alpha, focal_gamma, source_balance, force, refit_ood, refresh_figures, **opts):
        # Here, not at module level: torch and Lightning load when this command runs, not on
        # every manage.py call that lists the commands.
        from mlcore.ml.training.callbacks import print_epoch
        from mlcore.services.starter import (
            STARTER_DATA,
            STARTER_FILE,
            StarterModelError,
            starter_figures_refresh,
            starter_model_build,
            starter_ood_refit,
        )

        if refresh_figures:
            try:
                starter_figures_refresh(path=out or STARTER_FILE, data_dir=data or STARTER_DATA, store_uri=store)
            except StarterModelError as exc:
                raise CommandError(str(exc)) from None
            self.stdout.write(self.style.SUCCESS(
                f"recomputed the figures stored in {out or STARTER_FILE}; now run `manage.py model_card` and "
                "`manage.py build_drift_reference --starter` (the file's bytes changed)"))
            return

        if refit_ood:
            try:
                figures = starter_ood_refit(path=out or STARTER_FILE, data_dir=data or STARTER_DATA, store_uri=store)
            except StarterModelError as exc:
                raise CommandError(str(exc)) from None
            rate = figures.get("probes_flag_rate")
            self.stdout.write(self.style.SUCCESS(
                f"refitted the out-of-scope detector of {out or STARTER_FILE} (generated non-medical images "
                f"flagged: {'?' if rate is None else f'{100 * rate:.1f} %'}); now run `manage.py model_card`"))
            return

        require_migrated_database(doing="training the starter model (its version is registered there)")
        given = (("epochs", epochs), ("seed", seed), ("ema_decay", ema_decay), ("ema_start_epoch", ema_start_epoch),
                 ("label_smoothing", label_smoothing), ("mixup_alpha", mixup_alpha),
                 ("focal_gamma", focal_gamma),
                 ("source_balance", source_balance))
        recipe = {k: v for k, v in given if v is not None}
        try:
            build = starter_model_build(data_dir=data or STARTER_DATA, store_uri=store, out=out or STARTER_FILE,
                                        force=force, on_epoch=print_epoch, **recipe)
        except (StarterModelError, ValueError) as exc:
            raise CommandError(str(exc)) from None
        old = build.previous_final_eval_macro_f1
        self.stdout.write(f"registered run as version {build.version}; final_eval CXR macro-F1 "
                          f"{build.final_eval_macro_f1:.3f} (shipped file: {'none' if old is None else f'{old:.3f}'})")
        if build.file:
            self.stdout.write(self.style.SUCCESS(f"wrote {build.file}; now run `manage.py model_card`"))
        else:
            self.stdout.write("kept the shipped file: the new model is not better on final_eval (--force to replace)")
