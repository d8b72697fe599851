"""Compare atom-finder networks on the benchmark's synthetic *tuning* images.

For choosing between trained candidates without touching the test images: each model's
heatmaps are computed once on the tuning images of ``benchmarks/atoms.py`` (6 per group,
the seeds its ``--calibrate`` and baseline tuning use), then the pooled and per-group F1
are printed for a few detection thresholds, with every other option at the library
default (image check on; positions from the heatmap peak, which does not change F1).
Every model gets the same fixed thresholds: a card's noise ramp (``threshold_noisy``) is
not applied, so networks compare as they did before it existed.

    OMP_NUM_THREADS=2 python benchmarks/atoms_tuning_sweep.py default \\
        runs/atoms_stage7b/atoms_stage7b.yaml runs/atoms_stage7c/atoms_stage7c.yaml
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import atoms as bench  # benchmarks/atoms.py: cases and scoring


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", help="shipped model names or card paths")
    parser.add_argument("--thresholds", type=float, nargs="+", default=[0.35, 0.4, 0.45, 0.5, 0.55])
    parser.add_argument("--n-tune", type=int, default=6, help="tuning images per group")
    parser.add_argument(
        "--offset",
        type=int,
        default=10_000,
        help="first seed index: 10000 = the benchmark's tuning images; another value away "
        "from 0 (the test images) gives a further development set, e.g. 20000",
    )
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)

    if args.offset < 1000:
        parser.error("--offset: seeds 0-999 hold the benchmark's test images")
    cases = {g: bench.synthetic_cases(g, args.n_tune, args.offset) for g in bench.GROUPS}
    every = [c for cs in cases.values() for c in cs]
    print("| model | threshold | pooled F1 | " + " | ".join(cases) + " |")
    print("|---|---|---|" + "---|" * len(cases))
    for model in args.models:
        heats = {g: bench.heatmaps(cs, model, args.threads) for g, cs in cases.items()}
        for t in args.thresholds:
            preds = {g: bench.columns_from(heats[g], cs, t, ramp=False) for g, cs in cases.items()}
            pooled = bench.score([p for g in cases for p in preds[g]], every)["f1"]
            groups = " | ".join(f"{bench.score(preds[g], cs)['f1']:.4f}" for g, cs in cases.items())
            print(f"| {Path(model).stem} | {t} | {pooled:.4f} | {groups} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
