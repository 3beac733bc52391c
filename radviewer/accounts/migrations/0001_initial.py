from django.db import migrations, models

from radviewer.accounts.roles import PERMISSIONS


class Migration(migrations.Migration):
    initial = True
    dependencies = []

    operations = [
        migrations.CreateModel(
            name="Role",
            fields=[("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False))],
            options={
                "managed": False,
                "default_permissions": (),
                "permissions": list(PERMISSIONS.items()),
            },
        ),
    ]
