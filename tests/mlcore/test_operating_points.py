"""Operating points: proposed by a real comparison, applied on promotion, in the change record."""

import re

import numpy as np
import pytest
from django.core.cache import cache
from django.utils import timezone

from mlcore.models import Evaluation, OperatingPoint
from mlcore.selectors import applied_thresholds, operating_points_proposed
from mlcore.services.comparison import comparison_compute
from mlcore.services.evaluations import cached_predictions, evaluation_cases_of
from mlcore.services.promotion import alias_move
from radviewer.audit.models import AuditEvent
from tests.support.evaluation import (  # noqa: F401  (fixtures)
    eval_dataset,
    eval_store,
    second_version_number,
    two_versions,
)
from tests.support.registry import NAME, evaluate, registry_fixture  # noqa: F401 (the `registry` fixture)

pytestmark = pytest.mark.django_db
URGENT_CXR = ("lung-covid", "lung-opacity", "lung-tuberculosis", "lung-viral-pneumonia")


def test_a_comparison_proposes_points_that_keep_the_champions_sensitivity(two_versions, eval_dataset,  # noqa: F811
                                                                          ml_admin_client):
    champion, challenger = two_versions
    result = comparison_compute(champion=champion, challenger=challenger, dataset_version=eval_dataset)
    page = ml_admin_client.get("/ml/compare/", {"a": champion.version, "b": challenger.version,
                                                "dataset": eval_dataset.slug}).content.decode()
    assert "Operating points for the urgent classes" in page
    for p in result["operating_points"].values():
        if p["threshold"] is not None:
            assert f'<td class="threshold">{p["threshold"]:.4f}</td>' in page
        else:
            assert p["error"].replace("'", "&#x27;") in page
    proposals = result["operating_points"]
    assert set(URGENT_CXR) <= set(proposals)
    # OCT classes have no images in this CXR set: no point, and the reason.
    assert proposals["lung-oct-cnv"]["threshold"] is None and "no positive images" in proposals["lung-oct-cnv"]["error"]
    ev = Evaluation.objects.get(model_version=champion, set_name="locked")
    cases = evaluation_cases_of(ev)
    a, b = cached_predictions(version=champion, cases=cases), cached_predictions(version=challenger, cases=cases)
    from mlcore.ml.classes import CLASS_KEYS, URGENT_KEYS
    urgent = [CLASS_KEYS.index(k) for k in CLASS_KEYS if k in URGENT_KEYS]
    flagged_a = (a["probs"][:, urgent].sum(axis=1) >= 0.5) | a["ood"]
    rows = {p.class_key: p for p in OperatingPoint.objects.filter(version=challenger.version)}
    for key in URGENT_CXR:
        p, c = proposals[key], CLASS_KEYS.index(key)
        pos = a["labels"] == c
        assert p["target_sensitivity"] == pytest.approx(flagged_a[pos].mean())
        if p["threshold"] is None:
            assert "unreachable" in p["error"]
            continue
        flagged_b = (b["probs"][:, c] >= p["threshold"]) | b["ood"]
        assert flagged_b[pos].mean() >= p["target_sensitivity"] and p["sensitivity"][0] == pytest.approx(flagged_b[pos].mean())
        row = rows[key]
        assert (row.threshold, row.champion_version, row.set_hash, row.applied_at) == (
            pytest.approx(p["threshold"]), champion.version, result["set_hash"], None)
        assert row.specificity == pytest.approx(p["specificity"][0])
    assert rows, "at least one urgent class got a point"
    # A recomputation (cache gone) refreshes the proposals, it does not pile them up.
    count = OperatingPoint.objects.count()
    cache.clear()
    comparison_compute(champion=champion, challenger=challenger, dataset_version=eval_dataset)
    assert OperatingPoint.objects.count() == count
    assert np.isfinite([r.threshold for r in rows.values()]).all()


def _propose(version: str, champion: str, **thresholds: float) -> None:
    for key, t in thresholds.items():
        OperatingPoint.objects.create(name=NAME, version=version, class_key=key.replace("_", "-"), threshold=t,
                                      target_sensitivity=0.9, sensitivity=0.93, specificity=0.8, set_hash="h" * 64,
                                      champion_version=champion)


def test_promotion_applies_the_points_and_records_them(registry, ml_admin, django_capture_on_commit_callbacks):
    evaluate("2")
    _propose("2", "1", lung_covid=0.31, lung_opacity=0.42)
    _propose("2", "3", lung_covid=0.99)  # against another champion: not applied
    assert [p.class_key for p in operating_points_proposed(name=NAME, version="2", champion_version="1")] == [
        "lung-covid", "lung-opacity"]
    with django_capture_on_commit_callbacks(execute=True):
        record = alias_move(actor=ml_admin, alias="production", version="2", reason="better",
                            expected_current="1", apply_operating_points=True)
    assert applied_thresholds(name=NAME, version="2") == {"lung-covid": 0.31, "lung-opacity": 0.42}
    section = record.sections["operating_points"]
    assert section["requested"] and [p["class_key"] for p in section["applied"]] == ["lung-covid", "lung-opacity"]
    assert section["applied"][0]["threshold"] == 0.31 and section["applied"][0]["champion_version"] == "1"
    assert set(record.operating_points.values_list("class_key", flat=True)) == {"lung-covid", "lung-opacity"}
    assert OperatingPoint.objects.get(champion_version="3").applied_at is None
    event = AuditEvent.objects.get(action="model.operating_points_applied")
    assert event.details["thresholds"] == {"lung-covid": 0.31, "lung-opacity": 0.42}


def test_promotion_without_applying_says_so_and_changes_nothing(registry, ml_admin):
    evaluate("2")
    _propose("2", "1", lung_covid=0.31)
    record = alias_move(actor=ml_admin, alias="production", version="2", reason="better", apply_operating_points=False)
    assert record.sections["operating_points"]["requested"] is False
    assert "chose not to apply" in record.sections["operating_points"]["note"]
    assert applied_thresholds(name=NAME, version="2") == {}


def test_applying_with_nothing_proposed_is_recorded_not_invented(registry, ml_admin):
    evaluate("2")
    record = alias_move(actor=ml_admin, alias="production", version="2", reason="x", apply_operating_points=True)
    assert record.sections["operating_points"]["applied"] == []
    assert "compare the two on the locked set first" in record.sections["operating_points"]["note"]
    assert not AuditEvent.objects.filter(action="model.operating_points_applied").exists()


def test_promotion_form_ticks_apply_by_default_and_the_record_page_lists_points(registry, ml_admin_client):
    evaluate("2")
    _propose("2", "1", lung_covid=0.31)
    page = ml_admin_client.get("/ml/versions/2/promote?alias=production").content.decode()
    [tag] = re.findall(r'<input type="checkbox" name="apply_operating_points"[^>]*>', page)
    assert " checked" in tag
    assert "0.3100" in page and "Urgent thresholds" in page
    response = ml_admin_client.post("/ml/versions/2/promote", {
        "alias": "production", "reason": "better", "apply_operating_points": "on", "expected_production": "1"})
    assert response.status_code == 302, response.content.decode()[:2000]
    detail = ml_admin_client.get(response["Location"]).content.decode()
    assert "Operating points (urgent-class thresholds)" in detail and "0.3100" in detail
    assert OperatingPoint.objects.get().applied_at <= timezone.now()
    # (The registry fixture's stored evaluations carry only the gate's figures, not a report to show.)
    Evaluation.objects.all().delete()
    version_page = ml_admin_client.get("/ml/versions/2/").content.decode()
    assert "Operating points (urgent-class thresholds)" in version_page and "0.3100" in version_page
    assert "applied " in version_page and f'href="{response["Location"]}"' in version_page
    assert "default rule" in ml_admin_client.get("/ml/versions/3/").content.decode()
