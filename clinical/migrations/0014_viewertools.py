"""Pixel spacing for the viewer's measurements (issue 14 item 11), captured at ingest.

Images received before are read back from their stored (de-identified) copies, which keep
Pixel Spacing and Imager Pixel Spacing; an image without either, or whose copy cannot be read,
keeps null spacing and the viewer measures it in pixels and says so.
"""

from django.db import migrations, models


def spacing_from_stored_copies(apps, schema_editor):
    import pydicom
    from django.core.files.storage import default_storage

    from clinical.ingest.dicom_pixels import pixel_spacing

    images = apps.get_model("clinical", "Image")
    rows = images.objects.filter(format="dicom", pixel_spacing_row__isnull=True).only("pk", "file", "frame_index")
    for image in rows.iterator(chunk_size=500):
        try:
            with default_storage.open(image.file.name, "rb") as fh:
                ds = pydicom.dcmread(fh, stop_before_pixels=True, force=True)
            spacing, source = pixel_spacing(ds, image.frame_index or 0)
        except (OSError, ValueError, EOFError, AttributeError, TypeError):
            continue  # a missing or unreadable file says nothing either way
        if spacing is not None:
            images.objects.filter(pk=image.pk).update(
                pixel_spacing_row=spacing[0], pixel_spacing_col=spacing[1], spacing_source=source
            )


class Migration(migrations.Migration):
    dependencies = [
        ("clinical", "0013_reading"),
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
        migrations.RunPython(spacing_from_stored_copies, migrations.RunPython.noop),
    ]
