"""The OpenAPI schema and its Swagger UI are public and served without any CDN."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db


def test_schema_is_public_and_documents_the_api(client):
    response = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    schema = response.json()
    assert "/api/v1/studies/" in schema["paths"] and "/dicomweb/studies" in schema["paths"]
    assert schema["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http", "scheme": "bearer", "description": "API client token from `manage.py create_api_client`."}


def test_swagger_ui_uses_local_assets_only(client):
    response = client.get("/api/docs/")
    assert response.status_code == 200
    page = response.content.decode()
    assert "drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js" in page
    assert "cdn." not in page and "unpkg" not in page and "jsdelivr" not in page
    asset = client.get("/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js")
    assert asset.status_code == 200


def test_webhook_task_is_registered_on_the_default_queue():
    from radviewer.celery import app
    from radviewer.lib.tasks import route_task

    assert "clinical.deliver_webhook" in app.tasks
    assert route_task("clinical.deliver_webhook", (), {}, {}) == {"queue": "default"}
