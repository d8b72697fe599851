"""Plain 2-D lattices: the five Bravais lattices with a basis of sublattices.

Two uses, one geometry:

- :class:`PlainLattice` describes a projected crystal by its primitive cell (Bravais type,
  lengths, angle), its sublattices (fractional positions, relative intensities) and an
  in-plane rotation and strain; :meth:`PlainLattice.positions_nm` tiles it over a field.
  The simulator's generic lattices (:mod:`.generic`) are built on it.
- :func:`ideal_lattice_image` renders one as point-sampled Gaussian columns with white
  Gaussian noise and an optional background ramp: images no training set resembles and
  every classical detector solves, the floor a learned finder must clear
  (``benchmarks/atoms_stress.py``, ``tests/atoms/test_stress.py``).

Coordinates are (y, x): y down the rows, x along the columns, as everywhere in the package.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .._validate import check_range
from ..errors import InputError

#: The five 2-D Bravais lattices.
BRAVAIS = ("oblique", "rectangular", "centred_rectangular", "square", "hexagonal")


@dataclass(frozen=True)
class Sublattice:
    """One site of the cell: fractional position along the two basis vectors and the
    column's relative peak intensity (the brightest sublattice is 1 in the images)."""

    fraction: tuple[float, float] = (0.0, 0.0)
    intensity: float = 1.0


@dataclass(frozen=True)
class PlainLattice:
    """A projected lattice: Bravais type, cell, sublattices, rotation and strain.

    ``a_nm`` is the first basis vector's length (along x before rotation); ``b_nm`` the
    second's for rectangular, centred rectangular (conventional cell a x b) and oblique
    lattices (default: ``a_nm``); ``gamma_deg`` the oblique angle between them.
    ``rotation_deg`` turns the lattice counter-clockwise as displayed (y down);
    ``strain`` is a 2x2 matrix ((e_yy, e_yx), (e_xy, e_xx)) added to the identity.
    """

    kind: str = "square"
    a_nm: float = 0.4
    b_nm: float | None = None
    gamma_deg: float = 75.0
    sublattices: tuple[Sublattice, ...] = (Sublattice(),)
    rotation_deg: float = 0.0
    strain: tuple[tuple[float, float], tuple[float, float]] = ((0.0, 0.0), (0.0, 0.0))

    def __post_init__(self) -> None:
        if self.kind not in BRAVAIS:
            raise InputError(f"kind: expected one of {BRAVAIS}, got {self.kind!r}")
        check_range(self.a_nm, 0.01, 100.0, "a_nm")
        if self.b_nm is not None:
            check_range(self.b_nm, 0.01, 100.0, "b_nm")
        check_range(self.gamma_deg, 20.0, 160.0, "gamma_deg")
        if not self.sublattices:
            raise InputError("sublattices: a lattice needs at least one site")
        for site in self.sublattices:
            check_range(site.intensity, 0.0, 1e6, "sublattice intensity")

    def basis_nm(self) -> np.ndarray:
        """(2, 2) primitive basis vectors as rows, (y, x) in nm, rotated and strained."""
        a = float(self.a_nm)
        b = float(self.b_nm) if self.b_nm is not None else a
        if self.kind == "square":
            vectors = [(0.0, a), (a, 0.0)]
        elif self.kind == "rectangular":
            vectors = [(0.0, a), (b, 0.0)]
        elif self.kind == "centred_rectangular":
            vectors = [(0.0, a), (b / 2, a / 2)]
        elif self.kind == "hexagonal":
            vectors = [(0.0, a), (a * math.sqrt(3) / 2, a / 2)]
        else:
            g = math.radians(self.gamma_deg)
            vectors = [(0.0, a), (b * math.sin(g), b * math.cos(g))]
        basis = np.array(vectors, dtype=np.float64)
        # Counter-clockwise as displayed with y down: x' = x cos + y sin, y' = -x sin + y cos.
        t = math.radians(self.rotation_deg)
        rotation = np.array([[math.cos(t), -math.sin(t)], [math.sin(t), math.cos(t)]])
        deformation = np.eye(2) + np.asarray(self.strain, dtype=np.float64)
        return basis @ rotation.T @ deformation.T

    def nearest_neighbour_nm(self) -> float:
        """Shortest distance between two sites (with periodic images)."""
        basis = self.basis_nm()
        sites = np.array([s.fraction for s in self.sublattices], dtype=np.float64) @ basis
        shifts = np.array([(i, j) for i in (-1, 0, 1) for j in (-1, 0, 1)]) @ basis
        images = (sites[None, :, :] + shifts[:, None, :]).reshape(-1, 2)
        d = np.linalg.norm(sites[:, None, :] - images[None, :, :], axis=-1)
        return float(d[d > 1e-9].min())

    def positions_nm(
        self, field_nm: tuple[float, float], origin_nm: tuple[float, float] = (0.0, 0.0)
    ) -> tuple[np.ndarray, np.ndarray]:
        """Every site within ``[0, field) x [0, field)`` (plus one spacing of margin).

        Returns ``(positions (N, 2) nm, sublattice index (N,))``; ``origin_nm`` moves the
        lattice (where its cell origin falls in the field).
        """
        basis = self.basis_nm()
        inv = np.linalg.inv(basis)
        margin = max(np.linalg.norm(basis, axis=1))
        corners = np.array(
            [
                [-margin, -margin],
                [-margin, field_nm[1] + margin],
                [field_nm[0] + margin, -margin],
                [field_nm[0] + margin, field_nm[1] + margin],
            ]
        ) - np.asarray(origin_nm, dtype=np.float64)
        frac = corners @ inv
        lo = np.floor(frac.min(axis=0)).astype(int) - 1
        hi = np.ceil(frac.max(axis=0)).astype(int) + 1
        i, j = np.meshgrid(np.arange(lo[0], hi[0] + 1), np.arange(lo[1], hi[1] + 1), indexing="ij")
        cells = np.stack([i.ravel(), j.ravel()], axis=1).astype(np.float64)
        out, which = [], []
        for k, site in enumerate(self.sublattices):
            pts = (cells + np.asarray(site.fraction, dtype=np.float64)) @ basis + origin_nm
            inside = (
                (pts[:, 0] >= -margin)
                & (pts[:, 1] >= -margin)
                & (pts[:, 0] < field_nm[0] + margin)
                & (pts[:, 1] < field_nm[1] + margin)
            )
            out.append(pts[inside])
            which.append(np.full(int(inside.sum()), k, dtype=np.int64))
        return np.concatenate(out), np.concatenate(which)


@dataclass(frozen=True)
class IdealImage:
    """An ideal lattice image and its exact columns."""

    image: np.ndarray  # float32 (H, W)
    positions_px: np.ndarray  # (N, 2) column centres inside the field
    sublattice: np.ndarray  # (N,) index of each column's sublattice
    pixel_size_nm: float
    column_sigma_nm: float
    lattice: PlainLattice = field(repr=False, default_factory=PlainLattice)


def render_gaussians(
    shape: tuple[int, int],
    centres_px: np.ndarray,
    sigma_px: float,
    amplitude: np.ndarray,
    reach_sigmas: float = 5.0,
) -> np.ndarray:
    """Sum of point-sampled isotropic Gaussians (peak ``amplitude``) on a float64 grid."""
    h, w = shape
    out = np.zeros(shape, dtype=np.float64)
    half = math.ceil(reach_sigmas * sigma_px)
    offsets = np.arange(-half, half + 1)
    for (y, x), amp in zip(np.asarray(centres_px, dtype=np.float64), amplitude):
        rows = int(np.rint(y)) + offsets
        cols = int(np.rint(x)) + offsets
        rows, cols = rows[(rows >= 0) & (rows < h)], cols[(cols >= 0) & (cols < w)]
        if rows.size == 0 or cols.size == 0:
            continue
        gy = np.exp(-((rows - y) ** 2) / (2 * sigma_px**2))
        gx = np.exp(-((cols - x) ** 2) / (2 * sigma_px**2))
        out[np.ix_(rows, cols)] += amp * np.outer(gy, gx)
    return out


def ideal_lattice_image(
    lattice: PlainLattice,
    shape_px: tuple[int, int] = (512, 512),
    pixel_size_nm: float = 0.02,
    column_sigma_nm: float = 0.05,
    noise_fraction: float = 0.0,
    background_ramp: float = 0.0,
    seed: int = 0,
) -> IdealImage:
    """Gaussian columns on a plain lattice, with white noise and a linear background.

    Parameters
    ----------
    lattice
        The lattice (its sublattices' intensities are the columns' peak heights).
    shape_px, pixel_size_nm
        The image's size and sampling.
    column_sigma_nm
        Width (standard deviation) of every column.
    noise_fraction
        Standard deviation of the Gaussian noise as a fraction of the brightest
        column's peak.
    background_ramp
        Height of a linear background across the field (at a random direction), as a
        fraction of the brightest column's peak.
    seed
        Where the lattice origin falls, the ramp's direction and the noise.
    """
    check_range(pixel_size_nm, 1e-4, 10.0, "pixel_size_nm")
    check_range(column_sigma_nm, 1e-4, 10.0, "column_sigma_nm")
    check_range(noise_fraction, 0.0, 10.0, "noise_fraction")
    check_range(background_ramp, 0.0, 100.0, "background_ramp")
    rng = np.random.default_rng(seed)
    h, w = (int(v) for v in shape_px)
    field_nm = (h * pixel_size_nm, w * pixel_size_nm)
    origin = rng.random(2) @ lattice.basis_nm()
    pos_nm, which = lattice.positions_nm(field_nm, origin)
    intensity = np.array([s.intensity for s in lattice.sublattices], dtype=np.float64)
    peak = intensity / intensity.max()
    centres = pos_nm / pixel_size_nm
    sigma_px = column_sigma_nm / pixel_size_nm
    image = render_gaussians((h, w), centres, sigma_px, peak[which])
    if background_ramp:
        angle = rng.uniform(0, 2 * np.pi)
        yy, xx = np.mgrid[0:h, 0:w]
        along = yy * math.sin(angle) + xx * math.cos(angle)
        image += background_ramp * (along - along.min()) / max(np.ptp(along), 1.0)
    if noise_fraction:
        image += rng.normal(0.0, noise_fraction, image.shape)
    inside = (
        (centres[:, 0] >= 0)
        & (centres[:, 1] >= 0)
        & (centres[:, 0] <= h - 1)
        & (centres[:, 1] <= w - 1)
    )
    return IdealImage(
        image.astype(np.float32),
        centres[inside],
        which[inside],
        float(pixel_size_nm),
        float(column_sigma_nm),
        lattice,
    )
