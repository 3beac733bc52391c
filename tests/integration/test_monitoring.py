"""Monitoring end to end (issue 12 items 1 and 2).

- promtool: the alert rules' unit tests pass, every rule has a firing test case, a ``for:``
  window and a runbook anchor that exists; the Prometheus config is valid.
- A running RadViewer (gunicorn with two worker processes and a real Celery worker, the same
  test database and MLflow store) gets real traffic: a study submitted over the REST API and
  triaged by the worker, a refused file, a reading sent back, a prediction that fails in the
  worker, a heartbeat, training jobs. Then ``/metrics`` on the web process shows every family
  with its labels, the worker's samples included (multiprocess mode).
- A real Prometheus (Debian binary) scrapes that RadViewer with deploy/prometheus's config and
  rules (web, and the worker on its own metrics port); every Grafana panel's query parses and
  returns series, and every alert rule evaluates without error.
"""

from __future__ import annotations

import json
import math
import re
import subprocess
import time
from pathlib import Path

import pytest
import requests
import yaml
from django.conf import settings
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from clinical.models import Prediction, Study
from clinical.services.api_clients import api_client_create
from mlcore import models as mlcore_models
from mlcore.models import ReviewOutcome, TrainingJob
from radviewer.ops.models import WorkerHeartbeat
from tests.clinical.dicom_factory import make_cxr_dicom
from tests.support.server import GunicornServer
from tests.support.services import free_port, require_binary
from tests.support.worker import REPO, WorkerProcess, wait_until

DEPLOY = REPO / "deploy"
RULES = DEPLOY / "prometheus" / "alerts.yml"
RULE_TESTS = sorted((DEPLOY / "prometheus" / "tests").glob("*.yml"))
DASHBOARDS = sorted((DEPLOY / "grafana" / "dashboards").glob("*.json"))
RUNBOOKS = REPO / "docs" / "runbooks.md"
DRIFT_SERIES = re.compile(r"radviewer_drift_(statistic|p_value|last_check_timestamp_seconds)")
DRIFT_AVAILABLE = getattr(mlcore_models, "DriftReport", None) is not None


def _promtool() -> str:
    return require_binary("promtool", hint="Debian package prometheus; scripts/ci_debian_packages.sh")


def _rules() -> list[dict]:
    return [rule for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]]


def _anchors(markdown: str) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens."""
    out = set()
    for line in markdown.splitlines():
        m = re.match(r"#{1,6}\s+(.*)", line)
        if m:
            out.add(re.sub(r"[^\w\- ]", "", m.group(1).strip().lower()).replace(" ", "-"))
    return out


# --- the rules and the dashboards, statically ------------------------------------------------

def test_every_alert_rule_has_a_window_a_runbook_and_a_firing_unit_test():
    rules = _rules()
    assert len(rules) >= 12
    anchors = _anchors(RUNBOOKS.read_text())
    tested_firing: set[str] = set()
    tested_quiet: set[str] = set()
    for path in RULE_TESTS:
        for case in yaml.safe_load(path.read_text())["tests"]:
            for check in case.get("alert_rule_test", []):
                (tested_firing if check.get("exp_alerts") else tested_quiet).add(check["alertname"])
    for rule in rules:
        name = rule["alert"]
        assert rule.get("for"), f"{name} has no for: window"
        link = rule["annotations"]["runbook_url"]
        assert link.startswith("docs/runbooks.md#"), link
        assert link.split("#", 1)[1] in anchors, f"{name}: no heading for {link} in docs/runbooks.md"
        assert name in tested_firing, f"{name} has no promtool test case where it fires"
        assert name in tested_quiet, f"{name} has no promtool test case where it stays quiet"


def test_promtool_rule_tests_pass_and_the_config_is_valid():
    promtool = _promtool()
    run = subprocess.run([promtool, "test", "rules", *map(str, RULE_TESTS)], capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.count("SUCCESS") == len(RULE_TESTS), run.stdout
    run = subprocess.run([promtool, "check", "config", str(DEPLOY / "prometheus" / "prometheus.yml")],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stdout + run.stderr


def test_a_broken_rule_fails_its_promtool_test(tmp_path):
    """The unit tests can fail: with the latency threshold moved, RadViewerInferenceLatencyHigh's
    case no longer matches."""
    promtool = _promtool()
    (tmp_path / "tests").mkdir()
    (tmp_path / "alerts.yml").write_text(RULES.read_text().replace("          > 10\n", "          > 30\n"))
    for path in RULE_TESTS:
        (tmp_path / "tests" / path.name).write_text(path.read_text())
    run = subprocess.run([promtool, "test", "rules", *(str(tmp_path / "tests" / p.name) for p in RULE_TESTS)],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode != 0
    assert "RadViewerInferenceLatencyHigh" in run.stdout + run.stderr


def test_grafana_provisioning_points_at_the_dashboards_and_the_datasource():
    datasource = yaml.safe_load((DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yml").read_text())
    uid = datasource["datasources"][0]["uid"]
    provider = yaml.safe_load((DEPLOY / "grafana" / "provisioning" / "dashboards" / "radviewer.yml").read_text())
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    mounts = compose["services"]["grafana"]["volumes"]
    assert f"./grafana/dashboards:{provider['providers'][0]['options']['path']}:ro" in mounts
    assert {p.stem for p in DASHBOARDS} == {"service", "model-quality", "data-drift"}
    uids = set()
    for path in DASHBOARDS:
        board = json.loads(path.read_text())
        uids.add(board["uid"])
        assert board["panels"], path.name
        for panel in board["panels"]:
            assert panel["datasource"]["uid"] == uid, (path.name, panel["title"])
            assert panel["targets"] and all(t["expr"].strip() for t in panel["targets"]), (path.name, panel["title"])
    assert len(uids) == len(DASHBOARDS)


# --- a running RadViewer with traffic ----------------------------------------------------------

def _metrics(url: str) -> dict[str, list]:
    response = requests.get(f"{url}/metrics", timeout=30)
    assert response.status_code == 200, response.text[:500]
    return {family.name: family.samples for family in text_string_to_metric_families(response.text)}


def _samples(families: dict[str, list], sample_name: str, **labels: str) -> list:
    names = {sample_name, re.sub(r"_(total|bucket|count|sum|created)$", "", sample_name)}
    return [s for name in names for s in families.get(name, [])
            if s.name == sample_name and all(s.labels.get(k) == v for k, v in labels.items())]


def _traffic(web: GunicornServer, worker: WorkerProcess, version: str) -> dict:
    """Real traffic against the running stack; returns what the metrics must then show."""
    from radviewer.celery import app

    issued = api_client_create(name="monitoring-pacs", scopes="submit,read,feedback")
    auth = {"Authorization": f"Bearer {issued.token}"}
    response = requests.post(f"{web.url}/api/v1/studies/", headers=auth, timeout=60,
                             files={"files": ("chest.dcm", make_cxr_dicom(rows=96, cols=96))})
    assert response.status_code in (201, 202), response.text
    uid = response.json()["uid"]
    refused = requests.post(f"{web.url}/api/v1/studies/", headers=auth, timeout=60,
                            files={"files": ("scan.png", b"%PDF-1.7 not an image")})
    assert refused.status_code == 415, refused.text

    def succeeded():
        p = Prediction.objects.filter(image__study__uid=uid).first()
        return p if p and p.status in (Prediction.Status.SUCCEEDED, Prediction.Status.FAILED) else None

    prediction = wait_until(succeeded, timeout=120, what="prediction finished")
    assert prediction.status == Prediction.Status.SUCCEEDED, (prediction.failure_reason, worker.log()[-3000:])
    assert prediction.model_version == version

    # `agree` only with a finished in-scope result that names a class (issue 14); else the class read.
    reading = ({"verdict": "agree"} if prediction.top_class and not prediction.out_of_scope
               else {"verdict": "corrected", "label": "lung-normal"})
    feedback = requests.post(f"{web.url}/api/v1/studies/{uid}/feedback/", headers=auth, timeout=60,
                             json=reading)
    assert feedback.status_code in (200, 201), feedback.text
    assert ReviewOutcome.objects.filter(model_version=version, predicted_class=prediction.top_class).exists()
    # Enough decisive reads on another class for the version's agreement CUSUM to pass its
    # baseline (RADVIEWER_AGREEMENT_CUSUM_BASELINE_READS=10 in the stack): its series exist.
    other = next(c for c in ("lung-opacity", "lung-covid") if c != prediction.top_class)
    ReviewOutcome.objects.bulk_create(
        ReviewOutcome(model_name=prediction.model_name, model_version=version, prediction_ref=f"cusum:{i}",
                      predicted_class=other, confirmed_class=other if i % 4 else "lung-normal",
                      verdict="agree" if i % 4 else "corrected") for i in range(12))

    # A prediction on a version the registry does not have fails in the worker.
    doomed = Prediction.objects.create(image=prediction.image, model_name=prediction.model_name,
                                       model_version="999", arm="production", status=Prediction.Status.QUEUED,
                                       queued_at=timezone.now())
    app.send_task("clinical.run_prediction", kwargs={"prediction_id": doomed.pk}, queue="inference")
    app.send_task("radviewer.ops.tasks.record_heartbeat", kwargs={"queue": "inference"}, queue="inference")
    wait_until(lambda: Prediction.objects.get(pk=doomed.pk).status == Prediction.Status.FAILED, timeout=120,
               what="the doomed prediction failed")
    wait_until(lambda: WorkerHeartbeat.objects.filter(queue="inference").exists(), timeout=60, what="heartbeat")

    # Training jobs as the console leaves them: one failed, one waiting for the training worker.
    TrainingJob.objects.create(state=TrainingJob.State.FAILED, finished_at=timezone.now(), failure_reason="test")
    TrainingJob.objects.create(state=TrainingJob.State.QUEUED)
    if DRIFT_AVAILABLE:  # the drift checks' rows (contract: detector, statistic, p_value, model_version)
        for detector, statistic, p_value in (("mmd", 0.02, 0.4), ("ks", 0.1, 0.03)):
            mlcore_models.DriftReport.objects.create(detector=detector, statistic=statistic, p_value=p_value,
                                                     model_version=version)
    prediction.refresh_from_db()
    return {"study": uid, "prediction": prediction}


@pytest.fixture
def stack(production_model, tmp_path, request):
    """gunicorn (2 processes) + a Celery worker. ``one_host``: they share one multiprocess
    folder and the web's /metrics shows all; else the worker has its own folder and port."""
    one_host = getattr(request, "param", "one_host") == "one_host"
    web_dir, worker_dir = tmp_path / "metrics-web", tmp_path / ("metrics-web" if one_host else "metrics-worker")
    web_dir.mkdir(exist_ok=True)
    worker_dir.mkdir(exist_ok=True)
    worker_port = None if one_host else free_port()
    common = {"RADVIEWER_METRICS_CACHE_SECONDS": "0", "RADVIEWER_DATASET_URI": settings.DATASET_STORE_URI,
              "RADVIEWER_AGREEMENT_CUSUM_BASELINE_READS": "10"}
    worker_env = {**common, "PROMETHEUS_MULTIPROC_DIR": str(worker_dir)}
    if worker_port:
        worker_env |= {"RADVIEWER_WORKER_METRICS_PORT": str(worker_port), "RADVIEWER_WORKER_METRICS_ADDR": "127.0.0.1"}
    with (WorkerProcess(queues="inference,default", extra_env=worker_env) as worker,
          GunicornServer(workers=2, extra_env={**common, "PROMETHEUS_MULTIPROC_DIR": str(web_dir)}) as web):
        seen = _traffic(web, worker, production_model["version"])
        yield {"web": web, "worker": worker, "worker_port": worker_port, "version": production_model["version"],
               **seen}




@pytest.mark.django_db(transaction=True)
@pytest.mark.slow
def test_metrics_show_every_family_with_labels_after_real_traffic(stack):
    families = _metrics(stack["web"].url)
    version, prediction = stack["version"], stack["prediction"]
    model = {"model_version": version, "arm": "production"}

    # recorded by the Celery worker, shown by the web process (multiprocess mode)
    [count] = _samples(families, "radviewer_predictions_total", predicted_class=prediction.top_class, **model)
    assert count.value == 1
    [latency] = _samples(families, "radviewer_inference_latency_seconds_count", **model)
    assert latency.value == 1
    assert _samples(families, "radviewer_inference_latency_seconds_sum", **model)[0].value == pytest.approx(
        prediction.latency_ms / 1000, rel=1e-6)
    [confidence] = _samples(families, "radviewer_prediction_confidence_count", **model)
    assert confidence.value == 1
    [oos] = _samples(families, "radviewer_predictions_out_of_scope_total", **model)
    assert oos.value == (1 if prediction.out_of_scope else 0)
    [failed] = _samples(families, "radviewer_prediction_failures_total", model_version="999", arm="production")
    assert failed.value == 1
    # recorded by a gunicorn process
    [refusal] = _samples(families, "radviewer_ingest_refusals_total", reason="unsupported_type")
    assert refusal.value == 1
    assert _samples(families, "django_http_responses_total_by_status_total", status="415")

    # read from the database and the broker at scrape time
    assert {s.labels["queue"] for s in _samples(families, "radviewer_queue_messages")} == {
        "default", "inference", "training"}
    waiting = {s.labels["queue"]: s.value for s in _samples(families, "radviewer_queue_waiting")}
    assert waiting == {"inference": Prediction.objects.filter(status="queued").count(), "training": 1}
    oldest = {s.labels["queue"]: s.value for s in _samples(families, "radviewer_queue_oldest_waiting_seconds")}
    assert set(oldest) == {"inference", "training"} and oldest["training"] > 0
    [beat] = _samples(families, "radviewer_worker_last_heartbeat_timestamp_seconds", queue="inference")
    assert abs(beat.value - WorkerHeartbeat.objects.get(queue="inference").seen_at.timestamp()) < 1e-3
    assert beat.labels["hostname"]
    cls = {"model_version": version, "predicted_class": prediction.top_class}
    assert _samples(families, "radviewer_reader_agreement_ratio", **cls)[0].value == 1.0
    assert _samples(families, "radviewer_reader_reviews", **cls)[0].value == 1
    assert _samples(families, "radviewer_reader_agreed", **cls)[0].value == 1
    states = {s.labels["state"]: s.value for s in _samples(families, "radviewer_training_jobs")}
    assert states == {"queued": 1, "running": 0, "succeeded": 0, "failed": 1, "cancelled": 0}
    [last_failure] = _samples(families, "radviewer_training_last_failure_timestamp_seconds")
    assert abs(last_failure.value - time.time()) < 600
    [available] = _samples(families, "radviewer_drift_available")
    if DRIFT_AVAILABLE:
        assert available.value == 1
        p_values = {s.labels["detector"]: s.value for s in _samples(families, "radviewer_drift_p_value",
                                                                      model_version=version)}
        assert p_values == {"mmd": 0.4, "ks": 0.03}
        assert {s.labels["detector"] for s in _samples(families, "radviewer_drift_statistic")} == {"mmd", "ks"}
    else:  # no drift model yet: unavailable, never a p-value of 0
        assert available.value == 0
        assert not _samples(families, "radviewer_drift_p_value")
    runs = {s.labels["state"]: s.value for s in _samples(families, "radviewer_pipeline_runs")}
    assert runs == {"queued": 0, "running": 0, "retrying": 0, "succeeded": 0, "failed": 0}
    [alarm] = _samples(families, "radviewer_agreement_cusum_alarm", model_version=version)
    [threshold] = _samples(families, "radviewer_agreement_cusum_threshold", model_version=version)
    [cusum] = _samples(families, "radviewer_agreement_cusum", model_version=version)
    assert alarm.value == 0 and threshold.value > 0 and 0 <= cusum.value < threshold.value
    up = {s.labels["source"]: s.value for s in _samples(families, "radviewer_metrics_source_up")}
    assert up == dict.fromkeys(("queue_backlog", "broker", "heartbeats", "agreement", "drift", "degradation", "jobs"), 1.0)

    # every model series carries model_version
    for name, samples in families.items():
        if name.startswith(("radviewer_predictions", "radviewer_prediction_", "radviewer_inference",
                            "radviewer_reader", "radviewer_drift_statistic", "radviewer_drift_p_value",
                            "radviewer_agreement_cusum")):
            assert samples and all("model_version" in s.labels for s in samples), name


# --- a real Prometheus scraping it --------------------------------------------------------------

def _prometheus_config(tmp_path: Path, web_url: str, worker_port: int) -> Path:
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    config["global"] = {"scrape_interval": "1s", "evaluation_interval": "1s"}
    config["rule_files"] = [str(RULES)]
    targets = {"radviewer-web": [web_url.removeprefix("http://")], "radviewer-workers": [f"127.0.0.1:{worker_port}"]}
    jobs = {job["job_name"] for job in config["scrape_configs"]}
    assert jobs == set(targets), jobs  # the shipped config scrapes web and workers
    for job in config["scrape_configs"]:
        job["static_configs"] = [{"targets": targets[job["job_name"]]}]
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    run = subprocess.run([_promtool(), "check", "config", str(path)], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stdout + run.stderr
    return path


def _query(base: str, expr: str) -> list:
    body = requests.get(f"{base}/api/v1/query", params={"query": expr}, timeout=30).json()
    assert body["status"] == "success", (expr, body)
    return body["data"]["result"]


@pytest.mark.django_db(transaction=True)
@pytest.mark.services
@pytest.mark.slow
@pytest.mark.parametrize("stack", ["worker_port"], indirect=True)
def test_prometheus_scrapes_radviewer_and_every_dashboard_panel_returns_series(stack, tmp_path):
    binary = require_binary("prometheus", hint="Debian package prometheus; scripts/ci_debian_packages.sh")
    config = _prometheus_config(tmp_path, stack["web"].url, stack["worker_port"])
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log_path = tmp_path / "prometheus.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen([binary, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                                 f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
                                stdout=log, stderr=subprocess.STDOUT)
        try:
            def ready():
                if proc.poll() is not None:
                    raise RuntimeError(f"prometheus exited:\n{log_path.read_text()}")
                try:
                    return requests.get(f"{base}/-/ready", timeout=2).status_code == 200
                except requests.RequestException:
                    return False

            wait_until(ready, timeout=60, what="prometheus ready")

            def scraped():
                up = {r["metric"]["job"]: r["value"][1] for r in _query(base, "up")}
                # a few scrapes of the predictions counter, so rate() and increase() have points
                # (of the worker's predictions counter and of the web's own request counter: on a
                # busy machine a web scrape can miss its 1 s timeout now and then)
                points = [*_query(base, "count_over_time(radviewer_predictions_total[1m])"),
                          *_query(base, "count_over_time(django_http_responses_total_by_status_total[1m])")]
                jobs = {r["metric"].get("job") for r in points}
                return (up == {"radviewer-web": "1", "radviewer-workers": "1"} and jobs >= {"radviewer-web", "radviewer-workers"}
                        and min(int(r["value"][1]) for r in points) >= 4)

            wait_until(scraped, timeout=150, interval=1, what="both targets scraped several times")
            # The worker's samples come from its own port, the web's from the web: no double count.
            by_job = {r["metric"]["job"] for r in _query(base, "radviewer_predictions_total")}
            assert by_job == {"radviewer-workers"}
            assert {r["metric"]["job"] for r in _query(base, "radviewer_ingest_refusals_total")} == {"radviewer-web"}

            checked, empty = 0, []
            for path in DASHBOARDS:
                for panel in json.loads(path.read_text())["panels"]:
                    for target in panel["targets"]:
                        result = _query(base, target["expr"])  # asserts that it parses and evaluates
                        checked += 1
                        if DRIFT_SERIES.search(target["expr"]) and not DRIFT_AVAILABLE:
                            assert result == [], target["expr"]  # unavailable, not zero
                            continue
                        if not result:
                            empty.append(f"{path.stem} / {panel['title']}: {target['expr']}")
            assert not empty, "panels without series:\n" + "\n".join(empty)
            assert checked >= 25
            if not DRIFT_AVAILABLE:
                assert [r["value"][1] for r in _query(base, "radviewer_drift_available")] == ["0"]

            # Every rule evaluates against the real series without error.
            def evaluated():
                groups = requests.get(f"{base}/api/v1/rules", timeout=10).json()["data"]["groups"]
                rules = [r for g in groups for r in g["rules"]]
                return rules if rules and all(r.get("lastEvaluation", "").startswith("20") for r in rules) else None

            rules = wait_until(evaluated, timeout=30, what="rules evaluated")
            assert {r["name"] for r in rules} == {r["alert"] for r in _rules()}
            assert all(r["health"] == "ok" for r in rules), [(r["name"], r.get("lastError")) for r in rules]
            # The recent training failure is what it should be: pending/firing, not silent.
            failed = next(r for r in rules if r["name"] == "RadViewerTrainingFailed")
            assert failed["state"] in ("pending", "firing"), failed
            # Every metric an alert names exists in the scraped data (drift: once reports exist).
            names = set(requests.get(f"{base}/api/v1/label/__name__/values", timeout=10).json()["data"])
            for rule in _rules():
                for metric in re.findall(r"\b((?:radviewer|django)_[a-z_]+)", rule["expr"]):
                    if metric.startswith("radviewer_drift_p_value") and not DRIFT_AVAILABLE:
                        continue
                    assert metric in names, (rule["alert"], metric)
            assert not math.isnan(float(_query(base, "sum(radviewer_predictions_total)")[0]["value"][1]))
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    assert Study.objects.filter(uid=stack["study"]).exists()
