"""The options of a lattice analysis, declared once (API, CLI and widget share them).

:class:`LatticeOptions` is frozen and validated on construction; :meth:`from_kwargs`
turns ``analyse_lattice(**options)`` keywords into one, naming an unknown keyword.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._validate import check_range
from ..errors import InputError

#: Known symmetries of a reference region, for the scan-distortion estimate: the cell's
#: length ratio |b|/|a| and angle between a and b (degrees). "auto" takes the nearest of
#: square / hexagonal when the measured cell is within AUTO_SYMMETRY_TOLERANCE of it.
SYMMETRIES: dict[str, tuple[float, float] | None] = {
    "auto": None,
    "square": (1.0, 90.0),
    "hexagonal": (1.0, 60.0),
    "none": None,
}

SCAN_CORRECTIONS = ("none", "linear", "nonlinear")


@dataclass(frozen=True)
class LatticeOptions:
    """Settings of :func:`napari_atomseg.analyse_lattice`.

    Attributes
    ----------
    cell_nm, cell_px
        Override of the unit cell: two vectors ``((a_y, a_x), (b_y, b_x))`` of the
        reference sublattice's cell, in nm or in pixels (give at most one). None: found
        from the neighbour-vector histogram. Within ~20 % of the truth is enough: indices
        come from it, strains are relative to it (``reference`` is then ignored for the
        cell, used only for the region means).
    reference_sublattice
        Sublattice the strains' reference cell and the displacements refer to (None: the
        brightest; without intensities the most populated).
    use_table_sublattices
        Keep the table's own ``sublattice`` column (hand re-assignment) when it has one.
    neighbour_cells
        Same-sublattice neighbours within this many cells along a and b (Chebyshev
        distance in (h, k)) enter each column's deformation gradient (1: the 8 around).
    min_neighbours
        Fewer same-sublattice neighbours than this give NaN strain.
    position_std_px
        Position uncertainty of every column (px) for the error estimates; None: the
        table's ``position_std_px`` column, else estimated from the residuals of the
        local fits per sublattice.
    scan_correction
        ``"none"``; ``"linear"``: correct the fast/slow-scan scale difference and shear so
        that the reference cell has ``reference_symmetry`` (the fast scan axis, x, is kept
        as it is); ``"nonlinear"``: also the drift that changes through the frame and a
        non-linear fast scan, from the reference columns taken as perfect (the region
        should span the field's height). True means "linear".
    reference_symmetry
        ``"auto"``, ``"square"``, ``"hexagonal"``, ``"none"`` or ``(ratio, angle_deg)``:
        what the reference cell is known to be, for the distortion report and correction.
    ideal_site_fractions
        Ideal fractional positions of non-reference sites in the cell, from which
        displacements are measured (the centre of the surrounding reference cell is
        (1/2, 1/2)); None: halves, plus thirds for hexagonal cells.
    intensity_radius_fraction
        Voronoi cells are cut at this fraction of the median nearest-neighbour spacing.
    gaussian_fit
        With an image, fit a 2-D Gaussian at every column (positions are not changed) and
        add its amplitude, widths and background as features.
    seed
        Seed of the random sample used to estimate the cell (results are deterministic).
    """

    cell_nm: tuple[tuple[float, float], tuple[float, float]] | None = None
    cell_px: tuple[tuple[float, float], tuple[float, float]] | None = None
    reference_sublattice: int | None = None
    use_table_sublattices: bool = True
    neighbour_cells: int = 1
    min_neighbours: int = 3
    position_std_px: float | None = None
    scan_correction: str = "none"
    reference_symmetry: Any = "auto"
    ideal_site_fractions: tuple[float, ...] | None = None
    intensity_radius_fraction: float = 0.75
    gaussian_fit: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("cell_nm", "cell_px"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, _cell(value, name))
        if self.cell_nm is not None and self.cell_px is not None:
            raise InputError("cell_nm, cell_px: give the cell in nm or in pixels, not both")
        if self.reference_sublattice is not None and (
            isinstance(self.reference_sublattice, bool) or int(self.reference_sublattice) < 0
        ):
            raise InputError(
                f"reference_sublattice: {self.reference_sublattice!r} must be an index >= 0"
            )
        if not isinstance(self.neighbour_cells, int) or not 1 <= self.neighbour_cells <= 3:
            raise InputError(f"neighbour_cells: {self.neighbour_cells!r} must be 1, 2 or 3")
        if not isinstance(self.min_neighbours, int) or not 2 <= self.min_neighbours <= 24:
            raise InputError(f"min_neighbours: {self.min_neighbours!r} must be 2-24")
        if self.position_std_px is not None:
            check_range(self.position_std_px, 1e-6, 100.0, "position_std_px")
        if isinstance(self.scan_correction, bool):
            object.__setattr__(
                self, "scan_correction", "linear" if self.scan_correction else "none"
            )
        if self.scan_correction not in SCAN_CORRECTIONS:
            raise InputError(
                f"scan_correction: {self.scan_correction!r} is not one of "
                f"{', '.join(SCAN_CORRECTIONS)}"
            )
        check_range(self.intensity_radius_fraction, 0.2, 2.0, "intensity_radius_fraction")
        symmetry_parameters(self.reference_symmetry)
        if self.ideal_site_fractions is not None:
            fr = tuple(float(f) for f in self.ideal_site_fractions)
            if not fr or not all(0.0 <= f <= 1.0 for f in fr):
                raise InputError(
                    f"ideal_site_fractions: {self.ideal_site_fractions!r} must be fractions 0-1"
                )
            object.__setattr__(self, "ideal_site_fractions", fr)

    @classmethod
    def from_kwargs(cls, **kwargs: Any) -> LatticeOptions:
        """Options from keywords; an unknown keyword is an :class:`InputError`."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(kwargs) - names)
        if unknown:
            raise InputError(
                f"analyse_lattice: unknown option(s) {', '.join(unknown)}; "
                f"known: {', '.join(sorted(names))}"
            )
        return cls(**kwargs)

    def replace(self, **changes: Any) -> LatticeOptions:
        """A copy with some fields changed (checked like the constructor)."""
        return dataclasses.replace(self, **changes)


def _cell(value: Any, name: str) -> tuple[tuple[float, float], tuple[float, float]]:
    arr = np.asarray(value, dtype=np.float64)
    if arr.shape != (2, 2) or not np.isfinite(arr).all():
        raise InputError(f"{name}: expected two (y, x) vectors ((a_y, a_x), (b_y, b_x))")
    cross = arr[0, 0] * arr[1, 1] - arr[0, 1] * arr[1, 0]
    lengths = np.hypot(arr[:, 0], arr[:, 1])
    if lengths.min() <= 0 or abs(cross) < 0.05 * lengths[0] * lengths[1]:
        raise InputError(f"{name}: the two cell vectors are zero or (nearly) parallel")
    return ((float(arr[0, 0]), float(arr[0, 1])), (float(arr[1, 0]), float(arr[1, 1])))


def symmetry_parameters(symmetry: Any) -> tuple[float, float] | str | None:
    """``(ratio, angle_deg)`` of a known symmetry, ``"auto"``, or None (none known)."""
    if isinstance(symmetry, str):
        if symmetry not in SYMMETRIES:
            raise InputError(
                f"reference_symmetry: {symmetry!r} is not one of {', '.join(SYMMETRIES)} "
                "or a (ratio, angle_deg) pair"
            )
        return "auto" if symmetry == "auto" else SYMMETRIES[symmetry]
    try:
        ratio, angle = (float(v) for v in symmetry)
    except (TypeError, ValueError) as exc:
        raise InputError(
            f"reference_symmetry: {symmetry!r} must be a name or a (ratio, angle_deg) pair"
        ) from exc
    if not (math.isfinite(ratio) and 0.1 <= ratio <= 10 and 10.0 <= angle <= 170.0):
        raise InputError(
            f"reference_symmetry: ({ratio}, {angle}) must have a ratio 0.1-10 and an angle "
            "10-170 degrees"
        )
    return ratio, angle
