import io

import numpy as np
import pytest
from PIL import Image

from mlcore.ml.data import open_store
from mlcore.models import ModelAlias, RolloutPolicy
from mlcore.selectors import agreement_by_version
from mlcore.services.feedback import feedback_sample_add, review_outcome_record
from mlcore.services.inference import NoModelAvailable, canary_bucket, choose_model
from mlcore.services.registry import model_alias_set, registry_sync
from radviewer.audit.models import AuditEvent
from tests.support.models import register_random_model

pytestmark = pytest.mark.django_db


def _png(value: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.full((32, 40), value, dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def test_feedback_sample_written_with_lineage_idempotently(settings, tmp_path):
    settings.DATASET_STORE_URI = str(tmp_path / "store")
    lineage = {"study": "2.25.1", "image_sha256": "ab", "reader": "dr", "model_version": "3", "time": "t"}
    first = feedback_sample_add(png_bytes=_png(90), class_key="lung-covid", patient_key="pt-1", lineage=lineage)
    again = feedback_sample_add(png_bytes=_png(90), class_key="lung-covid", patient_key="pt-1", lineage=lineage)
    assert first == again and first["split"] == "feedback"
    rows = open_store(settings.DATASET_STORE_URI).rows("feedback")
    assert len(rows) == 1 and rows[0].extra["reader"] == "dr" and rows[0].extra["model_version"] == "3"
    with pytest.raises(ValueError, match="unknown class key"):
        feedback_sample_add(png_bytes=_png(1), class_key="lung-cancer", patient_key="p", lineage={})


def test_agreement_per_version_and_class():
    for i, (pred, conf, verdict) in enumerate([
        ("lung-covid", "lung-covid", "agree"), ("lung-covid", "lung-normal", "corrected"),
        ("lung-normal", "lung-normal", "agree"), ("lung-normal", "", "uncertain"),
    ]):
        review_outcome_record(prediction_ref=f"p{i}", model_name="m", model_version="1",
                              predicted_class=pred, confirmed_class=conf, verdict=verdict)
    # An amended review replaces the earlier outcome of the same prediction.
    review_outcome_record(prediction_ref="p1", model_name="m", model_version="1",
                          predicted_class="lung-covid", confirmed_class="lung-covid", verdict="agree")
    [agg] = agreement_by_version(model_name="m")
    assert (agg.reviews, agg.agreed) == (3, 3)
    assert agg.per_class["lung-covid"]["reviews"] == 2


def test_routing_production_and_canary(settings, tmp_path):
    settings.MLFLOW_TRACKING_URI = f"sqlite:///{tmp_path / 'm.db'}"
    with pytest.raises(NoModelAvailable, match="production"):
        choose_model(study_uid="2.25.9")
    v1 = register_random_model(tracking_uri=settings.MLFLOW_TRACKING_URI, name="radviewer-triage")
    v2 = register_random_model(tracking_uri=settings.MLFLOW_TRACKING_URI, name="radviewer-triage",
                               alias="canary", seed=1)
    registry_sync(name="radviewer-triage")
    assert choose_model(study_uid="2.25.9").version == v1  # canary at 0 %
    RolloutPolicy.objects.create(name="radviewer-triage", canary_percent=30)
    arms = [choose_model(study_uid=f"2.25.{i}") for i in range(200)]
    canary_share = sum(a.arm == "canary" for a in arms) / len(arms)
    assert 0.15 < canary_share < 0.45
    assert all(a.version == (v2 if a.arm == "canary" else v1) for a in arms)
    # Deterministic per study.
    assert choose_model(study_uid="2.25.7") == choose_model(study_uid="2.25.7")
    assert canary_bucket("2.25.7") == canary_bucket("2.25.7")


def test_alias_move_is_mirrored_and_audited(settings, tmp_path, ml_admin):
    settings.MLFLOW_TRACKING_URI = f"sqlite:///{tmp_path / 'm.db'}"
    register_random_model(tracking_uri=settings.MLFLOW_TRACKING_URI, name="radviewer-triage")
    register_random_model(tracking_uri=settings.MLFLOW_TRACKING_URI, name="radviewer-triage", alias=None, seed=2)
    # The thin wrapper goes through the gated move: v2 has no evaluation report, so only an
    # override with a justification moves it (tests/mlcore/test_promotion.py covers the gate).
    model_alias_set(actor=ml_admin, alias="production", version="2", reason="test",
                    override_justification="random weights, test only")
    assert ModelAlias.objects.get(alias="production").model_version.version == "2"
    event = AuditEvent.objects.get(action="model.alias_set", actor=ml_admin)
    assert event.details["previous_version"] == "1"
    with pytest.raises(ValueError, match="unknown alias"):
        model_alias_set(actor=ml_admin, alias="latest", version="1")


def test_dashboard_lists_versions(ml_admin_client, production_model):
    body = ml_admin_client.get("/ml/").content.decode()
    assert f"v{production_model['version']}" in body and "production" in body


def test_routing_reads_the_mirror_only_and_the_refresh_task_fills_it(settings, tmp_path, django_assert_num_queries):
    from mlcore.tasks import registry_refresh

    settings.MLFLOW_TRACKING_URI = f"sqlite:///{tmp_path / 'm.db'}"
    v1 = register_random_model(tracking_uri=settings.MLFLOW_TRACKING_URI, name="radviewer-triage")
    # In MLflow but not mirrored yet: routing does not call MLflow (it runs inside the
    # upload transaction) and writes nothing.
    with django_assert_num_queries(1), pytest.raises(NoModelAvailable, match="production"):
        choose_model(study_uid="2.25.9")
    registry_refresh()
    assert choose_model(study_uid="2.25.9").version == v1
