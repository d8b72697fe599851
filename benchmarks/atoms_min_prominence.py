"""The stricter image check ``min_prominence`` on the benchmark's synthetic groups, on
seeds apart from the test images: pooled F1 per group (HRTEM split by the columns'
contrast) for a few values, with every other option at the card's setting.

The network runs once per image (with find_atoms' second look, as find_atoms would);
only the post-processing changes between columns. Images, truth and scoring come from
``benchmarks/atoms.py``.

    OMP_NUM_THREADS=2 python benchmarks/atoms_min_prominence.py                # tuning seeds
    OMP_NUM_THREADS=2 python benchmarks/atoms_min_prominence.py --offset 20000 --n 10
    OMP_NUM_THREADS=2 python benchmarks/atoms_min_prominence.py --offset 30000 --n 30 --groups hrtem
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import atoms as bench  # benchmarks/atoms.py: cases and scoring


def main(argv=None) -> int:
    from napari_atomseg.atoms.find import heatmap_to_atoms

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--values", type=float, nargs="+", default=[0.0, 0.1, 0.2, 0.3, 0.4])
    bench.add_seed_set_arguments(parser)
    args = bench.parse_seed_set(parser, argv)
    warnings.simplefilter("ignore")  # ResultWarnings of unsolved images

    rows: dict[str, list] = {}
    for group in args.groups:
        for c in bench.synthetic_cases(group, args.n, args.offset):
            _, (heat, _) = bench.first_and_second_look(c, args.model, args.threads)
            key = f"hrtem ({c.contrast} columns)" if group == "hrtem" else group
            rows.setdefault(key, []).append((c, heat))
    print("| group | images | " + " | ".join(f"min_prominence {v}" for v in args.values) + " |")
    print("|---|---|" + "---|" * len(args.values))
    for key, items in rows.items():
        cases = [c for c, _ in items]
        f1 = []
        for v in args.values:
            preds = [
                heatmap_to_atoms(h, contrast=c.contrast, min_prominence=v)[
                    ["y_px", "x_px"]
                ].to_numpy(float)
                for c, h in items
            ]
            f1.append(bench.score(preds, cases)["f1"])
        print(f"| {key} | {len(cases)} | " + " | ".join(f"{x:.4f}" for x in f1) + " |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
