"""`manage.py model_card`: rewrite the figures of docs/model-card.md from the starter file.

Only the part between the ``figures`` markers is generated; the rest of the card (sources,
licences, intended use, confounders) is written by people. ``--check`` fails when the card's
figures are not the file's (CI can run it).
"""

import hashlib
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from mlcore.services.starter import STARTER_FILE

START, END = "<!-- figures:start (manage.py model_card) -->", "<!-- figures:end -->"


class Command(BaseCommand):
    help = "Regenerate the figures in docs/model-card.md from mlcore/starter/'s model file."

    def add_arguments(self, parser):
        parser.add_argument("--file", type=Path, default=None)
        parser.add_argument("--card", type=Path, default=Path(settings.BASE_DIR) / "docs" / "model-card.md")
        parser.add_argument("--check", action="store_true", help="fail if the card is out of date")

    def handle(self, *args, file, card, check, **opts):
        # torch and matplotlib (seconds): only once the command runs, not when Django loads it for help
        from mlcore.ml.bundle import BundleFileError, ModelBundle
        from mlcore.ml.evaluation.card import render_card_figures

        path = file or STARTER_FILE
        try:
            bundle = ModelBundle.load_file(path)
        except BundleFileError as exc:
            raise CommandError(str(exc)) from None
        sha = hashlib.sha256(Path(path).read_bytes()).hexdigest()
        figures = render_card_figures(bundle, file_name=f"mlcore/starter/{Path(path).name}", file_sha256=sha)
        text = card.read_text() if card.exists() else ""
        if START not in text or END not in text:
            raise CommandError(f"{card} has no {START} ... {END} section to fill")
        head, rest = text.split(START, 1)
        _, tail = rest.split(END, 1)
        new = f"{head}{START}\n{figures}{END}{tail}"
        if check:
            if new != text:
                raise CommandError(f"{card} does not show the figures of {path}; run manage.py model_card")
            self.stdout.write("model card is up to date")
            return
        card.write_text(new)
        self.stdout.write(self.style.SUCCESS(f"wrote the figures of {path.name} into {card}"))
