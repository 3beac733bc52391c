"""``manage.py flush``, aware of the audit log's append-only triggers (migration 0003).

Django's flush empties every table, the audit log's included, and the triggers refuse that.
The test suite flushes between transactional tests (``AUDIT_FLUSH_ALLOWED``, on in
the test settings only); an operator who really means to wipe a database, audit log and all,
says so with ``--include-audit-log``. Anywhere else flush fails and the log stays.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import CommandError
from django.core.management.commands import flush

from radviewer.audit.integrity import audit_maintenance


class Command(flush.Command):
    help = flush.Command.help + " The audit log is refused unless --include-audit-log is given."

    def add_arguments(self, parser) -> None:
        super().add_arguments(parser)
        parser.add_argument(
            "--include-audit-log", action="store_true",
            help="also delete the append-only audit log (switches its triggers' maintenance mode on "
                 "for this one transaction)",
        )

    def handle(self, **options: Any) -> None:
        if options.get("include_audit_log") or getattr(settings, "AUDIT_FLUSH_ALLOWED", False):
            with audit_maintenance(using=options["database"]):
                return super().handle(**options)
        try:
            return super().handle(**options)
        except CommandError as exc:
            raise CommandError(
                f"{exc}\nThe audit log is append-only and nothing was deleted: pass --include-audit-log "
                "to wipe it too (docs/audit.md)."
            ) from exc
