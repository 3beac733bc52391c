"""The worklist page: triage order with escalation, filters, Done tab, paging, query count."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from clinical.models import Prediction, Study
from tests.clinical.study_rows import study_row

pytestmark = pytest.mark.django_db
URL = "/worklist/"


def _uids(response) -> list[str]:
    return re.findall(r'data-uid="([^"]+)"', response.content.decode())


def test_url_name_and_permission(client, integration_user, radiologist_client):
    assert reverse("clinical:worklist") == URL
    assert radiologist_client.get(URL).status_code == 200
    client.force_login(integration_user)
    assert client.get(URL).status_code == 403


def test_order_out_of_scope_first_and_old_studies_escalate(radiologist_client, settings):
    settings.WORKLIST_MAX_WAIT_MINUTES = 240
    routine = study_row(priority=0.1, minutes_ago=10)
    urgent = study_row(priority=0.9, top_class="lung-covid", minutes_ago=5)
    out_of_scope = study_row(priority=1.0, out_of_scope=True, minutes_ago=1)
    old_routine = study_row(priority=0.05, minutes_ago=300)  # waited past the maximum
    response = radiologist_client.get(URL)
    assert _uids(response) == [old_routine.uid, out_of_scope.uid, urgent.uid, routine.uid]
    body = response.content.decode()
    assert "badge band escalated" in body and "badge band out-of-scope" in body
    assert "5 h 0 min" in body  # the escalated study's waiting age


def test_columns_show_class_name_probability_and_status(radiologist_client):
    study = study_row(top_class="lung-tuberculosis", confidence=0.734, priority=0.8, modality="CR", images=2)
    image = study.images.first()
    # A shadow-arm prediction is never shown to readers.
    Prediction.objects.create(image=image, model_name="radviewer-triage", model_version="8", arm="shadow",
                              status="succeeded", top_class="lung-tuberculosis", confidence=0.99)
    body = radiologist_client.get(URL).content.decode()
    assert "Tuberculosis" in body and "73.4 %" in body and "99.0 %" not in body
    assert "CR" in body and "Awaiting review" in body and "badge band urgent" in body
    assert "<td>2</td>" in body  # images


def test_filters(radiologist_client):
    cxr = study_row(modality="DX", top_class="lung-covid", priority=0.9)
    oct_ = study_row(modality="OPT", top_class="lung-oct-drusen", priority=0.1)
    ood = study_row(modality="DX", out_of_scope=True, priority=1.0)
    failed = study_row(status=Study.Status.FAILED, top_class="", priority=0.0)
    old = study_row(minutes_ago=3 * 24 * 60)
    assert _uids(radiologist_client.get(URL, {"modality": "OPT"})) == [oct_.uid]
    assert _uids(radiologist_client.get(URL, {"predicted_class": "lung-covid"})) == [cxr.uid]
    assert _uids(radiologist_client.get(URL, {"out_of_scope": "yes"})) == [ood.uid]
    assert ood.uid not in _uids(radiologist_client.get(URL, {"out_of_scope": "no"}))
    assert _uids(radiologist_client.get(URL, {"status": "failed"})) == [failed.uid]
    today = timezone.localdate()
    recent = _uids(radiologist_client.get(URL, {"since": str(today - timedelta(days=1))}))
    assert old.uid not in recent and cxr.uid in recent
    assert _uids(radiologist_client.get(URL, {"until": str(today - timedelta(days=2))})) == [old.uid]


def test_done_tab_lists_signed_off_studies_only(radiologist_client, radiologist):
    open_study = study_row()
    done = study_row(status=Study.Status.SIGNED_OFF)
    Study.objects.filter(pk=done.pk).update(signed_off_at=timezone.now(), signed_off_by=radiologist)
    assert _uids(radiologist_client.get(URL)) == [open_study.uid]
    assert _uids(radiologist_client.get(URL, {"done": "1"})) == [done.uid]


def test_done_tab_shows_the_final_reading_not_the_ai_label(radiologist_client, radiologist):
    from clinical.models import Review

    amended = study_row(status=Study.Status.SIGNED_OFF, top_class="lung-covid", confidence=0.558)
    Study.objects.filter(pk=amended.pk).update(signed_off_at=timezone.now(), signed_off_by=radiologist)
    image = amended.images.get()
    prediction = image.predictions.get()
    Review.objects.create(image=image, prediction=prediction, reader=radiologist, verdict="agree", label="lung-covid")
    Review.objects.create(image=image, prediction=prediction, reader=radiologist, verdict="corrected",
                          label="lung-opacity", note="consolidation, not COVID", amendment=True)
    unread = study_row(status=Study.Status.SIGNED_OFF)
    Study.objects.filter(pk=unread.pk).update(signed_off_at=timezone.now(), signed_off_by=radiologist)
    body = radiologist_client.get(URL, {"done": "1"}).content.decode()
    rows = dict(re.findall(r'<tr class="[^"]*" data-uid="([^"]+)">(.*?)</tr>', body, re.S))
    final = re.search(r'<td class="final-reading">(.*?)</td>', rows[amended.uid], re.S).group(1)
    assert final == "Lung opacity (non-COVID)"
    assert "COVID-19 pneumonia" in rows[amended.uid]  # the AI's label stays, in its own column
    assert "no reading" in rows[unread.uid]
    assert re.search(r'<th [^>]*><a [^>]*data-sort="reading">Final reading', body)
    assert "Final reading" not in radiologist_client.get(URL).content.decode()


def test_htmx_refresh_returns_the_table_partial_that_polls(radiologist_client):
    study_row()
    body = radiologist_client.get(URL, {"modality": "DX"}, HTTP_HX_REQUEST="true").content.decode()
    assert "<html" not in body and 'id="worklist-table"' in body
    assert 'hx-trigger="every 10s"' in body and "modality=DX" in body


def test_pages_of_fifty(radiologist_client):
    for _ in range(55):
        study_row()
    assert len(_uids(radiologist_client.get(URL))) == 50
    assert len(_uids(radiologist_client.get(URL, {"page": 2}))) == 5


def _queries(client) -> int:
    with CaptureQueriesContext(connection) as ctx:
        assert client.get(URL).status_code == 200
    return len(ctx.captured_queries)


def test_query_count_does_not_grow_with_rows(radiologist_client, django_assert_max_num_queries):
    for _ in range(3):
        study_row(images=2)
    few = _queries(radiologist_client)
    for _ in range(27):
        study_row(images=2)
    assert _queries(radiologist_client) == few
    with django_assert_max_num_queries(10):  # 4 session/user/permissions, 5 for the page (band counts included), 1 for the live reading claims
        radiologist_client.get(URL)


@pytest.mark.parametrize(("minutes", "text"), [(0, "< 1 min"), (45, "45 min"), (192, "3 h 12 min"), (60 * 50, "2 d 2 h")])
def test_waiting_age_format(minutes, text):
    from clinical.templatetags.clinical_tags import format_duration

    assert format_duration(timedelta(minutes=minutes)) == text


# --- issue 14 item 8: columns that tell rows apart without PHI, sorting, search, counts ----------


def _ingest_dicom(**kwargs):
    from clinical.services.ingest import image_ingest
    from tests.clinical.dicom_factory import make_cxr_dicom

    return image_ingest(data=make_cxr_dicom(rows=32, cols=32, **kwargs), filename="x.dcm").study


@pytest.mark.parametrize(
    ("age", "birth", "on", "band"),
    [
        ("063Y", "", "", "40-64"),
        ("006M", "", "", "0-17"),
        ("010W", "", "", "0-17"),
        ("017Y", "", "", "0-17"),
        ("018Y", "", "", "18-39"),
        ("065Y", "", "", "65-89"),
        ("089Y", "", "", "65-89"),
        ("090Y", "", "", "90+"),
        ("104Y", "", "", "90+"),
        ("", "19610923", "20240315", "40-64"),
        ("", "19340315", "20240315", "90+"),  # 90 on the birthday
        ("", "19340316", "20240315", "65-89"),  # 89 the day before
        ("garbage", "", "", ""),
        ("", "19610923", "", ""),
        ("", "not-a-date", "20240315", ""),
    ],
)
def test_age_band(age, birth, on, band):
    from clinical.ingest.descriptors import age_band

    assert age_band(patient_age=age, birth_date=birth, study_date=on) == band


def test_description_keeps_only_vocabulary_words():
    from clinical.ingest.descriptors import sex_code, study_description

    text = "CHEST PA/LAT Jane Doe MRN123 15.03.2024 portable ask daughter Anna"
    assert study_description(descriptions=(text,)) == "CHEST PA LAT PORTABLE"
    # Nothing of the vocabulary: built from the coded attributes instead.
    assert study_description(descriptions=("Dr House's patient", ""), modality="DX", body_part="CHEST", view="AP") == (
        "DX CHEST AP"
    )
    assert study_description(descriptions=("", "OCT MACULA OD cube 512x128")) == "OCT MACULA OD CUBE"
    assert [sex_code(s) for s in ("F", "m", "O", "U", "", "Female")] == ["F", "M", "O", "", "", "F"]


def test_dicom_ingest_keeps_only_the_reduced_descriptors(settings):
    import pydicom
    from django.core.files.storage import default_storage

    extra = {"StudyDescription": "XR CHEST PA Doe^Jane 4711", "PatientAge": "093Y"}
    study = _ingest_dicom(patient_id="MRN-AGE", extra=extra)
    assert (study.age_band, study.sex, study.body_part, study.view_position) == ("90+", "F", "CHEST", "PA")
    assert study.description == "XR CHEST PA"
    # The de-identified copy is as the allow-list makes it: no age, sex, birth date or description.
    ds = pydicom.dcmread(default_storage.open(study.images.get().file.name))
    assert "StudyDescription" not in ds and "PatientAge" not in ds
    assert not ds.get("PatientSex") and not ds.get("PatientBirthDate")


def test_columns_tell_rows_apart_without_phi(radiologist_client, radiologist):
    from clinical.services.api_clients import api_client_create

    dicom = _ingest_dicom(patient_id="MRN-COLS")
    client = api_client_create(name="pacs-east", scopes="submit").client
    api = study_row()
    Study.objects.filter(pk=api.pk).update(source=Study.Source.API, api_client=client, accession_number="RIS-77")
    upload = study_row()
    Study.objects.filter(pk=upload.pk).update(submitted_by=radiologist, scope_source=Study.ScopeSource.MODEL)
    body = radiologist_client.get(URL).content.decode()
    rows = dict(re.findall(r'<tr class="[^"]*" data-uid="([^"]+)">(.*?)</tr>', body, re.S))
    row = rows[dicom.uid]
    assert f">{dicom.patient_key[:11]}</span>" in row and f'title="patient pseudonym {dicom.patient_key}"' in row
    assert '<td class="age">40-64</td>' in row and '<td class="sex">F</td>' in row
    assert '<td class="view">CHEST PA</td>' in row and '<td class="description">DX CHEST PA</td>' in row
    assert '<td class="source">Upload</td>' in row
    assert "API · pacs-east" in rows[api.uid]
    assert f"Upload · {radiologist.username}" in rows[upload.uid]
    assert "Chest X-ray" in rows[upload.uid] and "(inferred)" in rows[upload.uid]
    for phi in ("Doe", "Jane", "MRN-COLS", "19610923", "ACC1", "063Y"):
        assert phi not in body


SORT_KEYS = ("priority", "received", "patient", "age", "sex", "modality", "view", "description", "source",
             "ai", "images", "status", "study")


def _sortable_rows():
    rows = []
    for i, (key, age, sex, part, desc, top, n) in enumerate([
        ("pt-aaaa", "65-89", "M", "CHEST", "CHEST PA", "lung-covid", 3),
        ("pt-cccc", "0-17", "F", "EYE", "OCT MACULA", "lung-oct-dme", 1),
        ("pt-bbbb", "18-39", "O", "THORAX", "CHEST AP PORTABLE", "lung-normal", 2),
    ]):
        study = study_row(top_class=top, images=n, priority=0.1 * (i + 1), minutes_ago=10 * (i + 1))
        Study.objects.filter(pk=study.pk).update(patient_key=key, age_band=age, sex=sex, body_part=part,
                                                 description=desc)
        rows.append(study)
    return rows


@pytest.mark.parametrize("key", SORT_KEYS)
def test_every_column_sorts_both_ways(radiologist_client, key):
    _sortable_rows()
    up = _uids(radiologist_client.get(URL, {"sort": key}))
    down = _uids(radiologist_client.get(URL, {"sort": f"-{key}"}))
    assert len(up) == 3 and sorted(up) == sorted(down)
    field = {"priority": "triage_priority", "received": "received_at", "patient": "patient_key", "age": "age_band",
             "sex": "sex", "modality": "modality", "view": "body_part", "description": "description",
             "source": "source", "ai": "top_class", "images": None, "status": "status", "study": "uid"}[key]
    if field is not None:
        values = [getattr(Study.objects.get(uid=u), field) for u in up]
        assert values == sorted(values)
        if len(set(values)) == 3:
            assert down == up[::-1]
    body = radiologist_client.get(URL, {"sort": key}).content.decode()
    assert re.search(rf'<th scope="col" aria-sort="ascending" class="sortable col-{key}"><a href="\?sort=-{key}"', body)
    assert body.count('aria-sort="ascending"') == 1 and 'aria-sort="descending"' not in body


def test_sort_by_images_and_default_header_state(radiologist_client):
    a, b, c = _sortable_rows()
    assert _uids(radiologist_client.get(URL, {"sort": "images"})) == [b.uid, c.uid, a.uid]
    assert _uids(radiologist_client.get(URL, {"sort": "-images"})) == [a.uid, c.uid, b.uid]
    assert _uids(radiologist_client.get(URL, {"sort": "age"})) == [b.uid, c.uid, a.uid]  # 0-17, 18-39, 65-89
    body = radiologist_client.get(URL).content.decode()  # triage order: Priority, descending
    assert 'aria-sort="descending" class="sortable col-priority"><a href="?sort=priority"' in body
    # An unknown column is the triage order, and the filters are kept.
    assert _uids(radiologist_client.get(URL, {"sort": "uid; drop", "modality": "DX"})) == _uids(
        radiologist_client.get(URL))


def test_sort_keeps_filters_and_search_and_done_tab_sorts_by_final_reading(radiologist_client, radiologist):
    from clinical.models import Review

    _sortable_rows()
    body = radiologist_client.get(URL, {"q": "pt-aaaa", "modality": "DX"}).content.decode()
    assert 'href="?q=pt-aaaa&amp;modality=DX&amp;sort=patient"' in body
    signed = []
    for label in ("lung-tuberculosis", "lung-covid"):
        study = study_row(status=Study.Status.SIGNED_OFF)
        Review.objects.create(image=study.images.get(), reader=radiologist, verdict="corrected", label=label)
        signed.append(study)
    assert _uids(radiologist_client.get(URL, {"done": "1", "sort": "reading"})) == [signed[1].uid, signed[0].uid]
    assert _uids(radiologist_client.get(URL, {"done": "1", "sort": "-reading"})) == [signed[0].uid, signed[1].uid]


def test_search_by_pseudonym_prefix_or_accession(radiologist_client):
    dicom = _ingest_dicom(patient_id="MRN-SEARCH", accession="ACC-DICOM-9")
    other = _ingest_dicom(patient_id="MRN-OTHER", accession="ACC-DICOM-10")
    api = study_row()
    Study.objects.filter(pk=api.pk).update(accession_number="RIS-2026-0042")

    def found(q):
        return _uids(radiologist_client.get(URL, {"q": q}))

    short = dicom.patient_key[:11]
    assert found(short) == [dicom.uid]
    assert found(short.upper()) == [dicom.uid]
    assert found(dicom.patient_key[3:9]) == [dicom.uid]  # without "pt-"
    assert found(f"  {dicom.patient_key}  ") == [dicom.uid]
    assert found("RIS-2026-0042") == [api.uid]
    assert found("RIS-2026") == [api.uid]  # prefix
    assert found("ACC-DICOM-9") == [dicom.uid]  # the sender's accession, exact, by its keyed hash
    assert found("ACC-DICOM") == []  # never by a prefix of a protected value
    assert other.uid not in found(short)
    body = radiologist_client.get(URL, {"q": "pt-zz"}).content.decode()
    assert "No studies match “pt-zz”" in body and "at least 4 of its hex digits" in body
    assert 'value="pt-zz"' in body  # the search box keeps what was typed


def test_band_counts_on_worklist_and_home(radiologist_client, settings):
    from tests.clinical.study_rows import blinded_study

    settings.WORKLIST_MAX_WAIT_MINUTES = 240
    study_row(priority=0.05, minutes_ago=300)  # escalated
    study_row(priority=0.9, top_class="lung-covid")  # urgent
    study_row(priority=0.6, top_class="lung-covid")  # urgent
    study_row(priority=0.1)  # routine
    study_row(priority=1.0, out_of_scope=True)  # out of scope
    study_row(status=Study.Status.PROCESSING, top_class="", priority=0.0)  # pending: no band counted
    study_row(status=Study.Status.SIGNED_OFF, priority=0.9)  # not open
    blinded_study()  # AI hidden: not counted in a band
    for url in (URL, "/"):
        body = radiologist_client.get(url).content.decode()
        counts = dict(re.findall(r'<strong data-band="([a-z-]+)">(\d+)</strong>', body))
        assert counts == {"escalated": "1", "urgent": "2", "routine": "1", "out-of-scope": "1"}, url
        assert "7 open" in body


def test_home_page_has_no_counts_without_the_worklist_permission(client, integration_user):
    client.force_login(integration_user)
    assert "data-band=" not in client.get("/").content.decode()


def test_case_n_of_m_in_the_viewer(radiologist_client, settings):
    settings.WORKLIST_MAX_WAIT_MINUTES = 240
    routine = study_row(priority=0.1, minutes_ago=10)
    urgent = study_row(priority=0.9, top_class="lung-covid", minutes_ago=5)
    old = study_row(priority=0.05, minutes_ago=300)
    tie = study_row(priority=0.1, minutes_ago=10)
    Study.objects.filter(pk=tie.pk).update(received_at=Study.objects.get(pk=routine.pk).received_at)
    done = study_row(status=Study.Status.SIGNED_OFF)
    order = _uids(radiologist_client.get(URL))
    assert order == [old.uid, urgent.uid, routine.uid, tie.uid]
    for n, uid in enumerate(order, start=1):
        body = radiologist_client.get(reverse("clinical:study", args=[uid])).content.decode()
        assert f"(case {n} of 4)" in body, uid
    assert "case-position" not in radiologist_client.get(reverse("clinical:study", args=[done.uid])).content.decode()


@pytest.mark.parametrize("params", [{}, {"sort": "images"}, {"sort": "-source"}, {"q": "pt-abcd"},
                                    {"q": "RIS-1", "sort": "patient"}, {"done": "1", "sort": "reading"}])
def test_query_count_is_constant_at_5_and_50_rows_for_sorts_and_search(radiologist_client, radiologist, params):
    from clinical.services.api_clients import api_client_create

    client = api_client_create(name="pacs-west", scopes="submit").client

    def add(n):
        for i in range(n):
            study = study_row(images=2, status=Study.Status.SIGNED_OFF if i % 2 else Study.Status.AWAITING_REVIEW)
            Study.objects.filter(pk=study.pk).update(
                patient_key=f"pt-abcd{i:016x}", accession_number=f"RIS-1{i}",
                api_client=client if i % 3 else None, submitted_by=None if i % 3 else radiologist)

    def count():
        with CaptureQueriesContext(connection) as ctx:
            response = radiologist_client.get(URL, params)
        assert response.status_code == 200
        return len(ctx.captured_queries), len(_uids(response))

    add(5)
    few, shown_few = count()
    add(45)
    many, shown_many = count()
    assert shown_few < shown_many
    assert few == many <= 10  # 4 session/user/permissions, 5 for the page, 1 for the live reading claims


def test_a_search_too_long_says_so_instead_of_silently_showing_everything(radiologist_client):
    study_row()
    body = radiologist_client.get(URL, {"q": "x" * 65}).content.decode()
    assert 'class="banner warn filter-errors" role="alert"' in body
    assert "Patient or accession:</strong> Ensure this value has at most 64 characters" in body
