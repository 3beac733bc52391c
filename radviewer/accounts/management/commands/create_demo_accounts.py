from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from radviewer.accounts.services import demo_accounts_ensure


class Command(BaseCommand):
    help = "Create (or reset) the demo accounts 'radiologist' and 'mladmin'. Never in production."

    def handle(self, *args, **options):
        if not settings.ALLOW_DEMO_ACCOUNTS:
            raise CommandError("demo accounts are disabled in the production profile")
        result = demo_accounts_ensure(password=settings.DEMO_PASSWORD or None)
        source = (
            "generated for this run (set RADVIEWER_DEMO_PASSWORD to choose one)"
            if result.password_generated
            else "from RADVIEWER_DEMO_PASSWORD"
        )
        self.stdout.write(
            self.style.SUCCESS(
                f"Demo accounts {', '.join(result.usernames)} ready; password {source}: "
                f"{result.password}"
            )
        )
