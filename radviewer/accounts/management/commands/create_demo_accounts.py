from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from radviewer.accounts.services import demo_accounts_ensure, demo_password_resolve


class Command(BaseCommand):
    help = ("Create (or reset) the demo accounts 'radiologist' and 'mladmin' with the demo password "
            "(RADVIEWER_DEMO_PASSWORD, else the one kept in var/demo_password). Never in production.")

    def handle(self, *args, **options):
        if not settings.ALLOW_DEMO_ACCOUNTS:
            raise CommandError("demo accounts are disabled in the production profile")
        password, source = demo_password_resolve(configured=settings.DEMO_PASSWORD, var_dir=settings.VAR_DIR)
        result = demo_accounts_ensure(password=password)
        # The password itself is printed once everything is up (manage.py announce_ready).
        self.stdout.write(f"Demo accounts {', '.join(result.usernames)} ready (password {source}).")
