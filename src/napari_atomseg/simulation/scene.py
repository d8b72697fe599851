"""The specimen: atomic columns, individual atoms and amorphous layers, in the sample plane.

:func:`build_scene` turns :class:`SimulationParameters` into a :class:`Scene`:

- crystalline columns (tiled from cached column cells, with thickness variation, tilt,
  vacancies, substitutions, a second grain), nanoparticles, adatoms and single atoms or
  small clusters, each merged into columns (atoms within ``merge_distance_nm``);
- *render points*: what the imaging models deposit (column segments for tilted
  crystals, atoms for particles), each tied to its column;
- amorphous layers (carbon support, hydrocarbon contamination) as thickness maps, with
  explicit atoms where they are few and a statistical description where they are many;
- region geometry, so class masks can be evaluated at any (distorted) position.

Coordinates are (y, x) in Angstrom; pixel (r, c) of the undistorted image is centred at
(r * pixel size, c * pixel size). Depth is along the beam.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from ase.data import atomic_numbers
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import ConvexHull, cKDTree

from .fields import Region, SmoothField
from .generic import generic_column_cell
from .materials import ColumnCell, column_cell, get_material
from .parameters import GENERIC, SimulationParameters
from .particles import oriented_particle, small_cluster
from .potentials import element_symbol

#: region names, indexed by the codes stored in ``Scene.column_region``
REGIONS = ("crystal", "particle", "support", "contamination", "adatom", "single_atom")
_R = {name: i for i, name in enumerate(REGIONS)}

#: amorphous carbon ~2.0 g/cm^3 (atoms per A^3), lightly N/O doped as real supports are
SUPPORT_COMPOSITION = {"C": 0.92, "N": 0.05, "O": 0.03}
SUPPORT_DENSITY_PER_A3 = 0.100
#: hydrocarbon contamination ~1.1 g/cm^3 as CH1.4 with traces of O and Si
CONTAMINATION_COMPOSITION = {"C": 0.40, "H": 0.56, "O": 0.03, "Si": 0.01}
CONTAMINATION_DENSITY_PER_A3 = 0.118
#: layers with fewer atoms than this in the scene are made of explicit atoms
EXPLICIT_ATOM_LIMIT = 60_000
#: elements of an amorphous layer heavier than this are always explicit atoms
EXPLICIT_Z_ABOVE = 10


@dataclass
class AmorphousLayer:
    """An amorphous film: thickness(y, x) = thickness_A * (1 + variation * F) * edge."""

    kind: str  # "support" or "contamination"
    composition: dict[str, float]
    density_per_A3: float
    thickness_A: float
    variation: float
    variation_field: SmoothField | None
    region: Region
    #: density fluctuations on the nm scale (medium-range order, pores, dopant clusters),
    #: as a relative rms; they multiply the thickness like the variation does
    texture_field: SmoothField | None = None
    texture_rms: float = 0.0

    def thickness_on_grid(self, y_A: np.ndarray, x_A: np.ndarray) -> np.ndarray:
        """Thickness (Angstrom) on the outer product of 1-D coordinates."""
        t = self.region.weight_on_grid(y_A, x_A) * np.float32(self.thickness_A)
        if self.variation_field is not None and self.variation:
            t = t * np.clip(
                1.0 + self.variation * self.variation_field.on_grid(y_A, x_A), 0.1, None
            )
        if self.texture_field is not None and self.texture_rms:
            t = t * np.clip(
                1.0 + self.texture_rms * self.texture_field.on_grid(y_A, x_A), 0.1, None
            )
        return t.astype(np.float32)

    def thickness_at(self, y_A: np.ndarray, x_A: np.ndarray) -> np.ndarray:
        """Thickness (Angstrom) at points (y, x) in Angstrom."""
        t = self.region.weight(y_A, x_A) * self.thickness_A
        if self.variation_field is not None and self.variation:
            t = t * np.clip(1.0 + self.variation * self.variation_field(y_A, x_A), 0.1, None)
        if self.texture_field is not None and self.texture_rms:
            t = t * np.clip(1.0 + self.texture_rms * self.texture_field(y_A, x_A), 0.1, None)
        return t


@dataclass
class Scene:
    """Everything the imaging models and the ground truth need to know about the specimen."""

    elements: list[str]
    column_yx_A: np.ndarray  # (n, 2)
    column_counts: np.ndarray  # (n, n_elements) int
    column_region: np.ndarray  # (n,) codes into REGIONS
    point_yx_A: np.ndarray  # (m, 2) render points
    point_element: np.ndarray  # (m,) index into elements
    point_atoms: np.ndarray  # (m,) number of atoms the point stands for
    point_column: np.ndarray  # (m,) column index
    point_depth_A: np.ndarray  # (m,) depth along the beam (nan: a column segment)
    point_layer: np.ndarray  # (m,) 0 structure, 1 support, 2 contamination
    amorphous: list[AmorphousLayer] = field(default_factory=list)
    #: amorphous elements kept statistical (not explicit atoms), per layer
    statistical: list[dict[str, float]] = field(default_factory=list)
    crystal_region: Region | None = None
    particle_hulls: list[np.ndarray] = field(default_factory=list)
    bounds_A: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)

    @property
    def n_columns(self) -> int:
        """Number of columns."""
        return len(self.column_yx_A)

    def column_atomic_numbers(self) -> np.ndarray:
        """Atomic number of each of :attr:`elements` (int64), so that
        ``column_counts @ column_atomic_numbers()`` is each column's Z sum."""
        return np.array([atomic_numbers[e] for e in self.elements], dtype=np.int64)

    # --- masks ---------------------------------------------------------------------------
    def particle_mask(self, y_A: np.ndarray, x_A: np.ndarray) -> np.ndarray:
        """1 where a crystalline particle or the lattice covers (y, x), else 0."""
        inside = np.zeros(np.broadcast(y_A, x_A).shape, dtype=bool)
        if self.crystal_region is not None:
            inside |= self.crystal_region.contains(y_A, x_A)
        for hull in self.particle_hulls:
            inside |= _inside_convex(hull, y_A, x_A)
        return inside.astype(np.uint8)

    def class_mask(self, y_A: np.ndarray, x_A: np.ndarray) -> np.ndarray:
        """0 vacuum, 1 crystal, 2 amorphous support, 3 contamination (top-most wins)."""
        out = np.zeros(np.broadcast(y_A, x_A).shape, dtype=np.uint8)
        for layer in self.amorphous:
            if layer.kind == "support":
                out[layer.thickness_at(y_A, x_A) > 2.0] = 2
        out[self.particle_mask(y_A, x_A) > 0] = 1
        for layer in self.amorphous:
            if layer.kind == "contamination":
                out[layer.thickness_at(y_A, x_A) > 3.0] = 3
        return out


def _inside_convex(hull: np.ndarray, y: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Point-in-convex-polygon for vertices (y, x) in either winding order."""
    n = len(hull)
    signed_area = 0.5 * np.sum(
        hull[:, 1] * np.roll(hull[:, 0], -1) - np.roll(hull[:, 1], -1) * hull[:, 0]
    )
    sign = 1.0 if signed_area >= 0 else -1.0
    inside = np.ones(np.broadcast(y, x).shape, dtype=bool)
    for i in range(n):
        y0, x0 = hull[i]
        y1, x1 = hull[(i + 1) % n]
        inside &= sign * ((x1 - x0) * (y - y0) - (y1 - y0) * (x - x0)) >= 0
    return inside


# --- crystals -----------------------------------------------------------------------------
def _rot2(angle_rad: float) -> np.ndarray:
    c, s = np.cos(angle_rad), np.sin(angle_rad)
    return np.array([[c, -s], [s, c]])


def tile_cell(
    cell: ColumnCell, bounds_A, rotation_rad: float, offset_yx_A: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Column positions (n, 2) and cell-column indices covering ``bounds_A``."""
    y0, y1, x0, x1 = bounds_A
    rot = _rot2(rotation_rad)
    basis = cell.basis_A @ rot.T
    cols = cell.column_yx_A @ rot.T
    corners = np.array([[y0, x0], [y0, x1], [y1, x0], [y1, x1]]) - offset_yx_A
    frac = np.linalg.solve(basis.T, corners.T).T
    lo = np.floor(frac.min(0)).astype(int) - 1
    hi = np.ceil(frac.max(0)).astype(int) + 1
    i, j = np.meshgrid(np.arange(lo[0], hi[0] + 1), np.arange(lo[1], hi[1] + 1), indexing="ij")
    origins = i.reshape(-1, 1) * basis[0] + j.reshape(-1, 1) * basis[1] + offset_yx_A
    pos = (origins[:, None, :] + cols[None, :, :]).reshape(-1, 2)
    idx = np.tile(np.arange(cell.n_columns), len(origins))
    keep = (pos[:, 0] >= y0) & (pos[:, 0] <= y1) & (pos[:, 1] >= x0) & (pos[:, 1] <= x1)
    return pos[keep], idx[keep]


def column_counts(
    cell: ColumnCell, cell_index: np.ndarray, thickness_A: np.ndarray, elements: list[str]
) -> np.ndarray:
    """Atoms of each element in each tiled column for a slab of the given thickness."""
    from ase.data import chemical_symbols

    counts = np.zeros((len(cell_index), len(elements)), dtype=np.int64)
    n_full = np.floor(thickness_A / cell.repeat_A + 1e-9)
    rem = thickness_A - n_full * cell.repeat_A
    for k in range(cell.n_columns):
        sel = np.nonzero(cell_index == k)[0]
        if sel.size == 0:
            continue
        in_col = cell.atom_column == k
        for z in np.unique(cell.atom_z[in_col]):
            depths = np.sort(cell.atom_depth_A[in_col & (cell.atom_z == z)])
            e = elements.index(chemical_symbols[z])
            counts[sel, e] = n_full[sel].astype(np.int64) * len(depths) + np.searchsorted(
                depths, rem[sel] - 1e-6, side="left"
            )
    return counts


def merge_atoms(
    yx_A: np.ndarray, element: np.ndarray, n_elements: int, merge_A: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Group atoms that lie within about ``merge_A`` laterally into columns.

    Single linkage on a grid of cells ``merge_A / 2`` wide: atoms in the same or touching
    cells are linked (so atoms closer than merge_A / 2 always merge and atoms further
    than 1.42 merge_A never do). Sorting cell keys keeps it O(n log n) even for particles
    of tens of thousands of atoms. Returns column positions (mean of the atoms),
    per-element counts and each atom's column index.
    """
    n = len(yx_A)
    if n == 0:
        return np.zeros((0, 2)), np.zeros((0, n_elements), dtype=np.int64), np.zeros(0, int)
    if merge_A > 0 and n > 1:
        cell = merge_A / 2
        iy = np.floor(yx_A[:, 0] / cell).astype(np.int64)
        ix = np.floor(yx_A[:, 1] / cell).astype(np.int64)
        iy -= iy.min() - 1
        ix -= ix.min() - 1
        width = int(ix.max()) + 2
        keys, atom_cell = np.unique(iy * width + ix, return_inverse=True)
        rows, cols = [], []
        for dy, dx in ((0, 1), (1, -1), (1, 0), (1, 1)):
            neighbour = keys + dy * width + dx
            pos = np.searchsorted(keys, neighbour)
            found = (pos < len(keys)) & (keys[np.minimum(pos, len(keys) - 1)] == neighbour)
            rows.append(np.nonzero(found)[0])
            cols.append(pos[found])
        r, c = np.concatenate(rows), np.concatenate(cols)
        m = len(keys)
        graph = coo_matrix((np.ones(len(r)), (r, c)), shape=(m, m))
        _, cell_label = connected_components(graph, directed=False)
        label = cell_label[np.asarray(atom_cell).ravel()]
        # Renumber columns 0..n_col-1 in order of first appearance.
        _, first, label = np.unique(label, return_index=True, return_inverse=True)
        n_col = len(first)
    else:
        n_col, label = n, np.arange(n)
    counts = np.zeros((n_col, n_elements), dtype=np.int64)
    np.add.at(counts, (label, element), 1)
    size = np.bincount(label, minlength=n_col).astype(float)
    pos = np.stack(
        [
            np.bincount(label, yx_A[:, 0], n_col) / size,
            np.bincount(label, yx_A[:, 1], n_col) / size,
        ],
        axis=1,
    )
    return pos, counts, label


class _Builder:
    """Accumulates columns and render points from the scene's parts."""

    def __init__(self) -> None:
        self.elements: list[str] = []
        self.col_yx: list[np.ndarray] = []
        self.col_counts: list[np.ndarray] = []
        self.col_region: list[np.ndarray] = []
        self.pt_yx: list[np.ndarray] = []
        self.pt_el: list[np.ndarray] = []
        self.pt_atoms: list[np.ndarray] = []
        self.pt_col: list[np.ndarray] = []
        self.pt_depth: list[np.ndarray] = []
        self.pt_layer: list[np.ndarray] = []
        self.n_cols = 0

    def element_index(self, symbol: str) -> int:
        """Index of ``symbol`` in :attr:`elements`, appending it when new."""
        if symbol not in self.elements:
            self.elements.append(symbol)
        return self.elements.index(symbol)

    def add_columns(
        self,
        yx,
        counts_by_symbol: dict[str, np.ndarray],
        region: str,
        spread_yx=None,
        n_samples: int = 1,
    ) -> None:
        """Columns given per-element counts; tilted columns are drawn as segments."""
        n = len(yx)
        if n == 0:
            return
        index = [self.element_index(s) for s in counts_by_symbol]
        width = len(self.elements)
        counts = np.zeros((n, width), dtype=np.int64)
        for s, i in zip(counts_by_symbol, index):
            counts[:, i] = counts_by_symbol[s]
        keep = counts.sum(1) > 0
        yx, counts = yx[keep], counts[keep]
        if spread_yx is not None:
            spread_yx = spread_yx[keep]
        n = len(yx)
        col_ids = self.n_cols + np.arange(n)
        self._append_columns(yx, counts, region)
        # Render points: n_samples along the tilt segment, per element present.
        if spread_yx is None or n_samples <= 1:
            offsets = np.zeros((1, n, 2))
        else:
            t = (np.arange(n_samples) + 0.5) / n_samples - 0.5
            offsets = t[:, None, None] * spread_yx[None, :, :] * 2
        for i in index:
            has = counts[:, i] > 0
            if not has.any():
                continue
            k = len(offsets)
            pos = (yx[has][None, :, :] + offsets[:, has, :]).reshape(-1, 2)
            self.pt_yx.append(pos)
            self.pt_el.append(np.full(len(pos), i))
            self.pt_atoms.append(np.tile(counts[has, i] / k, k))
            self.pt_col.append(np.tile(col_ids[has], k))
            self.pt_depth.append(np.full(len(pos), np.nan))
            self.pt_layer.append(np.zeros(len(pos), dtype=np.int8))

    def add_atoms(
        self, yx, symbols: np.ndarray, region: str, merge_A: float, depth=None, layer=0
    ) -> None:
        """Individual atoms: merged into columns, each atom its own render point.

        ``layer`` 1 marks atoms inside the support (multislice stacks them there)."""
        if len(yx) == 0:
            return
        self.pt_depth.append(np.full(len(yx), np.nan) if depth is None else np.asarray(depth))
        self.pt_layer.append(np.broadcast_to(np.asarray(layer, np.int8), (len(yx),)).copy())
        uniq, inverse = np.unique(symbols, return_inverse=True)
        el = np.array([self.element_index(str(s)) for s in uniq])[inverse]
        pos, counts, label = merge_atoms(yx, el, len(self.elements), merge_A)
        col0 = self.n_cols
        self._append_columns(pos, counts, region)
        self.pt_yx.append(yx)
        self.pt_el.append(el)
        self.pt_atoms.append(np.ones(len(yx)))
        self.pt_col.append(col0 + label)

    def _append_columns(self, yx, counts, region: str) -> None:
        self.col_yx.append(yx)
        self.col_counts.append(counts)
        self.col_region.append(np.full(len(yx), _R[region], dtype=np.int8))
        self.n_cols += len(yx)

    def finish(self) -> dict:
        """The collected columns and render points as :class:`Scene` fields (arrays)."""
        width = len(self.elements)
        counts = [np.pad(c, ((0, 0), (0, width - c.shape[1]))) for c in self.col_counts]
        cat = lambda xs, shape, dt: np.concatenate(xs) if xs else np.zeros(shape, dt)  # noqa: E731
        return {
            "elements": list(self.elements),
            "column_yx_A": cat(self.col_yx, (0, 2), float),
            "column_counts": np.concatenate(counts) if counts else np.zeros((0, width), np.int64),
            "column_region": cat(self.col_region, (0,), np.int8),
            "point_yx_A": cat(self.pt_yx, (0, 2), float),
            "point_element": cat(self.pt_el, (0,), np.int64),
            "point_atoms": cat(self.pt_atoms, (0,), float),
            "point_column": cat(self.pt_col, (0,), np.int64),
            "point_depth_A": cat(self.pt_depth, (0,), float),
            "point_layer": cat(self.pt_layer, (0,), np.int8),
        }


def _lattice(
    p: SimulationParameters, b: _Builder, bounds, fov_bounds, rng, explicit: bool = False
) -> Region:
    cell, layer_A = _crystal_cell(p)
    rotation = np.deg2rad(p.rotation_deg)
    offset = rng.random(2) @ cell.basis_A
    pos, idx = tile_cell(cell, bounds, rotation, offset)
    region = Region.random(rng, p.crystal_coverage, bounds, fov_bounds, corr_A=60.0, roughness=0.6)
    if p.grain_boundary_deg > 0:
        pos, idx = _grain_boundary(p, cell, pos, idx, bounds, fov_bounds, rotation, rng)
    inside = region.contains(pos[:, 0], pos[:, 1])
    pos, idx = pos[inside], idx[inside]
    if p.column_vacancy_fraction > 0:
        # Empty sites: the whole column is missing, so nothing in the image marks the site.
        keep = rng.random(len(pos)) >= p.column_vacancy_fraction
        pos, idx = pos[keep], idx[keep]

    # Thickness: whole layers for layered crystals, a (possibly wedge-shaped) slab otherwise.
    if layer_A:
        thickness = np.full(len(pos), p.layers * layer_A)
    else:
        centre = np.array(
            [(fov_bounds[0] + fov_bounds[1]) / 2, (fov_bounds[2] + fov_bounds[3]) / 2]
        )
        direction = _rot2(rng.uniform(0, 2 * np.pi)) @ np.array([1.0, 0.0])
        along_nm = ((pos - centre) @ direction) / 10.0
        t0 = p.thickness_nm * 10.0
        thickness = np.clip(
            t0 * (1 + p.thickness_gradient_per_nm * along_nm), cell.repeat_A, 4 * t0
        )
    if explicit:
        _lattice_atoms(p, b, cell, pos, idx, thickness, rng)
        if p.adatom_element and p.adatom_density_per_nm2 > 0:
            _adatoms(p, b, pos, cell.nearest_neighbour_A(), region, fov_bounds, rng)
        return region
    symbols = sorted({s for s in _cell_symbols(cell)}, key=lambda s: -atomic_numbers[s])
    counts = column_counts(cell, idx, thickness, symbols)
    counts_by_symbol = {s: counts[:, i] for i, s in enumerate(symbols)}
    _point_defects(p, counts_by_symbol, rng)

    # A tilt off the zone axis smears each column along the tilt azimuth.
    spread = None
    n_samples = 1
    if p.tilt_mrad > 0:
        tan = np.tan(p.tilt_mrad * 1e-3)
        az = np.deg2rad(p.tilt_azimuth_deg)
        half = 0.5 * thickness * tan
        spread = np.stack([half * np.sin(az), half * np.cos(az)], axis=1)
        n_samples = int(np.clip(np.ceil(2 * half.max() / 0.25), 1, 12))
    b.add_columns(pos, counts_by_symbol, "crystal", spread, n_samples)

    if p.adatom_element and p.adatom_density_per_nm2 > 0:
        _adatoms(p, b, pos, cell.nearest_neighbour_A(), region, fov_bounds, rng)
    return region


def _crystal_cell(p: SimulationParameters) -> tuple[ColumnCell, float]:
    """The column cell of ``p``'s crystal and its layer thickness (A; 0 = a bulk slab)."""
    if p.material == GENERIC:
        return generic_column_cell(p.generic_lattice), 0.0
    mat = get_material(p.material)
    layer_A = mat.layer_thickness_A if mat.kind == "layered" else 0.0
    return column_cell(mat.name, p.zone_axis), layer_A


def _lattice_atoms(p, b: _Builder, cell: ColumnCell, pos, idx, thickness, rng) -> None:
    """Explicit 3-D atoms of the tiled slab (for multislice): same columns as the fast
    path, with point defects drawn atom by atom and tilt applied to each atom's depth."""
    from ase.data import chemical_symbols

    yx_parts, z_parts, depth_parts = [], [], []
    for k in range(cell.n_columns):
        sel = np.nonzero(idx == k)[0]
        if sel.size == 0:
            continue
        in_col = cell.atom_column == k
        d_k = cell.atom_depth_A[in_col]
        z_k = cell.atom_z[in_col]
        t = thickness[sel]
        repeats = np.arange(int(np.ceil(t.max() / cell.repeat_A)) + 1)
        depth = np.broadcast_to(
            d_k[None, None, :] + repeats[None, :, None] * cell.repeat_A,
            (len(sel), len(repeats), len(d_k)),
        )
        present = depth < t[:, None, None] - 1e-6
        tile, _, atom = np.nonzero(present)
        yx_parts.append(pos[sel][tile])
        z_parts.append(z_k[atom])
        depth_parts.append(depth[present])
    if not yx_parts:
        return
    yx = np.concatenate(yx_parts)
    z = np.concatenate(z_parts)
    depth = np.concatenate(depth_parts)
    symbols = np.array([chemical_symbols[v] for v in z], dtype=object)
    if p.substitution and p.substitution_fraction > 0:
        new, host = (element_symbol(s) for s in p.substitution.split(":"))
        swap = (symbols == host) & (rng.random(len(symbols)) < p.substitution_fraction)
        symbols[swap] = new
    if p.vacancy_fraction > 0:
        target = element_symbol(p.vacancy_element) if p.vacancy_element else None
        eligible = np.ones(len(symbols), bool) if target is None else symbols == target
        keep = ~(eligible & (rng.random(len(symbols)) < p.vacancy_fraction))
        yx, symbols, depth = yx[keep], symbols[keep], depth[keep]
    if p.tilt_mrad > 0:
        az = np.deg2rad(p.tilt_azimuth_deg)
        shift = (depth - np.median(thickness) / 2) * np.tan(p.tilt_mrad * 1e-3)
        yx = yx + np.stack([shift * np.sin(az), shift * np.cos(az)], axis=1)
    b.add_atoms(yx, symbols.astype(str), "crystal", p.merge_distance_nm * 10, depth)


def _cell_symbols(cell: ColumnCell) -> list[str]:
    from ase.data import chemical_symbols

    return [chemical_symbols[z] for z in np.unique(cell.atom_z)]


def _point_defects(p: SimulationParameters, counts: dict[str, np.ndarray], rng) -> None:
    if p.substitution and p.substitution_fraction > 0:
        new, host = (element_symbol(s) for s in p.substitution.split(":"))
        if host in counts:
            moved = rng.binomial(counts[host], p.substitution_fraction)
            counts[host] = counts[host] - moved
            counts[new] = counts.get(new, np.zeros_like(moved)) + moved
    if p.vacancy_fraction > 0:
        targets = [element_symbol(p.vacancy_element)] if p.vacancy_element else list(counts)
        for s in targets:
            if s in counts:
                counts[s] = counts[s] - rng.binomial(counts[s], p.vacancy_fraction)


def _grain_boundary(p, cell, pos, idx, bounds, fov_bounds, rotation, rng):
    """Replace the crystal on one side of a wavy line by a second, rotated grain."""
    pos2, idx2 = tile_cell(
        cell, bounds, rotation + np.deg2rad(p.grain_boundary_deg), rng.random(2) @ cell.basis_A
    )
    centre = np.array([(fov_bounds[0] + fov_bounds[1]) / 2, (fov_bounds[2] + fov_bounds[3]) / 2])
    fov = min(fov_bounds[1] - fov_bounds[0], fov_bounds[3] - fov_bounds[2])
    through = centre + rng.uniform(-0.25, 0.25, 2) * fov
    normal = _rot2(rng.uniform(0, 2 * np.pi)) @ np.array([1.0, 0.0])
    tangent = np.array([-normal[1], normal[0]])
    amp, wavelength, phase = (
        rng.uniform(0, 0.05) * fov,
        rng.uniform(0.3, 1.0) * fov,
        rng.uniform(0, 6.3),
    )

    def side(q):
        """Signed distance (Angstrom) of points ``q`` from the wavy boundary line."""
        return (q - through) @ normal + amp * np.sin(
            2 * np.pi * ((q - through) @ tangent) / wavelength + phase
        )

    keep1 = side(pos) < 0
    keep2 = side(pos2) >= 0
    pos, idx, pos2, idx2 = pos[keep1], idx[keep1], pos2[keep2], idx2[keep2]
    # Columns of grain 2 too close to grain 1 at the interface cannot both exist.
    if len(pos) and len(pos2):
        d, _ = cKDTree(pos).query(pos2)
        ok = d > 0.6 * cell.nearest_neighbour_A()
        pos2, idx2 = pos2[ok], idx2[ok]
    return np.concatenate([pos, pos2]), np.concatenate([idx, idx2])


def _adatoms(p, b: _Builder, lattice_pos, nn_A, region: Region, fov_bounds, rng) -> None:
    y0, y1, x0, x1 = fov_bounds
    n = rng.poisson(p.adatom_density_per_nm2 * (y1 - y0) * (x1 - x0) / 100.0)
    if n == 0:
        return
    cand = np.stack([rng.uniform(y0, y1, 4 * n), rng.uniform(x0, x1, 4 * n)], axis=1)
    if len(lattice_pos):
        d, _ = cKDTree(lattice_pos).query(cand)
        cand = cand[d > 0.45 * nn_A]
    cand = cand[region.contains(cand[:, 0], cand[:, 1])][:n]
    cand = _thin_min_distance(cand, 2.0)
    symbol = element_symbol(p.adatom_element)
    b.add_atoms(
        cand, np.full(len(cand), symbol), "adatom", merge_A=0.0, depth=np.full(len(cand), -2.0)
    )


def _thin_min_distance(points: np.ndarray, min_A: float) -> np.ndarray:
    """Drop points closer than ``min_A`` to an earlier point."""
    if len(points) < 2:
        return points
    pairs = cKDTree(points).query_pairs(min_A, output_type="ndarray")
    drop = np.zeros(len(points), dtype=bool)
    for i, j in pairs[np.argsort(pairs[:, 1])]:
        if not drop[i]:
            drop[j] = True
    return points[~drop]


# --- particles and single atoms ---------------------------------------------------------------
def _particles(p: SimulationParameters, b: _Builder, fov_bounds, rng) -> list[np.ndarray]:
    y0, y1, x0, x1 = fov_bounds
    diameter = p.particle_diameter_nm * 10
    centres: list[np.ndarray] = []
    hulls = []
    for k in range(int(p.n_particles)):
        d_k = diameter * (rng.uniform(0.8, 1.2) if k else 1.0)
        for _ in range(50):
            # Keep most of each particle inside the field when the field allows it.
            margin = min(0.5 * d_k, 0.3 * min(y1 - y0, x1 - x0))
            c = np.array(
                [rng.uniform(y0 + margin, y1 - margin), rng.uniform(x0 + margin, x1 - margin)]
            )
            if all(np.linalg.norm(c - q) > 0.55 * (d_k + dq) + 5 for q, dq in centres):
                break
        else:
            continue
        centres.append((c, d_k))
        random_orientation = rng.random() < p.particle_random_orientation_fraction
        rotation = np.deg2rad(p.rotation_deg) if k == 0 else rng.uniform(0, 2 * np.pi)
        xyz = oriented_particle(
            p.material,
            p.particle_shape,
            p.particle_axis,
            d_k,
            rotation,
            p.tilt_mrad * 1e-3,
            np.deg2rad(p.tilt_azimuth_deg),
            rng,
            random_orientation,
        )
        yx = xyz[:, :2] + c
        depth = xyz[:, 2] - xyz[:, 2].min()
        b.add_atoms(yx, np.full(len(yx), p.material), "particle", p.merge_distance_nm * 10, depth)
        hulls.append(_padded_hull(yx, 1.0))
    return hulls


def _padded_hull(yx: np.ndarray, pad_A: float) -> np.ndarray:
    """Convex hull (counter-clockwise in (y, x)) of the atoms grown by ``pad_A``."""
    angles = np.linspace(0, 2 * np.pi, 8, endpoint=False)
    ring = pad_A * np.stack([np.sin(angles), np.cos(angles)], axis=1)
    hull0 = yx[ConvexHull(yx).vertices] if len(yx) >= 3 else yx
    grown = (hull0[:, None, :] + ring[None, :, :]).reshape(-1, 2)
    hull = grown[ConvexHull(grown).vertices]
    # ConvexHull gives counter-clockwise order in its own (first, second) = (y, x) axes.
    return hull


def _single_atoms(p: SimulationParameters, b: _Builder, fov_bounds, support, rng) -> None:
    y0, y1, x0, x1 = fov_bounds
    area_nm2 = (y1 - y0) * (x1 - x0) / 100.0
    n = rng.poisson(p.single_atom_density_per_nm2 * area_nm2)
    if n == 0:
        return
    cand = np.stack([rng.uniform(y0, y1, 3 * n + 10), rng.uniform(x0, x1, 3 * n + 10)], axis=1)
    if support is not None:
        cand = cand[support.thickness_at(cand[:, 0], cand[:, 1]) > 2.0]
    cand = _thin_min_distance(cand[:n], 2.5)
    symbol = element_symbol(p.single_atom_element)
    is_cluster = rng.random(len(cand)) < p.cluster_fraction
    # Atoms inside a porous support sit at a random depth in it (drawn only when asked,
    # so that recipes without them keep their random streams).
    site_depth = np.zeros(len(cand))
    if p.single_atom_depth_fraction > 0 and support is not None:
        inside = rng.random(len(cand)) < p.single_atom_depth_fraction
        local = support.thickness_at(cand[:, 0], cand[:, 1])
        site_depth = np.where(inside, rng.random(len(cand)) * local, 0.0)
    layer = (site_depth > 0).astype(np.int8)
    singles = cand[~is_cluster]
    b.add_atoms(
        singles,
        np.full(len(singles), symbol),
        "single_atom",
        p.merge_distance_nm * 10,
        site_depth[~is_cluster],
        layer[~is_cluster],
    )
    for c, d0, lay in zip(cand[is_cluster], site_depth[is_cluster], layer[is_cluster]):
        atoms = small_cluster(symbol, int(rng.integers(2, 13)), rng)
        yx = atoms[:, :2] + c
        b.add_atoms(
            yx,
            np.full(len(yx), symbol),
            "single_atom",
            p.merge_distance_nm * 10,
            atoms[:, 2] - atoms[:, 2].min() + d0,
            lay,
        )


# --- amorphous layers ---------------------------------------------------------------------------
def _support(p: SimulationParameters, bounds, fov_bounds, rng) -> AmorphousLayer | None:
    if p.support_thickness_nm <= 0 or p.support_coverage <= 0:
        return None
    region = Region.random(
        rng, p.support_coverage, bounds, fov_bounds, corr_A=120.0, roughness=0.5, ramp=0.4
    )
    variation_field = SmoothField(rng, bounds, corr_A=rng.uniform(30, 150), roughness=0.3)
    texture = None
    if p.support_texture_rms > 0:
        # Features of about support_texture_nm across: a Gaussian field of a quarter of
        # that width, on a grid fine enough to hold it.
        texture = SmoothField(rng, bounds, corr_A=p.support_texture_nm * 10 / 4, max_grid=512)
    return AmorphousLayer(
        "support",
        dict(SUPPORT_COMPOSITION),
        SUPPORT_DENSITY_PER_A3,
        p.support_thickness_nm * 10,
        p.support_thickness_variation,
        variation_field,
        region,
        texture,
        p.support_texture_rms,
    )


def _contamination(p: SimulationParameters, bounds, fov_bounds, rng) -> AmorphousLayer | None:
    if p.contamination_coverage <= 0 or p.contamination_thickness_nm <= 0:
        return None
    region = Region.random(
        rng,
        p.contamination_coverage,
        bounds,
        fov_bounds,
        corr_A=p.contamination_blob_size_nm * 10 / 2,
        roughness=0.7,
        ramp=0.25,
    )
    variation_field = SmoothField(
        rng, bounds, corr_A=p.contamination_blob_size_nm * 3, roughness=0.0
    )
    return AmorphousLayer(
        "contamination",
        dict(CONTAMINATION_COMPOSITION),
        CONTAMINATION_DENSITY_PER_A3,
        p.contamination_thickness_nm * 10,
        0.3,
        variation_field,
        region,
    )


def _amorphous_atoms(
    layer: AmorphousLayer, b: _Builder, bounds, rng, explicit: bool = False
) -> dict[str, float]:
    """Explicit atoms for sparse layers and heavy minor elements; returns the rest.

    Atoms are drawn per cell of the layer's thickness grid (Poisson counts, uniform
    positions inside the cell), so dense layers cost nothing here and are rendered
    statistically by the imaging models.
    """
    y0, y1, x0, x1 = bounds
    step = 2.0
    ys = np.arange(y0 + step / 2, y1, step)
    xs = np.arange(x0 + step / 2, x1, step)
    t = layer.thickness_on_grid(ys, xs)
    total = float(t.sum()) * step * step * layer.density_per_A3
    statistical: dict[str, float] = {}
    for symbol, fraction in layer.composition.items():
        keep = explicit or total < EXPLICIT_ATOM_LIMIT or atomic_numbers[symbol] > EXPLICIT_Z_ABOVE
        if not keep:
            statistical[symbol] = fraction
            continue
        lam = t * (step * step * layer.density_per_A3 * fraction)
        counts = rng.poisson(lam.ravel())
        if counts.sum() == 0:
            continue
        cells = np.repeat(np.arange(counts.size), counts)
        iy, ix = np.divmod(cells, len(xs))
        yx = np.stack(
            [
                ys[iy] + rng.uniform(-step / 2, step / 2, len(cells)),
                xs[ix] + rng.uniform(-step / 2, step / 2, len(cells)),
            ],
            axis=1,
        )
        # Amorphous atoms are render points without a column of their own in the table;
        # their depth is uniform through the local thickness (used by multislice only).
        depth = rng.uniform(0.0, 1.0, len(cells)) * t.ravel()[cells]
        _add_amorphous(b, yx, symbol, depth, 1 if layer.kind == "support" else 2)
    return statistical


def _add_amorphous(b: _Builder, yx: np.ndarray, symbol: str, depth: np.ndarray, layer: int) -> None:
    i = b.element_index(symbol)
    b.pt_yx.append(yx)
    b.pt_el.append(np.full(len(yx), i))
    b.pt_atoms.append(np.ones(len(yx)))
    b.pt_col.append(np.full(len(yx), -1))
    b.pt_depth.append(depth)
    b.pt_layer.append(np.full(len(yx), layer, dtype=np.int8))


def build_scene(
    p: SimulationParameters,
    bounds_A: tuple[float, float, float, float],
    fov_bounds_A: tuple[float, float, float, float],
    rng: np.random.Generator,
    explicit: bool = False,
) -> Scene:
    """Build the specimen for ``p`` over ``bounds_A`` (the padded field, Angstrom).

    ``explicit=True`` makes every atom explicit with its depth (crystals atom by atom,
    dense amorphous layers too), as multislice needs; the fast models use column counts
    and statistical amorphous layers instead, which are equivalent in projection.
    """
    b = _Builder()
    crystal_region = None
    hulls: list[np.ndarray] = []
    support = _support(p, bounds_A, fov_bounds_A, rng)
    contamination = _contamination(p, bounds_A, fov_bounds_A, rng)
    if p.scene == "lattice":
        crystal_region = _lattice(p, b, bounds_A, fov_bounds_A, rng, explicit)
    elif p.scene == "particles":
        hulls = _particles(p, b, fov_bounds_A, rng)
    if p.single_atom_density_per_nm2 > 0:
        _single_atoms(p, b, fov_bounds_A, support, rng)
    layers = [layer for layer in (support, contamination) if layer is not None]
    statistical = [_amorphous_atoms(layer, b, bounds_A, rng, explicit) for layer in layers]
    return Scene(
        **b.finish(),
        amorphous=layers,
        statistical=statistical,
        crystal_region=crystal_region,
        particle_hulls=hulls,
        bounds_A=bounds_A,
    )
