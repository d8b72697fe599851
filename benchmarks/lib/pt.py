"""The real Pt single-atom images (Mitchell et al., JACS 2022): reading and folds.

``../shared/data/pt_single_atoms``: 11 hand-labelled HAADF-STEM images (isolated Pt atoms
on N-doped carbon, 0.0293 nm/px); ``coordinates/NNN_Results.csv`` are ImageJ Results
tables (X = column, Y = row, px).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from napari_atomseg.errors import InputError

REPO = Path(__file__).resolve().parents[2]
#: ../shared/data beside the checkout; NAPARI_ATOMSEG_SHARED_DATA overrides it.
SHARED_DATA = Path(os.environ.get("NAPARI_ATOMSEG_SHARED_DATA", REPO.parent / "shared" / "data"))
PT_DIR = SHARED_DATA / "pt_single_atoms"
PT_PIXEL_NM = 0.029296875
#: Images on which benchmarks/atoms.py tunes the baselines for the Pt rows.
PT_TUNE_KEYS = ("021", "025")


def read_pt_image(key: str, folder: Path = PT_DIR) -> tuple[np.ndarray, float, np.ndarray]:
    """(image, pixel size nm, hand positions (N, 2) row/col px) of Pt image ``key``."""
    from napari_atomseg.io import read_image

    images = sorted((folder / "images").glob(f"{key}_*.tif"))
    if not images:
        raise InputError(f"{folder}: no image {key}_*.tif")
    image, cal = read_image(images[0])
    import pandas as pd

    table = pd.read_csv(folder / "coordinates" / f"{key}_Results.csv")
    return image, float(cal.pixel_size_nm or PT_PIXEL_NM), table[["Y", "X"]].to_numpy(float)


def pt_image_keys(folder: Path = PT_DIR) -> tuple[str, ...]:
    """Sorted keys (``"021"``...) of the labelled images."""
    keys = sorted(
        f.name.split("_", 1)[0]
        for f in (folder / "images").glob("*_*.tif")
        if (folder / "coordinates" / f"{f.name.split('_', 1)[0]}_Results.csv").is_file()
    )
    if not keys:
        raise InputError(f"{folder}: no labelled images (images/NNN_*.tif + coordinates/)")
    return tuple(keys)


def cv_folds(keys: Sequence[str], n_folds: int) -> list[tuple[str, ...]]:
    """``keys`` in ``n_folds`` disjoint held-out groups (round robin over the sorted keys):
    every key is held out exactly once; the same keys always give the same folds."""
    keys = sorted(keys)
    if not 2 <= int(n_folds) <= len(keys):
        raise InputError(f"n_folds: {n_folds} must be within 2-{len(keys)} (number of images)")
    return [tuple(keys[i :: int(n_folds)]) for i in range(int(n_folds))]
