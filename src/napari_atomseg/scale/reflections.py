"""The lattice spacings an image of a catalogue material can show, and how common each is.

For every material of :mod:`napari_atomseg.simulation.materials` and each of its zone
axes, the projected crystal (the material's *column cell*) is a 2-D lattice of atomic
columns. Its reciprocal lattice gives the spots a micrograph's power spectrum can show;
each spot's weight is the kinematic projected structure factor ``|sum_c w_c exp(2 pi i
g.r_c)|^2`` with column weights ``w_c = sum Z^1.5`` (between the ``Z^1.7`` of HAADF and
the ``Z^~1`` of phase contrast; only used to tell strong from nearly extinct spots),
normalised to the strongest spot. Spots of equal spacing form a *family*.

Examples: graphene [001] {100} 0.2134 nm (a = 2.464 A; the often quoted 0.2131 nm is a =
2.461 A) and {110} 0.1232 nm; SrTiO3 [001] {100} 0.3905, {110} 0.2761, {200} 0.1953 nm.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

#: Spots weaker than this (relative |F|^2) are treated as extinct.
MIN_RELATIVE_INTENSITY = 0.02
#: Spacings below this are beyond what any micrograph resolves usefully.
MIN_SPACING_NM = 0.05
#: Largest |h|, |k| of the 2-D reciprocal lattice considered.
MAX_INDEX = 8

#: How common each material is in atomic-resolution micrographs -- the prior of the scale
#: estimate when the user names no material and a spot pattern fits several (every
#: hexagonal 2-D crystal shows a sqrt(3) pair of rings; every square lattice fits every
#: other one at some scale). Relative weights: graphene leads (the most imaged crystal in
#: HRTEM), then the MoS2 family (together as likely as graphene), the perovskite, the fcc
#: metals and the semiconductors. A judgement, not fitted to any image.
MATERIAL_PRIOR: dict[str, float] = {
    "graphene": 4.0,
    "MoS2": 2.0,
    "WS2": 1.0,
    "MoSe2": 0.5,
    "WSe2": 0.5,
    "hBN": 1.0,
    "SrTiO3": 1.5,
    "Au": 1.0,
    "Pt": 1.0,
    "Pd": 0.5,
    "Ag": 0.5,
    "Cu": 0.5,
    "Si": 1.0,
    "Ge": 0.5,
    "GaN": 1.0,
    "CdSe": 0.5,
    "ZnO": 0.7,
}


#: How a material's prior is shared among its zone axes (equal when not listed): the
#: low-index axes microscopists align crystals to first.
ZONE_PRIOR: dict[str, dict[str, float]] = {
    "SrTiO3": {"001": 0.6, "011": 0.3, "111": 0.1},
    "Si": {"011": 0.8, "001": 0.2},
    "Ge": {"011": 0.8, "001": 0.2},
    **{m: {"011": 0.5, "001": 0.35, "111": 0.15} for m in ("Au", "Pt", "Pd", "Ag", "Cu")},
    **{m: {"11-20": 0.5, "1-100": 0.3, "0001": 0.2} for m in ("GaN", "CdSe", "ZnO")},
}


def zone_prior(material: str, zone_axis: str, n_zones: int) -> float:
    """Prior weight of one (material, zone axis) hypothesis (see the two tables above)."""
    share = ZONE_PRIOR.get(material, {}).get(zone_axis, 1.0 / max(n_zones, 1))
    return MATERIAL_PRIOR.get(material, 0.5) * share


@dataclass(frozen=True)
class Family:
    """Spots of one spacing: ``spacing_nm``, relative ``intensity`` and the spots' angles
    (degrees in [0, 180), in the material's own frame; Friedel pairs counted once)."""

    spacing_nm: float
    intensity: float
    angles_deg: tuple[float, ...]


@dataclass(frozen=True)
class ZoneReflections:
    """The spot families of one material along one zone axis, largest spacing first."""

    material: str
    zone_axis: str
    families: tuple[Family, ...]

    @property
    def label(self) -> str:
        """``"material [zone]"``, as shown to the user."""
        return f"{self.material} [{self.zone_axis}]"


def _families(material: str, zone_axis: str) -> tuple[Family, ...]:
    from ..simulation.materials import column_cell

    cell = column_cell(material, zone_axis)
    recip = np.linalg.inv(cell.basis_A).T  # rows: b1, b2 with a_i . b_j = delta_ij (1/A)
    weights = np.zeros(cell.n_columns)
    np.add.at(weights, cell.atom_column, cell.atom_z.astype(np.float64) ** 1.5)
    spots: list[tuple[float, float, float]] = []
    for h in range(-MAX_INDEX, MAX_INDEX + 1):
        for k in range(-MAX_INDEX, MAX_INDEX + 1):
            if (h, k) <= (0, 0):  # one of each Friedel pair
                continue
            g = h * recip[0] + k * recip[1]
            spacing_nm = 0.1 / float(np.hypot(*g))
            if spacing_nm < MIN_SPACING_NM:
                continue
            f = complex((weights * np.exp(2j * np.pi * (cell.column_yx_A @ g))).sum())
            intensity = abs(f) ** 2 / float(weights.sum()) ** 2
            angle = math.degrees(math.atan2(g[0], g[1])) % 180.0
            spots.append((spacing_nm, intensity, angle))
    strongest = max(s[1] for s in spots)
    out: list[Family] = []
    for spacing, intensity, angle in sorted(spots, key=lambda s: -s[0]):
        rel = intensity / strongest
        if rel < MIN_RELATIVE_INTENSITY:
            continue
        if out and abs(out[-1].spacing_nm / spacing - 1.0) < 2e-3:
            last = out[-1]
            out[-1] = Family(
                last.spacing_nm, max(last.intensity, rel), (*last.angles_deg, round(angle, 2))
            )
        else:
            out.append(Family(spacing, rel, (round(angle, 2),)))
    return tuple(out)


@lru_cache(maxsize=1)
def catalogue_reflections() -> tuple[ZoneReflections, ...]:
    """Spot families of every catalogue material along each of its zone axes (cached)."""
    from ..simulation.materials import MATERIALS

    return tuple(
        ZoneReflections(name, zone, _families(name, zone))
        for name, material in MATERIALS.items()
        for zone in material.zone_axes
    )


def material_names() -> tuple[str, ...]:
    """The catalogue's material names (what ``material=`` accepts).

    Returns
    -------
    tuple of str
        The names, in catalogue order.
    """
    from ..simulation.materials import MATERIALS

    return tuple(MATERIALS)


def reflections_for(material: str | None, zone_axis: str | None = None) -> list[ZoneReflections]:
    """The catalogue entries to match: all, one material's zones, or one zone.

    Raises :class:`~napari_atomseg.errors.InputError` for an unknown material or a zone
    axis the material does not have (the message lists what exists).
    """
    from ..errors import InputError
    from ..simulation.materials import get_material, parse_zone_axis

    entries = catalogue_reflections()
    if material is None:
        if zone_axis is not None:
            raise InputError("zone_axis needs a material")
        return list(entries)
    name = get_material(material).name
    chosen = [e for e in entries if e.material == name]
    if zone_axis is not None:
        wanted = parse_zone_axis(zone_axis)
        chosen = [e for e in chosen if parse_zone_axis(e.zone_axis) == wanted]
        if not chosen:
            zones = ", ".join(e.zone_axis for e in entries if e.material == name)
            raise InputError(f"zone_axis: {zone_axis!r} is not listed for {name}; use {zones}")
    return chosen
