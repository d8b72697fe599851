"""The noise-adapted threshold (card ``postprocess.threshold_noisy`` / ``noise_ramp``),
chosen on synthetic images apart from the test images.

The network runs once per image (find_atoms' path: told the contrast and the imaging
mode, with its second look); then every setting re-runs only the post-processing, with
the setting written into the card's postprocess so that the library's own rule
(``detect.default_threshold``: noisy lattices, not HRTEM) picks each image's threshold.
Seed sets (``benchmarks/atoms.py`` makes the images and scores them):

- tuning: seeds 10000+, every group (``--n`` per group);
- development: seeds 20000+, every group;
- low dose A / B: seeds 30000+ and 40000+, HAADF low dose only (``--n-low-dose`` each),
  because 12 low-dose images per set were too few to choose by (docs/atoms.md);
- real Pt tuning: the two hand-labelled Pt images the benchmark tunes on (021, 025; when
  ``../shared/data`` is there), so that a rule chosen on synthetic images is seen on
  real faint single atoms too.

Prints pooled F1 per set for every setting, then the per-group F1 of the card's setting
against the fixed threshold.

    OMP_NUM_THREADS=2 python benchmarks/atoms_noise_threshold.py            # 240 images, ~4 min
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import atoms as bench  # benchmarks/atoms.py: cases and scoring

RAMPS = ((0.1, 0.2), (0.15, 0.25), (0.2, 0.3), (0.1, 0.3))
NOISY = (0.5, 0.55, 0.6, 0.65, 0.7)
LOW_DOSE = "haadf_low_dose"


def seed_sets(n: int, n_low: int) -> dict[str, list]:
    """name -> [(group, case)]"""
    sets: dict[str, list] = {}
    for name, offset in (("tuning", 10_000), ("development", 20_000)):
        sets[name] = [(g, c) for g in bench.GROUPS for c in bench.synthetic_cases(g, n, offset)]
    for name, offset in (("low dose A", 30_000), ("low dose B", 40_000)):
        sets[name] = [(LOW_DOSE, c) for c in bench.synthetic_cases(LOW_DOSE, n_low, offset)]
    if bench.PT_DIR.is_dir():
        # The real images the benchmark tunes on (never its nine Pt test images).
        sets["real Pt tuning"] = [("pt", c) for c in bench.pt_cases() if c.name in bench.PT_TUNE]
    return sets


def main(argv=None) -> int:
    import torch

    from napari_atomseg.atoms.find import heatmap_to_atoms
    from napari_atomseg.atoms.options import model_postprocess

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=12, help="images per group (tuning, development)")
    parser.add_argument("--n-low-dose", type=int, default=60, help="images per low-dose set")
    parser.add_argument("--model", default="default")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")  # ResultWarnings of unsolved images
    torch.set_num_threads(args.threads)
    pp = model_postprocess(args.model)
    base = float(pp.get("threshold", 0.5))

    t0 = time.perf_counter()
    sets = seed_sets(args.n, args.n_low_dose)
    heats = {
        name: [
            (g, c, bench.first_and_second_look(c, args.model, args.threads)[1][0]) for g, c in items
        ]
        for name, items in sets.items()
    }
    print(f"{sum(map(len, sets.values()))} images, network in {time.perf_counter() - t0:.0f} s")

    def columns(h, c, postprocess):
        # The library's own rule (detect.default_threshold): the setting goes into the
        # card's postprocess and find_atoms' post-processing picks each image's threshold.
        h.postprocess = postprocess
        return heatmap_to_atoms(h, contrast=c.contrast, imaging=c.imaging)[
            ["y_px", "x_px"]
        ].to_numpy(float)

    def run(noisy: float | None, ramp) -> dict[str, dict[str, list]]:
        """set -> group -> (preds, cases)"""
        card = {k: v for k, v in pp.items() if k not in ("threshold_noisy", "noise_ramp")}
        if noisy is not None:
            card.update(threshold_noisy=noisy, noise_ramp=list(ramp))
        out: dict[str, dict[str, tuple[list, list]]] = {}
        for name, items in heats.items():
            for g, c, h in items:
                preds, cases = out.setdefault(name, {}).setdefault(g, ([], []))
                preds.append(columns(h, c, card))
                cases.append(c)
        return out

    def pooled(groups: dict) -> float:
        preds = [p for ps, _ in groups.values() for p in ps]
        cases = [c for _, cs in groups.values() for c in cs]
        return bench.score(preds, cases)["f1"]

    names = list(heats)
    print("\n| threshold | " + " | ".join(names) + " | low dose, all sets |")
    print("|---|" + "---|" * (len(names) + 1))
    fixed = run(None, None)
    card = None
    settings = [(None, None)] + [(t, r) for r in RAMPS for t in NOISY]
    for noisy, ramp in settings:
        res = fixed if noisy is None else run(noisy, ramp)
        low = {f"{n}": res[n][LOW_DOSE] for n in names if LOW_DOSE in res[n]}
        label = f"{base} fixed" if noisy is None else f"{base} -> {noisy} over {ramp[0]}-{ramp[1]}"
        is_card = (
            noisy is not None
            and noisy == pp.get("threshold_noisy")
            and tuple(ramp) == tuple(pp.get("noise_ramp", ()))
        )
        if is_card:
            card = res
            label = f"**{label} (card)**"
        cells = [f"{pooled(res[n]):.4f}" for n in names] + [
            f"{bench.score([p for ps, _ in low.values() for p in ps], [c for _, cs in low.values() for c in cs])['f1']:.4f}"
        ]
        print(f"| {label} | " + " | ".join(cells) + " |", flush=True)

    if card is not None:
        print("\nPer group, F1 (fixed -> the card's setting):\n")
        groups = [*bench.GROUPS, *(["pt"] if any("pt" in fixed[n] for n in names) else [])]
        print("| set | " + " | ".join(groups) + " |")
        print("|---|" + "---|" * len(groups))
        for n in names:
            cells = []
            for g in groups:
                if g in fixed[n]:
                    a = bench.score(*fixed[n][g])["f1"]
                    b = bench.score(*card[n][g])["f1"]
                    cells.append(f"{a:.3f} -> {b:.3f}")
                else:
                    cells.append("")
            print(f"| {n} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
