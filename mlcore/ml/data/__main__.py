"""Command line for building and inspecting dataset versions (no Django needed).

    python -m mlcore.ml.data build DEST [--plain DIR] [--covid19-radiography DIR] [--tb-cxr DIR]
                                        [--kermany-oct DIR] [--seed 42] [--max-side 512]
    python -m mlcore.ml.data synthetic DEST [--per-class 40] [--size 128] [--seed 0]
    python -m mlcore.ml.data report DEST [--json]

DEST is a store URI: a path, ``file:///path`` or ``s3://bucket/prefix``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from mlcore.ml.data.build import build_dataset
from mlcore.ml.data.importers import (
    scan_covid19_radiography,
    scan_kermany_oct,
    scan_plain_tree,
    scan_tb_cxr,
)
from mlcore.ml.data.report import SplitReport
from mlcore.ml.data.store import open_store
from mlcore.ml.data.synthetic import make_synthetic_dataset

SCANNERS = {
    "plain": scan_plain_tree,
    "covid19_radiography": scan_covid19_radiography,
    "tb_cxr": scan_tb_cxr,
    "kermany_oct": scan_kermany_oct,
}


def _print(report: SplitReport, as_json: bool, elapsed: float | None = None) -> None:
    if as_json:
        print(json.dumps(report.to_dict(), indent=1))
    else:
        print(report.to_markdown(), end="")
    if elapsed is not None:
        print(f"\nelapsed: {elapsed:.1f} s", file=sys.stderr)


def _progress(stage: str, done: int, total: int) -> None:
    if done == total or done % 250 == 0:
        print(f"{stage}: {done}/{total}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m mlcore.ml.data", description=__doc__.split("\n")[0]
    )
    sub = parser.add_subparsers(dest="command", required=True)
    build = sub.add_parser("build", help="import public layouts into an empty store")
    build.add_argument("dest")
    for name in SCANNERS:
        build.add_argument(
            f"--{name.replace('_', '-')}", action="append", default=[], metavar="DIR"
        )
    build.add_argument("--seed", type=int, default=42)
    build.add_argument("--max-side", type=int, default=512)
    build.add_argument("--near-dup-hamming", type=int, default=12)
    synth = sub.add_parser("synthetic", help="write a phantom data set (demos and tests only)")
    synth.add_argument("dest")
    synth.add_argument("--per-class", type=int, default=40)
    synth.add_argument("--size", type=int, default=128)
    synth.add_argument("--seed", type=int, default=0)
    report = sub.add_parser("report", help="print the split report of a store")
    report.add_argument("dest")
    for p in (build, synth, report):
        p.add_argument("--json", action="store_true", help="JSON instead of Markdown")
    args = parser.parse_args(argv)

    store = open_store(args.dest)
    started = time.perf_counter()
    if args.command == "build":
        candidates = []
        for name, scan in SCANNERS.items():
            for root in getattr(args, name):
                candidates += scan(root)
        if not candidates:
            parser.error("name at least one source: --plain, --covid19-radiography, --tb-cxr, ...")
        result = build_dataset(
            candidates,
            store,
            seed=args.seed,
            max_side=args.max_side,
            near_dup_hamming=None if args.near_dup_hamming < 0 else args.near_dup_hamming,
            progress=_progress,
        )
    elif args.command == "synthetic":
        result = make_synthetic_dataset(
            store, per_class=args.per_class, size=args.size, seed=args.seed
        )
    else:
        result = store.split_report()
    _print(result, args.json, time.perf_counter() - started)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
