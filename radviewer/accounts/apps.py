from django.apps import AppConfig
from django.db.models.signals import post_migrate


class AccountsConfig(AppConfig):
    name = "radviewer.accounts"
    label = "accounts"
    verbose_name = "Accounts and roles"

    def ready(self) -> None:
        # Roles also hold other apps' model permissions, which exist only after their
        # migrations: an upgraded install gets them at its next migrate, demo or not.
        from radviewer.accounts.services import roles_sync_after_migrate

        post_migrate.connect(roles_sync_after_migrate, dispatch_uid="radviewer.accounts.roles_sync")
