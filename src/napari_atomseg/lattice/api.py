"""``analyse_lattice``: a table of columns -> sublattices, indices, strain, displacements.

The positions are used as given (never re-refined), so hand corrections stay. Steps:
sublattices (:mod:`.sublattices`, or the table's own ``sublattice`` column), the
reference sublattice's cell (:mod:`.cell`) and indices by unwrapping (:mod:`.indexing`),
ideal places of the other columns (:mod:`.displacement`), local cells and strain against
the reference cell (:mod:`.strain`), the scan-distortion report (:mod:`.distortion`) and,
with an image, intensities (:mod:`.intensity`). :func:`iter_analyse_lattice` is the
generator form (yields Progress); :func:`analyse_lattice` drains it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from .._progress import Progress, ProgressGenerator, drain
from .._validate import as_image2d, check_pixel_size_nm
from ..errors import InputError
from .cell import cell_is_hexagonal, cell_summary, nearest_neighbour_distance, primitive_cell
from .displacement import HALVES, HALVES_AND_THIRDS, displacements_px, ideal_coordinates
from .distortion import distortion_report, scan_profiles, strain_profiles
from .indexing import unwrap
from .intensity import brightness as sample_brightness
from .intensity import gaussian_features, voronoi_intensity
from .options import LatticeOptions
from .regions import in_region
from .strain import local_cells, position_std_px, reference_cell, strain_table
from .sublattices import auto_sublattices, order_by_brightness

#: Columns every result has (in this order, after the input's own columns).
RESULT_COLUMNS = (
    "sublattice",
    "lattice_h",
    "lattice_k",
    "strain_xx",
    "strain_yy",
    "strain_xy",
    "rotation_deg",
    "dilatation",
    "strain_aa",
    "strain_bb",
    "strain_ab",
    "strain_xx_std",
    "strain_yy_std",
    "strain_xy_std",
    "rotation_deg_std",
    "displacement_y_pm",
    "displacement_x_pm",
    "intensity_integrated",
)
#: Below this many reference columns in the reference region, the whole field is used.
MIN_REFERENCE_COLUMNS = 5
#: Tolerance of the "hexagonal" test (length ratio, |cos angle| - 1/2) that lets
#: non-reference sites sit at thirds of the cell.
HEXAGONAL_LOOSE = 0.2
#: A scan distortion below this is not worth a warning.
DISTORTION_WARN_LEVEL = 0.002


def analyse_lattice(
    atoms: Any,
    image: Any = None,
    pixel_size_nm: float | None = None,
    reference: Any = None,
    **options: Any,
) -> pd.DataFrame:
    """Sublattices, (h, k), strain, rotation, displacements and intensities per column.

    Parameters
    ----------
    atoms
        A :func:`napari_atomseg.find_atoms` table, or any table with ``y_px, x_px``.
        Its rows come back in the same order with columns added.
    image
        The micrograph the columns come from (bright columns); gives brightness for
        the sublattices, ``intensity_integrated`` and Gaussian features.
    pixel_size_nm
        nm per pixel; default the table's (``attrs`` or ``y_nm / y_px``), else results
        stay in pixels: the displacement columns are then ``displacement_y_px`` /
        ``displacement_x_px`` and ``attrs["length_unit"]`` is ``"px"``.
    reference
        The unstrained region: None (the whole field's median cell), a boolean mask of
        the image's shape, or a ``(y0, y1, x0, x1)`` pixel box.
    **options
        :class:`~napari_atomseg.lattice.options.LatticeOptions` fields.

    Returns
    -------
    pandas.DataFrame
        The input's columns plus :data:`RESULT_COLUMNS` (NaN where not computable;
        ``sublattice`` -1 for a column that fits no site). ``attrs``: ``cell_nm`` (or
        ``cell_px``: the reference cell's vectors a, b as (y, x)), ``cell`` (|a|, |b|,
        angle), ``reference``, ``reference_sublattice``, ``sublattices``,
        ``position_std_pm``, ``scan_distortion``, ``warnings``.
    """
    return drain(iter_analyse_lattice(atoms, image, pixel_size_nm, reference, **options))


def iter_analyse_lattice(
    atoms: Any,
    image: Any = None,
    pixel_size_nm: float | None = None,
    reference: Any = None,
    **options: Any,
) -> ProgressGenerator[pd.DataFrame]:
    """Generator form of :func:`analyse_lattice` (yields Progress, returns the table).

    Parameters
    ----------
    atoms, image, pixel_size_nm, reference, **options
        As for :func:`analyse_lattice`.

    Yields
    ------
    Progress
        One per stage: sublattices, cell and indices, strain, displacements, intensities.

    Returns
    -------
    pandas.DataFrame
        The table :func:`analyse_lattice` returns.
    """
    opts = _options(options)
    table = _check_table(atoms)
    img = None if image is None else as_image2d(image)
    ps = _pixel_size(table, pixel_size_nm)
    pos = table[["y_px", "x_px"]].to_numpy(dtype=np.float64)
    warnings: list[str] = []
    total = 5
    yield Progress(0, total, "sublattices")
    in_ref, ref_text = in_region(reference, pos, None if img is None else img.shape)
    nn = nearest_neighbour_distance(pos)
    spacing = float(np.median(nn))
    bright = _brightness(table, img, pos, spacing)
    labels, ref_sub, sub_info = _sublattices(table, pos, bright, in_ref, opts)

    yield Progress(1, total, "cell and indices")
    ref_cols = np.nonzero(labels == ref_sub)[0]
    if ref_cols.size < 6:
        raise InputError(
            f"lattice: the reference sublattice {ref_sub} has {ref_cols.size} column(s); "
            "need at least 6"
        )
    cell0 = _initial_cell(pos[ref_cols], ps, opts)
    q, ref_local = _index(pos, labels, ref_cols, cell0, in_ref, opts)

    yield Progress(2, total, "strain")
    same = opts.neighbour_cells == 1
    local = local_cells(
        pos,
        q,
        labels,
        opts.neighbour_cells,
        opts.min_neighbours,
        skip=ref_local if same else None,
        skip_sublattice=ref_sub if same else None,
    )
    measured = _reference_cell(local.cell, labels == ref_sub, in_ref, cell0, warnings)
    overridden = opts.cell_px is not None or opts.cell_nm is not None
    cell_ref = cell0 if overridden else measured
    # The distortion is judged on the cell the image shows, even when one is given.
    report = distortion_report(measured, opts.reference_symmetry)
    report["measured_cell"] = measured.T.tolist()
    report["bounds_px"] = _field_bounds(img, pos, spacing)
    pos_used = pos
    if opts.scan_correction != "none":
        pos_used, local, cell_ref = _correct_scan(
            pos, q, labels, ref_sub, in_ref, local, cell_ref, overridden, report, opts, warnings
        )
    sigma = _sigma(table, local, labels, ps, opts)
    strain = strain_table(local, cell_ref, sigma)
    report.update(strain_profiles(pos, strain))
    _distortion_warning(report, strain, opts, warnings)

    yield Progress(3, total, "displacements")
    disp = displacements_px(pos_used, q, labels == ref_sub)

    yield Progress(4, total, "intensities")
    extra = _intensities(img, pos, nn, spacing, opts)
    out = _assemble(table, labels, q, strain, disp, extra, ps)
    _coverage_warnings(labels, strain, warnings)
    out.attrs.update(
        _attrs(
            cell_ref, ps, ref_text, ref_sub, labels, q, bright, sigma, report, sub_info, warnings
        )
    )
    yield Progress(total, total, "done")
    return out


# --------------------------------------------------------------------------- inputs
def _options(options: dict[str, Any]) -> LatticeOptions:
    """Keywords, or an ``options=LatticeOptions(...)`` object with keywords overriding it."""
    base = options.pop("options", None)
    if base is None:
        return LatticeOptions.from_kwargs(**options)
    if not isinstance(base, LatticeOptions):
        raise InputError(f"options: expected LatticeOptions, got {type(base).__name__}")
    fields = {f: getattr(base, f) for f in base.__dataclass_fields__}
    return LatticeOptions.from_kwargs(**{**fields, **options})


def _check_table(atoms: Any) -> pd.DataFrame:
    if not isinstance(atoms, pd.DataFrame):
        try:
            atoms = pd.DataFrame(atoms)
        except (TypeError, ValueError) as exc:
            raise InputError(f"atoms: expected a table with y_px, x_px columns ({exc})") from exc
    missing = [c for c in ("y_px", "x_px") if c not in atoms.columns]
    if missing:
        raise InputError(
            f"atoms: the table has no {', '.join(missing)} column(s); give row/column "
            "positions in pixels (find_atoms' table has them)"
        )
    pos = atoms[["y_px", "x_px"]].to_numpy(dtype=np.float64)
    if not np.isfinite(pos).all():
        raise InputError("atoms: y_px / x_px contain NaN or inf; remove those rows first")
    if len(atoms) < 6:
        raise InputError(f"atoms: {len(atoms)} column(s) are too few for a lattice (need >= 6)")
    return atoms


def _pixel_size(table: pd.DataFrame, pixel_size_nm: float | None) -> float | None:
    """Given, else the table's attrs, else the ratio of its nm and px columns."""
    if pixel_size_nm is not None:
        return check_pixel_size_nm(pixel_size_nm)
    attr = table.attrs.get("pixel_size_nm")
    if attr is not None and np.isfinite(attr) and attr > 0:
        return float(attr)
    if "y_nm" in table and "x_nm" in table:
        px = table[["y_px", "x_px"]].to_numpy(dtype=np.float64).ravel()
        nm = table[["y_nm", "x_nm"]].to_numpy(dtype=np.float64).ravel()
        ok = np.isfinite(nm) & (np.abs(px) > 1)
        if ok.sum() >= 2:
            return check_pixel_size_nm(float(np.median(nm[ok] / px[ok])))
    return None


def _brightness(table, img, pos, spacing) -> np.ndarray | None:
    if img is not None:
        return sample_brightness(img, pos, spacing)
    if "intensity" in table:
        values = table["intensity"].to_numpy(dtype=np.float64)
        if np.isfinite(values).sum() >= 6:
            return values
    return None


def _sublattices(table, pos, bright, in_ref, opts: LatticeOptions):
    """Sublattice labels, the reference sublattice and what was found."""
    given = None
    if opts.use_table_sublattices and "sublattice" in table:
        values = pd.to_numeric(table["sublattice"], errors="coerce").to_numpy(dtype=np.float64)
        values = np.where(np.isfinite(values), values, -1).astype(np.int64)
        if (values >= 0).sum() >= 6:
            given = values
    if given is not None:
        labels, info = given, {"source": "table"}
        ordered = order_by_brightness(labels, bright)
        brightest = int(labels[np.argmax(ordered == 0)])
    else:
        centre = pos[in_ref].mean(axis=0) if in_ref.any() else pos.mean(axis=0)
        seed = int(np.argmin(np.hypot(*(pos - centre).T)))
        labels, info = auto_sublattices(pos, bright, seed, opts.seed)
        info = {"source": "auto", **info}
        brightest = 0
    ref_sub = brightest if opts.reference_sublattice is None else int(opts.reference_sublattice)
    if not (labels == ref_sub).any():
        present = sorted(int(v) for v in np.unique(labels[labels >= 0]))
        raise InputError(
            f"reference_sublattice: {ref_sub} is not one of the sublattices found {present}"
        )
    return labels, ref_sub, info


def _initial_cell(ref_pos: np.ndarray, ps: float | None, opts: LatticeOptions) -> np.ndarray:
    if opts.cell_px is not None:
        return np.asarray(opts.cell_px, dtype=np.float64).T
    if opts.cell_nm is not None:
        if ps is None:
            raise InputError("cell_nm: the pixel size is unknown; give pixel_size_nm or cell_px")
        return np.asarray(opts.cell_nm, dtype=np.float64).T / ps
    cell, _ = primitive_cell(ref_pos, opts.seed)
    return cell


def _index(pos, labels, ref_cols, cell0, in_ref, opts: LatticeOptions):
    """Ideal fractional coordinates q of every column (NaN: not indexed), and the local
    cells of the reference sublattice (one cell around)."""
    ref_pos = pos[ref_cols]
    spacing = float(np.median(nearest_neighbour_distance(ref_pos)))
    inside = in_ref[ref_cols]
    centre = ref_pos[inside].mean(axis=0) if inside.any() else ref_pos.mean(axis=0)
    seed = int(np.argmin(np.hypot(*(ref_pos - centre).T)))
    ind = unwrap(ref_pos, cell0, spacing, seed, sites=np.zeros((1, 2)))
    q = np.full(pos.shape, np.nan)
    done = ref_cols[ind.assigned]
    q[done] = ind.hk[ind.assigned]
    is_done = np.zeros(len(pos), dtype=bool)
    is_done[done] = True
    ref_labels = np.where(is_done, labels, -1)
    ref_local = local_cells(pos, q, ref_labels, 1, opts.min_neighbours)
    is_ref = np.zeros(len(pos), dtype=bool)
    is_ref[ref_cols] = True
    others = np.nonzero((labels >= 0) & ~is_ref)[0]
    # Thirds are ideal places only in (possibly scan-distorted) hexagonal cells: a loose
    # test, as 14 % of scan distortion still leaves a honeycomb's sites at 1/3, 2/3.
    allowed = opts.ideal_site_fractions or (
        HALVES_AND_THIRDS if cell_is_hexagonal(cell0, HEXAGONAL_LOOSE) else HALVES
    )
    q[others] = ideal_coordinates(
        pos[others], pos[done], q[done], ref_local.cell[done], cell0, allowed
    )
    return q, ref_local


def _correct_scan(pos, q, labels, ref_sub, in_ref, local, cell, overridden, report, opts, warnings):
    """Positions, local cells and reference cell after the scan-distortion correction.

    ``cell`` is the reference cell so far (given, or measured); ``report`` gains what was
    applied. Linear: T on every position and local cell. Non-linear: then the slow- and
    fast-scan profiles from the reference columns in the region, and the local cells fitted
    again on the corrected positions.
    """
    if "correction" not in report:
        warnings.append(f"scan correction not applied: {report.get('note', '')}")
        return pos, local, cell
    t = np.asarray(report["correction"])
    pos_used = pos @ t.T
    cells = t @ local.cell
    local = type(local)(cells, local.n_neighbours, local.cq, local.rss, local.dof)
    # A given cell is the true one already; a measured one is corrected too.
    cell = cell if overridden else t @ cell
    report["applied"] = "linear"
    if opts.scan_correction != "nonlinear":
        return pos_used, local, cell
    is_ref = labels == ref_sub
    use = is_ref & in_ref & np.isfinite(q).all(axis=1) & ~_at_border(pos, report["bounds_px"])
    # measured_cell holds the vectors as rows (a, b), like cell_nm.
    measured = np.asarray(report["measured_cell"]).T
    profiles = scan_profiles(pos_used[use], q[use], t @ measured)
    if profiles is None:
        warnings.append("non-linear scan correction not applied: too few reference columns")
        return pos_used, local, cell
    y_all, y_ref = np.ptp(pos[:, 0]), np.ptp(pos[use, 0])
    if y_ref < 0.9 * y_all:
        warnings.append(
            "the reference region covers only part of the slow-scan (y) range: the "
            "non-linear scan correction is extrapolated as constant outside it"
        )
    pos_used = profiles.correct(pos_used)
    local = local_cells(pos_used, q, labels, opts.neighbour_cells, opts.min_neighbours)
    if not overridden:
        cell = _reference_cell(local.cell, is_ref, in_ref, cell, warnings)
    report["applied"] = "nonlinear"
    report["profiles_px"] = profiles.summary()
    return pos_used, local, cell


def _field_bounds(img, pos, spacing) -> tuple[float, float, float, float, float]:
    """(y0, y1, x0, x1) of the image (else of the columns) and the border margin, px."""
    if img is not None:
        edge = (0.0, img.shape[0] - 1.0, 0.0, img.shape[1] - 1.0)
    else:
        edge = (pos[:, 0].min(), pos[:, 0].max(), pos[:, 1].min(), pos[:, 1].max())
    return (*(float(v) for v in edge), 0.5 * spacing)


def _coverage_warnings(labels, strain, warnings) -> None:
    n_bad = int((labels < 0).sum())
    if n_bad:
        warnings.append(f"{n_bad} column(s) fit no site of the lattice (sublattice -1)")
    n_nan = int((labels >= 0).sum() - np.isfinite(strain["strain_xx"]).sum())
    if n_nan:
        warnings.append(
            f"{n_nan} column(s) have too few same-sublattice neighbours for a strain (NaN)"
        )


def _at_border(pos: np.ndarray, bounds: tuple[float, float, float, float, float]) -> np.ndarray:
    """Columns within ``margin`` of the field's edge, where a fit window is cut and
    positions are biased: kept out of the scan profiles, which they would bend."""
    y0, y1, x0, x1, margin = bounds
    y, x = pos[:, 0], pos[:, 1]
    return (y < y0 + margin) | (y > y1 - margin) | (x < x0 + margin) | (x > x1 - margin)


def _reference_cell(cells, is_ref, in_ref, cell0, warnings) -> np.ndarray:
    """Median local cell of the reference columns in the reference region."""
    use = is_ref & in_ref
    if np.isfinite(cells[use]).all(axis=(1, 2)).sum() < MIN_REFERENCE_COLUMNS:
        warnings.append(
            f"the reference region holds fewer than {MIN_REFERENCE_COLUMNS} reference "
            "columns with a local cell; the whole field's median cell is the reference"
        )
        use = is_ref
    found = reference_cell(cells, use)
    return cell0 if found is None else found


def _sigma(table, local, labels, ps, opts: LatticeOptions) -> np.ndarray:
    """Per-column position uncertainty (px): option, table column, else estimated."""
    n = len(labels)
    if opts.position_std_px is not None:
        return np.full(n, float(opts.position_std_px))
    if "position_std_px" in table:
        return table["position_std_px"].to_numpy(dtype=np.float64)
    if "position_std_nm" in table and ps is not None:
        return table["position_std_nm"].to_numpy(dtype=np.float64) / ps
    return position_std_px(local, labels)


def _distortion_warning(report, strain, opts: LatticeOptions, warnings) -> None:
    level = report.get("distortion_level")
    if level is None or level < DISTORTION_WARN_LEVEL or report.get("applied"):
        return
    stacked = np.column_stack([strain["strain_xx"], strain["strain_yy"], strain["strain_xy"]])
    mags = np.abs(stacked[np.isfinite(stacked).all(axis=1)]).max(axis=1, initial=0.0)
    below = float((mags < level).mean()) if mags.size else 1.0
    report["fraction_below_distortion"] = below
    warnings.append(
        f"the reference cell is off {report['symmetry']} by {level:.2%} (scan distortion? "
        f"slow-scan scale {report['slow_scan_scale']:+.2%}, shear "
        f"{report['scan_shear_deg']:+.2f} deg): the cell and the {below:.0%} of columns whose "
        "strain is below that level cannot be told from scan distortion "
        "(scan_correction='linear' or 'nonlinear' corrects it from the reference region)"
    )


def _intensities(img, pos, nn, spacing, opts: LatticeOptions) -> pd.DataFrame:
    n = len(pos)
    if img is None:
        return pd.DataFrame({"intensity_integrated": np.full(n, np.nan)})
    parts = [voronoi_intensity(img, pos, nn, opts.intensity_radius_fraction * spacing)]
    if opts.gaussian_fit:
        parts.append(gaussian_features(img, pos, 0.4 * spacing))
    return pd.concat(parts, axis=1)


# --------------------------------------------------------------------------- output
def _assemble(table, labels, q, strain, disp, extra, ps) -> pd.DataFrame:
    out = table.copy()
    out.attrs = dict(table.attrs)
    out["sublattice"] = labels.astype(np.int64)
    cells = np.floor(q + 1e-9)
    out["lattice_h"] = cells[:, 0]
    out["lattice_k"] = cells[:, 1]
    for name, values in strain.items():
        out[name] = values
    if ps is None:
        out["displacement_y_px"] = disp[:, 0]
        out["displacement_x_px"] = disp[:, 1]
    else:
        out["displacement_y_pm"] = disp[:, 0] * ps * 1000.0
        out["displacement_x_pm"] = disp[:, 1] * ps * 1000.0
    for name in extra.columns:
        out[name] = extra[name].to_numpy()
    return out


def _attrs(cell, ps, ref_text, ref_sub, labels, q, bright, sigma, report, info, warnings):
    scale, unit = (ps, "nm") if ps is not None else (1.0, "px")
    subs = []
    for m in np.unique(labels[labels >= 0]):
        members = labels == m
        frac = q[members] - np.floor(q[members] + 1e-9)
        frac = frac[np.isfinite(frac).all(axis=1)]
        entry = {
            "sublattice": int(m),
            "n_columns": int(members.sum()),
            "site": [float(v) for v in np.median(frac, axis=0)] if len(frac) else None,
        }
        if bright is not None:
            entry["median_brightness"] = float(np.nanmedian(bright[members]))
        s = sigma[members]
        s = s[np.isfinite(s)]
        if s.size:
            entry["position_std_pm" if ps else "position_std_px"] = float(
                np.median(s) * (ps * 1000 if ps else 1.0)
            )
        subs.append(entry)
    return {
        f"cell_{unit}": (cell.T * scale).tolist(),
        "cell": {**cell_summary(cell, scale), "unit": unit},
        "length_unit": unit,
        "pixel_size_nm": ps,
        "reference": ref_text,
        "reference_sublattice": int(ref_sub),
        "sublattices": subs,
        "sublattice_detection": {
            k: (v.T * scale).tolist() if isinstance(v, np.ndarray) else v for k, v in info.items()
        },
        "scan_distortion": report,
        "warnings": list(warnings),
    }
