"""Scope rule: chest X-ray vs retinal OCT before any class; undecided -> no class."""

import numpy as np
import pytest

from mlcore.ml.classes import CLASS_KEYS
from mlcore.ml.scope import MIN_THRESHOLD, ScopeRule, apply_scope, restrict, scope_mass

KEYS = list(CLASS_KEYS)
CXR = [i for i, k in enumerate(KEYS) if "oct" not in k]
OCT = [i for i, k in enumerate(KEYS) if "oct" in k]


def _probs(cxr_mass: float, top: int) -> np.ndarray:
    p = np.zeros(len(KEYS))
    p[CXR] = (1 - 0.6) * cxr_mass / len(CXR)
    p[OCT] = (1 - cxr_mass) / len(OCT)
    p[top] += 0.6 * cxr_mass if top in CXR else 0.0
    return p / p.sum()


def test_mass_and_restrict_renormalise_within_the_scope() -> None:
    p = _probs(0.9, KEYS.index("lung-covid"))
    mass = scope_mass(p, KEYS)[0]
    assert mass.sum() == pytest.approx(1.0) and mass[0] == pytest.approx(0.9, abs=1e-9)
    chest = restrict(dict(zip(KEYS, p, strict=True)), "cxr")
    assert set(chest) == {KEYS[i] for i in CXR}
    assert sum(chest.values()) == pytest.approx(1.0)
    assert max(chest, key=chest.get) == "lung-covid"


def test_rule_decides_only_above_its_threshold() -> None:
    rule = ScopeRule(threshold=0.9)
    assert rule.decide(np.array([0.95, 0.05])) == ("cxr", pytest.approx(0.95))
    assert rule.decide(np.array([0.02, 0.98]))[0] == "oct"
    assert rule.decide(np.array([0.6, 0.4]))[0] is None


def test_fit_keeps_the_floor_when_val_is_clean_and_rises_when_it_is_not() -> None:
    clean = np.stack([_probs(0.99, CXR[0])] * 50 + [_probs(0.01, OCT[0])] * 10)
    labels = np.array([CXR[0]] * 50 + [OCT[0]] * 10)
    assert ScopeRule.fit(clean, labels, KEYS).threshold == pytest.approx(MIN_THRESHOLD)
    # OCT images the model puts 85 % on chest: below 0.85 they would be decided wrongly.
    confused = np.concatenate([clean, np.stack([_probs(0.85, CXR[0])] * 5)])
    labels2 = np.concatenate([labels, [OCT[1]] * 5])
    rule = ScopeRule.fit(confused, labels2, KEYS, max_error=0.01)
    assert rule.threshold >= 0.85 and rule.val_error <= 0.01
    assert rule.decide(scope_mass(confused[-1], KEYS)[0])[0] is None
    assert ScopeRule.from_dict(rule.to_dict()) == rule


def test_apply_scope_zeroes_the_other_scope_and_marks_undecided() -> None:
    rule = ScopeRule(threshold=0.9)
    probs = np.stack([_probs(0.97, CXR[1]), _probs(0.5, CXR[1]), _probs(0.5, CXR[1])])
    scoped, decided = apply_scope(probs, KEYS, rule, hints=[None, None, "oct"])
    assert decided.tolist() == [True, False, True]
    assert scoped[0, OCT].sum() == 0 and scoped[0].sum() == pytest.approx(1.0)
    np.testing.assert_allclose(scoped[1], probs[1])  # undecided: untouched
    assert scoped[2, CXR].sum() == 0 and scoped[2].sum() == pytest.approx(1.0)  # the header wins
