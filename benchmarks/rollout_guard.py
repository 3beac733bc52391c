"""The canary guard and the shadow comparison, simulated on agreement streams drawn from the
starter model's real confusion matrices.

    python benchmarks/rollout_guard.py [--runs 500] [--share 0.1] [--daily 100] [--split final_eval]

Source of the streams: the confusion matrix stored in ``mlcore/starter/radviewer-starter.pt``
(``doc.metadata.evaluation.<split>.confusion``, the same figures docs/model-card.md prints;
rows = the reference class, columns = the model's top class). A study's reference class is
drawn with the matrix's row totals, production's top class from that row; the reader's final
reading is the reference class, so a read agrees when the top class equals it. A canary
``x`` points worse keeps each row's error pattern and moves a share ``x / accuracy`` of every
row's correct calls onto that row's real confusions (rows without any use the other CXR
classes evenly), so its accuracy is exactly ``x`` lower. An equal canary uses the matrix as
it is.

1. Guard (``mlcore.ml.rollout.sequential``, the statistic the beat task computes), looked at
   after every read (the most looks the beat task could make, the worst case for the false
   rollback rate), the canary getting ``--share`` of the studies: how often a canary 15 points
   worse is rolled back within the studies the rollout page predicts (the studies by which it
   is rolled back with probability ``power``), and how often an equal canary is rolled back
   at all within a long horizon.
2. Paired vs unpaired: the studies a fixed-sample comparison needs for 80 % power to find a
   candidate 10 points worse at two-sided 5 % -- shadow (every study read by both versions,
   McNemar, exact below 25 discordant pairs, as on the page) against an unpaired canary
   (Newcombe interval excludes 0, as on the page) at the best split (50 %) and at
   ``--share``. The candidate's top class is drawn independently of production's given the
   reference class: the least correlation two versions can have, so the paired gain shown is
   a floor.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run as a script from anywhere

from mlcore.ml.rollout import (  # noqa: E402
    GuardDesign,
    fixed_sample_paired,
    fixed_sample_unpaired,
    mcnemar_p,
    newcombe_difference,
    operating_characteristic,
)
from mlcore.ml.rollout.sequential import sprt_llr  # noqa: E402

STARTER = REPO / "mlcore" / "starter" / "radviewer-starter.pt"
CXR_COLUMNS = (0, 1, 2, 4)  # covid, normal, opacity, viral pneumonia: the classes with real data


def load_confusion(split: str) -> np.ndarray:
    import torch  # only to read the starter file's metadata (weights_only)

    blob = torch.load(STARTER, map_location="cpu", weights_only=True)
    doc = json.loads(blob["doc"])
    return np.asarray(doc["metadata"]["evaluation"][split]["confusion"], dtype=float)


def degraded(confusion: np.ndarray, drop: float) -> np.ndarray:
    """Row-stochastic prediction matrix ``drop`` less accurate, errors as the real matrix has them."""
    totals = confusion.sum(1)
    rows = np.divide(confusion, totals[:, None], out=np.zeros_like(confusion), where=totals[:, None] > 0)
    accuracy = np.trace(confusion) / confusion.sum()
    lam = drop / accuracy
    if not 0 <= lam <= 1:
        raise ValueError(f"cannot make a model {drop} worse than one with accuracy {accuracy:.3f}")
    out = rows.copy()
    for r in range(len(rows)):
        if totals[r] == 0:
            continue
        errors = rows[r].copy()
        errors[r] = 0
        if errors.sum() == 0:  # no real confusion in this row: the other CXR classes evenly
            errors[[c for c in CXR_COLUMNS if c != r]] = 1
        errors /= errors.sum()
        correct = rows[r, r]
        out[r] = rows[r] * 1.0
        out[r, r] = correct * (1 - lam)
        out[r] += correct * lam * errors
    return out


class Source:
    def __init__(self, confusion: np.ndarray) -> None:
        self.prevalence = confusion.sum(1) / confusion.sum()
        self.accuracy = float(np.trace(confusion) / confusion.sum())
        self.confusion = confusion

    def agreement(self, rng: np.random.Generator, shape: tuple[int, ...], drop: float,
                  classes: np.ndarray | None = None) -> np.ndarray:
        """Boolean reads (top class == reader's reading) for a model ``drop`` worse."""
        if classes is None:
            classes = rng.choice(len(self.prevalence), p=self.prevalence, size=shape)
        cum = np.cumsum(degraded(self.confusion, drop), axis=1)
        u = rng.random(shape)
        predicted = (u[..., None] > cum[classes]).sum(-1)
        return predicted == classes


def guard_runs(source: Source, design: GuardDesign, *, drop: float, share: float, runs: int, horizon: int,
               rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Per run: studies at the first rollback (inf if none) and at the first accept (inf if none),
    with the guard evaluated after every read (both arms' cumulative counts)."""
    canary = rng.random((runs, horizon)) < share
    agree_p = source.agreement(rng, (runs, horizon), 0.0)
    agree_c = source.agreement(rng, (runs, horizon), drop)
    agree = np.where(canary, agree_c, agree_p)
    n_c = np.cumsum(canary, 1)
    n_p = np.cumsum(~canary, 1)
    k_c = np.cumsum(agree & canary, 1)
    k_p = np.cumsum(agree & ~canary, 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        llr, _ = sprt_llr(k_c, n_c, k_p, n_p, design.drop)
    ready = (n_c >= design.min_reads) & (n_p >= design.min_reads)
    up = ready & (llr >= design.upper)
    down = ready & (llr <= design.lower)
    studies = np.arange(1, horizon + 1, dtype=float)
    first_up = np.where(up.any(1), studies[up.argmax(1)], np.inf)
    first_down = np.where(down.any(1), studies[down.argmax(1)], np.inf)
    return first_up, first_down


def guard_section(source: Source, design: GuardDesign, *, share: float, daily: float, runs: int,
                  rng: np.random.Generator) -> dict:
    baseline = source.accuracy
    # What the rollout page states: a canary ``design.drop`` worse is rolled back with
    # probability ``power`` within this many studies at this share.
    page = operating_characteristic(drop=design.drop, share=share, daily_studies=daily, baseline=baseline,
                                    design=design).studies_for_target
    out = {}
    for drop in (0.0, 0.10, 0.15):
        oc = operating_characteristic(drop=drop, share=share, daily_studies=daily, baseline=baseline,
                                      design=design)
        horizon = int(max(oc.expected_studies * 20, 4000))
        t0 = time.perf_counter()
        up, down = guard_runs(source, design, drop=drop, share=share, runs=runs, horizon=horizon, rng=rng)
        decided_first = np.minimum(up, down)
        rolled = up < down  # the guard stops at its first boundary
        stop = decided_first[np.isfinite(decided_first)]
        row = {
            "drop": drop, "horizon_studies": horizon, "seconds": round(time.perf_counter() - t0, 1),
            "predicted_p_rollback": oc.p_rollback, "predicted_expected_studies": oc.expected_studies,
            "predicted_studies_for_power": oc.studies_for_target,
            "rolled_back": float(rolled.mean()),
            "undecided": float((~np.isfinite(decided_first)).mean()),
            "mean_studies_to_decision": float(stop.mean()) if stop.size else None,
        }
        row["page_studies"] = page
        row["rolled_back_within_page_studies"] = float((rolled & (up <= page)).mean())
        if oc.studies_for_target is not None:
            row["rolled_back_within_predicted"] = float((rolled & (up <= oc.studies_for_target)).mean())
        out[f"{drop:.2f}"] = row
    return out


def _power_paired(source: Source, n: int, runs: int, drop: float, rng: np.random.Generator) -> float:
    classes = rng.choice(len(source.prevalence), p=source.prevalence, size=(runs, n))
    prod = source.agreement(rng, (runs, n), 0.0, classes)
    cand = source.agreement(rng, (runs, n), drop, classes)
    hits = 0
    for a, b in zip(prod, cand, strict=True):
        only_prod, only_cand = int((a & ~b).sum()), int((~a & b).sum())
        p, _ = mcnemar_p(only_prod, only_cand)
        hits += p < 0.05 and only_prod > only_cand
    return hits / runs


def _power_unpaired(source: Source, n: int, runs: int, drop: float, share: float,
                    rng: np.random.Generator) -> float:
    canary = rng.random((runs, n)) < share
    prod = source.agreement(rng, (runs, n), 0.0)
    cand = source.agreement(rng, (runs, n), drop)
    hits = 0
    for arm, a, b in zip(canary, prod, cand, strict=True):
        n_c = int(arm.sum())
        diff = newcombe_difference(int(a[~arm].sum()), n - n_c, int(b[arm].sum()), n_c)
        hits += diff.low is not None and diff.low > 0
    return hits / runs


def studies_for_power(power_at, lo: int, hi: int, target: float = 0.8) -> tuple[int, float]:
    """Smallest studies (to 2 %) with simulated power >= target (power grows with n)."""
    while power_at(hi) < target:
        lo, hi = hi, hi * 2
    best = (hi, power_at(hi))
    while hi - lo > max(4, hi // 50):
        mid = (lo + hi) // 2
        p = power_at(mid)
        if p >= target:
            hi, best = mid, (mid, p)
        else:
            lo = mid
    return best


def paired_section(source: Source, *, share: float, runs: int, drop: float, seed: int) -> dict:
    def fresh() -> np.random.Generator:  # common random numbers across n: a smoother search
        return np.random.default_rng(seed)

    baseline = source.accuracy
    n_paired, pow_paired = studies_for_power(lambda n: _power_paired(source, n, runs, drop, fresh()), 10, 200)
    out = {"paired": {"studies": n_paired, "power": pow_paired}}
    for s in sorted({0.5, share}):
        n_u, pow_u = studies_for_power(lambda n, s=s: _power_unpaired(source, n, runs, drop, s, fresh()), 20, 400)
        out[f"unpaired_share_{s:g}"] = {"studies": n_u, "power": pow_u,
                                        "analytic": fixed_sample_unpaired(baseline=baseline, drop=drop, share=s,
                                                                          alpha=0.025, power=0.8)}
    worse = baseline - drop
    discordant = baseline * (1 - worse) + worse * (1 - baseline)  # independent given the class: approx.
    out["paired"]["analytic"] = fixed_sample_paired(discordant=discordant, drop=drop, alpha=0.025, power=0.8)
    out["ratio_paired_to_best_unpaired"] = n_paired / out["unpaired_share_0.5"]["studies"]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=500)
    parser.add_argument("--share", type=float, default=0.1)
    parser.add_argument("--daily", type=float, default=100.0, help="read studies a day")
    parser.add_argument("--split", default="final_eval", choices=("final_eval", "test"))
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    design = GuardDesign()
    source = Source(load_confusion(args.split))
    rng = np.random.default_rng(args.seed)
    guard = guard_section(source, design, share=args.share, daily=args.daily, runs=args.runs, rng=rng)
    paired = paired_section(source, share=args.share, runs=args.runs, drop=design.drop, seed=args.seed)
    result = {"split": args.split, "production_agreement": source.accuracy, "design": design.__dict__,
              "share": args.share, "daily": args.daily, "runs": args.runs, "guard": guard, "paired": paired,
              "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs"}
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"source: starter model, `{args.split}` confusion matrix; production agreement {source.accuracy:.3f}; "
          f"canary share {args.share:.0%}, {args.daily:g} read studies/day; {args.runs} runs each; "
          f"alpha {design.alpha}, power {design.power} at a {design.drop:.0%} drop, "
          f">= {design.min_reads} reads per arm; guard evaluated after every read\n")
    page = next(iter(guard.values()))["page_studies"]
    print(f"the page states: a {design.drop:.0%} drop is rolled back with probability {design.power} within "
          f"{page:.0f} studies ({page / args.daily:.1f} days)\n")
    print("| canary | rolled back (ever) | predicted | rolled back within the page's studies | "
          "own 80 % point: predicted studies / rolled back within | "
          "mean studies to a decision (sim / predicted) | undecided at horizon |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for row in guard.values():
        name = "equal" if row["drop"] == 0 else f"{row['drop'] * 100:.0f} points worse"
        within = row.get("rolled_back_within_predicted")
        pred = row["predicted_studies_for_power"]
        print(f"| {name} | {row['rolled_back']:.1%} | {row['predicted_p_rollback']:.1%} | "
              f"{row['rolled_back_within_page_studies']:.1%} | "
              f"{f'{pred:.0f} / {within:.1%}' if pred else '–'} | "
              f"{row['mean_studies_to_decision']:.0f} / {row['predicted_expected_studies']:.0f} | "
              f"{row['undecided']:.1%} of {row['horizon_studies']} |")
    print("\n| design (80 % power, 10-point drop, two-sided 5 %) | studies (simulated) | power reached | "
          "studies (normal approximation) |")
    print("|---|---:|---:|---:|")
    print(f"| shadow, paired (McNemar) | {paired['paired']['studies']} | {paired['paired']['power']:.1%} | "
          f"{paired['paired']['analytic']:.0f} |")
    for key, row in paired.items():
        if key.startswith("unpaired"):
            print(f"| canary, unpaired (Newcombe) at {float(key.rsplit('_', 1)[1]):.0%} | {row['studies']} | "
                  f"{row['power']:.1%} | {row['analytic']:.0f} |")
    print(f"\npaired / best unpaired: {paired['ratio_paired_to_best_unpaired']:.2f}")
    print(f"machine: {result['machine']}")


if __name__ == "__main__":
    main()
