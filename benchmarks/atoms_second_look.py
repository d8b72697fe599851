"""The second look of find_atoms (``detect.iter_second_look``) on synthetic HRTEM images
that are not the benchmark's test images: F1 per image where it changed anything, and
pooled, with and without it.

"Without" is the network's first answer post-processed with the card's settings
(``predict_heatmap`` + ``heatmap_to_atoms``); "with" is what ``find_atoms`` returns after
its second look (``benchmarks/atoms.py: first_and_second_look``), both told the columns' contrast as ``benchmarks/atoms.py`` tells them.
Scoring, truth and the images come from ``benchmarks/atoms.py``'s HRTEM group.

    OMP_NUM_THREADS=2 python benchmarks/atoms_second_look.py            # the three sets below
    python benchmarks/atoms_second_look.py --sets 30000:30

Default sets (first seed index:images): 10000:10 (the tuning images' seeds), 20000:10
(development), 30000:30 (a further development set). Seeds 0-999 are the test images and
are refused.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import atoms as bench  # benchmarks/atoms.py: cases and scoring


def main(argv=None) -> int:
    from napari_atomseg.atoms.metrics import point_metrics

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", nargs="+", default=["10000:10", "20000:10", "30000:30"])
    parser.add_argument("--model", default="default")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")  # the ResultWarnings of the unsolved images

    print("| set | image | contrast | F1 without | F1 with | second look |")
    print("|---|---|---|---|---|---|")
    pooled = []
    for spec in args.sets:
        offset, n = (int(x) for x in spec.split(":"))
        if offset < 1000:
            parser.error("--sets: seeds 0-999 hold the benchmark's test images")
        cases = bench.synthetic_cases("hrtem", n, offset)
        totals = {"without": [0, 0, 0], "with": [0, 0, 0]}
        for c in cases:
            (_, first), (_, final) = bench.first_and_second_look(c, args.model, args.threads)
            f1 = {}
            for key, df in (("without", first), ("with", final)):
                pred = bench._drop_ignored(df[["y_px", "x_px"]].to_numpy(float), c)
                m = point_metrics(
                    pred, c.truth_px, radius_nm=c.radius_nm, pixel_size_nm=c.pixel_size_nm
                )
                t = totals[key]
                t[0], t[1], t[2] = (
                    t[0] + m.true_positives,
                    t[1] + m.false_positives,
                    t[2] + m.false_negatives,
                )
                f1[key] = m.f1
            look = final.attrs.get("second_look", "")
            if look:
                print(
                    f"| {offset} | {c.name} | {c.contrast} | {f1['without']:.3f} | "
                    f"{f1['with']:.3f} | {look.split(':')[0]} |",
                    flush=True,
                )
        scores = {k: 2 * tp / (2 * tp + fp + fn) for k, (tp, fp, fn) in totals.items()}
        pooled.append((spec, len(cases), scores))
    print("\n| set | images | pooled F1 without | pooled F1 with |")
    print("|---|---|---|---|")
    for spec, n, scores in pooled:
        print(f"| {spec} | {n} | {scores['without']:.4f} | {scores['with']:.4f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
