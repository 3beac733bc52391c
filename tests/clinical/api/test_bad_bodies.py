"""Malformed bodies on the API (and the upload page): each gets its documented status and
code in the API's error shape (docs/integration.md section 8), never a 500 or a bare page,
and nothing is stored."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from clinical.models import Image, Review, Study
from tests.clinical.factories import ImageFactory, StudyFactory, chest_png

pytestmark = pytest.mark.django_db

URL = "/api/v1/studies/"


@pytest.fixture
def feedback_url(pacs) -> str:
    study = StudyFactory(api_client=pacs.client, source=Study.Source.API)
    ImageFactory(study=study)
    return f"/api/v1/studies/{study.uid}/feedback/"


def test_deeply_nested_json_is_a_parse_error(pacs, feedback_url):
    response = pacs.post(feedback_url, "[" * 50_000, content_type="application/json")
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "parse_error" and "nested" in body["detail"]
    assert not Review.objects.exists()


def test_a_feedback_body_over_the_limit_is_a_json_413(pacs, feedback_url, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1024
    note = "x" * 2048
    response = pacs.post(feedback_url, {"verdict": "uncertain", "note": note}, content_type="application/json")
    assert response.status_code == 413
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert body["code"] == "too_large" and "1,024" in body["detail"]
    assert not Review.objects.exists()


def test_a_five_thousand_character_file_name_is_a_clear_400(pacs):
    # Built by hand: the test client's SimpleUploadedFile cuts names to 255 characters.
    name = "a" * 5000 + ".png"
    body = (f'--b0\r\nContent-Disposition: form-data; name="files"; filename="{name}"\r\n'
            f"Content-Type: image/png\r\n\r\n").encode() + chest_png() + b"\r\n--b0--\r\n"
    response = pacs.post(URL, body, content_type="multipart/form-data; boundary=b0")
    assert response.status_code == 400
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert body["code"] == "parse_error" and "shorten the file name" in body["detail"]
    assert not Study.objects.exists() and not Image.objects.exists()


def test_multipart_without_a_boundary_is_a_clear_400(pacs):
    response = pacs.post(URL, b'--x\r\nContent-Disposition: form-data; name="files"\r\n\r\nabc\r\n--x--\r\n',
                         content_type="multipart/form-data")
    assert response.status_code == 400
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert body["code"] == "parse_error" and "no valid boundary" in body["detail"]
    assert not Study.objects.exists()


def test_too_many_files_is_a_json_400(pacs, settings):
    settings.DATA_UPLOAD_MAX_NUMBER_FILES = 2
    files = [SimpleUploadedFile(f"f{i}.png", chest_png(seed=i)) for i in range(3)]
    response = pacs.post(URL, {"files": files})
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "invalid" and "more than 2 files" in body["detail"]
    assert not Study.objects.exists()
