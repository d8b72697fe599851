"""Scan distortion: the fast/slow-scan scale difference and non-orthogonality.

Drift during a STEM frame stretches and shears the image along the slow scan (y) while the
fast scan (x, one line in milliseconds) is left nearly true. Model: a true position
(y, x) is recorded at ``y_img = y / t_yy`` and ``x_img = x - t_xy y_img``; the correction
``T = [[t_yy, 0], [t_xy, 1]]`` (in (y, x) components) keeps x and fixes y. Given a
reference region of known symmetry (square, hexagonal, or a (ratio, angle) cell), T is
the one triangular matrix that makes the measured reference cell that shape: with the
metric ``T'T = c A^-T G A^-1`` (G the ideal cell's metric, c fixed by (T'T)_xx = 1).

Reported: ``slow_scan_scale`` (= 1/t_yy - 1; positive: lengths along y appear longer
than along x) and ``scan_shear_deg`` (= atan(-t_xy); positive: lower rows appear shifted
to larger x), and how strain varies along y against along x (drift that changes during
the frame makes strain bands along the slow scan).

That linear model cannot follow drift that changes during the frame, nor a fast scan that
is not linear: both make strain bands (along y, along x). :func:`scan_profiles` estimates
them as 1-D displacement profiles from the reference columns, assuming the crystal there
is unstrained -- any real strain that varies only along y (or x) in the reference region
is removed with them, so the reference region must be a region known to be perfect.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .cell import cell_summary
from .options import symmetry_parameters

#: "auto" takes square / hexagonal when the reference cell is within these of it.
AUTO_RATIO_TOLERANCE = 0.08
AUTO_ANGLE_TOLERANCE_DEG = 6.0
#: Strain profiles are compared over this many bands along y and along x.
PROFILE_BANDS = 8


def assumed_symmetry(cell: np.ndarray, symmetry: Any) -> tuple[str, tuple[float, float] | None]:
    """The symmetry to assume (name, (ratio, angle)) for the measured ``cell``."""
    params = symmetry_parameters(symmetry)
    summary = cell_summary(cell)
    ratio, angle = summary["b"] / summary["a"], summary["angle_deg"]
    if params == "auto":
        if abs(ratio - 1) < AUTO_RATIO_TOLERANCE:
            if abs(angle - 90) < AUTO_ANGLE_TOLERANCE_DEG:
                return "square", (1.0, 90.0)
            if min(abs(angle - 60), abs(angle - 120)) < AUTO_ANGLE_TOLERANCE_DEG:
                return "hexagonal", (1.0, 60.0 if angle < 90 else 120.0)
        return "none", None
    if params is None:
        return "none", None
    r, a = params
    # The same cell with b -> -b has the supplementary angle: take the one nearer.
    if abs(180 - a - angle) < abs(a - angle):
        a = 180 - a
    name = symmetry if isinstance(symmetry, str) else f"ratio {r:g}, angle {a:g} deg"
    return name, (r, a)


def correction_matrix(cell: np.ndarray, ratio: float, angle_deg: float) -> np.ndarray | None:
    """T (y, x) making ``T @ cell`` have |b|/|a| = ratio and angle a-b = angle_deg."""
    cos = np.cos(np.radians(angle_deg))
    metric = np.array([[1.0, ratio * cos], [ratio * cos, ratio**2]])
    inv = np.linalg.inv(cell)
    s = inv.T @ metric @ inv
    if not s[1, 1] > 0:
        return None
    s = s / s[1, 1]
    t_xy = s[0, 1]
    rest = s[0, 0] - t_xy**2
    if not rest > 0:
        return None
    return np.array([[np.sqrt(rest), 0.0], [t_xy, 1.0]])


def strain_profiles(positions_px: np.ndarray, strain: dict[str, np.ndarray]) -> dict[str, float]:
    """Spread of band means of strain_yy and strain_xy along y and along x."""
    out: dict[str, float] = {}
    for name in ("strain_yy", "strain_xy"):
        values = strain[name]
        ok = np.isfinite(values)
        if ok.sum() < 4 * PROFILE_BANDS:
            continue
        for axis, label in ((0, "along_y"), (1, "along_x")):
            coord = positions_px[ok, axis]
            edges = np.quantile(coord, np.linspace(0, 1, PROFILE_BANDS + 1))
            band = np.clip(np.searchsorted(edges, coord, side="right") - 1, 0, PROFILE_BANDS - 1)
            means = np.bincount(band, weights=values[ok], minlength=PROFILE_BANDS) / np.maximum(
                np.bincount(band, minlength=PROFILE_BANDS), 1
            )
            out[f"{name}_band_std_{label}"] = float(np.std(means))
    return out


def distortion_report(cell: np.ndarray, symmetry: Any) -> dict[str, Any]:
    """What the reference cell says about scan distortion (see the module docstring)."""
    name, params = assumed_symmetry(cell, symmetry)
    summary = cell_summary(cell)
    report: dict[str, Any] = {
        "symmetry": name,
        "cell_ratio": summary["b"] / summary["a"],
        "cell_angle_deg": summary["angle_deg"],
    }
    if params is None:
        report["note"] = (
            "no known symmetry for the reference cell: scan distortion cannot be told from "
            "a real cell shape (give reference_symmetry)"
        )
        return report
    t = correction_matrix(cell, *params)
    if t is None:
        report["note"] = "the reference cell cannot be made that shape by a scan correction"
        return report
    scale = 1.0 / t[0, 0] - 1.0
    shear = float(np.degrees(np.arctan(-t[1, 0])))
    report.update(
        {
            "slow_scan_scale": float(scale),
            "scan_shear_deg": shear,
            "distortion_level": float(max(abs(scale), abs(np.tan(np.radians(shear))))),
            "correction": t.tolist(),
        }
    )
    return report


@dataclass(frozen=True)
class ScanProfiles:
    """Non-linear scan distortion as 1-D displacement profiles (px) of the image coordinates:
    ``dy_of_y`` (slow-scan drift along y), ``dx_of_y`` (slow-scan drift along x: a shear
    that changes through the frame), ``dx_of_x`` (fast-scan non-linearity) and ``dy_of_x``
    (a fast scan that is not a straight line), sampled at ``y_grid`` / ``x_grid`` and
    linearly interpolated (constant beyond the ends)."""

    y_grid: np.ndarray
    dy_of_y: np.ndarray
    dx_of_y: np.ndarray
    x_grid: np.ndarray
    dx_of_x: np.ndarray
    dy_of_x: np.ndarray

    def correct(self, positions_px: np.ndarray) -> np.ndarray:
        """``(n, 2)`` (row, col) positions with the profiles' displacements removed (a copy)."""
        y, x = positions_px[:, 0], positions_px[:, 1]
        out = positions_px.copy()
        out[:, 0] = (
            y - np.interp(y, self.y_grid, self.dy_of_y) - np.interp(x, self.x_grid, self.dy_of_x)
        )
        out[:, 1] = (
            x - np.interp(y, self.y_grid, self.dx_of_y) - np.interp(x, self.x_grid, self.dx_of_x)
        )
        return out

    def plus(self, other: ScanProfiles) -> ScanProfiles:
        """The two corrections applied one after the other (to first order)."""
        yg, xg = other.y_grid, other.x_grid
        return ScanProfiles(
            yg,
            np.interp(yg, self.y_grid, self.dy_of_y) + other.dy_of_y,
            np.interp(yg, self.y_grid, self.dx_of_y) + other.dx_of_y,
            xg,
            np.interp(xg, self.x_grid, self.dx_of_x) + other.dx_of_x,
            np.interp(xg, self.x_grid, self.dy_of_x) + other.dy_of_x,
        )

    def summary(self, length_scale: float = 1.0) -> dict[str, float]:
        """Peak-to-peak of each profile (times ``length_scale``)."""
        return {
            "slow_scan_y_ptp": float(np.ptp(self.dy_of_y) * length_scale),
            "slow_scan_x_ptp": float(np.ptp(self.dx_of_y) * length_scale),
            "fast_scan_x_ptp": float(np.ptp(self.dx_of_x) * length_scale),
            "fast_scan_y_ptp": float(np.ptp(self.dy_of_x) * length_scale),
        }


def _binned_mean(coord: np.ndarray, values: np.ndarray, width: float):
    """Means of ``values`` in bins of ``width`` along ``coord`` (bins with >= 3 values)."""
    edges = np.arange(coord.min(), coord.max() + width, width)
    idx = np.clip(np.searchsorted(edges, coord, side="right") - 1, 0, len(edges) - 1)
    count = np.bincount(idx, minlength=len(edges))
    total = np.bincount(idx, weights=values, minlength=len(edges))
    centre = np.bincount(idx, weights=coord, minlength=len(edges))
    keep = count >= 3
    return centre[keep] / count[keep], total[keep] / count[keep]


def scan_profiles(
    positions_px: np.ndarray, q: np.ndarray, cell: np.ndarray, iterations: int = 2
) -> ScanProfiles | None:
    """Profiles making reference columns ``positions_px`` (ideal coordinates ``q``) sit on
    the lattice ``cell`` (already of the known symmetry), assuming the crystal there is
    unstrained: the residuals from the best-placed lattice, averaged in bands of half a
    cell along y (slow scan) and then along x (fast scan)."""
    if len(positions_px) < 12:
        return None
    width = 0.5 * float(np.linalg.norm(cell, axis=0).min())
    ideal_rel = q @ cell.T
    y, x = positions_px[:, 0], positions_px[:, 1]
    pos = positions_px.copy()
    total = None
    for _ in range(iterations):
        resid = pos - ideal_rel
        resid -= np.median(resid, axis=0)
        y_grid, dy = _binned_mean(y, resid[:, 0], width)
        _, dxy = _binned_mean(y, resid[:, 1], width)
        if len(y_grid) < 2:
            return None
        # What the slow-scan profiles leave, as functions of the fast-scan coordinate.
        x_grid, dxx = _binned_mean(x, resid[:, 1] - np.interp(y, y_grid, dxy), width)
        _, dyx = _binned_mean(x, resid[:, 0] - np.interp(y, y_grid, dy), width)
        if len(x_grid) < 2:
            return None
        step = ScanProfiles(y_grid, dy, dxy, x_grid, dxx, dyx)
        total = step if total is None else total.plus(step)
        pos = total.correct(positions_px)
    return total
