"""Random recipes: :class:`MixConfig` (a mixture, also from YAML) and :func:`random_parameters`.

A mixture weights the things a training library must vary -- imaging mode, scene
(lattice / particles / single atoms / bare amorphous film), material and zone axis, dose,
pixel size, thickness, defects, support, contamination, optics, detector and scan
artefacts. Ranges written ``[low, high]`` are sampled log-uniformly when their name says
so (``*_log``), uniformly otherwise; ``p_*`` are probabilities; dicts are relative weights.

The shipped mixes live in ``napari_atomseg/simulation/mixes/`` (``default.yaml`` equals
``MixConfig()``, ``atoms.yaml`` favours single atoms and clusters on carbon,
``particles.yaml`` favours nanoparticles and contamination).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from .generic import GENERIC, random_generic_lattice
from .lattice2d import BRAVAIS
from .materials import MATERIALS, PARTICLE_CAPABLE
from .mix_realism import (
    draw_dose,
    draw_realism,
    draw_z_exponents,
    generic_ranges,
    validate_generic_keys,
    validate_range_keys,
)
from .optics import scherzer_defocus_A
from .parameters import PARTICLE_AXES, PARTICLE_SHAPES, SCENES, SimulationParameters

MIXES_DIR = Path(__file__).with_name("mixes")

#: likely substitutional dopants per material ("new:host")
DOPANTS = {
    "MoS2": ["W:Mo", "Re:Mo", "Se:S", "Nb:Mo"],
    "WS2": ["Mo:W", "Re:W", "Se:S"],
    "MoSe2": ["W:Mo", "S:Se"],
    "WSe2": ["Mo:W", "S:Se"],
    "graphene": ["N:C", "Si:C", "B:C"],
    "hBN": ["C:B", "C:N", "O:N"],
    "Au": ["Pt:Au", "Ag:Au", "Pd:Au"],
    "Pt": ["Au:Pt", "Ni:Pt", "Co:Pt"],
    "Pd": ["Au:Pd", "Pt:Pd"],
    "Ag": ["Au:Ag", "Pd:Ag"],
    "Cu": ["Au:Cu", "Ni:Cu"],
    "SrTiO3": ["La:Sr", "Nb:Ti", "Fe:Ti"],
    "Si": ["Ge:Si", "As:Si"],
    "Ge": ["Si:Ge", "Sn:Ge"],
    "GaN": ["In:Ga", "Al:Ga"],
    "CdSe": ["Zn:Cd", "S:Se"],
    "ZnO": ["Mg:Zn", "Co:Zn"],
}
#: which element vacancies favour (chalcogen vacancies dominate in TMDs)
VACANCY_ELEMENT = {"MoS2": "S", "WS2": "S", "MoSe2": "Se", "WSe2": "Se", "hBN": "B"}


@dataclass
class MixConfig:
    """Weights and ranges of a random mixture of :class:`SimulationParameters`."""

    name: str = "default"
    shape_px: tuple[int, int] = (256, 256)
    modes: dict[str, float] = field(default_factory=lambda: {"haadf": 0.6, "hrtem": 0.4})
    scenes: dict[str, float] = field(
        default_factory=lambda: {
            "lattice": 0.55,
            "particles": 0.2,
            "single_atoms": 0.17,
            "amorphous": 0.08,
        }
    )
    materials: dict[str, float] = field(
        default_factory=lambda: {
            "MoS2": 2.0, "WS2": 1.0, "MoSe2": 0.5, "WSe2": 0.5, "graphene": 2.0, "hBN": 1.0,
            "Au": 1.0, "Pt": 1.0, "Pd": 0.5, "Ag": 0.5, "Cu": 0.3, "SrTiO3": 1.5, "Si": 1.0,
            "Ge": 0.5, "GaN": 1.0, "CdSe": 0.7, "ZnO": 0.5,
        }
    )  # fmt: skip
    #: HRTEM favours weak-phase objects (2-D materials, thin crystals)
    hrtem_materials: dict[str, float] = field(
        default_factory=lambda: {
            "graphene": 3.0, "hBN": 1.0, "MoS2": 2.0, "WS2": 1.0, "Au": 0.5, "Pt": 0.3,
            "Si": 0.5, "SrTiO3": 0.3, "GaN": 0.3, "CdSe": 0.3,
        }
    )  # fmt: skip
    particle_materials: dict[str, float] = field(
        default_factory=lambda: {"Au": 1.0, "Pt": 1.0, "Pd": 0.5, "Ag": 0.5, "Cu": 0.2}
    )
    particle_shapes: dict[str, float] = field(
        default_factory=lambda: {"octahedron": 1.0, "decahedron": 1.0, "icosahedron": 0.6}
    )
    single_atom_elements: dict[str, float] = field(
        default_factory=lambda: {"Pt": 3.0, "Au": 1.0, "Pd": 0.5, "Ir": 0.5, "W": 0.5, "Fe": 0.3}
    )
    pixel_size_nm_log: tuple[float, float] = (0.008, 0.08)
    dose_haadf_e_per_A2_log: tuple[float, float] = (2e3, 5e6)
    dose_hrtem_e_per_A2_log: tuple[float, float] = (1e2, 3e4)
    energy_keV: dict[str, float] = field(
        default_factory=lambda: {"300": 0.35, "200": 0.4, "80": 0.25}
    )
    thickness_nm_log: tuple[float, float] = (1.0, 30.0)
    hrtem_thickness_nm_log: tuple[float, float] = (0.8, 8.0)
    layers: dict[str, float] = field(default_factory=lambda: {"1": 0.65, "2": 0.3, "3": 0.05})
    p_wedge: float = 0.3
    p_tilt: float = 0.4
    tilt_mrad: tuple[float, float] = (0.0, 15.0)
    p_partial_crystal: float = 0.3
    p_grain_boundary: float = 0.1
    p_vacancies: float = 0.35
    vacancy_fraction_log: tuple[float, float] = (0.003, 0.08)
    p_substitution: float = 0.2
    substitution_fraction_log: tuple[float, float] = (0.005, 0.15)
    p_adatoms: float = 0.2
    adatom_density_per_nm2_log: tuple[float, float] = (0.02, 0.3)
    particle_diameter_nm_log: tuple[float, float] = (1.2, 10.0)
    max_particles: int = 4
    p_random_particle_orientation: float = 0.3
    single_atom_density_per_nm2_log: tuple[float, float] = (0.03, 1.5)
    p_clusters: float = 0.5
    p_single_atoms_near_particles: float = 0.3
    p_support: dict[str, float] = field(
        default_factory=lambda: {
            "lattice": 0.15, "particles": 0.95, "single_atoms": 1.0, "amorphous": 1.0,
        }
    )  # fmt: skip
    support_thickness_nm_log: tuple[float, float] = (2.0, 30.0)
    p_partial_support: float = 0.5
    p_contamination: float = 0.4
    contamination_coverage: tuple[float, float] = (0.05, 0.55)
    contamination_thickness_nm_log: tuple[float, float] = (0.5, 4.0)
    contamination_blob_size_nm_log: tuple[float, float] = (1.0, 8.0)
    p_uncorrected: float = 0.2
    p_scan_distortion: float = 0.6
    p_detector_artefacts: float = 0.4
    # --- generic lattices (material "generic" in materials / hrtem_materials) -----------
    generic_bravais: dict[str, float] = field(default_factory=lambda: {k: 1.0 for k in BRAVAIS})
    generic_sublattices: dict[str, float] = field(
        default_factory=lambda: {"1": 1.0, "2": 1.0, "3": 1.0}
    )
    generic_spacing_nm_log: tuple[float, float] = (0.12, 0.6)
    generic_intensity_ratio_log: tuple[float, float] = (0.1, 1.0)
    p_generic_dumbbell: float = 0.2
    generic_dumbbell_nm: tuple[float, float] = (0.08, 0.15)
    generic_strain: float = 0.03  # largest homogeneous strain component
    generic_repeat_nm: tuple[float, float] = (0.2, 0.45)
    # --- empty lattice sites (whole columns missing), any lattice ----------------------
    p_column_vacancies: float = 0.0
    column_vacancy_fraction_log: tuple[float, float] = (0.005, 0.1)
    # --- dose as a microscope sets it (None: the dose_*_e_per_A2 ranges) -----------------
    #: incident electrons per probe position (beam current x dwell / e); the dose per A^2
    #: is this over the pixel area, so fine pixels are not starved nor coarse ones clean
    electrons_per_probe_haadf_log: tuple[float, float] | None = None
    #: electrons per camera pixel in vacuum (dose rate x exposure x pixel area)
    electrons_per_pixel_hrtem_log: tuple[float, float] | None = None
    #: beam energies for 2-D (layered) crystals, which are imaged at low voltage
    energy_keV_2d: dict[str, float] | None = None
    # --- fast-model Z contrast ------------------------------------------------------------
    z_exponent: tuple[float, float] = (1.5, 2.0)
    #: if set, the Z exponents (columns, isolated atoms) are those calibrated to multislice
    #: for the recipe's beam energy (potentials.calibrated_z_exponent) plus one uniform
    #: offset drawn from this range
    z_exponent_offset: tuple[float, float] | None = None
    #: STEM effective source size (FWHM): also vibration and drift during a dwell
    source_size_nm: tuple[float, float] = (0.03, 0.11)
    #: if set, lattice and particle scenes draw their source size log-uniformly from this
    #: range instead (crystals are imaged at lattice-resolving magnification with a sharp
    #: effective source; the broad sources of survey images of single atoms on thick
    #: supports would leave most of their columns unresolved)
    crystal_source_size_nm_log: tuple[float, float] | None = None
    haadf_saturation_atoms: tuple[float, float] = (20.0, 80.0)
    # --- single atoms on real supports --------------------------------------------------
    support_thickness_variation: tuple[float, float] = (0.05, 0.45)
    p_support_texture: float = 0.0
    support_texture_rms: tuple[float, float] = (0.05, 0.3)
    support_texture_nm_log: tuple[float, float] = (0.4, 2.0)
    #: STEM: depth of field on (atoms inside a support blur with their depth)
    p_depth_of_field: float = 0.0
    single_atom_depth_fraction: tuple[float, float] = (0.0, 0.0)
    # --- STEM scan and detector ---------------------------------------------------------
    scan_jitter_px: tuple[float, float] = (0.0, 0.6)
    drift_nm_rms: float = 0.25
    p_flyback: float = 0.3
    flyback_px: tuple[float, float] = (0.5, 4.0)
    flyback_decay_px: tuple[float, float] = (5.0, 30.0)
    p_scan_lowpass: float = 0.3
    scan_lowpass_px: tuple[float, float] = (0.2, 1.5)
    p_probe_tail: float = 0.0
    probe_tail_fraction: tuple[float, float] = (0.02, 0.2)
    probe_tail_nm_log: tuple[float, float] = (0.3, 2.0)
    p_scan_line_noise: float = 0.0
    scan_line_noise: tuple[float, float] = (0.0, 0.3)
    p_detector_nonlinearity: float = 0.0
    detector_gamma: tuple[float, float] = (0.75, 1.1)
    detector_saturation: tuple[float, float] = (0.6, 1.5)

    def __post_init__(self) -> None:
        self.shape_px = tuple(int(v) for v in self.shape_px)  # type: ignore[assignment]
        for name in (f.name for f in dataclasses.fields(self)):
            value = getattr(self, name)
            if isinstance(value, list):
                setattr(self, name, tuple(value))
        self.validate()

    # --- I/O -----------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MixConfig:
        """Build from a dict (keys as the dataclass fields); unknown keys are an
        :class:`InputError`."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise InputError(f"mix: unknown key(s) {', '.join(unknown)}")
        clean = {
            k: ({str(kk): float(vv) for kk, vv in v.items()} if isinstance(v, dict) else v)
            for k, v in data.items()
        }
        return cls(**clean)

    @classmethod
    def from_yaml(cls, path: str | Path) -> MixConfig:
        """Load a mixture from a YAML file (keys as the dataclass fields)."""
        import yaml

        path = Path(path)
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except FileNotFoundError as exc:
            raise InputError(f"mix: no such file {path}") from exc
        except yaml.YAMLError as exc:
            raise InputError(f"mix: {path} is not valid YAML ({exc})") from exc
        if not isinstance(data, dict):
            raise InputError(f"mix: {path} must contain a mapping of settings")
        return cls.from_dict(data)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict of every field (tuples as lists), for YAML."""
        out = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            out[f.name] = list(value) if isinstance(value, tuple) else value
        return out

    def to_yaml(self) -> str:
        """:meth:`to_dict` as YAML text, fields in order."""
        import yaml

        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    # --- validation ------------------------------------------------------------------------
    def validate(self) -> None:
        """Check every field; raise :class:`InputError` naming the first bad one (unknown
        weight keys, probabilities outside [0, 1], malformed ranges, an image size outside
        16-8192 px, ...)."""

        def weights(name: str, allowed) -> None:
            """Check the weights field ``name``: keys from ``allowed``, >= 0, positive sum."""
            w = getattr(self, name)
            bad = sorted(set(w) - set(allowed))
            if bad:
                raise InputError(f"mix {name}: unknown entries {', '.join(bad)}")
            if any(v < 0 for v in w.values()) or sum(w.values()) <= 0:
                raise InputError(f"mix {name}: weights must be >= 0 with a positive sum")

        weights("modes", ("haadf", "hrtem"))
        weights("scenes", SCENES)
        weights("materials", (*MATERIALS, GENERIC))
        weights("hrtem_materials", (*MATERIALS, GENERIC))
        weights("generic_bravais", BRAVAIS)
        weights("generic_sublattices", ("1", "2", "3"))
        weights("particle_materials", PARTICLE_CAPABLE)
        weights("particle_shapes", PARTICLE_SHAPES)
        weights("energy_keV", ("60", "80", "100", "120", "200", "300"))
        if self.energy_keV_2d is not None:
            weights("energy_keV_2d", ("60", "80", "100", "120", "200", "300"))
        weights("layers", [str(i) for i in range(1, 11)])
        for name in self.single_atom_elements:
            from .potentials import element_symbol

            element_symbol(name)
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            is_p = f.name.startswith("p_") and not isinstance(value, dict)
            if is_p and not 0.0 <= float(value) <= 1.0:
                raise InputError(f"mix {f.name}: {value} is not a probability in [0, 1]")
            if isinstance(value, tuple) and f.name != "shape_px":
                if len(value) != 2 or not value[0] <= value[1]:
                    raise InputError(f"mix {f.name}: expected [low, high], got {list(value)}")
                if f.name.endswith("_log") and value[0] <= 0:
                    raise InputError(f"mix {f.name}: log-uniform ranges must be positive")
        validate_generic_keys(self)
        validate_range_keys(self)
        if set(self.p_support) - set(SCENES):
            raise InputError(f"mix p_support: keys must be scenes ({', '.join(SCENES)})")
        if not all(16 <= v <= 8192 for v in self.shape_px):
            raise InputError(f"mix shape_px: {self.shape_px} must be between 16 and 8192 px")


def load_mix(name_or_path: str | Path | None = None) -> MixConfig:
    """A shipped mix by name ("default", "atoms", "particles") or a YAML path.

    Parameters
    ----------
    name_or_path
        A shipped mixture's name, a YAML file, or None (the :class:`MixConfig` defaults).

    Returns
    -------
    MixConfig
        The validated mixture.
    """
    if name_or_path is None:
        return MixConfig()
    path = Path(name_or_path)
    if not path.suffix and (MIXES_DIR / f"{name_or_path}.yaml").exists():
        path = MIXES_DIR / f"{name_or_path}.yaml"
    return MixConfig.from_yaml(path)


# --- sampling ----------------------------------------------------------------------------------
def _choice(rng: np.random.Generator, weights: dict[str, float]) -> str:
    keys = list(weights)
    w = np.array([weights[k] for k in keys], dtype=float)
    return keys[int(rng.choice(len(keys), p=w / w.sum()))]


def _loguniform(rng: np.random.Generator, bounds) -> float:
    low, high = bounds
    return float(math.exp(rng.uniform(math.log(low), math.log(high))))


def _uniform(rng: np.random.Generator, bounds) -> float:
    return float(rng.uniform(bounds[0], bounds[1]))


def random_parameters(
    rng: np.random.Generator, mix: MixConfig | None = None
) -> SimulationParameters:
    """Draw one random, physically sensible :class:`SimulationParameters` from ``mix``.

    Parameters
    ----------
    rng
        The random generator; the image's own ``seed`` is drawn from it too, so the recipe
        is fully determined by its state.
    mix
        The mixture (default: :class:`MixConfig` defaults).

    Returns
    -------
    SimulationParameters
        One validated recipe.
    """
    m = mix if mix is not None else MixConfig()
    mode = _choice(rng, m.modes)
    scene = _choice(rng, m.scenes)
    px = _loguniform(rng, m.pixel_size_nm_log)
    fov = px * min(m.shape_px)
    kw: dict[str, Any] = {
        "mode": mode,
        "scene": scene,
        "shape_px": m.shape_px,
        "pixel_size_nm": px,
        "seed": int(rng.integers(0, 2**31 - 1)),
        "energy_keV": float(_choice(rng, m.energy_keV)),
        "rotation_deg": float(rng.uniform(0, 360)),
    }
    kw["dose_e_per_A2"] = draw_dose(rng, m, mode, px)

    if scene == "lattice":
        _lattice(rng, m, kw, mode)
    elif scene == "particles":
        _particles(rng, m, kw, fov)
    if scene == "single_atoms" or (
        scene == "particles" and rng.random() < m.p_single_atoms_near_particles
    ):
        kw["single_atom_element"] = _choice(rng, m.single_atom_elements)
        density = _loguniform(rng, m.single_atom_density_per_nm2_log)
        kw["single_atom_density_per_nm2"] = density if scene == "single_atoms" else density / 3
        if rng.random() < m.p_clusters:
            kw["cluster_fraction"] = _uniform(rng, (0.05, 0.4))
    _amorphous(rng, m, kw, scene)
    if mode == "haadf":
        _stem_optics(rng, m, kw)
    else:
        _tem_optics(rng, m, kw)
    _artefacts(rng, m, kw, mode)
    draw_realism(rng, m, kw, mode, scene)
    return SimulationParameters(**kw)


def _lattice(rng, m: MixConfig, kw: dict, mode: str) -> None:
    material = _choice(rng, m.materials if mode == "haadf" else m.hrtem_materials)
    kw["material"] = material
    if material == GENERIC:
        kind = "bulk"
        kw["generic_lattice"] = random_generic_lattice(rng, generic_ranges(m)).to_json()
    else:
        mat = MATERIALS[material]
        kind = mat.kind
        kw["zone_axis"] = mat.zone_axes[int(rng.integers(len(mat.zone_axes)))]
    if kind == "layered":
        kw["layers"] = int(_choice(rng, m.layers))
        if m.energy_keV_2d:
            kw["energy_keV"] = float(_choice(rng, m.energy_keV_2d))
    else:
        bounds = m.thickness_nm_log if mode == "haadf" else m.hrtem_thickness_nm_log
        kw["thickness_nm"] = _loguniform(rng, bounds)
        if rng.random() < m.p_wedge:
            kw["thickness_gradient_per_nm"] = _uniform(rng, (-0.15, 0.15))
    if rng.random() < m.p_tilt:
        kw["tilt_mrad"] = _uniform(rng, m.tilt_mrad)
        kw["tilt_azimuth_deg"] = _uniform(rng, (0, 360))
    if rng.random() < m.p_partial_crystal:
        kw["crystal_coverage"] = _uniform(rng, (0.4, 0.95))
    if rng.random() < m.p_grain_boundary:
        kw["grain_boundary_deg"] = _uniform(rng, (4.0, 30.0))
    if rng.random() < m.p_vacancies:
        kw["vacancy_fraction"] = _loguniform(rng, m.vacancy_fraction_log)
        if material in VACANCY_ELEMENT and rng.random() < 0.7:
            kw["vacancy_element"] = VACANCY_ELEMENT[material]
    if rng.random() < m.p_substitution and material in DOPANTS:
        options = DOPANTS[material]
        kw["substitution"] = options[int(rng.integers(len(options)))]
        kw["substitution_fraction"] = _loguniform(rng, m.substitution_fraction_log)
    if rng.random() < m.p_adatoms:
        kw["adatom_element"] = _choice(rng, m.single_atom_elements)
        kw["adatom_density_per_nm2"] = _loguniform(rng, m.adatom_density_per_nm2_log)
    # (guarded: a mix without empty sites draws exactly the recipes it always drew)
    if m.p_column_vacancies > 0 and rng.random() < m.p_column_vacancies:
        kw["column_vacancy_fraction"] = _loguniform(rng, m.column_vacancy_fraction_log)


def _particles(rng, m: MixConfig, kw: dict, fov_nm: float) -> None:
    kw["material"] = _choice(rng, m.particle_materials)
    shape = _choice(rng, m.particle_shapes)
    kw["particle_shape"] = shape
    axes = PARTICLE_AXES[shape]
    kw["particle_axis"] = axes[int(rng.integers(len(axes)))]
    low, high = m.particle_diameter_nm_log
    high = max(low, min(high, 0.9 * fov_nm))
    diameter = _loguniform(rng, (low, high))
    kw["particle_diameter_nm"] = diameter
    room = max(1, int((fov_nm / max(diameter, 0.5)) ** 2 / 3))
    kw["n_particles"] = int(rng.integers(1, min(m.max_particles, room) + 1))
    kw["particle_random_orientation_fraction"] = (
        _uniform(rng, (0.2, 1.0)) if rng.random() < m.p_random_particle_orientation else 0.0
    )
    if rng.random() < m.p_tilt:
        kw["tilt_mrad"] = _uniform(rng, m.tilt_mrad)
        kw["tilt_azimuth_deg"] = _uniform(rng, (0, 360))


def _amorphous(rng, m: MixConfig, kw: dict, scene: str) -> None:
    if rng.random() < m.p_support.get(scene, 0.0):
        kw["support_thickness_nm"] = _loguniform(rng, m.support_thickness_nm_log)
        kw["support_thickness_variation"] = _uniform(rng, m.support_thickness_variation)
        if rng.random() < m.p_partial_support:
            kw["support_coverage"] = _uniform(rng, (0.45, 0.95))
    if rng.random() < m.p_contamination or (scene == "amorphous" and rng.random() < 0.5):
        kw["contamination_coverage"] = _uniform(rng, m.contamination_coverage)
        kw["contamination_thickness_nm"] = _loguniform(rng, m.contamination_thickness_nm_log)
        kw["contamination_blob_size_nm"] = _loguniform(rng, m.contamination_blob_size_nm_log)


def _stem_optics(rng, m: MixConfig, kw: dict) -> None:
    if rng.random() < m.p_uncorrected:
        kw["convergence_mrad"] = _uniform(rng, (8.0, 14.0))
        kw["cs_um"] = _uniform(rng, (500.0, 1200.0))
        lam_scherzer = scherzer_defocus_A(kw["cs_um"] * 1e4, kw["energy_keV"]) / 10
        kw["defocus_nm"] = lam_scherzer * _uniform(rng, (0.7, 1.1))
    else:
        kw["convergence_mrad"] = _uniform(rng, (18.0, 35.0))
        kw["cs_um"] = _uniform(rng, (-5.0, 5.0))
        kw["defocus_nm"] = float(rng.normal(0.0, 1.5))
    kw["astigmatism_nm"] = abs(float(rng.normal(0.0, 0.8)))
    kw["astigmatism_angle_deg"] = _uniform(rng, (0, 180))
    if m.crystal_source_size_nm_log is not None and kw["scene"] in ("lattice", "particles"):
        kw["source_size_nm"] = _loguniform(rng, m.crystal_source_size_nm_log)
    else:
        kw["source_size_nm"] = _uniform(rng, m.source_size_nm)
    if m.z_exponent_offset is not None:
        kw["z_exponent"], kw["z_exponent_isolated"] = draw_z_exponents(rng, m, kw["energy_keV"])
    else:
        kw["z_exponent"] = _uniform(rng, m.z_exponent)
    kw["haadf_saturation_atoms"] = _uniform(rng, m.haadf_saturation_atoms)


def _tem_optics(rng, m: MixConfig, kw: dict) -> None:
    if rng.random() < m.p_uncorrected:
        kw["cs_um"] = _uniform(rng, (500.0, 1300.0))
        scherzer = scherzer_defocus_A(kw["cs_um"] * 1e4, kw["energy_keV"]) / 10
        kw["defocus_nm"] = scherzer * _uniform(rng, (0.6, 1.4))
        kw["focal_spread_nm"] = _uniform(rng, (3.0, 8.0))
    else:
        # Negative Cs with overfocus gives white atoms, positive Cs with underfocus black
        # atoms; both are common with correctors.
        sign = 1.0 if rng.random() < 0.5 else -1.0
        kw["cs_um"] = sign * _uniform(rng, (2.0, 25.0))
        kw["defocus_nm"] = sign * _uniform(rng, (0.0, 12.0)) + float(rng.normal(0.0, 1.5))
        kw["focal_spread_nm"] = _uniform(rng, (1.0, 4.5))
    kw["angular_spread_mrad"] = _uniform(rng, (0.02, 0.3))
    kw["astigmatism_nm"] = abs(float(rng.normal(0.0, 1.0)))
    kw["astigmatism_angle_deg"] = _uniform(rng, (0, 180))
    if rng.random() < 0.25:
        kw["objective_aperture_mrad"] = _uniform(rng, (15.0, 40.0))
    kw["mtf_at_nyquist"] = _uniform(rng, (0.1, 0.8))


def _artefacts(rng, m: MixConfig, kw: dict, mode: str) -> None:
    kw["detector_gain"] = _loguniform(rng, (0.5, 50.0))
    kw["dark_offset_counts"] = kw["detector_gain"] * _uniform(rng, (0.0, 200.0))
    kw["read_noise_counts"] = kw["detector_gain"] * _uniform(rng, (0.0, 2.0))
    if mode == "haadf" and rng.random() < m.p_scan_distortion:
        kw["scan_jitter_px"] = _uniform(rng, m.scan_jitter_px)
        drift = m.drift_nm_rms
        kw["drift_nm"] = (float(rng.normal(0, drift)), float(rng.normal(0, drift)))
        if rng.random() < m.p_flyback:
            kw["flyback_px"] = _uniform(rng, m.flyback_px)
            kw["flyback_decay_px"] = _uniform(rng, m.flyback_decay_px)
        if rng.random() < m.p_scan_lowpass:
            kw["scan_lowpass_px"] = _uniform(rng, m.scan_lowpass_px)
    if rng.random() < m.p_detector_artefacts:
        kw["background_level"] = _uniform(rng, (0.02, 0.4))
        kw["illumination_gradient"] = _uniform(rng, (0.0, 0.3))
        kw["bright_spots_per_megapixel"] = _uniform(rng, (0.0, 40.0))
    if mode == "hrtem" and rng.random() < 0.2:
        kw["drift_blur_nm"] = _uniform(rng, (0.0, 0.05))
