"""Particles at low magnification (1.25 nm/px), where atoms are skipped: what segments them.

Usage::

    OMP_NUM_THREADS=1 python benchmarks/particles_overview.py [--seeds 1 2 3 4 5]

Scenes: HAADF images of 8 nm Au particles (12 per field) on 5 nm of amorphous carbon,
simulated at 0.25 nm/px over a 200 nm field (the simulator's limits) and binned 5 x 5 to
1.25 nm/px -- how a detector at lower magnification integrates the same specimen; the
true particle mask is binned the same way (a coarse pixel is particle when at least half
of it was). Dose 200 e/A^2 before binning. Seeds never used for anything else.

Methods, all run on the same images:

- ``intensity`` -- :mod:`napari_atomseg.segmentation.intensity` (what the main job uses here);
- ``otsu`` -- the naive baseline: Otsu's threshold of the raw image, nothing else;
- ``bragg particles`` -- the Bragg filter (lattice fringes; none are resolved here);
- ``unet particles`` -- the shipped particle U-Net (its card stops at 0.4 nm/px: refused).

Scores: Dice of the particle mask; particles found / true, matched when centroids are
within 3 px; median equivalent diameter found vs true (nm).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from scipy import ndimage

PS_NM = 1.25
BIN = 5


def scene(seed: int) -> tuple[np.ndarray, np.ndarray]:
    from napari_atomseg.simulation import SimulationParameters, simulate

    params = SimulationParameters(
        material="Au", mode="haadf", scene="particles", particle_diameter_nm=8.0,
        n_particles=12, shape_px=(800, 800), pixel_size_nm=PS_NM / BIN,
        support_thickness_nm=5.0, dose_e_per_A2=200.0, seed=seed,
    )  # fmt: skip
    result = simulate(params)
    n = 800 // BIN
    image = result.image.reshape(n, BIN, n, BIN).sum(axis=(1, 3)).astype(np.float32)
    mask = result.masks["particle"].reshape(n, BIN, n, BIN).mean(axis=(1, 3)) >= 0.5
    return image, mask


def objects(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Centroids (N, 2) px and equivalent diameters (N,) nm of the mask's regions."""
    labels, n = ndimage.label(mask)
    if n == 0:
        return np.zeros((0, 2)), np.zeros(0)
    ids = np.arange(1, n + 1)
    centres = np.asarray(ndimage.center_of_mass(mask, labels, ids))
    areas = ndimage.sum_labels(mask, labels, ids)
    return centres, 2 * np.sqrt(areas / np.pi) * PS_NM


def score(found: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    dice = 2 * np.logical_and(found, truth).sum() / max(1, found.sum() + truth.sum())
    c_found, d_found = objects(found)
    c_true, d_true = objects(truth)
    matched = 0
    if len(c_found) and len(c_true):
        distance = np.linalg.norm(c_true[:, None] - c_found[None], axis=-1)
        matched = int((distance.min(axis=1) <= 3.0).sum())
    return {
        "dice": float(dice),
        "found": len(c_found),
        "true": len(c_true),
        "matched": matched,
        "diameter_found_nm": float(np.median(d_found)) if len(d_found) else float("nan"),
        "diameter_true_nm": float(np.median(d_true)) if len(d_true) else float("nan"),
    }


def methods(image: np.ndarray) -> dict[str, np.ndarray | str]:
    from skimage.filters import threshold_otsu

    from napari_atomseg._progress import drain
    from napari_atomseg.errors import AtomsegError
    from napari_atomseg.segmentation import segment
    from napari_atomseg.segmentation.intensity import iter_particles_by_intensity

    out: dict[str, np.ndarray | str] = {}
    out["intensity"] = drain(iter_particles_by_intensity(image, PS_NM)).labels == 1
    out["otsu"] = image > threshold_otsu(image)
    for name, method in (("bragg particles", "bragg"), ("unet particles", "unet")):
        try:
            out[name] = segment(image, PS_NM, task="particles", method=method).labels == 1
        except AtomsegError as exc:
            out[name] = f"refused: {exc}"
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4, 5])
    args = parser.parse_args()
    rows: dict[str, list[dict[str, float]]] = {}
    notes: dict[str, str] = {}
    for seed in args.seeds:
        t0 = time.perf_counter()
        image, truth = scene(seed)
        print(f"seed {seed}: simulated in {time.perf_counter() - t0:.1f} s", flush=True)
        for name, found in methods(image).items():
            if isinstance(found, str):
                notes[name] = found
                continue
            rows.setdefault(name, []).append(score(found, truth))
    print(f"\n{len(args.seeds)} images, 1.25 nm/px, 12 Au particles of 8 nm each")
    print(
        "| method | Dice mean (min) | particles matched / true | found | diameter found / true nm |"
    )
    print("|---|---|---|---|---|")
    for name, scores in rows.items():
        dice = [s["dice"] for s in scores]
        matched = sum(s["matched"] for s in scores)
        true = sum(s["true"] for s in scores)
        found = sum(s["found"] for s in scores)
        d_found = np.nanmedian([s["diameter_found_nm"] for s in scores])
        d_true = np.nanmedian([s["diameter_true_nm"] for s in scores])
        print(
            f"| {name} | {np.mean(dice):.3f} ({np.min(dice):.3f}) | {matched} / {true} | "
            f"{found} | {d_found:.1f} / {d_true:.1f} |"
        )
    for name, note in notes.items():
        print(f"| {name} | {note[:110]} | | | |")


if __name__ == "__main__":
    main()
