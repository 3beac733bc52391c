"""Upload through the URL; a real Celery worker (embedded broker) runs the triage task.

The worker is a separate process on the same test database and MLflow store; the upload's
task is sent on commit (transactional test), so this is the production path end to end.
"""

from __future__ import annotations

import pytest
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from clinical.models import Image, Prediction, Study
from tests.clinical.dicom_factory import make_cxr_dicom
from tests.support.worker import WorkerProcess, wait_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def test_uploaded_images_are_triaged_by_a_real_worker(production_model, radiologist_client):
    env = {"RADVIEWER_DATASET_URI": settings.DATASET_STORE_URI}
    with WorkerProcess(queues="inference,default", extra_env=env) as worker:
        response = radiologist_client.post(
            reverse("clinical:upload_file"),
            {"file": SimpleUploadedFile("IMG1.dcm", make_cxr_dicom(rows=96, cols=96))},
            HTTP_HX_REQUEST="true",
        )
        assert response.status_code == 201, response.content
        image = Image.objects.get()

        def finished():
            p = Prediction.objects.filter(image=image).first()
            return p if p and p.status in (Prediction.Status.SUCCEEDED, Prediction.Status.FAILED) else None

        prediction = wait_until(finished, timeout=90, what="prediction finished")
        assert prediction.status == Prediction.Status.SUCCEEDED, (prediction.failure_reason, worker.log()[-3000:])
        assert "clinical.run_prediction" in worker.log()

    study = Study.objects.get()
    assert study.status == Study.Status.AWAITING_REVIEW
    assert prediction.model_version == production_model["version"] and prediction.heatmap_png
    body = radiologist_client.get(reverse("clinical:study_status", args=[study.uid]),
                                  HTTP_HX_REQUEST="true").content.decode()
    assert "hx-trigger" not in body.split(">", 1)[0]  # the panel stopped polling
    assert reverse("clinical:image_heatmap", args=[study.uid, image.pk]) in body
