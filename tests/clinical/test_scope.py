"""Scope-aware results: the header decides where it says so, else the model; probabilities
only over the scope's classes; a raster upload gets its inferred scope and modality and the
worklist's filter finds it."""

import pytest
from django.urls import reverse

from clinical.models import Study
from clinical.services.ingest import image_ingest
from clinical.tasks import run_prediction
from mlcore.ml.classes import CLASS_BY_KEY
from tests.clinical.dicom_factory import make_cxr_dicom, make_oct_dicom
from tests.clinical.factories import chest_png

pytestmark = pytest.mark.django_db


def _triaged(data: bytes, name: str, actor):
    outcome = image_ingest(data=data, filename=name, actor=actor)
    prediction = outcome.image.predictions.get()
    run_prediction(prediction_id=prediction.pk)
    prediction.refresh_from_db()
    return Study.objects.get(pk=outcome.study.pk), prediction


def _scopes(probabilities: dict) -> set[str]:
    return {CLASS_BY_KEY[k].modality for k in probabilities}


def test_chest_dicom_header_gives_chest_classes_only(production_model, radiologist):
    study, prediction = _triaged(make_cxr_dicom(modality="DX", body_part="CHEST"), "cxr.dcm", radiologist)
    assert (study.scope, study.scope_source) == ("cxr", "header")
    assert (prediction.scope, prediction.scope_source) == ("cxr", "header")
    assert _scopes(prediction.probabilities) == {"cxr"} and len(prediction.probabilities) == 5
    assert abs(sum(prediction.probabilities.values()) - 1) < 1e-6
    assert CLASS_BY_KEY[prediction.top_class].modality == "cxr" and study.modality == "DX"


def test_oct_dicom_header_gives_retinal_classes_only(production_model, radiologist):
    study, prediction = _triaged(make_oct_dicom(), "oct.dcm", radiologist)
    assert (study.scope, prediction.scope, prediction.scope_source) == ("oct", "oct", "header")
    assert _scopes(prediction.probabilities) == {"oct"} and len(prediction.probabilities) == 4


def test_png_gets_the_models_scope_and_inferred_modality_and_is_filtered(production_model, radiologist,
                                                                        radiologist_client):
    study, prediction = _triaged(chest_png(seed=41), "film.png", radiologist)
    assert prediction.scope in ("cxr", "oct") and prediction.scope_source == "model"
    assert (study.scope, study.scope_source) == (prediction.scope, "model")
    assert study.modality == {"cxr": "DX", "oct": "OPT"}[prediction.scope]  # not "OT" any more
    assert _scopes(prediction.probabilities) == {prediction.scope}
    listed = radiologist_client.get(reverse("clinical:worklist"), {"modality": prediction.scope})
    other = radiologist_client.get(reverse("clinical:worklist"), {"modality": {"cxr": "oct", "oct": "cxr"}[prediction.scope]})
    assert study.uid in listed.content.decode() and study.uid not in other.content.decode()
    page = radiologist_client.get(reverse("clinical:study", args=[study.uid])).content.decode()
    assert "(inferred)" in page and "inferred by the AI from the image" in page


def test_header_outside_the_scope_flags_the_prediction_with_the_headers_reason(production_model, radiologist):
    study, prediction = _triaged(make_cxr_dicom(modality="DX", body_part="HAND"), "hand.dcm", radiologist)
    assert study.scope == "unknown" and "Body Part Examined HAND" in study.scope_warning
    assert prediction.out_of_scope and "Body Part Examined HAND" in prediction.ood_reason
    assert study.out_of_scope and study.scope == "unknown"  # the model does not overrule the header
