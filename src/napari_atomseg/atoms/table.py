"""The atom finder's output table: one row per column, settings in ``attrs``."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .positions import Refined
from .spacing import nearest_neighbour_distances_px


def atoms_table(
    refined: Refined, confidence: np.ndarray, pixel_size_nm: float | None, refine: str
) -> pd.DataFrame:
    """``y_px, x_px[, y_nm, x_nm], confidence, intensity, nn_spacing_px[, _nm]`` (+ the
    Gaussian fit's ``sigma_px[, sigma_nm], refined``), one row per column."""
    ps = pixel_size_nm
    final = refined.positions_px
    df = pd.DataFrame({"y_px": final[:, 0], "x_px": final[:, 1]})
    if ps is not None:
        df["y_nm"] = final[:, 0] * ps
        df["x_nm"] = final[:, 1] * ps
    df["confidence"] = confidence.astype(np.float32)
    df["intensity"] = refined.intensity
    nn = nearest_neighbour_distances_px(final)
    df["nn_spacing_px"] = nn
    if ps is not None:
        df["nn_spacing_nm"] = nn * ps
    if refine == "gaussian":
        df["sigma_px"] = refined.sigma_px
        if ps is not None:
            df["sigma_nm"] = refined.sigma_px * ps
        df["refined"] = refined.ok
    return df


def median_spacing_px(table: pd.DataFrame) -> float | None:
    """The median nearest-neighbour distance of the table's columns, px (None if none)."""
    nn = table["nn_spacing_px"].to_numpy()
    finite = np.isfinite(nn)
    return float(np.median(nn[finite])) if finite.any() else None
