"""The material catalogue and projected "column cells" along zone axes.

Every material is built with ase from its lattice parameters (no downloaded files). For a
zone axis [uvw] the crystal is reduced once to a *column cell*: the 2-D lattice of the
projection, the repeat distance along the beam, and the atoms of one repeat grouped into
atomic columns with their depths. A slab of any thickness and any lateral size is then
tiled in NumPy (see :mod:`.scene`) without building 3-D atoms, which keeps the fast
imaging models fast. Column cells are cached per (material, zone axis).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache, reduce

import numpy as np
from ase import Atoms
from ase.build import bulk
from ase.spacegroup import crystal

from ..errors import InputError


@dataclass(frozen=True)
class Material:
    """One catalogue entry.

    ``kind`` is "layered" (thickness given in whole layers of ``layer_thickness_A``) or
    "bulk" (thickness in nm). ``particle`` marks fcc metals that can also be nanoparticles.
    """

    name: str
    kind: str
    zone_axes: tuple[str, ...]
    description: str
    build: Callable[[], Atoms]
    layer_thickness_A: float = 0.0
    #: fraction of c where the depth axis starts, so layers are whole (layered materials)
    depth_origin_frac: float = 0.0
    particle: bool = False
    lattice_constant_A: float = 0.0


def _hexagonal(symbols, basis, spacegroup, a, c) -> Callable[[], Atoms]:
    return lambda: crystal(
        symbols, basis=basis, spacegroup=spacegroup, cellpar=[a, a, c, 90, 90, 120]
    )


def _tmd(metal: str, chalcogen: str, a: float, c: float, z: float) -> Callable[[], Atoms]:
    # 2H polytype, P6_3/mmc: metal 2c (1/3, 2/3, 1/4), chalcogen 4f (1/3, 2/3, z).
    return _hexagonal([metal, chalcogen], [(1 / 3, 2 / 3, 0.25), (1 / 3, 2 / 3, z)], 194, a, c)


def _fcc(symbol: str, a: float) -> Callable[[], Atoms]:
    return lambda: bulk(symbol, "fcc", a=a, cubic=True)


def _diamond(symbol: str, a: float) -> Callable[[], Atoms]:
    return lambda: bulk(symbol, "diamond", a=a, cubic=True)


def _perovskite(a_site: str, b_site: str, a: float) -> Callable[[], Atoms]:
    return lambda: Atoms(
        [a_site, b_site, "O", "O", "O"],
        scaled_positions=[(0, 0, 0), (0.5, 0.5, 0.5), (0.5, 0.5, 0), (0.5, 0, 0.5), (0, 0.5, 0.5)],
        cell=[a, a, a],
        pbc=True,
    )


def _wurtzite(cation: str, anion: str, a: float, c: float, u: float) -> Callable[[], Atoms]:
    return _hexagonal([cation, anion], [(1 / 3, 2 / 3, 0), (1 / 3, 2 / 3, u)], 186, a, c)


_CUBIC_AXES = ("001", "011", "111")
_WURTZITE_AXES = ("11-20", "1-100", "0001")


def _catalogue() -> dict[str, Material]:
    entries = [
        Material(
            "MoS2",
            "layered",
            ("001",),
            "2H-MoS2 monolayer/bilayer (a = 3.160 A)",
            _tmd("Mo", "S", 3.160, 12.294, 0.621),
            12.294 / 2,
            0.5,
        ),
        Material(
            "WS2",
            "layered",
            ("001",),
            "2H-WS2 (a = 3.153 A)",
            _tmd("W", "S", 3.153, 12.323, 0.622),
            12.323 / 2,
            0.5,
        ),
        Material(
            "MoSe2",
            "layered",
            ("001",),
            "2H-MoSe2 (a = 3.288 A)",
            _tmd("Mo", "Se", 3.288, 12.927, 0.621),
            12.927 / 2,
            0.5,
        ),
        Material(
            "WSe2",
            "layered",
            ("001",),
            "2H-WSe2 (a = 3.282 A)",
            _tmd("W", "Se", 3.282, 12.960, 0.621),
            12.960 / 2,
            0.5,
        ),
        Material(
            "graphene",
            "layered",
            ("001",),
            "graphene / AB graphite (a = 2.464 A)",
            _hexagonal(["C", "C"], [(0, 0, 0.25), (1 / 3, 2 / 3, 0.25)], 194, 2.464, 6.711),
            6.711 / 2,
            0.0,
        ),
        Material(
            "hBN",
            "layered",
            ("001",),
            "hexagonal BN, AA' stacking (a = 2.504 A)",
            _hexagonal(["B", "N"], [(1 / 3, 2 / 3, 0.25), (1 / 3, 2 / 3, 0.75)], 194, 2.504, 6.661),
            6.661 / 2,
            0.0,
        ),
        Material(
            "Au",
            "bulk",
            _CUBIC_AXES,
            "fcc gold (a = 4.078 A)",
            _fcc("Au", 4.078),
            particle=True,
            lattice_constant_A=4.078,
        ),
        Material(
            "Pt",
            "bulk",
            _CUBIC_AXES,
            "fcc platinum (a = 3.924 A)",
            _fcc("Pt", 3.924),
            particle=True,
            lattice_constant_A=3.924,
        ),
        Material(
            "Pd",
            "bulk",
            _CUBIC_AXES,
            "fcc palladium (a = 3.891 A)",
            _fcc("Pd", 3.891),
            particle=True,
            lattice_constant_A=3.891,
        ),
        Material(
            "Ag",
            "bulk",
            _CUBIC_AXES,
            "fcc silver (a = 4.086 A)",
            _fcc("Ag", 4.086),
            particle=True,
            lattice_constant_A=4.086,
        ),
        Material(
            "Cu",
            "bulk",
            _CUBIC_AXES,
            "fcc copper (a = 3.615 A)",
            _fcc("Cu", 3.615),
            particle=True,
            lattice_constant_A=3.615,
        ),
        Material(
            "SrTiO3",
            "bulk",
            ("001", "011", "111"),
            "cubic perovskite SrTiO3 (a = 3.905 A)",
            _perovskite("Sr", "Ti", 3.905),
            lattice_constant_A=3.905,
        ),
        Material(
            "Si",
            "bulk",
            ("011", "001"),
            "diamond-cubic silicon (a = 5.431 A)",
            _diamond("Si", 5.431),
            lattice_constant_A=5.431,
        ),
        Material(
            "Ge",
            "bulk",
            ("011", "001"),
            "diamond-cubic germanium (a = 5.658 A)",
            _diamond("Ge", 5.658),
            lattice_constant_A=5.658,
        ),
        Material(
            "GaN",
            "bulk",
            _WURTZITE_AXES,
            "wurtzite GaN (a = 3.189, c = 5.185 A)",
            _wurtzite("Ga", "N", 3.189, 5.185, 0.377),
        ),
        Material(
            "CdSe",
            "bulk",
            _WURTZITE_AXES,
            "wurtzite CdSe (a = 4.299, c = 7.010 A)",
            _wurtzite("Cd", "Se", 4.299, 7.010, 0.375),
        ),
        Material(
            "ZnO",
            "bulk",
            _WURTZITE_AXES,
            "wurtzite ZnO (a = 3.250, c = 5.207 A)",
            _wurtzite("Zn", "O", 3.250, 5.207, 0.382),
        ),
    ]
    return {m.name: m for m in entries}


MATERIALS: dict[str, Material] = _catalogue()


def list_materials() -> dict[str, dict]:
    """The catalogue: name -> {kind, zone_axes, description, particle}.

    Returns
    -------
    dict
        Material name -> ``{"kind", "zone_axes", "description", "particle"}``: ``kind`` is
        "layered" (use ``layers``) or "bulk" (use ``thickness_nm``); ``particle`` is true
        for the fcc metals that can also be simulated as nanoparticles.
    """
    return {
        name: {
            "kind": m.kind,
            "zone_axes": list(m.zone_axes),
            "description": m.description,
            "particle": m.particle,
        }
        for name, m in MATERIALS.items()
    }


def get_material(name: str) -> Material:
    """Catalogue entry by name (case-insensitive); InputError listing the names otherwise."""
    for key, material in MATERIALS.items():
        if key.lower() == str(name).lower():
            return material
    raise InputError(f"material: unknown {name!r}; choose one of {', '.join(MATERIALS)}")


def parse_zone_axis(zone_axis: str) -> tuple[int, int, int]:
    """Parse "011", "[1-10]", "11-20" or "0001" into three-index [uvw] (reduced by gcd).

    Four-index Miller-Bravais directions [uvtw] (hexagonal crystals) are converted to
    [u - t, v - t, w].
    """
    digits = [int(d) for d in re.findall(r"-?\d", str(zone_axis))]
    if len(digits) == 4:
        u, v, t, w = digits
        if u + v + t != 0:
            raise InputError(f"zone_axis: {zone_axis!r} is not a valid [uvtw] (u + v + t != 0)")
        digits = [u - t, v - t, w]
    elif len(digits) != 3:
        raise InputError(f"zone_axis: cannot parse {zone_axis!r}; write e.g. '011' or '11-20'")
    if not any(digits):
        raise InputError("zone_axis: [000] is not a direction")
    g = reduce(math.gcd, (abs(d) for d in digits if d))
    return tuple(d // g for d in digits)  # type: ignore[return-value]


@dataclass(frozen=True)
class ColumnCell:
    """A crystal seen along a zone axis, reduced to one periodic cell of atomic columns.

    Positions are (y, x) in Angstrom in the plane normal to the beam; depths are along
    the beam, in [0, ``repeat_A``). ``basis_A`` rows are the two in-plane lattice vectors
    (y, x) of the projected lattice.
    """

    material: str
    zone_axis: str
    basis_A: np.ndarray  # (2, 2)
    repeat_A: float
    column_yx_A: np.ndarray  # (n_columns, 2)
    atom_column: np.ndarray  # (n_atoms,) index into column_yx_A
    atom_z: np.ndarray  # (n_atoms,) atomic numbers
    atom_depth_A: np.ndarray  # (n_atoms,)

    @property
    def n_columns(self) -> int:
        """Columns per cell."""
        return len(self.column_yx_A)

    @property
    def area_A2(self) -> float:
        """Projected cell area, square Angstrom."""
        return float(abs(np.linalg.det(self.basis_A)))

    def nearest_neighbour_A(self) -> float:
        """Shortest projected distance between two columns (with periodic images)."""
        pts = self.column_yx_A
        shifts = np.array([(i, j) for i in (-1, 0, 1) for j in (-1, 0, 1)]) @ self.basis_A
        images = (pts[None, :, :] + shifts[:, None, :]).reshape(-1, 2)
        d = np.linalg.norm(pts[:, None, :] - images[None, :, :], axis=-1)
        d[d < 1e-6] = np.inf
        return float(d.min())


def _orthonormal_frame(direction: np.ndarray, first_in_plane: np.ndarray):
    e_z = direction / np.linalg.norm(direction)
    e_x = first_in_plane - (first_in_plane @ e_z) * e_z
    e_x /= np.linalg.norm(e_x)
    e_y = np.cross(e_z, e_x)
    return e_x, e_y, e_z


@lru_cache(maxsize=64)
def column_cell(material: str, zone_axis: str) -> ColumnCell:
    """The column cell of ``material`` along ``zone_axis`` (cached)."""
    mat = get_material(material)
    canonical = _canonical_zone(mat, zone_axis)
    atoms = mat.build()
    cell = np.asarray(atoms.cell, dtype=np.float64)
    uvw = np.array(parse_zone_axis(canonical), dtype=np.float64)
    t_vec = uvw @ cell
    repeat = float(np.linalg.norm(t_vec))
    e_dir = t_vec / repeat

    # The projection of the 3-D lattice is a 2-D lattice of area V / |t|. Its reduced basis
    # is the shortest projected vector and the shortest one not collinear with it.
    rng = np.arange(-6, 7)
    n = np.stack(np.meshgrid(rng, rng, rng, indexing="ij"), -1).reshape(-1, 3).astype(float)
    vec3 = n @ cell
    perp = vec3 - np.outer(vec3 @ e_dir, e_dir)
    length = np.linalg.norm(perp, axis=1)
    ok = length > 1e-6
    order = np.argsort(np.where(ok, length, np.inf), kind="stable")
    first = order[0]
    p1 = perp[first]
    cross = np.linalg.norm(np.cross(perp, p1), axis=1)
    candidates = np.nonzero(ok & (cross > 1e-6 * length[first] * np.maximum(length, 1e-12)))[0]
    second = candidates[np.argmin(length[candidates])]
    e_x, e_y, e_z = _orthonormal_frame(e_dir, p1)
    area_expected = abs(np.linalg.det(cell)) / repeat
    basis = np.array([[p1 @ e_y, p1 @ e_x], [perp[second] @ e_y, perp[second] @ e_x]])
    if not math.isclose(abs(np.linalg.det(basis)), area_expected, rel_tol=1e-6):
        raise RuntimeError(f"projected lattice of {material} [{canonical}] not reduced")
    lattice_1, lattice_2 = vec3[first], vec3[second]

    # Fold every atom of the cell into the prism {fractional (0..1)^2} x {depth 0..repeat}:
    # a fundamental domain of the lattice, so it holds exactly len(atoms) atoms.
    pos = atoms.positions.astype(np.float64)
    yx = np.stack([pos @ e_y, pos @ e_x], axis=1)
    frac = np.linalg.solve(basis.T, yx.T).T
    shift = np.floor(frac + 1e-9)
    pos = pos - shift[:, :1] * lattice_1 - shift[:, 1:] * lattice_2
    frac = frac - shift
    depth = np.mod(pos @ e_z - mat.depth_origin_frac * repeat, repeat)
    depth[np.isclose(depth, repeat, atol=1e-6)] = 0.0
    yx = frac @ basis

    # Group atoms that project onto the same point (periodic wrap) into columns.
    col_of_atom = np.full(len(pos), -1)
    centres: list[np.ndarray] = []
    wraps = np.array([(i, j) for i in (-1, 0, 1) for j in (-1, 0, 1)]) @ basis
    for i in range(len(pos)):
        for k, c in enumerate(centres):
            if np.min(np.linalg.norm(yx[i] + wraps - c, axis=1)) < 0.05:
                col_of_atom[i] = k
                break
        else:
            col_of_atom[i] = len(centres)
            centres.append(yx[i])
    return ColumnCell(
        material=mat.name,
        zone_axis=canonical,
        basis_A=basis,
        repeat_A=repeat,
        column_yx_A=np.array(centres),
        atom_column=col_of_atom,
        atom_z=atoms.numbers.astype(np.int64),
        atom_depth_A=depth,
    )


def _canonical_zone(mat: Material, zone_axis: str) -> str:
    wanted = parse_zone_axis(zone_axis)
    for name in mat.zone_axes:
        if parse_zone_axis(name) == wanted:
            return name
    raise InputError(
        f"zone_axis: {zone_axis!r} is not available for {mat.name}; "
        f"choose one of {', '.join(mat.zone_axes)}"
    )


#: materials that can be simulated as nanoparticles (fcc metals)
PARTICLE_CAPABLE: tuple[str, ...] = tuple(n for n, m in MATERIALS.items() if m.particle)
