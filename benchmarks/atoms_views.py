"""Test-time augmentation (``views=``) on the benchmark's synthetic groups, on seeds apart
from the test images: pooled F1 and RMS error per group for each number of views, every
other option at the card's setting (find_atoms with its second look, told the contrast
and the imaging mode, as benchmarks/atoms.py runs it), and the time per image.

Images, truth and scoring come from ``benchmarks/atoms.py``.

    OMP_NUM_THREADS=2 python benchmarks/atoms_views.py                        # tuning seeds
    OMP_NUM_THREADS=2 python benchmarks/atoms_views.py --offset 20000 --n 10  # development
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import atoms as bench  # benchmarks/atoms.py: cases and scoring


def main(argv=None) -> int:
    import torch

    from napari_atomseg.atoms.find import find_atoms
    from napari_atomseg.atoms.options import VIEWS_CHOICES

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--views", type=int, nargs="+", default=list(VIEWS_CHOICES))
    bench.add_seed_set_arguments(parser)
    args = bench.parse_seed_set(parser, argv)
    warnings.simplefilter("ignore")  # ResultWarnings of unsolved images
    torch.set_num_threads(args.threads)

    print(
        "| group | images | "
        + " | ".join(f"views {v}: F1 / RMS (pm) / s per image" for v in args.views)
        + " |"
    )
    print("|---|---|" + "---|" * len(args.views))
    pooled: dict[int, tuple[list, list]] = {v: ([], []) for v in args.views}
    for group in args.groups:
        cases = bench.synthetic_cases(group, args.n, args.offset)
        cells = []
        for v in args.views:
            t0 = time.perf_counter()
            preds = [
                find_atoms(
                    c.image,
                    c.pixel_size_nm,
                    model=args.model,
                    threads=args.threads,
                    contrast=c.contrast,
                    imaging=c.imaging,
                    views=v,
                )[["y_px", "x_px"]].to_numpy(float)
                for c in cases
            ]
            dt = (time.perf_counter() - t0) / len(cases)
            s = bench.score(preds, cases)
            pooled[v][0].extend(preds)
            pooled[v][1].extend(cases)
            cells.append(f"{s['f1']:.4f} / {s['rms_pm']:.1f} / {dt:.2f}")
        print(f"| {group} | {len(cases)} | " + " | ".join(cells) + " |", flush=True)
    cells = []
    for v in args.views:
        s = bench.score(*pooled[v])
        cells.append(f"{s['f1']:.4f} / {s['rms_pm']:.1f} /")
    print(f"| pooled | {len(pooled[args.views[0]][1])} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
