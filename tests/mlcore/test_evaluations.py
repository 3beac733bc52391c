"""Evaluations as their own records: locked set, prediction cache, report, version page."""

import pytest
from django.test import Client
from django.urls import reverse

from mlcore.models import DatasetVersion, Evaluation, PredictionCache
from mlcore.services.evaluations import (
    EvaluationError,
    evaluation_cases,
    evaluation_request,
    evaluation_run,
    set_hash,
)
from radviewer.audit.models import AuditEvent
from tests.support.evaluation import (  # noqa: F401  (fixtures)
    FEEDBACK,
    eval_dataset,
    eval_store,
    second_version_number,
    two_versions,
)

pytestmark = pytest.mark.django_db


def _run_metrics(version):
    from django.conf import settings

    from mlcore.ml import tracking

    return dict(tracking.client(settings.MLFLOW_TRACKING_URI).get_run(version.run_id).data.metrics)


def test_locked_set_is_final_eval_plus_feedback_and_hash_is_order_free(eval_dataset, eval_store):  # noqa: F811
    final = eval_store.rows("final_eval")
    cases, info = evaluation_cases(dataset=eval_dataset)
    assert len(cases) == len(final) + FEEDBACK and info["feedback"] == FEEDBACK
    assert {c.split for c in cases} == {"final_eval", "feedback"}
    fewer, info = evaluation_cases(dataset=eval_dataset, exclude_feedback=True)
    assert len(fewer) == len(final) and info["feedback_excluded"] == FEEDBACK
    assert set_hash(cases) == set_hash(list(reversed(cases))) != set_hash(fewer)
    # An evaluation-only set is never trained on: every row counts.
    only = DatasetVersion(slug="hospital", kind=DatasetVersion.Kind.EVALUATION, store_uri=eval_store.uri)
    assert len(evaluation_cases(dataset=only)[0]) == len({r.sha256 for r in eval_store.manifest()})


def test_evaluation_is_its_own_record_and_uses_the_cache(two_versions, eval_dataset, ml_admin,  # noqa: F811
                                                         django_capture_on_commit_callbacks):
    from mlcore.tasks import evaluation_run_task

    champion, _ = two_versions
    registered, run_metrics = dict(champion.metrics), _run_metrics(champion)
    with django_capture_on_commit_callbacks() as callbacks:
        evaluation = evaluation_request(model_version=champion, dataset_version=eval_dataset, actor=ml_admin)
    assert len(callbacks) == 1  # mlcore.evaluation_run on the training queue, after commit
    assert evaluation.status == "queued" and evaluation.set_name == "locked"
    assert AuditEvent.objects.filter(action="evaluation.requested", object_id=str(evaluation.pk),
                                     actor=ml_admin).exists()

    evaluation_run_task(evaluation_id=evaluation.pk)  # the task body, inline
    evaluation.refresh_from_db()
    assert evaluation.status == "succeeded", evaluation.failure_reason
    n = len(evaluation_cases(dataset=eval_dataset)[0])
    report = evaluation.report
    assert evaluation.n == n == len(report["cases"]) and report["set"]["predicted"] == n
    assert set(report["intervals"]["per_class"]["lung-covid"]) >= {"sensitivity", "specificity", "f1", "auc"}
    assert report["reliability"]["ece_after"] == pytest.approx(report["ece"])
    assert 0.0 <= report["ood"]["flag_rate"] <= 1.0
    assert all(evaluation.plots[k].startswith("<svg") for k in ("roc", "reliability", "confusion", "per_class"))
    assert AuditEvent.objects.filter(action="evaluation.completed", object_id=str(evaluation.pk)).exists()
    # Never the version's registered metrics, neither the mirror nor the MLflow run.
    champion.refresh_from_db()
    assert champion.metrics == registered and _run_metrics(champion) == run_metrics
    assert PredictionCache.objects.filter(model_version=champion).count() == n

    # The same set again: the finished evaluation is returned, nothing queued.
    with django_capture_on_commit_callbacks() as callbacks:
        again = evaluation_request(model_version=champion, dataset_version=eval_dataset)
    assert again.pk == evaluation.pk and not callbacks
    # Another set over the same images: scored from the cache, the model sees nothing new.
    final = evaluation_request(model_version=champion, dataset_version=eval_dataset, set_name="final_eval",
                               enqueue=False)
    final = evaluation_run(evaluation_id=final.pk)
    assert final.status == "succeeded" and final.report["set"]["predicted"] == 0
    assert final.report["set"]["cache_hits"] == final.n
    assert PredictionCache.objects.filter(model_version=champion).count() == n
    # The task is idempotent: a finished evaluation is left as it is.
    evaluation_run_task(evaluation_id=evaluation.pk)
    assert Evaluation.objects.get(pk=evaluation.pk).finished_at == evaluation.finished_at


def test_feedback_used_in_training_leaves_the_locked_set(two_versions, eval_dataset, eval_store):  # noqa: F811
    _, challenger = two_versions
    # The run names the store by path, the dataset version by file:// URI: one store.
    challenger.params = {**challenger.params, "include_feedback": "True", "store_uri": str(eval_store.root)}
    challenger.save()
    evaluation = evaluation_request(model_version=challenger, dataset_version=eval_dataset, enqueue=False)
    assert evaluation.n == len(evaluation_cases(dataset=eval_dataset)[0]) - FEEDBACK
    assert evaluation.report["set"]["feedback_excluded"] == FEEDBACK


def test_bad_input_is_refused_and_leaves_nothing(two_versions, eval_dataset):  # noqa: F811
    champion, _ = two_versions
    eval_dataset.status = DatasetVersion.Status.IMPORTING
    eval_dataset.save()
    with pytest.raises(EvaluationError, match="is not ready"):
        evaluation_request(model_version=champion, dataset_version=eval_dataset)
    eval_dataset.status = DatasetVersion.Status.READY
    eval_dataset.save()
    with pytest.raises(EvaluationError, match="unknown evaluation set 'holdout'"):
        evaluation_request(model_version=champion, dataset_version=eval_dataset, set_name="holdout")
    with pytest.raises(EvaluationError, match="no images in its train set"):
        # The synthetic store has train images; an evaluation-only copy has none in train.
        evaluation_request(model_version=champion, set_name="train", dataset_version=DatasetVersion.objects.create(
            slug="empty", store_uri=eval_dataset.store_uri + "-missing", status=DatasetVersion.Status.READY))
    assert not Evaluation.objects.exists()


def test_version_page_for_ml_admin_and_forbidden_for_radiologist(two_versions, eval_dataset, ml_admin_client,  # noqa: F811
                                                                radiologist):
    champion, _ = two_versions
    # Lineage as a training run logs it (mlcore.ml.training.common.run_params, flattened).
    champion.params = {**champion.params, "data.manifest_hash": eval_dataset.manifest_hash,
                       "data.counts.train.lung-covid": "7", "git_commit": "0123abcd", "epochs": "3"}
    champion.save()
    url = reverse("mlcore:version", args=[champion.version])
    evaluation = evaluation_request(model_version=champion, dataset_version=eval_dataset, enqueue=False)
    evaluation_run(evaluation_id=evaluation.pk)
    page = ml_admin_client.get(url)
    assert page.status_code == 200
    body = page.content.decode()
    assert "production" in body and "COVID-19 pneumonia" in body and "ECE after temperature scaling" in body and "chance alone gives a perfectly calibrated model" in body
    assert body.count("<svg") >= 5  # confusion, ROC, reliability, per-class, training curves
    assert f"evaluation {evaluation.pk} on" in body.lower() or f"Evaluation {evaluation.pk} on" in body
    assert "Evaluate on" in body and 'value="synthetic-eval" selected' in body
    assert "0123abcd" in body and "synthetic-eval (Training" in body and "<td>7</td>" in body
    reader = Client()
    reader.force_login(radiologist)
    assert reader.get(url).status_code == 403
    assert ml_admin_client.get(reverse("mlcore:version", args=["999"])).status_code == 404
    partial = ml_admin_client.get(url, HTTP_HX_REQUEST="true").content.decode()
    assert 'id="evaluations"' in partial and "<html" not in partial


def test_evaluate_on_form_queues_an_evaluation(two_versions, eval_dataset, ml_admin_client,  # noqa: F811
                                               django_capture_on_commit_callbacks):
    _, challenger = two_versions
    url = reverse("mlcore:version", args=[challenger.version])
    with django_capture_on_commit_callbacks() as callbacks:
        response = ml_admin_client.post(url, {"dataset": "synthetic-eval", "set_name": "locked"}, follow=True)
    assert response.status_code == 200 and len(callbacks) == 1
    evaluation = Evaluation.objects.get()
    assert (evaluation.model_version, evaluation.status) == (challenger, "queued")
    assert f"evaluation {evaluation.pk} of v{challenger.version}" in response.content.decode()
    # Asked again while queued: the same record, its task sent again (a lost message is not fatal).
    with django_capture_on_commit_callbacks() as callbacks:
        ml_admin_client.post(url, {"dataset": "synthetic-eval", "set_name": "locked"})
    assert Evaluation.objects.count() == 1 and len(callbacks) == 1
    response = ml_admin_client.post(url, {"dataset": "nope"}, follow=True)
    assert "unknown dataset version" in response.content.decode() and Evaluation.objects.count() == 1


def test_evaluation_task_is_declared_on_the_training_queue():
    """Declared when Django starts (mlcore's AppConfig.ready), so a web process can send it by name."""
    from radviewer.lib.tasks import route_task, task_by_name

    assert task_by_name("mlcore.evaluation_run").name == "mlcore.evaluation_run"
    assert route_task("mlcore.evaluation_run", (), {}, {}) == {"queue": "training"}
