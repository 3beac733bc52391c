"""deploy/k8s rendered and validated offline (issue 16 item 4): both overlays render with the
kustomize subset in scripts/k8s_render.py; Kubernetes kinds validate strictly against the
upstream schemas (kubernetes-validate), KEDA's against deploy/k8s/schemas; and the
properties a hospital's platform team relies on hold (probes, requests, scaling targets,
no secrets, one beat)."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "deploy" / "k8s"
OVERLAYS = ("pilot", "scale")
K8S_VERSION = "1.31.0"  # the oldest Kubernetes minor still in upstream support when written

_spec = importlib.util.spec_from_file_location("k8s_render", REPO / "scripts" / "k8s_render.py")
k8s_render = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(k8s_render)

KEDA_SCHEMAS = {kind: json.loads((K8S / "schemas" / f"keda-{kind.lower()}.json").read_text())
                for kind in ("ScaledObject", "TriggerAuthentication")}
# Per KEDA scaler: metadata keys it needs, and what the TriggerAuthentication must supply.
TRIGGER_NEEDS = {
    "redis": ({"listName", "listLength"}, {"address"}),
    "rabbitmq": ({"queueName", "mode", "value"}, {"host"}),
}


def _by_kind(docs, kind):
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def _containers(doc):
    pod = k8s_render._pod_spec(doc)
    return (pod or {}).get("containers", []) + (pod or {}).get("initContainers", [])


@pytest.fixture(scope="module", params=OVERLAYS)
def rendered(request):
    return request.param, k8s_render.render(K8S / "overlays" / request.param)


def test_every_resource_validates(rendered):
    _, docs = rendered
    assert len(docs) >= 15
    for doc in docs:
        if doc["apiVersion"].startswith("keda.sh/"):
            jsonschema.validate(doc, KEDA_SCHEMAS[doc["kind"]])
        else:
            kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_web_probes_and_every_container_has_measured_requests(rendered):
    _, docs = rendered
    web = _by_kind(docs, "Deployment")["radviewer-web"]["spec"]["template"]["spec"]["containers"][0]
    assert web["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert web["livenessProbe"]["httpGet"]["path"] == "/healthz"
    for doc in docs:
        for c in _containers(doc):
            assert {"cpu", "memory"} <= set(c["resources"]["requests"]), (doc["metadata"]["name"], c["name"])
            assert "memory" in c["resources"]["limits"], (doc["metadata"]["name"], c["name"])
            assert c["image"].startswith("registry.example.org/radviewer:"), c["image"]
    # The inference request covers the predictor's measured peak RSS (532 MB, docs/benchmarks.md).
    inference = _by_kind(docs, "Deployment")["radviewer-worker-inference"]
    assert _containers(inference)[0]["resources"]["requests"]["memory"] == "768Mi"


def test_scaled_objects_target_deployments_and_their_triggers_are_complete(rendered):
    name, docs = rendered
    deployments = _by_kind(docs, "Deployment")
    auths = _by_kind(docs, "TriggerAuthentication")
    scaled = _by_kind(docs, "ScaledObject")
    assert set(scaled) == {"radviewer-worker-inference", "radviewer-worker-training"}
    for so in scaled.values():
        assert so["spec"]["scaleTargetRef"]["name"] in deployments
        for trigger in so["spec"]["triggers"]:
            needs_meta, needs_auth = TRIGGER_NEEDS[trigger["type"]]
            assert needs_meta <= set(trigger["metadata"]), trigger
            auth = auths[trigger["authenticationRef"]["name"]]
            assert needs_auth <= {ref["parameter"] for ref in auth["spec"]["secretTargetRef"]}
    expected = {"pilot": "redis", "scale": "rabbitmq"}[name]
    assert {t["type"] for so in scaled.values() for t in so["spec"]["triggers"]} == {expected}
    training = scaled["radviewer-worker-training"]["spec"]
    assert training["minReplicaCount"] == 0  # GPU nodes only while there is training work
    pod = deployments["radviewer-worker-training"]["spec"]["template"]["spec"]
    assert pod["nodeSelector"] and any(t["key"] == "nvidia.com/gpu" for t in pod["tolerations"])
    assert _containers(deployments["radviewer-worker-training"])[0]["resources"]["limits"]["nvidia.com/gpu"] == "1"


def test_disruption_budgets_select_a_deployment_and_beat_is_single(rendered):
    _, docs = rendered
    deployments = _by_kind(docs, "Deployment")
    for pdb in _by_kind(docs, "PodDisruptionBudget").values():
        selector = pdb["spec"]["selector"]["matchLabels"]
        matched = [n for n, d in deployments.items()
                   if selector.items() <= d["spec"]["template"]["metadata"]["labels"].items()]
        assert len(matched) == 1, (pdb["metadata"]["name"], matched)
    beat = deployments["radviewer-beat"]["spec"]
    assert beat["replicas"] == 1 and beat["strategy"]["type"] == "Recreate"


def test_no_secret_in_the_repository_and_one_secret_referenced(rendered):
    _, docs = rendered
    assert not _by_kind(docs, "Secret")
    refs = set()
    for doc in docs:
        for c in _containers(doc):
            refs |= {e["secretRef"]["name"] for e in c.get("envFrom", []) if "secretRef" in e}
            for env in c.get("env", []):
                assert not re.search(r"PASSWORD|SECRET|TOKEN|_KEY$", env["name"]) or "valueFrom" in env, env
    for cm in _by_kind(docs, "ConfigMap").values():
        assert not any(re.search(r"PASSWORD|SECRET|TOKEN|_KEY$", k) for k in cm["data"]), cm["data"]
    assert refs == {"radviewer-secrets"}


def test_commands_name_files_and_modules_that_exist(rendered):
    _, docs = rendered
    for doc in docs:
        for c in _containers(doc):
            joined = " ".join(c["command"])
            for path in re.findall(r"deploy/[\w./-]+|manage\.py", joined):
                assert (REPO / path).exists(), path
            for module in re.findall(r"radviewer\.wsgi", joined):
                assert (REPO / (module.replace(".", "/") + ".py")).exists()
            queue = re.search(r"-Q (\w+)", joined)
            if queue:
                assert queue.group(1) in ("default", "inference", "training")


def test_renderer_and_validators_refuse_mistakes(tmp_path):
    base = tmp_path / "base"
    base.mkdir()
    (base / "kustomization.yaml").write_text("resources: [d.yaml]\npatches:\n  - path: p.yaml\n")
    (base / "d.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\ndata: {x: y}\n")
    (base / "p.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: other}\ndata: {x: z}\n")
    with pytest.raises(k8s_render.RenderError, match="found 0 resources"):
        k8s_render.render(base)
    (base / "kustomization.yaml").write_text("resources: [d.yaml]\nreplacements: []\n")
    with pytest.raises(k8s_render.RenderError, match="unsupported keys"):
        k8s_render.render(base)
    docs = k8s_render.render(K8S / "overlays" / "pilot")
    scaled = _by_kind(docs, "ScaledObject")["radviewer-worker-inference"]
    scaled["spec"]["triggers"][0]["metadata"]["listLength"] = 4  # KEDA wants strings
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(scaled, KEDA_SCHEMAS["ScaledObject"])
    web = _by_kind(docs, "Deployment")["radviewer-web"]
    web["spec"]["template"]["spec"]["containers"][0]["readinessprobe"] = {}  # a typo
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(web, K8S_VERSION, strict=True)


def test_strategic_merge_by_name_and_null_deletes():
    base = {"spec": {"containers": [{"name": "a", "image": "x", "env": [{"name": "K", "value": "1"}]}],
                     "keep": 1, "drop": 2}}
    patch = {"spec": {"containers": [{"name": "a", "env": [{"name": "L", "value": "2"}]}, {"name": "b"}],
                      "drop": None}}
    merged = k8s_render.strategic_merge(base, patch)
    assert merged == {"spec": {"containers": [
        {"name": "a", "image": "x", "env": [{"name": "K", "value": "1"}, {"name": "L", "value": "2"}]},
        {"name": "b"}], "keep": 1}}
