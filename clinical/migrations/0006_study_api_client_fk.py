"""Study.api_client_id (a bare integer) becomes a foreign key to ApiClient, keeping the
column ``api_client_id`` and its values: the rename and the type change together leave the
column where it was, so existing rows keep their client."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('clinical', '0005_prediction_scope'),
    ]

    operations = [
        migrations.RemoveIndex(model_name='study', name='study_client_received_idx'),
        migrations.RemoveConstraint(model_name='study', name='study_unique_idempotency_key_per_client'),
        migrations.RenameField(model_name='study', old_name='api_client_id', new_name='api_client'),
        migrations.AlterField(
            model_name='study',
            name='api_client',
            field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT,
                                    related_name='studies', to='clinical.apiclient'),
        ),
        migrations.AddIndex(
            model_name='study',
            index=models.Index(fields=['api_client', 'received_at'], name='study_client_received_idx'),
        ),
        migrations.AddConstraint(
            model_name='study',
            constraint=models.UniqueConstraint(condition=models.Q(('idempotency_key', ''), _negated=True),
                                               fields=('api_client', 'idempotency_key'),
                                               name='study_unique_idempotency_key_per_client'),
        ),
    ]
