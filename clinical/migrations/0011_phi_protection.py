"""PHI protection (issue 13 items 10 and 11).

The protected mapping is encrypted at rest: its columns become text, existing rows are
encrypted under the first RADVIEWER_PHI_KEY and given keyed lookup hashes, then the columns
are declared encrypted (same database type, no table rewrite). The sender's SOP Instance UID
stays unique through its hash. Images and studies record Burned In Annotation YES, read back
from the stored copies of images received before.
"""

from django.db import migrations, models

import radviewer.lib.phi_crypto

ENCRYPTED = ("study_instance_uid", "series_instance_uid", "sop_instance_uid", "accession_number",
             "patient_id", "patient_name", "issuer_of_patient_id", "patient_birth_date", "patient_sex")


def encrypt_rows(apps, schema_editor):
    from radviewer.lib.phi_crypto import phi_encrypt, phi_lookup_hmac

    rows = apps.get_model("clinical", "OriginalIdentifiers")
    for row in rows.objects.order_by("pk").iterator(chunk_size=500):
        rows.objects.filter(pk=row.pk).update(
            study_uid_hmac=phi_lookup_hmac(row.study_instance_uid),
            sop_uid_hmac=phi_lookup_hmac(row.sop_instance_uid),
            accession_hmac=phi_lookup_hmac(row.accession_number),
            **{name: phi_encrypt(getattr(row, name)) for name in ENCRYPTED},
        )


def decrypt_rows(apps, schema_editor):
    from radviewer.lib.phi_crypto import phi_decrypt

    rows = apps.get_model("clinical", "OriginalIdentifiers")
    for row in rows.objects.order_by("pk").iterator(chunk_size=500):
        rows.objects.filter(pk=row.pk).update(**{name: phi_decrypt(getattr(row, name)) for name in ENCRYPTED})


def flag_burned_in(apps, schema_editor):
    """Images stored before this migration: their stored copies kept Burned In Annotation."""
    import pydicom
    from django.core.files.storage import default_storage

    images = apps.get_model("clinical", "Image")
    studies = apps.get_model("clinical", "Study")
    for image in images.objects.filter(format="dicom").only("pk", "file", "study_id").iterator(chunk_size=500):
        try:
            with default_storage.open(image.file.name, "rb") as fh:
                ds = pydicom.dcmread(fh, stop_before_pixels=True, force=True, specific_tags=["BurnedInAnnotation"])
        except (OSError, ValueError, EOFError):
            continue  # a missing or unreadable file says nothing either way
        if str(ds.get("BurnedInAnnotation", "") or "").strip().upper() == "YES":
            images.objects.filter(pk=image.pk).update(burned_in_annotation=True)
            studies.objects.filter(pk=image.study_id).update(burned_in_annotation=True)


def _text(name: str, **kwargs):
    return migrations.AlterField(model_name="originalidentifiers", name=name, field=models.TextField(**kwargs))


def _encrypted(name: str, **kwargs):
    return migrations.AlterField(model_name="originalidentifiers", name=name,
                                 field=radviewer.lib.phi_crypto.EncryptedTextField(**kwargs))


class Migration(migrations.Migration):

    dependencies = [
        ("clinical", "0010_result_destinations"),
    ]

    operations = [
        migrations.AddField(model_name="image", name="burned_in_annotation",
                            field=models.BooleanField(default=False)),
        migrations.AddField(model_name="study", name="burned_in_annotation",
                            field=models.BooleanField(default=False)),
        migrations.RunPython(flag_burned_in, migrations.RunPython.noop),
        # 1. Plain text columns wide enough for tokens; hash columns, not yet unique.
        *[_text(name, blank=name not in ("study_instance_uid", "series_instance_uid", "sop_instance_uid"))
          for name in ENCRYPTED],
        migrations.AddField(model_name="originalidentifiers", name="study_uid_hmac",
                            field=models.CharField(default="", editable=False, max_length=64), preserve_default=False),
        migrations.AddField(model_name="originalidentifiers", name="sop_uid_hmac",
                            field=models.CharField(default="", editable=False, max_length=64), preserve_default=False),
        migrations.AddField(model_name="originalidentifiers", name="accession_hmac",
                            field=models.CharField(blank=True, default="", editable=False, max_length=64),
                            preserve_default=False),
        # 2. Encrypt what is there.
        migrations.RunPython(encrypt_rows, decrypt_rows),
        # 3. Declare the columns encrypted; index the hashes.
        *[_encrypted(name, blank=name not in ("study_instance_uid", "series_instance_uid", "sop_instance_uid"))
          for name in ENCRYPTED],
        migrations.AlterField(model_name="originalidentifiers", name="study_uid_hmac",
                              field=models.CharField(db_index=True, editable=False, max_length=64)),
        migrations.AlterField(model_name="originalidentifiers", name="sop_uid_hmac",
                              field=models.CharField(editable=False, max_length=64, unique=True)),
        migrations.AlterField(model_name="originalidentifiers", name="accession_hmac",
                              field=models.CharField(blank=True, db_index=True, editable=False, max_length=64)),
    ]
