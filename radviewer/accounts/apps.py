from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "radviewer.accounts"
    label = "accounts"
    verbose_name = "Accounts and roles"
