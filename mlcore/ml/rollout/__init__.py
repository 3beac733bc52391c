"""Online comparison of model versions against readers, and the canary guard's sequential
test (pure: numpy and scipy, no Django). ``intervals``: proportions, differences and the
paired McNemar comparison; ``sequential``: the guard's SPRT and its operating
characteristic."""

from mlcore.ml.rollout.intervals import (
    PairedComparison,
    Proportion,
    ProportionDifference,
    mcnemar_p,
    newcombe_difference,
    paired_comparison,
    wilson_interval,
)
from mlcore.ml.rollout.sequential import (
    GuardDesign,
    OperatingPoint,
    SprtState,
    fixed_sample_paired,
    fixed_sample_unpaired,
    operating_characteristic,
    sprt_state,
)

__all__ = [
    "GuardDesign",
    "OperatingPoint",
    "PairedComparison",
    "Proportion",
    "ProportionDifference",
    "SprtState",
    "fixed_sample_paired",
    "fixed_sample_unpaired",
    "mcnemar_p",
    "newcombe_difference",
    "operating_characteristic",
    "paired_comparison",
    "sprt_state",
    "wilson_interval",
]
