"""A known deformation of the specimen: strain, rotation, a strain gradient, sublattice shifts.

For validating lattice analysis against exact fields. A reference position ``r`` (nm,
(y, x), relative to ``origin``) goes to

    r' = origin + R(rotation) [(I + E) r + u_g(r)] + shift(element)

with E the symmetric strain tensor (``strain_xx``, ``strain_yy``, ``strain_xy``), u_g the
quadratic field ``u_x = g x^2 / 2`` whose strain_xx grows linearly along x
(``strain_xx_gradient_per_nm`` = g), R a rotation counter-clockwise *as displayed* (y
pointing down), and ``shifts_pm`` moving every column that holds an element (a
perovskite's B-site displacement) in the image frame. The deformation gradient is
``F(r) = R (I + E + diag(0, g x))``; its Biot strain is ``E + diag(0, g x)`` while that
stays positive definite, and its rotation is ``rotation_deg``.

``simulate(parameters, deformation=...)`` applies it to the scene's columns (and the atoms
drawn for them) before imaging, so the ground-truth table holds the deformed positions.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .._validate import check_range
from ..errors import InputError


@dataclass(frozen=True)
class Deformation:
    """Strain, rotation, strain gradient and per-element shifts (see the module doc)."""

    strain_xx: float = 0.0
    strain_yy: float = 0.0
    strain_xy: float = 0.0
    rotation_deg: float = 0.0
    strain_xx_gradient_per_nm: float = 0.0
    #: (element, dy_pm, dx_pm): columns holding ``element`` move by (dy, dx) picometres.
    shifts_pm: tuple[tuple[str, float, float], ...] = ()
    #: Centre of the deformation (nm, (y, x)); None: the field's centre.
    origin_nm: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        for name in ("strain_xx", "strain_yy", "strain_xy"):
            check_range(getattr(self, name), -0.3, 0.3, name)
        check_range(self.rotation_deg, -180.0, 180.0, "rotation_deg")
        check_range(self.strain_xx_gradient_per_nm, -0.1, 0.1, "strain_xx_gradient_per_nm")
        shifts = []
        for entry in self.shifts_pm:
            try:
                element, dy, dx = entry
                shifts.append((str(element), float(dy), float(dx)))
            except (TypeError, ValueError) as exc:
                raise InputError(f"shifts_pm: {entry!r} must be (element, dy_pm, dx_pm)") from exc
        object.__setattr__(self, "shifts_pm", tuple(shifts))

    def replace(self, **changes) -> Deformation:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def rotation(self) -> np.ndarray:
        """R in (y, x) components for a counter-clockwise rotation as displayed."""
        phi = np.radians(self.rotation_deg)
        c, s = np.cos(phi), np.sin(phi)
        return np.array([[c, -s], [s, c]])

    def strain_tensor(self) -> np.ndarray:
        """The uniform strain (2, 2) in (y, x) components, without the gradient."""
        return np.array([[self.strain_yy, self.strain_xy], [self.strain_xy, self.strain_xx]])

    def gradient(self, yx_nm: np.ndarray, origin_nm: np.ndarray) -> np.ndarray:
        """Exact deformation gradient F (n, 2, 2) at reference positions (nm)."""
        rel = np.asarray(yx_nm, dtype=np.float64) - origin_nm
        stretch = np.broadcast_to(np.eye(2) + self.strain_tensor(), (len(rel), 2, 2)).copy()
        stretch[:, 1, 1] += self.strain_xx_gradient_per_nm * rel[:, 1]
        return self.rotation() @ stretch

    def biot_strain(self, yx_nm: np.ndarray, origin_nm: np.ndarray) -> np.ndarray:
        """Exact Biot strain U - I (n, 2, 2) at reference positions (nm)."""
        rel = np.asarray(yx_nm, dtype=np.float64) - origin_nm
        eps = np.broadcast_to(self.strain_tensor(), (len(rel), 2, 2)).copy()
        eps[:, 1, 1] += self.strain_xx_gradient_per_nm * rel[:, 1]
        return eps

    def displace_nm(
        self,
        yx_nm: np.ndarray,
        origin_nm: np.ndarray,
        elements: dict[str, np.ndarray] | None = None,
    ) -> np.ndarray:
        """Deformed positions (nm) of reference positions ``yx_nm``.

        ``elements`` maps an element to a boolean mask of the positions holding it (for
        ``shifts_pm``); an element of ``shifts_pm`` missing from it moves nothing.
        """
        rel = np.asarray(yx_nm, dtype=np.float64) - origin_nm
        moved = rel @ (np.eye(2) + self.strain_tensor()).T
        moved[:, 1] += 0.5 * self.strain_xx_gradient_per_nm * rel[:, 1] ** 2
        out = origin_nm + moved @ self.rotation().T
        for element, dy, dx in self.shifts_pm:
            mask = (elements or {}).get(element)
            if mask is not None:
                out[mask] += np.array([dy, dx]) * 1e-3
        return out

    def reference_positions_nm(
        self,
        yx_nm: np.ndarray,
        origin_nm: np.ndarray,
        elements: dict[str, np.ndarray] | None = None,
    ) -> np.ndarray:
        """Undeformed positions of deformed ones (the inverse of :meth:`displace_nm`,
        by fixed-point iteration; exact to ~1e-12 nm for the fields allowed here)."""
        target = np.asarray(yx_nm, dtype=np.float64)
        guess = target.copy()
        for _ in range(50):
            guess = guess + (target - self.displace_nm(guess, origin_nm, elements))
        return guess

    def apply(self, scene, origin_A: np.ndarray):
        """The scene with its columns (and their render points) deformed."""
        elements = {
            e: scene.column_counts[:, i] > 0
            for i, e in enumerate(scene.elements)
            if i < scene.column_counts.shape[1]
        }
        old = scene.column_yx_A
        new = 10.0 * self.displace_nm(old / 10.0, np.asarray(origin_A) / 10.0, elements)
        points = scene.point_yx_A + (new - old)[scene.point_column]
        return dataclasses.replace(scene, column_yx_A=new, point_yx_A=points)


def perovskite_columns(
    shape_px: tuple[int, int],
    pixel_size_nm: float,
    deformation: Deformation | None = None,
    a_nm: float = 0.3905,
    elements: tuple[str, str, str] = ("Sr", "Ti", "O"),
    oxygen: bool = True,
) -> pd.DataFrame:
    """Exact column positions of a perovskite along [001] under ``deformation``.

    A-site columns at the cell corners, B-site (B-O) columns at the centre and, with
    ``oxygen``, O columns on the edges; the undeformed lattice has a corner at the field's
    centre (the deformation's origin unless it names one). Columns: ``y_px, x_px, y_nm,
    x_nm, element`` and the exact ``true_strain_xx, true_strain_yy, true_strain_xy,
    true_rotation_deg, true_displacement_y_pm, true_displacement_x_pm`` and the cell
    ``true_h, true_k`` (rows of the cell along y, x) each column belongs to.
    """
    deformation = deformation or Deformation()
    h, w = shape_px
    centre = np.array([(h - 1) / 2, (w - 1) / 2]) * pixel_size_nm
    origin = centre if deformation.origin_nm is None else np.asarray(deformation.origin_nm)
    half = 0.6 * np.hypot(h, w) * pixel_size_nm / a_nm + 2
    n = np.arange(-int(half), int(half) + 1)
    ii, jj = np.meshgrid(n, n, indexing="ij")
    corners = np.column_stack([ii.ravel(), jj.ravel()]).astype(np.float64)
    basis = [(elements[0], (0.0, 0.0)), (elements[1], (0.5, 0.5))]
    if oxygen:
        basis += [(elements[2], (0.5, 0.0)), (elements[2], (0.0, 0.5))]
    ref = np.concatenate([(corners + off) * a_nm + centre for _, off in basis])
    element = np.concatenate([np.full(len(corners), e) for e, _ in basis])
    masks = {e: element == e for e in set(element)}
    moved = deformation.displace_nm(ref, origin, masks)
    inside = (
        (moved[:, 0] >= 0)
        & (moved[:, 0] <= (h - 1) * pixel_size_nm)
        & (moved[:, 1] >= 0)
        & (moved[:, 1] <= (w - 1) * pixel_size_nm)
    )
    eps = deformation.biot_strain(ref[inside], origin)
    shift = np.zeros((len(ref), 2))
    for e, dy, dx in deformation.shifts_pm:
        shift[masks.get(e, np.zeros(len(ref), bool))] += (dy, dx)
    y, x = moved[inside].T
    cell_hk = np.floor((ref[inside] - centre) / a_nm + 1e-9)
    return pd.DataFrame(
        {
            "y_px": y / pixel_size_nm,
            "x_px": x / pixel_size_nm,
            "y_nm": y,
            "x_nm": x,
            "element": element[inside],
            "true_strain_xx": eps[:, 1, 1],
            "true_strain_yy": eps[:, 0, 0],
            "true_strain_xy": eps[:, 0, 1],
            "true_rotation_deg": np.full(int(inside.sum()), deformation.rotation_deg),
            "true_displacement_y_pm": shift[inside, 0],
            "true_displacement_x_pm": shift[inside, 1],
            "true_h": cell_hk[:, 0].astype(np.int64),
            "true_k": cell_hk[:, 1].astype(np.int64),
        }
    )
