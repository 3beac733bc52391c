"""Champion vs challenger: the comparison service, its page and the gate's comparative criteria."""

import time

import numpy as np
import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from mlcore.models import AcceptanceCriteria, DatasetVersion, Evaluation, ModelAlias, PredictionCache
from mlcore.services.comparison import ComparisonError, comparison_compute
from mlcore.services.evaluations import evaluation_cases_of
from mlcore.services.gate import RUN_COMPARISON, gate_check
from tests.support.evaluation import (  # noqa: F401  (fixtures)
    eval_dataset,
    eval_store,
    second_version_number,
    two_versions,
)

pytestmark = pytest.mark.django_db
URGENT_CXR = ("lung-covid", "lung-opacity", "lung-tuberculosis", "lung-viral-pneumonia")


def test_comparison_figures_are_consistent_and_cached(two_versions, eval_dataset):  # noqa: F811
    champion, challenger = two_versions
    result = comparison_compute(champion=champion, challenger=challenger, dataset_version=eval_dataset)
    ev_a, ev_b = (Evaluation.objects.get(model_version=v, set_name="locked") for v in two_versions)
    assert ev_a.set_hash == ev_b.set_hash == result["set_hash"] and result["n"] == ev_a.n
    cases = evaluation_cases_of(ev_a)
    top_a = dict(PredictionCache.objects.filter(model_version=champion).values_list("image_sha256", "top_class"))
    top_b = dict(PredictionCache.objects.filter(model_version=challenger).values_list("image_sha256", "top_class"))
    changed = [c.path for c in cases if top_a[c.sha256] != top_b[c.sha256]]
    assert [f["case"] for f in result["flips"]] == changed
    # McNemar's discordant pairs are the flips that fixed or broke a case.
    effects = [f["effect"] for f in result["flips"]]
    assert (result["mcnemar"]["b"], result["mcnemar"]["c"]) == (effects.count("broken"), effects.count("fixed"))
    net = result["net_flips"]
    assert sum(v["net"] for v in net.values()) == effects.count("fixed") - effects.count("broken")
    # Paired points are the two evaluations' own figures.
    assert result["paired"]["macro_f1_cxr4"]["champion"] == pytest.approx(ev_a.report["macro_f1_cxr4"])
    assert result["paired"]["accuracy"]["challenger"] == pytest.approx(ev_b.report["accuracy"])
    # What the gate reads is stored on the challenger's evaluation.
    stored = Evaluation.objects.get(pk=ev_b.pk).report["vs"][champion.version]
    assert stored["champion_evaluation_id"] == ev_a.pk and set(stored["sensitivity"]) == set(URGENT_CXR)

    cached_rows, evaluations = PredictionCache.objects.count(), Evaluation.objects.count()
    started = time.perf_counter()
    again = comparison_compute(champion=champion, challenger=challenger, dataset_version=eval_dataset)
    assert time.perf_counter() - started < 1.0
    assert again == result
    assert (PredictionCache.objects.count(), Evaluation.objects.count()) == (cached_rows, evaluations)


def test_bad_comparisons_are_refused(two_versions, eval_dataset):  # noqa: F811
    champion, _ = two_versions
    with pytest.raises(ComparisonError, match="two different versions"):
        comparison_compute(champion=champion, challenger=champion, dataset_version=eval_dataset)
    eval_dataset.status = DatasetVersion.Status.FAILED
    eval_dataset.save()
    with pytest.raises(ComparisonError, match="not ready"):
        comparison_compute(champion=champion, challenger=two_versions[1], dataset_version=eval_dataset)
    assert not Evaluation.objects.exists()


def test_compare_page(two_versions, eval_dataset, ml_admin_client, radiologist,  # noqa: F811
                      django_capture_on_commit_callbacks):
    champion, challenger = two_versions
    url = reverse("mlcore:compare")
    query = {"a": champion.version, "b": challenger.version, "dataset": eval_dataset.slug}
    # Not evaluated yet: the page offers to queue what is missing.
    body = ml_admin_client.get(url, query).content.decode()
    assert "not evaluated on this set" in body and "Evaluate what is missing" in body
    with django_capture_on_commit_callbacks() as callbacks:
        response = ml_admin_client.post(url, query)
    assert response.status_code == 302 and len(callbacks) == 2
    assert Evaluation.objects.filter(status="queued").count() == 2
    partial = ml_admin_client.get(url, query, HTTP_HX_REQUEST="true").content.decode()
    assert "<html" not in partial and 'hx-trigger="every 3s"' in partial and "queued" in partial

    result = comparison_compute(champion=champion, challenger=challenger, dataset_version=eval_dataset)
    page = ml_admin_client.get(url, query)
    assert page.status_code == 200
    body = page.content.decode()
    assert "McNemar" in body and "Worklist effect" in body and "Gate verdict for promoting" in body
    assert f"Flip list ({len(result['flips'])} of {len(result['flips'])}" in body
    for flip in result["flips"]:
        assert f"/ml/datasets/{eval_dataset.slug}/image?path={flip['case']}" in body.replace("%2F", "/")
    # Filters narrow the flip list (GET parameters, no JavaScript).
    for page in ("abc", "99", "-1"):  # a bad page number shows the nearest page
        assert f"Flip list ({len(result['flips'])} of" in ml_admin_client.get(url, {**query, "page": page}).content.decode()
    by_alias = ml_admin_client.get(url, {**query, "a": "production"}).content.decode()
    assert f"v{champion.version} (champion) vs v{challenger.version} (challenger)" in by_alias
    filtered = ml_admin_client.get(url, {**query, "kind": "to_routine"}).content.decode()
    expected = sum(f["kind"] == "to_routine" for f in result["flips"])
    assert f"Flip list ({expected} of {len(result['flips'])}" in filtered

    reader = Client()
    reader.force_login(radiologist)
    assert reader.get(url, query).status_code == 403
    for bad, message in (({**query, "b": champion.version}, "two different versions"),
                         ({**query, "a": "999"}, "has no version &#x27;999&#x27;"),
                         ({**query, "dataset": "nope"}, "unknown dataset version")):
        response = ml_admin_client.get(url, bad)
        assert response.status_code == 400 and message in response.content.decode()
    eval_dataset.status = DatasetVersion.Status.IMPORTING
    eval_dataset.save()
    response = ml_admin_client.get(url, query)
    assert response.status_code == 400 and "is not ready (status: Importing)" in response.content.decode()


# --- the gate's comparative criteria, from stored evaluation rows ---------------------------

def _evaluation(version, dataset, *, set_hash="h" * 64, vs=None):
    return Evaluation.objects.create(
        model_version=version, dataset_version=dataset, set_name="locked", set_hash=set_hash, n=100,
        status=Evaluation.Status.SUCCEEDED, finished_at=timezone.now(), report={"ece": 0.01, "vs": vs or {}})


def _vs(champion_evaluation, *, sens_low=0.0, f1=0.0, empty=()):
    cell = {"n": 10, "diff": [sens_low + 0.05, sens_low, sens_low + 0.1]}
    return {champion_evaluation.model_version.version: {
        "champion_evaluation_id": champion_evaluation.pk, "set_hash": champion_evaluation.set_hash,
        "macro_f1_cxr4": {"diff": [f1, f1 - 0.05, f1 + 0.05]},
        "sensitivity": {k: ({"n": 0, "diff": [None, None, None]} if k in empty else cell) for k in URGENT_CXR}}}


def _comparative(verdict):
    return {c.name: c for c in verdict.criteria if "vs champion" in c.name or "champion" in c.name}


def test_gate_comparative_criteria_pass_and_block(two_versions, eval_dataset):  # noqa: F811
    champion, challenger = two_versions
    name = champion.name
    assert ModelAlias.objects.get(name=name, alias="production").model_version == champion
    champion_eval = _evaluation(champion, eval_dataset)

    # Not compared yet: every comparative criterion fails and says what to do.
    _evaluation(challenger, eval_dataset)
    verdict = gate_check(name=name, alias="canary", version=challenger.version)
    crit = _comparative(verdict)
    assert len(crit) == 5 and all(c.passed is False and RUN_COMPARISON in c.detail for c in crit.values())
    assert not verdict.passed

    # Within the allowed drops: passes (lower bound -0.015 >= -0.02; F1 -0.005 >= -0.01).
    _evaluation(challenger, eval_dataset, vs=_vs(champion_eval, sens_low=-0.015, f1=-0.005))
    verdict = gate_check(name=name, alias="production", version=challenger.version)
    crit = _comparative(verdict)
    assert all(c.passed is True for c in crit.values()), crit
    assert verdict.passed

    # Beyond them: blocks, per criterion.
    _evaluation(challenger, eval_dataset, vs=_vs(champion_eval, sens_low=-0.03, f1=-0.02))
    crit = _comparative(gate_check(name=name, alias="canary", version=challenger.version))
    assert crit["COVID-19 pneumonia sensitivity vs champion"].passed is False
    assert crit["Tuberculosis sensitivity vs champion"].passed is False
    assert crit["CXR macro-F1 vs champion"].passed is False
    assert "-0.030" in crit["Viral pneumonia sensitivity vs champion"].value

    # Configurable: looser criteria let the same figures pass.
    AcceptanceCriteria.objects.create(name=name, max_urgent_sensitivity_drop=0.05, max_macro_f1_drop=0.05)
    assert gate_check(name=name, alias="canary", version=challenger.version).passed

    # A class without positives in the set: not applicable, not blocking.
    _evaluation(challenger, eval_dataset, vs=_vs(champion_eval, empty=("lung-tuberculosis",)))
    crit = _comparative(gate_check(name=name, alias="canary", version=challenger.version))
    assert crit["Tuberculosis sensitivity vs champion"].passed is None

    # The champion's evaluation on that set is gone: the comparison no longer counts.
    champion_eval.delete()
    crit = _comparative(gate_check(name=name, alias="canary", version=challenger.version))
    assert all(c.passed is False and RUN_COMPARISON in c.detail for c in crit.values())

    # A candidate needs only the report; no champion: not applicable.
    assert not _comparative(gate_check(name=name, alias="candidate", version=challenger.version))
    ModelAlias.objects.filter(name=name, alias="production").delete()
    crit = _comparative(gate_check(name=name, alias="canary", version=challenger.version))
    assert [c.passed for c in crit.values()] == [None]


def test_gate_reads_a_real_comparison(two_versions, eval_dataset):  # noqa: F811
    champion, challenger = two_versions
    result = comparison_compute(champion=champion, challenger=challenger, dataset_version=eval_dataset)
    AcceptanceCriteria.objects.create(name=champion.name, max_urgent_sensitivity_drop=1.0, max_macro_f1_drop=1.0)
    crit = _comparative(gate_check(name=champion.name, alias="canary", version=challenger.version))
    for key, c in zip(URGENT_CXR, [c for n, c in crit.items() if "sensitivity" in n], strict=True):
        cell = result["paired"]["per_class"][key]
        assert c.passed is (None if cell["n"] == 0 else True)
    f1 = result["paired"]["macro_f1_cxr4"]["diff"][0]
    assert crit["CXR macro-F1 vs champion"].value.startswith(f"{f1:+.3f} [")


def test_cached_comparison_of_a_thousand_images_is_under_a_second(two_versions, tmp_path):  # noqa: F811
    """~1,000 cached predictions per version (no model runs for them): the first comparison
    computes from the cache, the second is a cache read."""
    from mlcore.ml.classes import CLASS_KEYS
    from mlcore.ml.data import LocalDatasetStore
    from mlcore.ml.data.manifest import ManifestRow

    champion, challenger = two_versions
    rng = np.random.default_rng(0)
    store = LocalDatasetStore(tmp_path / "big")
    rows, n = [], 1000
    for i in range(n):
        key = CLASS_KEYS[i % 5]
        sha = f"{i:064x}"
        rows.append(ManifestRow(path=f"final_eval/{key}/img{i}.png", class_key=key, split="final_eval",
                                patient_key=f"p{i}", source="bench", sha256=sha, phash="0" * 64, width=8, height=8))
    store.write_manifest(rows)
    dataset = DatasetVersion.objects.create(slug="big", store_uri=store.uri, status=DatasetVersion.Status.READY)
    for version in (champion, challenger):
        probs = rng.dirichlet(np.ones(9) * 0.3, n)
        PredictionCache.objects.bulk_create([
            PredictionCache(model_version=version, image_sha256=r.sha256, probabilities=p.round(6).tolist(),
                            raw_probabilities=p.round(6).tolist(), top_class=CLASS_KEYS[int(p.argmax())], scope="cxr")
            for r, p in zip(rows, probs, strict=True)])
    started = time.perf_counter()
    result = comparison_compute(champion=champion, challenger=challenger, dataset_version=dataset)
    cold = time.perf_counter() - started
    assert PredictionCache.objects.count() == 2 * n  # nothing was scored again
    started = time.perf_counter()
    comparison_compute(champion=champion, challenger=challenger, dataset_version=dataset)
    warm = time.perf_counter() - started
    print(f"comparison of {n} cached images: first {cold:.2f} s (two evaluations from the cache, then the "
          f"paired statistics {result['compute_seconds']:.2f} s), cached {warm * 1000:.0f} ms")
    assert warm < 1.0
