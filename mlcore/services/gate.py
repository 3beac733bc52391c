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
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from mlcore.models import AcceptanceCriteria, Evaluation, ModelAlias, ModelVersion


@dataclass(frozen=True)
class CriterionResult:
    name: str
    required: str
    value: str
    passed: bool | None  # None: not applicable here (and then not blocking)
    detail: str = ""


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

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["criteria"] = [asdict(c) for c in self.criteria]
        out["passed"] = self.passed
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
            name="calibration (ECE)", required=f"<= {criteria.max_ece:.3f}",
            value="unknown" if ece is None else f"{ece:.3f}",
            passed=None if evaluation is None else (ece is not None and ece <= criteria.max_ece),
        ))
    if alias == ModelAlias.Alias.PRODUCTION and criteria.forbid_synthetic_in_production:
        results.append(CriterionResult(
            name="trained on real data", required="a version trained on synthetic data never serves",
            value="synthetic" if mv.synthetic else "real", passed=not mv.synthetic,
        ))
    return GateVerdict(name=name, alias=alias, version=str(version),
                       champion_version=champion if champion != str(version) else None,
                       evaluation_id=evaluation.pk if evaluation else None, criteria=tuple(results))
