"""The promotion gate: may ``version`` take ``alias``? Reads stored results only (it never
runs a model), so it answers in milliseconds and gives the same verdict twice.

Contract (used by ``mlcore.services.promotion``): ``gate_check(*, name, alias, version)``
returns a ``GateVerdict`` whose criteria each say what was required, what was found and
whether it passed (``None``: not applicable, e.g. no champion to compare with). A verdict
that does not pass blocks the move unless the admin overrides it with a written
justification; the verdict is stored on the change record either way.

``candidate`` needs only an evaluation report on the locked set (a candidate is a version
under evaluation); ``canary`` and ``production`` need every criterion of the model's
``AcceptanceCriteria``.

Comparative criteria (vs the version holding ``production``, the champion): for each urgent
CXR class, the lower 95 % bound of the paired sensitivity difference >= -max drop (not
applicable when the set has no positives of the class), and the CXR macro-F1 difference >=
-max drop. They read what ``mlcore.services.comparison.comparison_compute`` stored on the
challenger's evaluation (``report["vs"][<champion version>]``), trusted only while the
champion has a succeeded evaluation with the same ``set_hash``; without one they fail with
"run the comparison first" (the gate itself never runs a model). No champion: not applicable.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from mlcore.ml.classes import CLASSES
from mlcore.ml.formatting import format_interval
from mlcore.models import AcceptanceCriteria, Evaluation, ModelAlias, ModelVersion

URGENT_CXR = tuple(c for c in CLASSES if c.urgent and c.modality == "cxr")
RUN_COMPARISON = "run the comparison first"


@dataclass(frozen=True)
class CriterionResult:
    name: str
    required: str
    value: str
    passed: bool | None  # None: not applicable here (and then not blocking)
    detail: str = ""
    # False: no justification lets a move past this failure (synthetic data in production).
    overridable: bool = True


@dataclass(frozen=True)
class GateVerdict:
    name: str
    alias: str
    version: str
    champion_version: str | None
    evaluation_id: int | None
    criteria: tuple[CriterionResult, ...] = field(default_factory=tuple)

    @property
    def passed(self) -> bool:
        return all(c.passed is not False for c in self.criteria)

    @property
    def failures(self) -> list[CriterionResult]:
        return [c for c in self.criteria if c.passed is False]

    @property
    def overridable(self) -> bool:
        """Whether a written justification may move the version despite the failures."""
        return all(c.overridable for c in self.failures)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["criteria"] = [asdict(c) for c in self.criteria]
        out["passed"] = self.passed
        out["overridable"] = self.overridable
        return out


def acceptance_criteria(*, name: str) -> AcceptanceCriteria:
    """The model's criteria; the defaults (unsaved) when none were configured."""
    return AcceptanceCriteria.objects.filter(name=name).first() or AcceptanceCriteria(name=name)


def locked_evaluation(*, version: ModelVersion) -> Evaluation | None:
    """The newest finished evaluation of ``version`` on a locked set."""
    return (Evaluation.objects.filter(model_version=version, set_name="locked",
                                      status=Evaluation.Status.SUCCEEDED)
            .select_related("dataset_version").order_by("-finished_at", "-id").first())


def gate_check(*, name: str, alias: str, version: str) -> GateVerdict:
    mv = ModelVersion.objects.get(name=name, version=str(version))
    criteria = acceptance_criteria(name=name)
    champion = (ModelAlias.objects.filter(name=name, alias=ModelAlias.Alias.PRODUCTION)
                .values_list("model_version__version", flat=True).first())
    evaluation = locked_evaluation(version=mv)
    results = [CriterionResult(
        name="evaluation report on the locked set",
        required="a finished evaluation of this version on a locked evaluation set",
        value=(f"evaluation {evaluation.pk} on {evaluation.dataset_version.slug} (n={evaluation.n})"
               if evaluation else "none"),
        passed=evaluation is not None,
    )]
    if alias != ModelAlias.Alias.CANDIDATE:
        ece = (evaluation.report or {}).get("ece") if evaluation else None
        results.append(CriterionResult(
            name="calibration (ECE)", required=f"<= {criteria.max_ece:g}",
            value="unknown" if ece is None else f"{ece:.3f}",
            passed=None if evaluation is None else (ece is not None and ece <= criteria.max_ece),
        ))
        if champion is not None and champion != str(version):
            results += _comparative(mv, name=name, champion=champion, criteria=criteria)
        else:
            results.append(CriterionResult(
                name="no worse than the champion", required="compared with the version in production",
                value="no champion", passed=None, detail="no other version holds production"))
    if alias == ModelAlias.Alias.PRODUCTION and criteria.forbid_synthetic_in_production:
        results.append(CriterionResult(
            name="trained on real data", required="a version trained on synthetic data never serves",
            value="synthetic" if mv.synthetic else "real", passed=not mv.synthetic, overridable=False,
        ))
    return GateVerdict(name=name, alias=alias, version=str(version),
                       champion_version=champion if champion != str(version) else None,
                       evaluation_id=evaluation.pk if evaluation else None, criteria=tuple(results))


def stored_comparison(*, version: ModelVersion, champion: ModelVersion) -> tuple[dict[str, Any], Evaluation] | None:
    """What the newest comparison of ``version`` with ``champion`` stored, and the
    challenger's evaluation holding it, when the champion's evaluation on that set stands."""
    evaluations = Evaluation.objects.filter(model_version=version, set_name="locked",
                                            status=Evaluation.Status.SUCCEEDED).order_by("-finished_at", "-id")
    for evaluation in evaluations:
        entry = ((evaluation.report or {}).get("vs") or {}).get(str(champion.version))
        if entry and Evaluation.objects.filter(
                pk=entry.get("champion_evaluation_id"), model_version=champion, set_hash=evaluation.set_hash,
                status=Evaluation.Status.SUCCEEDED).exists():
            return entry, evaluation
    return None


def _fmt_interval(cell: list[float | None] | None) -> str:
    return format_interval(cell, signed=True, missing="undefined")


def _comparative(mv: ModelVersion, *, name: str, champion: str, criteria: AcceptanceCriteria
                 ) -> list[CriterionResult]:
    champion_mv = ModelVersion.objects.get(name=name, version=champion)
    found = stored_comparison(version=mv, champion=champion_mv)
    drop_s, drop_f1 = criteria.max_urgent_sensitivity_drop, criteria.max_macro_f1_drop
    sens_required = f"lower 95 % bound of (this - v{champion}) >= {-drop_s:+.3f}"
    f1_required = f"this - v{champion} >= {-drop_f1:+.3f}"
    if found is None:
        detail = (f"no comparison with v{champion} on a locked set both were evaluated on: {RUN_COMPARISON}")
        return [CriterionResult(name=f"{c.display_name} sensitivity vs champion", required=sens_required,
                                value="not compared", passed=False, detail=detail) for c in URGENT_CXR] + [
            CriterionResult(name="CXR macro-F1 vs champion", required=f1_required, value="not compared",
                            passed=False, detail=detail)]
    entry, evaluation = found
    where = f"evaluation {evaluation.pk} vs {entry.get('champion_evaluation_id')} (set {evaluation.set_hash[:12]})"
    results = []
    for c in URGENT_CXR:
        cell = (entry.get("sensitivity") or {}).get(c.key) or {}
        diff = cell.get("diff")
        if not cell.get("n"):
            results.append(CriterionResult(name=f"{c.display_name} sensitivity vs champion", required=sens_required,
                                           value="no positives in the set", passed=None, detail=where))
            continue
        low = diff[1] if diff else None
        results.append(CriterionResult(
            name=f"{c.display_name} sensitivity vs champion", required=sens_required, value=_fmt_interval(diff),
            passed=low is not None and low >= -drop_s - 1e-12,
            detail=where if low is not None else f"{where}; the interval could not be computed"))
    f1 = (entry.get("macro_f1_cxr4") or {}).get("diff") or [None]
    results.append(CriterionResult(
        name="CXR macro-F1 vs champion", required=f1_required, value=_fmt_interval(f1),
        passed=None if f1[0] is None else f1[0] >= -drop_f1 - 1e-12,
        detail=where if f1[0] is not None else f"{where}; no CXR class in the set"))
    return results
