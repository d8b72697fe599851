"""One summary figure of a lattice analysis (matplotlib, off-screen): for the CLI and docs.

Panels: the image with the columns coloured by sublattice; maps of strain_xx, strain_yy,
strain_xy and rotation (diverging colours centred on zero); the displacements as arrows
(scaled for visibility, the scale written on the panel); the intensity histogram per
sublattice. Nothing here imports Qt: the Agg backend draws into a file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .maps import LatticeMaps, symmetric_limits

SUBLATTICE_COLOURS = ("#e41a1c", "#00bfff", "#ffd700", "#32cd32", "#ff69b4", "#ffa500")


def sublattice_colour(index: int) -> str:
    """Colour of a sublattice (-1, unassigned, is grey)."""
    return "#9e9e9e" if index < 0 else SUBLATTICE_COLOURS[index % len(SUBLATTICE_COLOURS)]


def arrow_scale(
    displacement_px: np.ndarray, spacing_px: float, sublattice: np.ndarray | None = None
) -> float:
    """Factor drawing the median displacement of the most displaced sublattice as a third
    of the column spacing (a round number: 1, 2, 5 x a power of ten), so typical arrows
    are visible and the largest few cross at most about a cell."""
    mags = np.hypot(displacement_px[:, 0], displacement_px[:, 1])
    if sublattice is not None:
        medians = {
            m: np.nanmedian(mags[sublattice == m])
            for m in np.unique(sublattice)
            if np.isfinite(mags[sublattice == m]).any()
        }
        if medians:
            most = max(medians, key=lambda m: medians[m])
            mags = mags[sublattice == most]
    mags = mags[np.isfinite(mags)]
    typical = float(np.median(mags)) if mags.size else 0.0
    if not typical > 0:
        return 1.0
    raw = spacing_px / 3 / typical
    power = 10 ** np.floor(np.log10(raw))
    return float(max(1.0, power * max(m for m in (1, 2, 5) if m * power <= raw)))


def _displacements_px(table: pd.DataFrame) -> tuple[np.ndarray, str, float]:
    """Displacements in px, their unit and pm (or px) per px."""
    ps = table.attrs.get("pixel_size_nm")
    if "displacement_x_pm" in table and ps:
        d = table[["displacement_y_pm", "displacement_x_pm"]].to_numpy(np.float64)
        return d / (1000.0 * ps), "pm", 1000.0 * ps
    if "displacement_x_px" in table:
        return table[["displacement_y_px", "displacement_x_px"]].to_numpy(np.float64), "px", 1.0
    return np.full((len(table), 2), np.nan), "px", 1.0


def save_figure(
    path: str | Path, table: pd.DataFrame, image: Any, maps: LatticeMaps, title: str = ""
) -> Path:
    """Write the summary figure of ``table`` (an :func:`analyse_lattice` result) to PNG."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 4, figsize=(20, 10))
    fig.subplots_adjust(left=0.03, right=0.98, top=0.93, bottom=0.05, wspace=0.25, hspace=0.2)
    extent = None
    if image is not None:
        img = np.asarray(image, dtype=np.float32)
        extent = (-0.5, img.shape[1] - 0.5, img.shape[0] - 0.5, -0.5)
    _columns_panel(axes[0, 0], table, image)
    for ax, name in zip(
        (axes[0, 1], axes[0, 2], axes[0, 3], axes[1, 0]),
        ("strain_xx", "strain_yy", "strain_xy", "rotation_deg"),
    ):
        _map_panel(fig, ax, maps, name, extent)
    _vector_panel(axes[1, 1], table, image)
    _histogram_panel(axes[1, 2], table)
    _text_panel(axes[1, 3], table)
    if title:
        fig.suptitle(title)
    out = Path(path)
    fig.savefig(out, dpi=80)
    plt.close(fig)
    return out


def _columns_panel(ax, table, image) -> None:
    if image is not None:
        ax.imshow(image, cmap="gray")
    for m in sorted(set(table["sublattice"])):
        sel = table["sublattice"] == m
        ax.plot(
            table["x_px"][sel], table["y_px"][sel], ".", ms=3, color=sublattice_colour(m),
            label=f"sublattice {m}" if m >= 0 else "unassigned",
        )  # fmt: skip
    if image is None:
        ax.invert_yaxis()
    ax.set_aspect("equal")
    ax.legend(loc="upper right", fontsize=7, markerscale=3)
    ax.set_title("columns by sublattice")


def _map_panel(fig, ax, maps: LatticeMaps, name: str, extent) -> None:
    data = maps.maps.get(name)
    if data is None:
        ax.set_axis_off()
        return
    lo, hi = symmetric_limits(data)
    step = maps.step_px
    shown = extent or (-0.5 * step, data.shape[1] * step, data.shape[0] * step, -0.5 * step)
    im = ax.imshow(data, cmap="RdBu_r", vmin=lo, vmax=hi, extent=shown)
    fig.colorbar(im, ax=ax, shrink=0.8)
    ax.set_title(name)


def _vector_panel(ax, table, image) -> None:
    if image is not None:
        ax.imshow(image, cmap="gray")
    disp, unit, per_px = _displacements_px(table)
    ok = np.isfinite(disp).all(axis=1)
    spacing = float(np.nanmedian(table.get("nn_spacing_px", pd.Series([20.0]))))
    scale = arrow_scale(disp, spacing, table["sublattice"].to_numpy())
    ax.quiver(
        table["x_px"][ok], table["y_px"][ok], disp[ok, 1] * scale, disp[ok, 0] * scale,
        angles="xy", scale_units="xy", scale=1, color="#ffd700", width=0.003,
    )  # fmt: skip
    if image is None:
        ax.invert_yaxis()
    ax.set_aspect("equal")
    ax.set_title(f"displacements (arrows x{scale:.0f}; 1 px arrow = {per_px / scale:.2g} {unit})")


def _histogram_panel(ax, table) -> None:
    name = "intensity_integrated"
    values = table[name].to_numpy(np.float64) if name in table else np.array([])
    if not np.isfinite(values).any():
        name = "intensity"
        values = table[name].to_numpy(np.float64) if name in table else np.array([])
    if not np.isfinite(values).any():
        ax.set_axis_off()
        return
    bins = np.histogram_bin_edges(values[np.isfinite(values)], bins=60)
    for m in sorted(set(table["sublattice"])):
        v = values[(table["sublattice"] == m).to_numpy() & np.isfinite(values)]
        ax.hist(v, bins=bins, alpha=0.6, color=sublattice_colour(m), label=f"{m}")
    ax.set_xlabel(name)
    ax.set_ylabel("columns")
    ax.legend(title="sublattice", fontsize=7)
    ax.set_title("column intensities")


def _text_panel(ax, table) -> None:
    ax.set_axis_off()
    a = table.attrs
    cell = a.get("cell", {})
    lines = [
        f"cell: |a| {cell.get('a', np.nan):.4g}, |b| {cell.get('b', np.nan):.4g} "
        f"{cell.get('unit', '')}, angle {cell.get('angle_deg', np.nan):.2f} deg",
        f"reference: {a.get('reference', '')}",
        f"reference sublattice: {a.get('reference_sublattice', '')}",
    ]
    dist = a.get("scan_distortion", {})
    if "slow_scan_scale" in dist:
        lines.append(
            f"scan distortion ({dist['symmetry']}): slow-scan scale "
            f"{dist['slow_scan_scale']:+.2%}, shear {dist['scan_shear_deg']:+.2f} deg"
            + (f", corrected ({dist['applied']})" if dist.get("applied") else "")
        )
    for name in ("strain_xx", "strain_yy", "strain_xy"):
        if name in table:
            v = table[name].to_numpy(np.float64)
            lines.append(f"{name}: median {np.nanmedian(v):+.4f}, std {np.nanstd(v):.4f}")
    for w in a.get("warnings", [])[:4]:
        lines.append("! " + (w if len(w) < 90 else w[:87] + "..."))
    ax.text(0, 1, "\n".join(lines), va="top", fontsize=8, family="monospace")
