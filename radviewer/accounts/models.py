from django.db import models

from radviewer.accounts.roles import PERMISSIONS


class Role(models.Model):
    """Holder of the product's permissions; it has no rows and no table of its own use."""

    class Meta:
        managed = False
        default_permissions = ()
        permissions = list(PERMISSIONS.items())

    def __str__(self) -> str:
        return "role permissions"
