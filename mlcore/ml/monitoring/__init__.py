"""Pure statistics for model monitoring (no Django): Wilson intervals for agreement rates and
a Bernoulli CUSUM chart on the reader-agreement stream, with its average run lengths."""

from mlcore.ml.monitoring.cusum import (
    BernoulliCusum,
    CusumResult,
    arl_siegmund,
    arl_simulate,
    cusum_design,
    cusum_run,
    threshold_for_arl,
)
from mlcore.ml.monitoring.wilson import wilson_interval

__all__ = [
    "BernoulliCusum",
    "CusumResult",
    "arl_siegmund",
    "arl_simulate",
    "cusum_design",
    "cusum_run",
    "threshold_for_arl",
    "wilson_interval",
]
