"""Pixel spacing for the viewer's measurements (issue 14 item 11), captured at ingest.

Images received before keep null spacing: the viewer measures them in pixels and says so.
"""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("clinical", "0011_phi_protection"),
    ]

    operations = [
        migrations.AddField(
            model_name="image",
            name="pixel_spacing_row",
            field=models.FloatField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="image",
            name="pixel_spacing_col",
            field=models.FloatField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="image",
            name="spacing_source",
            field=models.CharField(blank=True, default="", max_length=32),
        ),
    ]
