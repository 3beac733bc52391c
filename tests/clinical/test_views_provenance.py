"""What served a study: each prediction's version and arm, and what held production then."""

from __future__ import annotations

from datetime import timedelta

import pytest

from clinical.models import Prediction
from mlcore.models import AliasEvent
from mlcore.services.promotion import alias_move
from radviewer.audit.models import AuditEvent
from tests.clinical.factories import ImageFactory, PredictionFactory
from tests.support.registry import evaluate, registry_fixture  # noqa: F401 (the `registry` fixture)

pytestmark = pytest.mark.django_db


def test_what_served_a_study(registry, ml_admin, radiologist_client, client):
    evaluate("2")
    [v1_interval] = AliasEvent.objects.filter(alias="production")
    alias_move(actor=ml_admin, alias="production", version="2", reason="better")
    image = ImageFactory(original_name="chest.png")
    early = PredictionFactory(image=image, model_version="1", arm=Prediction.Arm.PRODUCTION)
    PredictionFactory(image=image, model_version="3", arm=Prediction.Arm.SHADOW)
    Prediction.objects.filter(pk=early.pk).update(created_at=v1_interval.started_at + timedelta(milliseconds=1))
    uid = image.study.uid

    page = radiologist_client.get(f"/studies/{uid}/provenance")
    assert page.status_code == 200
    body = page.content.decode()
    assert "image 1" in body and "chest.png" not in body and "v1" in body and "same" in body
    assert "shadow" not in body.split("<tbody>")[1]  # invisible to readers
    assert AuditEvent.objects.filter(action="study.viewed", object_id=str(image.study.pk)).exists()

    client.force_login(ml_admin)
    body = client.get(f"/studies/{uid}/provenance").content.decode()
    rows = body.split("<tbody>")[1].split("</tr>")
    assert "shadow" in rows[1] and "v3" in rows[1] and "v2" in rows[1]  # v2 held production then
    assert "v1" in rows[0]
    assert client.get("/studies/2.25.404/provenance").status_code == 404
