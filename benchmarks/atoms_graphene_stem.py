"""Graphene in HAADF-STEM: single light atoms, from barely visible to clear, against blob_log.

Issue 18 asks F1 >= 0.95 on a real graphene STEM image (against a peer model's positions);
no such labelled image is here, so this is the project simulator's stand-in: monolayer
graphene, HAADF, 512^2 at 0.01 and 0.02 nm/px, rotated, at doses from where the
simulator calls the carbon columns invisible (3e4 e/A^2: a signal-to-noise ratio near 1
per column) to clear (1e6). Truth: every carbon column at least 8 px from the border
(visible or not), matched one to one within 0.07 nm (half the C-C distance). The finder
runs with its defaults, with and without the pixel size; ``blob_log`` at the column scale
(the benchmarks' baseline, ``lib.baselines``, sigma 0.05 nm), its threshold chosen per dose
and sampling on another seed (its best setting, which a user would not know).

    OMP_NUM_THREADS=2 python benchmarks/atoms_graphene_stem.py [--json runs/graphene_stem.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

import numpy as np
from lib.baselines import normalise_01, run_blob_log

from napari_atomseg.atoms.metrics import point_metrics

DOSES_E_PER_A2 = (3e4, 1e5, 3e5, 1e6)
PIXEL_SIZES_NM = (0.01, 0.02)
SEEDS = (1, 2)
TUNE_SEED = 101
SHAPE = (512, 512)
BORDER_PX = 8
MATCH_NM = 0.07
BLOB_THRESHOLDS = (0.005, 0.01, 0.015, 0.02, 0.03, 0.05, 0.08)
#: The column scale blob_log searches around (a light atom imaged by the probe).
BLOB_SIGMA_NM = 0.05


def image_and_truth(dose: float, px: float, seed: int) -> tuple[np.ndarray, np.ndarray, float]:
    from napari_atomseg.simulation import SimulationParameters, simulate

    sim = simulate(SimulationParameters(
        material="graphene", mode="haadf", shape_px=SHAPE, pixel_size_nm=px,
        dose_e_per_A2=dose, seed=seed, rotation_deg=(7.0 * seed) % 60.0,
    ))  # fmt: skip
    c = sim.columns
    inner = (c.y_px >= BORDER_PX) & (c.x_px >= BORDER_PX)
    inner &= (c.y_px < SHAPE[0] - BORDER_PX) & (c.x_px < SHAPE[1] - BORDER_PX)
    c = c[inner]
    return (
        np.asarray(sim.image, np.float32),
        c[["y_px", "x_px"]].to_numpy(),
        float(c.visible.mean()),
    )


def inner(points: np.ndarray) -> np.ndarray:
    keep = (points[:, 0] >= BORDER_PX) & (points[:, 1] >= BORDER_PX)
    keep &= (points[:, 0] < SHAPE[0] - BORDER_PX) & (points[:, 1] < SHAPE[1] - BORDER_PX)
    return points[keep]


def blobs(image: np.ndarray, px: float, threshold: float) -> np.ndarray:
    return inner(run_blob_log(normalise_01(image), px, BLOB_SIGMA_NM, threshold))


def score(points: np.ndarray, truth: np.ndarray, px: float) -> dict[str, float]:
    m = point_metrics(points, truth, radius_nm=MATCH_NM, pixel_size_nm=px)
    return {"precision": m.precision, "recall": m.recall, "f1": m.f1}


def best_blob_threshold(dose: float, px: float) -> float:
    image, truth, _ = image_and_truth(dose, px, TUNE_SEED)
    return max(BLOB_THRESHOLDS, key=lambda t: score(blobs(image, px, t), truth, px)["f1"])


def main(argv: list[str] | None = None) -> int:
    from napari_atomseg import find_atoms

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="default")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    rows = []
    print("| dose (e/A^2) | nm/px | seed | visible | finder P / R / F1 | no pixel size: F1 (est. nm/px) | blob_log P / R / F1 (threshold) |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    for dose in DOSES_E_PER_A2:
        for px in PIXEL_SIZES_NM:
            threshold = best_blob_threshold(dose, px)
            for seed in SEEDS:
                image, truth, visible = image_and_truth(dose, px, seed)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    told = find_atoms(image, px, args.model, imaging="stem", contrast="bright")
                    free = find_atoms(image, None, args.model, imaging="stem", contrast="bright")
                row = {
                    "dose": dose, "pixel_size_nm": px, "seed": seed, "visible": visible,
                    "finder": score(inner(told[["y_px", "x_px"]].to_numpy()), truth, px),
                    "no_pixel_size": score(inner(free[["y_px", "x_px"]].to_numpy()), truth, px),
                    "estimated_nm": float(free.attrs["pixel_size_nm"]),
                    "blob_log": score(blobs(image, px, threshold), truth, px),
                    "blob_threshold": threshold,
                }  # fmt: skip
                rows.append(row)
                f, n, b = row["finder"], row["no_pixel_size"], row["blob_log"]
                print(f"| {dose:g} | {px} | {seed} | {visible:.2f} | {f['precision']:.3f} / {f['recall']:.3f} / **{f['f1']:.3f}** "
                      f"| {n['f1']:.3f} ({row['estimated_nm']:.4f}) | {b['precision']:.3f} / {b['recall']:.3f} / {b['f1']:.3f} ({threshold}) |", flush=True)  # fmt: skip
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
