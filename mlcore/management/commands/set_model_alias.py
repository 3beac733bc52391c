from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from mlcore.services.promotion import GateBlocked, PromotionError, alias_move


def verdict_lines(criteria: list[dict]) -> list[str]:
    """One line per criterion: PASS / FAIL / n/a, what was required and what was found."""
    mark = {True: "PASS", False: "FAIL", None: "n/a "}
    return [f"  {mark[c['passed']]}  {c['name']}: {c['value']} (required {c['required']})"
            + (f" — {c['detail']}" if c.get("detail") else "") for c in criteria]


class Command(BaseCommand):
    help = ("Point an alias (production, canary, candidate) at a registered version through the promotion "
            "gate. Writes a change record and an audit row; a failing gate blocks unless --override says why.")

    def add_arguments(self, parser):
        parser.add_argument("alias", choices=("production", "canary", "candidate"))
        parser.add_argument("version")
        parser.add_argument("--name", default=None)
        parser.add_argument("--reason", default="", help="why (required for canary and production)")
        parser.add_argument("--override", default="", metavar="JUSTIFICATION",
                            help="move despite a failing gate; the written justification is recorded")

    def handle(self, *args, alias, version, name, reason, override, **opts):
        name = name or settings.MLFLOW_REGISTERED_MODEL
        try:
            record = alias_move(actor="cli:set_model_alias", alias=alias, version=version, name=name,
                                reason=reason, override_justification=override)
        except GateBlocked as exc:
            self.stderr.write("\n".join(["gate verdict:", *verdict_lines(exc.verdict.to_dict()["criteria"])]))
            raise CommandError(f"could not set {alias} -> {version}: {exc}") from None
        except PromotionError as exc:
            raise CommandError(f"could not set {alias} -> {version}: {exc}") from None
        self.stdout.write("\n".join(["gate verdict:", *verdict_lines(record.gate.get("criteria", []))]))
        if record.overridden:
            self.stdout.write(self.style.WARNING(f"gate overridden: {record.override_justification}"))
        self.stdout.write(self.style.SUCCESS(
            f"{name}@{alias} now points at version {record.to_version} (change record {record.pk})"
        ))
