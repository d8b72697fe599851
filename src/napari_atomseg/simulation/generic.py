"""Generic crystals: a random 2-D lattice with real atoms, as a simulator material.

A network trained on a catalogue of a dozen crystals can learn those lattices instead of
learning to see columns (it then "completes" a lattice where the image shows nothing).
:class:`GenericLattice` describes a crystal by its projection only: one of the five 2-D
Bravais lattices (:mod:`.lattice2d`), 1-6 sites in the cell, each a column of
``atoms`` atoms of one element per ``repeat_nm`` along the beam, and a homogeneous
strain. :meth:`GenericLattice.column_cell` turns it into the same
:class:`~.materials.ColumnCell` the catalogue materials give, so the scene builder, the
fast HAADF / HRTEM models and multislice render it like any material
(``SimulationParameters(material="generic", generic_lattice=spec.to_json())``).

:func:`random_generic_lattice` draws one: Bravais type, nearest-neighbour spacing,
1-3 sublattices at special or random positions, relative column intensities set through
the element and the atoms per column, optional dumbbells (two sites 0.08-0.15 nm apart),
strain.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
from ase.data import atomic_numbers

from ..errors import InputError
from .lattice2d import BRAVAIS, PlainLattice, Sublattice
from .materials import ColumnCell
from .potentials import _lobato_table, element_symbol

#: the material name that selects a generic lattice
GENERIC = "generic"
#: elements a random generic crystal is made of (common in solids, potentials tabulated)
ELEMENTS = (
    "B",
    "C",
    "N",
    "O",
    "F",
    "Na",
    "Mg",
    "Al",
    "Si",
    "P",
    "S",
    "Cl",
    "K",
    "Ca",
    "Ti",
    "V",
    "Cr",
    "Mn",
    "Fe",
    "Co",
    "Ni",
    "Cu",
    "Zn",
    "Ga",
    "Ge",
    "As",
    "Se",
    "Sr",
    "Y",
    "Zr",
    "Nb",
    "Mo",
    "Ru",
    "Rh",
    "Pd",
    "Ag",
    "Cd",
    "In",
    "Sn",
    "Sb",
    "Te",
    "Ba",
    "La",
    "Ce",
    "Nd",
    "Gd",
    "Hf",
    "Ta",
    "W",
    "Re",
    "Os",
    "Ir",
    "Pt",
    "Au",
    "Pb",
    "Bi",
)
#: Z exponent used to turn a wanted intensity ratio into an element (the images' own
#: exponent differs a little: ratios are approximate by design)
_CHOICE_EXPONENT = 1.5
#: closest two columns of a generic crystal may be (they must stay separate columns)
MIN_SITE_DISTANCE_NM = 0.06


@dataclass(frozen=True)
class GenericSite:
    """One column of the cell: fractional position, element, atoms per repeat."""

    fraction: tuple[float, float]
    element: str
    atoms: int = 1


@dataclass(frozen=True)
class GenericLattice:
    """A projected crystal: Bravais cell, sites (columns) and strain.

    ``kind``, ``a_nm``, ``b_nm``, ``gamma_deg`` and ``strain`` are as in
    :class:`~.lattice2d.PlainLattice` (no rotation here: the simulation's
    ``rotation_deg`` turns the crystal); ``repeat_nm`` is the period along the beam in
    which each site holds ``atoms`` atoms.
    """

    kind: str
    a_nm: float
    sites: tuple[GenericSite, ...]
    b_nm: float | None = None
    gamma_deg: float = 75.0
    strain: tuple[tuple[float, float], tuple[float, float]] = ((0.0, 0.0), (0.0, 0.0))
    repeat_nm: float = 0.3

    def __post_init__(self) -> None:
        _validate(self)

    # --- geometry --------------------------------------------------------------------------
    def plain(self) -> PlainLattice:
        """The same lattice as a :class:`PlainLattice` (sublattice intensity ~ N Z^1.5)."""
        weight = [s.atoms * atomic_numbers[s.element] ** _CHOICE_EXPONENT for s in self.sites]
        top = max(weight)
        return PlainLattice(
            kind=self.kind,
            a_nm=self.a_nm,
            b_nm=self.b_nm,
            gamma_deg=self.gamma_deg,
            sublattices=tuple(
                Sublattice(tuple(s.fraction), w / top) for s, w in zip(self.sites, weight)
            ),
            strain=self.strain,
        )

    def nearest_neighbour_nm(self) -> float:
        """Shortest projected distance between two columns, nm."""
        return self.plain().nearest_neighbour_nm()

    def column_cell(self) -> ColumnCell:
        """The crystal as a :class:`~.materials.ColumnCell` (cached per spec)."""
        return _column_cell(self.to_json())

    # --- JSON ------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (inverse of :meth:`from_dict`)."""
        return {
            "kind": self.kind,
            "a_nm": self.a_nm,
            "b_nm": self.b_nm,
            "gamma_deg": self.gamma_deg,
            "strain": [list(row) for row in self.strain],
            "repeat_nm": self.repeat_nm,
            "sites": [
                {"fraction": list(s.fraction), "element": s.element, "atoms": s.atoms}
                for s in self.sites
            ],
        }

    def to_json(self) -> str:
        """:meth:`to_dict` as JSON with sorted keys (one text per lattice)."""
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GenericLattice:
        """Build from a dict (keys of :meth:`to_dict`); unknown keys or malformed sites
        are an :class:`InputError`."""
        if not isinstance(data, dict):
            raise InputError("generic_lattice: expected a JSON object")
        allowed = {"kind", "a_nm", "b_nm", "gamma_deg", "strain", "repeat_nm", "sites"}
        unknown = sorted(set(data) - allowed)
        if unknown:
            raise InputError(f"generic_lattice: unknown key(s) {', '.join(unknown)}")
        if "kind" not in data or "a_nm" not in data or "sites" not in data:
            raise InputError("generic_lattice: needs at least 'kind', 'a_nm' and 'sites'")
        try:
            sites = tuple(
                GenericSite(
                    (float(s["fraction"][0]), float(s["fraction"][1])),
                    str(s["element"]),
                    int(s.get("atoms", 1)),
                )
                for s in data["sites"]
            )
            strain = data.get("strain", ((0.0, 0.0), (0.0, 0.0)))
            strain = tuple((float(r[0]), float(r[1])) for r in strain)
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise InputError(
                "generic_lattice: each site needs 'fraction' [f1, f2], 'element' and "
                f"optionally 'atoms'; strain is [[e_yy, e_yx], [e_xy, e_xx]] ({exc})"
            ) from exc
        b = data.get("b_nm")
        return cls(
            kind=str(data["kind"]),
            a_nm=float(data["a_nm"]),
            sites=sites,
            b_nm=None if b is None else float(b),
            gamma_deg=float(data.get("gamma_deg", 75.0)),
            strain=strain,  # type: ignore[arg-type]
            repeat_nm=float(data.get("repeat_nm", 0.3)),
        )

    @classmethod
    def from_json(cls, text: str) -> GenericLattice:
        """Build from :meth:`to_json` text; invalid JSON is an :class:`InputError`."""
        try:
            data = json.loads(text)
        except (TypeError, json.JSONDecodeError) as exc:
            raise InputError(f"generic_lattice: not valid JSON ({exc})") from exc
        return cls.from_dict(data)


def _validate(g: GenericLattice) -> None:
    if g.kind not in BRAVAIS:
        raise InputError(f"generic_lattice: kind {g.kind!r} is not one of {', '.join(BRAVAIS)}")
    if not 0.05 <= g.a_nm <= 5.0 or (g.b_nm is not None and not 0.05 <= g.b_nm <= 5.0):
        raise InputError("generic_lattice: a_nm and b_nm must be within 0.05-5 nm")
    if not 20.0 <= g.gamma_deg <= 160.0:
        raise InputError(f"generic_lattice: gamma_deg {g.gamma_deg} must be within 20-160")
    if not 0.1 <= g.repeat_nm <= 2.0:
        raise InputError(f"generic_lattice: repeat_nm {g.repeat_nm} must be within 0.1-2 nm")
    if any(abs(v) > 0.2 for row in g.strain for v in row) or len(g.strain) != 2:
        raise InputError("generic_lattice: strain must be a 2x2 matrix with entries <= 0.2")
    if not 1 <= len(g.sites) <= 6:
        raise InputError(f"generic_lattice: {len(g.sites)} sites; a cell holds 1 to 6")
    table = _lobato_table()
    for s in g.sites:
        symbol = element_symbol(s.element)
        if symbol != s.element or symbol not in table:
            raise InputError(f"generic_lattice: element {s.element!r} is not usable")
        if not 1 <= s.atoms <= 8:
            raise InputError(f"generic_lattice: atoms per repeat {s.atoms} must be 1-8")
        if not all(0.0 <= f < 1.0 for f in s.fraction):
            raise InputError(f"generic_lattice: site fraction {s.fraction} must be in [0, 1)")
    nn = PlainLattice(
        kind=g.kind,
        a_nm=g.a_nm,
        b_nm=g.b_nm,
        gamma_deg=g.gamma_deg,
        sublattices=tuple(Sublattice(tuple(s.fraction)) for s in g.sites),
        strain=g.strain,
    ).nearest_neighbour_nm()
    if nn < MIN_SITE_DISTANCE_NM:
        raise InputError(
            f"generic_lattice: two columns are {nn:.3f} nm apart; at least "
            f"{MIN_SITE_DISTANCE_NM} nm is needed for them to be separate columns"
        )


@lru_cache(maxsize=256)
def _column_cell(spec_json: str) -> ColumnCell:
    g = GenericLattice.from_json(spec_json)
    basis_A = g.plain().basis_nm() * 10.0
    fractions = np.array([s.fraction for s in g.sites], dtype=np.float64)
    columns = fractions @ basis_A
    repeat_A = g.repeat_nm * 10.0
    atom_column, atom_z, depth = [], [], []
    for k, s in enumerate(g.sites):
        # Atoms evenly spaced along the repeat; sites staggered so that no two atoms of
        # neighbouring columns share a depth (it matters only to multislice).
        offset = (k + 0.5) / (len(g.sites) + 1) / s.atoms
        for j in range(s.atoms):
            atom_column.append(k)
            atom_z.append(atomic_numbers[s.element])
            depth.append(((j / s.atoms) + offset) % 1.0 * repeat_A)
    return ColumnCell(
        material=GENERIC,
        zone_axis="001",
        basis_A=basis_A,
        repeat_A=repeat_A,
        column_yx_A=columns,
        atom_column=np.array(atom_column, dtype=np.int64),
        atom_z=np.array(atom_z, dtype=np.int64),
        atom_depth_A=np.array(depth, dtype=np.float64),
    )


def generic_column_cell(spec_json: str) -> ColumnCell:
    """The column cell of a generic crystal given as JSON (validated; cached)."""
    return _column_cell(GenericLattice.from_json(spec_json).to_json())


# --- random crystals ----------------------------------------------------------------------------
@dataclass(frozen=True)
class GenericRanges:
    """What :func:`random_generic_lattice` draws from (the mix's ``generic_*`` keys)."""

    bravais: dict[str, float]
    sublattices: dict[str, float]
    spacing_nm: tuple[float, float] = (0.12, 0.6)
    intensity_ratio: tuple[float, float] = (0.1, 1.0)
    p_dumbbell: float = 0.2
    dumbbell_nm: tuple[float, float] = (0.08, 0.15)
    strain: float = 0.03
    repeat_nm: tuple[float, float] = (0.2, 0.45)


#: fractional positions real crystals favour for a second or third site, per cell shape
_SPECIAL = {
    "square": ((0.5, 0.5), (0.5, 0.0), (0.0, 0.5)),
    "rectangular": ((0.5, 0.5), (0.5, 0.0), (0.0, 0.5)),
    "centred_rectangular": ((0.5, 0.5), (0.5, 0.0), (0.0, 0.5)),
    "oblique": ((0.5, 0.5), (0.5, 0.0), (0.0, 0.5)),
    "hexagonal": ((1 / 3, 1 / 3), (2 / 3, 2 / 3), (0.5, 0.5), (0.5, 0.0)),
}


def _cell_shape(rng: np.random.Generator, kind: str) -> dict[str, float | None]:
    """a = 1 and the other cell parameters of a random cell of ``kind``."""
    b: float | None = None
    gamma = 75.0
    if kind in ("rectangular", "centred_rectangular"):
        b = float(np.exp(rng.uniform(math.log(1.15), math.log(1.9))))
        if kind == "centred_rectangular":
            b = max(b, 1.2)  # keep it distinct from square / hexagonal
    elif kind == "oblique":
        b = float(np.exp(rng.uniform(math.log(0.75), math.log(1.5))))
        gamma = float(rng.uniform(65.0, 115.0))
        if abs(gamma - 90.0) < 5.0:
            gamma += 10.0
    return {"b_nm": b, "gamma_deg": gamma}


def _site_fractions(rng: np.random.Generator, kind: str, n: int) -> list[tuple[float, float]]:
    """Site 0 at the origin; others at special positions (60 %) or random ones, apart."""
    sites = [(0.0, 0.0)]
    special = list(_SPECIAL[kind])
    for _ in range(n - 1):
        for _attempt in range(50):
            if special and rng.random() < 0.6:
                f = special.pop(int(rng.integers(len(special))))
            else:
                f = (float(rng.uniform(0.1, 0.9)), float(rng.uniform(0.1, 0.9)))
            if all(_frac_distance(f, s) > 0.22 for s in sites):
                sites.append((round(f[0], 6) % 1.0, round(f[1], 6) % 1.0))
                break
    return sites


def _frac_distance(f: tuple[float, float], g: tuple[float, float]) -> float:
    d = np.abs(np.array(f) - np.array(g))
    d = np.minimum(d, 1.0 - d)
    return float(np.hypot(*d))


def _element_for(weight: float, atoms: int) -> str:
    """The element whose ``atoms`` atoms scatter closest to ``weight`` (in Z^1.5 units)."""
    z = (weight / atoms) ** (1.0 / _CHOICE_EXPONENT)
    return min(ELEMENTS, key=lambda e: abs(math.log(atomic_numbers[e] / z)))


#: Draws of :func:`random_generic_lattice` before it gives up (a draw is redone when its
#: cell comes out outside what :class:`GenericLattice` accepts: about 3 in 10,000).
MAX_DRAWS = 100


def random_generic_lattice(rng: np.random.Generator, ranges: GenericRanges) -> GenericLattice:
    """One random generic crystal (see the module docstring).

    A draw whose cell :class:`GenericLattice` refuses (a cell over 5 nm when the sites of
    an oblique cell lie close together) is redrawn, so a training run never stops on one;
    the draws that were valid are unchanged.
    """
    for _ in range(MAX_DRAWS):
        try:
            return _draw_generic_lattice(rng, ranges)
        except InputError:
            continue
    raise InputError(f"generic lattices: no valid lattice in {MAX_DRAWS} draws from {ranges}")


def _draw_generic_lattice(rng: np.random.Generator, ranges: GenericRanges) -> GenericLattice:
    kinds = list(ranges.bravais)
    w = np.array([ranges.bravais[k] for k in kinds], dtype=float)
    kind = kinds[int(rng.choice(len(kinds), p=w / w.sum()))]
    counts = list(ranges.sublattices)
    wc = np.array([ranges.sublattices[c] for c in counts], dtype=float)
    n_sub = int(counts[int(rng.choice(len(counts), p=wc / wc.sum()))])
    shape = _cell_shape(rng, kind)
    fractions = _site_fractions(rng, kind, n_sub)
    spacing = float(np.exp(rng.uniform(*np.log(ranges.spacing_nm))))
    unit = PlainLattice(
        kind=kind,
        a_nm=1.0,
        b_nm=shape["b_nm"],
        gamma_deg=float(shape["gamma_deg"]),
        sublattices=tuple(Sublattice(f) for f in fractions),
    )
    scale = spacing / unit.nearest_neighbour_nm()
    a_nm = scale
    b_nm = None if shape["b_nm"] is None else float(shape["b_nm"]) * scale

    # The brightest site: a random element and 1-3 atoms per repeat; the others at a
    # random fraction of its scattering, through their element and atom count.
    heavy = [e for e in ELEMENTS if atomic_numbers[e] >= 22]
    top_element = heavy[int(rng.integers(len(heavy)))]
    top_atoms = int(rng.integers(1, 4))
    top_weight = top_atoms * atomic_numbers[top_element] ** _CHOICE_EXPONENT
    sites = [GenericSite(fractions[0], top_element, top_atoms)]
    for f in fractions[1:]:
        ratio = float(np.exp(rng.uniform(*np.log(ranges.intensity_ratio))))
        atoms = int(rng.integers(1, 4))
        sites.append(GenericSite(f, _element_for(ratio * top_weight, atoms), atoms))
    if rng.random() < ranges.p_dumbbell and spacing >= 1.6 * ranges.dumbbell_nm[1]:
        sites = _add_dumbbell(rng, sites, kind, a_nm, b_nm, shape, ranges)
    strain = rng.uniform(-ranges.strain, ranges.strain, (2, 2))
    strain = 0.5 * (strain + strain.T)  # homogeneous strain, no rotation
    order = rng.permutation(len(sites))  # which site is at the origin is arbitrary
    return GenericLattice(
        kind=kind,
        a_nm=round(a_nm, 6),
        sites=tuple(sites[i] for i in order),
        b_nm=None if b_nm is None else round(b_nm, 6),
        gamma_deg=round(float(shape["gamma_deg"]), 4),
        strain=tuple((round(float(r[0]), 6), round(float(r[1]), 6)) for r in strain),  # type: ignore[arg-type]
        repeat_nm=round(float(rng.uniform(*ranges.repeat_nm)), 6),
    )


def _add_dumbbell(rng, sites, kind, a_nm, b_nm, shape, ranges) -> list[GenericSite]:
    """Give one site a partner 0.08-0.15 nm away (same element or a lighter one)."""
    host = sites[int(rng.integers(len(sites)))]
    basis = PlainLattice(
        kind=kind, a_nm=a_nm, b_nm=b_nm, gamma_deg=float(shape["gamma_deg"])
    ).basis_nm()
    length = float(rng.uniform(*ranges.dumbbell_nm))
    angle = float(rng.uniform(0, 2 * np.pi))
    shift_nm = length * np.array([np.sin(angle), np.cos(angle)])
    frac = np.mod(np.array(host.fraction) + np.linalg.solve(basis.T, shift_nm), 1.0)
    if rng.random() < 0.5:
        element, atoms = host.element, host.atoms
    else:
        ratio = float(rng.uniform(0.3, 1.0))
        weight = host.atoms * atomic_numbers[host.element] ** _CHOICE_EXPONENT * ratio
        atoms = host.atoms
        element = _element_for(weight, atoms)
    partner = GenericSite(
        (round(float(frac[0]), 6) % 1.0, round(float(frac[1]), 6) % 1.0), element, atoms
    )
    trial = [*sites, partner]
    fractions = [s.fraction for s in trial]
    lattice = PlainLattice(
        kind=kind,
        a_nm=a_nm,
        b_nm=b_nm,
        gamma_deg=float(shape["gamma_deg"]),
        sublattices=tuple(Sublattice(f) for f in fractions),
    )
    # The partner must be nearer its host than to any other column.
    if lattice.nearest_neighbour_nm() < 0.95 * length:
        return sites
    return trial
