"""Exact column tables for the lattice tests (positions built by hand, no simulator)."""

from __future__ import annotations

import numpy as np
import pandas as pd

A_NM = 0.3905
PS_NM = 0.02


def square_perovskite(n_cells: int = 24, oxygen: bool = False) -> pd.DataFrame:
    """Undeformed perovskite [001] columns (nm) around the origin, with brightness."""
    idx = np.arange(-n_cells // 2, n_cells // 2 + 1)
    ii, jj = np.meshgrid(idx, idx, indexing="ij")
    corners = np.column_stack([ii.ravel(), jj.ravel()]).astype(float)
    basis = [("Sr", (0.0, 0.0), 3.0), ("Ti", (0.5, 0.5), 2.0)]
    if oxygen:
        basis += [("O", (0.5, 0.0), 0.5), ("O", (0.0, 0.5), 0.5)]
    yx = np.concatenate([(corners + off) * A_NM for _, off, _ in basis])
    element = np.concatenate([np.full(len(corners), e) for e, _, _ in basis])
    bright = np.concatenate([np.full(len(corners), b) for _, _, b in basis])
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {
            "y_nm": yx[:, 0],
            "x_nm": yx[:, 1],
            "element": element,
            "intensity": bright + rng.normal(0, 0.05, len(bright)),
        }
    )


def to_table(cols: pd.DataFrame, y_nm: np.ndarray, x_nm: np.ndarray) -> pd.DataFrame:
    """Columns at (y_nm, x_nm) shifted into a positive pixel frame (PS_NM per px)."""
    out = cols.copy()
    out["y_nm"], out["x_nm"] = y_nm + 10.0, x_nm + 10.0
    out["y_px"], out["x_px"] = out["y_nm"] / PS_NM, out["x_nm"] / PS_NM
    return out[["y_px", "x_px", "y_nm", "x_nm", "element", "intensity"]]


def square_cell_nm() -> tuple[tuple[float, float], tuple[float, float]]:
    return ((0.0, A_NM), (A_NM, 0.0))
