"""Re-encrypt the protected mapping under the first key of RADVIEWER_PHI_KEY.

    RADVIEWER_PHI_KEY=<new>,<old> manage.py rotate_phi_key
    # then drop <old> from RADVIEWER_PHI_KEY and restart
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from clinical.services.phi import phi_key_rotate
from radviewer.lib.phi_crypto import PhiDecryptionError


class Command(BaseCommand):
    help = "Re-encrypt the protected re-identification mapping under the first RADVIEWER_PHI_KEY."

    def handle(self, *args, **opts) -> None:
        try:
            result = phi_key_rotate()
        except PhiDecryptionError as exc:
            raise CommandError(f"{exc}; nothing was changed") from exc
        self.stdout.write(
            f"{result.rotated} of {result.rows} protected row(s) re-encrypted under the current key; "
            "the older keys can now be removed from RADVIEWER_PHI_KEY"
        )
