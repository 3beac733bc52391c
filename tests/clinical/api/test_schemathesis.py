"""Contract tests: the API against its own OpenAPI schema (schemathesis, bounded examples).

Every documented operation gets generated requests (valid and invalid) with a valid token;
each response must be no 5xx, have a documented status and content type, and a body that
matches the documented schema. A few explicit cases hit real studies so the success bodies
(not only the error paths a random UID reaches) are checked against the schema too.
"""

from __future__ import annotations

import pytest
import schemathesis
from django.core.wsgi import get_wsgi_application
from hypothesis import HealthCheck, Phase, settings
from schemathesis.checks import negative_data_rejection, positive_data_acceptance

from clinical.models import Prediction
from clinical.services.api_clients import api_client_create
from clinical.services.ingest import image_ingest
from clinical.tasks import run_prediction
from tests.clinical.dicom_factory import make_cxr_dicom
from tests.support.dicom_validation import assert_valid_dicom

app = get_wsgi_application()
schema = schemathesis.openapi.from_wsgi("/api/schema/", app)

BOUNDED = settings(
    max_examples=12, deadline=None, derandomize=True, database=None,  # no .hypothesis/ in the repo
    phases=[Phase.explicit, Phase.generate],  # no shrinking: a failure is reported as found
    suppress_health_check=list(HealthCheck),
)


@pytest.fixture(autouse=True)
def _keep_the_test_transaction():
    """Requests go through the real WSGI handler, which closes the database connection at the
    end of each request; Django's test client switches that off, and so must this module."""
    from django.core import signals
    from django.db import close_old_connections

    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


@pytest.fixture
def token(db, production_model) -> str:  # the model first: ingest asks the registry
    return api_client_create(name="contract-tests", scopes="submit,read,feedback", rate_limit_per_minute=100_000).token


@pytest.mark.django_db
@schema.parametrize()
@BOUNDED
def test_api_conforms_to_its_schema(case, token):
    # Whether a file is a readable image is not expressible in OpenAPI: schema-valid random
    # bytes are rightly refused (415/422), so "valid data must be accepted" does not apply there.
    excluded = [positive_data_acceptance] if case.operation.method.upper() == "POST" else []
    if case.media_type == "multipart/form-data":
        # multipart has no types: a "string became array" mutation is sent as zero or several
        # same-named fields, and zero is indistinguishable from omitting an optional field.
        excluded.append(negative_data_rejection)
    case.call_and_validate(headers={"Authorization": f"Bearer {token}"}, excluded_checks=excluded)


@pytest.mark.django_db
def test_success_bodies_conform(token):
    from clinical.models import ApiClient

    client = ApiClient.objects.get(name="contract-tests")
    outcome = image_ingest(data=make_cxr_dicom(rows=48, cols=48), filename="x.dcm", api_client=client,
                           source="api")
    run_prediction(prediction_id=Prediction.objects.get(image=outcome.image).pk)
    uid, image_id = outcome.study.uid, outcome.image.pk
    headers = {"Authorization": f"Bearer {token}"}
    for path, params in [
        ("/api/v1/studies/{uid}/", {"uid": uid}),
        ("/api/v1/studies/{uid}/fhir/", {"uid": uid}),
        ("/api/v1/studies/{uid}/sr/", {"uid": uid}),
        ("/api/v1/studies/{uid}/heatmap.png", {"uid": uid}),
        ("/api/v1/studies/{uid}/images/{image_id}/heatmap.png", {"uid": uid, "image_id": image_id}),
    ]:
        response = schema[path]["GET"].Case(path_parameters=params).call_and_validate(headers=headers)
        assert response.status_code == 200, (path, response.text[:300])
        if path.endswith("/sr/"):
            assert_valid_dicom(response.content)
    listing = schema["/api/v1/studies/"]["GET"].Case(query={"limit": 1}).call_and_validate(headers=headers)
    assert listing.json()["results"][0]["uid"] == uid
    feedback = schema["/api/v1/studies/{uid}/feedback/"]["POST"].Case(
        path_parameters={"uid": uid}, body={"verdict": "agree"}, media_type="application/json",
    ).call_and_validate(headers=headers)
    assert feedback.status_code == 201
