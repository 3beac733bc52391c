"""The protected mapping (clinical.OriginalIdentifiers): encrypted at rest, looked up by keyed
hashes, read only through the audited selector and never by reader roles, key rotation, and
the data migration that encrypts rows written before it."""

from __future__ import annotations

import io

import pytest
from cryptography.fernet import Fernet
from django.core.exceptions import FieldError, PermissionDenied
from django.core.management import CommandError, call_command
from django.db import connection, transaction

from clinical.models import Image, OriginalIdentifiers, Study
from clinical.selectors.phi import original_identifiers_read
from clinical.selectors.studies import studies_holding
from clinical.services.ingest import image_ingest, ingest_prepare
from radviewer.audit.models import AuditEvent
from radviewer.lib.phi_crypto import PhiDecryptionError, phi_lookup_hmac
from radviewer.settings.env import ConfigError, fernet_keys
from tests.clinical.dicom_factory import make_cxr_dicom

KEY_A, KEY_B = Fernet.generate_key().decode(), Fernet.generate_key().decode()
ORIGINAL = {"patient_name": "Doe^Jane", "patient_id": "MRN-55521", "accession": "ACC-7781",
            "issuer": "ST-ELSEWHERE", "study_uid": "1.2.826.0.1.3680043.8.498.4711",
            "sop_uid": "1.2.826.0.1.3680043.8.498.4712"}
PLAIN = ["Doe^Jane", "MRN-55521", "ACC-7781", "ST-ELSEWHERE", ORIGINAL["study_uid"], ORIGINAL["sop_uid"],
         "19610923"]


def _raw_rows() -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM clinical_originalidentifiers")
        return cursor.fetchall()


def _ingest(**overrides) -> Image:
    data = make_cxr_dicom(rows=32, cols=32, **{**ORIGINAL, **overrides})
    return image_ingest(data=data, filename="x.dcm").image


@pytest.fixture
def keys(settings):
    settings.PHI_KEYS = [KEY_A]
    return settings


@pytest.mark.django_db
def test_every_identifier_is_ciphertext_in_the_table_and_plain_through_the_model(keys):
    image = _ingest()
    rows = _raw_rows()
    assert len(rows) == 1
    stored = " ".join(str(v) for v in rows[0])
    assert [p for p in PLAIN if p in stored] == []
    ids = OriginalIdentifiers.objects.get(image=image)
    assert (ids.patient_name, ids.patient_id, ids.accession_number, ids.issuer_of_patient_id,
            ids.patient_birth_date, ids.patient_sex) == ("Doe^Jane", "MRN-55521", "ACC-7781", "ST-ELSEWHERE",
                                                         "19610923", "F")
    assert (ids.study_instance_uid, ids.sop_instance_uid) == (ORIGINAL["study_uid"], ORIGINAL["sop_uid"])
    assert ids.sop_uid_hmac == phi_lookup_hmac(ORIGINAL["sop_uid"]) != ORIGINAL["sop_uid"]


@pytest.mark.django_db
def test_lookups_go_through_the_keyed_hashes(keys):
    image = _ingest()
    again = ingest_prepare(data=make_cxr_dicom(rows=32, cols=32, **ORIGINAL), filename="again.dcm")
    assert list(studies_holding(again)) == [image.study]  # same SOP instance: found by its hash
    outcome = image_ingest(data=make_cxr_dicom(rows=32, cols=32, **ORIGINAL), filename="again.dcm")
    assert not outcome.created and outcome.image == image
    with pytest.raises(FieldError, match="encrypted"):
        list(OriginalIdentifiers.objects.filter(sop_instance_uid=ORIGINAL["sop_uid"]))


@pytest.mark.django_db
def test_reader_roles_never_read_the_mapping_and_every_read_is_audited(keys, radiologist, ml_admin):
    image = _ingest()
    with pytest.raises(PermissionDenied):
        original_identifiers_read(image=image, user=radiologist, purpose="curiosity")
    assert not AuditEvent.objects.filter(action="phi.original_ids_read").exists()
    ids = original_identifiers_read(image=image, user=ml_admin, purpose="re-identification request #12")
    assert ids.patient_id == "MRN-55521"
    event = AuditEvent.objects.get(action="phi.original_ids_read")
    assert event.actor == ml_admin and event.details["purpose"] == "re-identification request #12"


@pytest.mark.django_db
def test_reader_pages_show_no_original_identifier(keys, radiologist_client):
    image = _ingest()
    for url in (f"/studies/{image.study.uid}/", "/worklist/"):
        html = radiologist_client.get(url).content.decode()
        assert [p for p in PLAIN if p in html] == [], url


@pytest.mark.django_db
def test_rotation_re_encrypts_under_the_new_key_and_the_old_key_can_go(keys):
    image = _ingest()
    _ingest(sop_uid="1.2.826.0.1.3680043.8.498.4713", patient_id="MRN-2")
    before = _raw_rows()
    keys.PHI_KEYS = [KEY_B, KEY_A]  # new key first, old one still decrypts
    assert OriginalIdentifiers.objects.get(image=image).patient_id == "MRN-55521"
    out = io.StringIO()
    call_command("rotate_phi_key", stdout=out)
    assert "2 of 2 protected row(s) re-encrypted" in out.getvalue()
    assert _raw_rows() != before
    keys.PHI_KEYS = [KEY_B]  # the old key is gone: everything still reads
    assert OriginalIdentifiers.objects.get(image=image).patient_name == "Doe^Jane"
    out = io.StringIO()
    call_command("rotate_phi_key", stdout=out)
    assert "0 of 2" in out.getvalue()
    event = AuditEvent.objects.filter(action="phi.key_rotated").order_by("id").first()
    assert event.details == {"rows": 2, "rotated": 2, "keys_configured": 2}
    keys.PHI_KEYS = [KEY_A]
    with pytest.raises(PhiDecryptionError, match="cannot be decrypted"):
        OriginalIdentifiers.objects.get(image=image)


@pytest.mark.django_db
def test_rotation_without_the_old_key_stops_with_nothing_changed(keys):
    _ingest()
    before = _raw_rows()
    keys.PHI_KEYS = [KEY_B]  # the old key dropped too early
    with pytest.raises(CommandError, match="nothing was changed"):
        call_command("rotate_phi_key")
    assert _raw_rows() == before
    assert not AuditEvent.objects.filter(action="phi.key_rotated").exists()


def test_keys_from_the_environment_and_the_embedded_key_file(monkeypatch, tmp_path):
    monkeypatch.setenv("RADVIEWER_PHI_KEY", f"{KEY_B}, {KEY_A}")
    assert fernet_keys("RADVIEWER_PHI_KEY", fallback_file=None) == [KEY_B, KEY_A]
    monkeypatch.setenv("RADVIEWER_PHI_KEY", f"{KEY_B},c2hvcnQ=")
    with pytest.raises(ConfigError, match="key 2 of 2 is not a Fernet key"):
        fernet_keys("RADVIEWER_PHI_KEY", fallback_file=None)
    monkeypatch.delenv("RADVIEWER_PHI_KEY")
    with pytest.raises(ConfigError, match="RADVIEWER_PHI_KEY is required"):
        fernet_keys("RADVIEWER_PHI_KEY", fallback_file=None)
    key_file = tmp_path / "var" / "phi_key"
    generated = fernet_keys("RADVIEWER_PHI_KEY", fallback_file=key_file)
    assert generated == fernet_keys("RADVIEWER_PHI_KEY", fallback_file=key_file)  # kept, not regenerated
    assert key_file.stat().st_mode & 0o777 == 0o600
    Fernet(generated[0].encode())  # a real key


@pytest.mark.django_db(transaction=True)
def test_the_data_migration_encrypts_rows_written_before_it(settings):
    from django.db.migrations.executor import MigrationExecutor

    settings.PHI_KEYS = [KEY_A]

    def migrate(target: str) -> None:
        executor = MigrationExecutor(connection)
        executor.loader.build_graph()
        # Forward means the latest clinical migration: the models read below have its fields.
        latest = target == "0011_phi_protection"
        executor.migrate(executor.loader.graph.leaf_nodes("clinical") if latest else [("clinical", target)])

    image = _ingest()
    burned = _ingest(sop_uid="1.2.826.0.1.3680043.8.498.4799", study_uid="1.2.826.0.1.3680043.8.498.4798",
                     extra={"BurnedInAnnotation": "YES"})
    assert burned.burned_in_annotation
    OriginalIdentifiers.objects.all().delete()
    try:
        migrate("0010_result_destinations")
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO clinical_originalidentifiers (image_id, study_instance_uid, series_instance_uid,"
                " sop_instance_uid, sop_class_uid, accession_number, patient_id, patient_name,"
                " issuer_of_patient_id, patient_birth_date, patient_sex)"
                " VALUES (%s, %s, '1.2.3.4', %s, '1.2.840.10008.5.1.4.1.1.1.1', 'ACC-7781', 'MRN-55521',"
                " 'Doe^Jane', 'ST-ELSEWHERE', '19610923', 'F')",
                [image.pk, ORIGINAL["study_uid"], ORIGINAL["sop_uid"]],
            )
        assert "Doe^Jane" in str(_raw_rows())
    finally:
        migrate("0011_phi_protection")
    stored = str(_raw_rows())
    assert [p for p in PLAIN if p in stored] == []
    # Burned In Annotation of images received before the migration, read from their stored copies
    assert Image.objects.get(pk=burned.pk).burned_in_annotation
    assert Study.objects.get(pk=burned.study_id).burned_in_annotation
    assert not Image.objects.get(pk=image.pk).burned_in_annotation
    ids = OriginalIdentifiers.objects.get(image=image)
    assert (ids.patient_name, ids.sop_instance_uid) == ("Doe^Jane", ORIGINAL["sop_uid"])
    assert ids.study_uid_hmac == phi_lookup_hmac(ORIGINAL["study_uid"])
    # and back: the reverse migration decrypts
    try:
        migrate("0010_result_destinations")
        assert "Doe^Jane" in str(_raw_rows())
    finally:
        migrate("0011_phi_protection")
