"""Out-of-scope rates of a model: in-scope real images wrongly flagged, and generated
non-medical images (photograph-like scenes, documents, noise, blank frames) rightly flagged.

    python benchmarks/out_of_scope.py [--file mlcore/starter/radviewer-starter.pt]
                                      [--store var/datasets/real-cxr] [--per-family 100]

Targets (issue 9): at most 3 % of in-scope real test images flagged; at least 95 % of the
non-medical images flagged. The probes come from ``mlcore.ml.evaluation.probes`` (seeded),
the same generator the model card's figures use.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    from mlcore.ml.bundle import ModelBundle
    from mlcore.ml.data import open_store
    from mlcore.ml.evaluation.probes import probe_images
    from mlcore.ml.evaluation.runner import bundle_outputs
    from mlcore.ml.predictor import Predictor

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--file", type=Path, default=ROOT / "mlcore" / "starter" / "radviewer-starter.pt")
    ap.add_argument("--store", default=str(ROOT / "var" / "datasets" / "real-cxr"))
    ap.add_argument("--per-family", type=int, default=100)
    ap.add_argument("--seed", type=int, default=1, help="probe seed (the model card uses 0)")
    args = ap.parse_args()

    bundle = ModelBundle.load_file(args.file)
    store = open_store(args.store)
    print(f"model {args.file.name}: {bundle.model_name} at {bundle.image_size} px\n")
    print("| images | n | flagged out of scope |\n|---|---:|---:|")
    for split in ("test", "final_eval"):
        if not store.rows(split):
            continue
        out, _ = bundle_outputs(bundle, store, split)
        flags, _, _ = bundle.ood.flag(out.embeddings, out.descriptors, out.input_std)
        print(f"| in scope: real-cxr `{split}` | {len(flags)} | {100 * flags.mean():.1f} % |")
    predictor = Predictor(bundle, version="bench", model_uri="local")
    by_family: dict[str, list[bool]] = {}
    for family, image in probe_images(args.per_family, seed=args.seed):
        [r] = predictor.predict([image], explain=False)
        by_family.setdefault(family, []).append(r.out_of_scope)
    total = [f for v in by_family.values() for f in v]
    for family, flags in by_family.items():
        print(f"| non-medical: {family} | {len(flags)} | {100 * sum(flags) / len(flags):.1f} % |")
    print(f"| **non-medical, all** | {len(total)} | **{100 * sum(total) / len(total):.1f} %** |")


if __name__ == "__main__":
    main()
