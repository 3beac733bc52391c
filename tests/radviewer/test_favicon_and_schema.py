"""Issue 14, bug 6: a favicon on every page and at /favicon.ico; the API schema readable in a browser."""

import pytest
from django.contrib.staticfiles import finders

pytestmark = pytest.mark.django_db


def test_favicon_linked_and_served_without_login(client, radiologist_client):
    response = client.get("/favicon.ico")
    assert response.status_code == 301 and response["Location"].endswith("img/favicon.svg")
    assert finders.find("img/favicon.svg")
    page = radiologist_client.get("/").content.decode()
    assert 'rel="icon"' in page and "img/favicon.svg" in page


BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"


def test_schema_displays_in_a_browser_and_stays_yaml_for_tools(client):
    shown = client.get("/api/schema/", HTTP_ACCEPT=BROWSER_ACCEPT)
    assert shown.status_code == 200
    assert shown["Content-Type"] == "text/plain; charset=utf-8"
    assert shown["Content-Disposition"].startswith("inline")
    assert shown.content.decode().startswith("openapi: 3")
    tool = client.get("/api/schema/", HTTP_ACCEPT="*/*")
    assert tool["Content-Type"].startswith("application/vnd.oai.openapi")
    assert tool.content == shown.content


def test_dicomweb_is_in_the_schema(client):
    import yaml

    schema = yaml.safe_load(client.get("/api/schema/", HTTP_ACCEPT="*/*").content)
    qido = schema["paths"]["/dicomweb/studies"]["get"]
    stow = schema["paths"]["/dicomweb/studies"]["post"]
    stow_study = schema["paths"]["/dicomweb/studies/{study_uid}"]["post"]
    assert "multipart/related" in stow["requestBody"]["content"]
    assert {"200", "202", "409", "413", "415"} <= set(stow["responses"]) == set(stow_study["responses"])
    assert {p["name"] for p in qido["parameters"]} >= {"StudyInstanceUID", "AccessionNumber", "limit", "offset"}
    assert "application/dicom+json" in qido["responses"]["200"]["content"]
