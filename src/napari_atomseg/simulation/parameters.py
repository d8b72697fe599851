"""`SimulationParameters`: one synthetic micrograph, fully specified, with units in names.

The dataclass is frozen and validated on construction: an absurd value raises
:class:`~napari_atomseg.errors.InputError` naming the field, the allowed range and, for
memory, the estimate and what is available. ``to_dict`` / ``from_dict`` round-trip through
JSON (the library stores one dict per image).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from dataclasses import dataclass, field
from typing import Any

from .._validate import check_pixel_size_nm, check_range
from ..errors import InputError

MODES = ("haadf", "hrtem", "haadf_multislice", "hrtem_multislice")
SCENES = ("lattice", "particles", "single_atoms", "amorphous")
PARTICLE_SHAPES = ("octahedron", "decahedron", "icosahedron")
#: the material name of a generic lattice (see simulation.generic)
GENERIC = "generic"
#: particle orientations: cubic zone axes for octahedra, symmetry axes for twinned shapes
PARTICLE_AXES = {
    "octahedron": ("001", "011", "111"),
    "decahedron": ("5fold", "2fold"),
    "icosahedron": ("5fold", "3fold", "2fold"),
}


@dataclass(frozen=True)
class SimulationParameters:
    """Everything that defines one synthetic micrograph (deterministic given ``seed``).

    Lengths are in nm unless the name says otherwise (``_A`` = Angstrom, ``_um`` =
    micrometre, ``_px`` = pixels); angles in degrees or mrad as named; ``dose_e_per_A2``
    is the electron dose per square Angstrom. Optics follow abTEM's conventions (positive
    ``defocus_nm`` = underfocus).
    """

    # --- what and how -------------------------------------------------------------
    material: str = "MoS2"
    zone_axis: str = "001"
    mode: str = "haadf"
    scene: str = "lattice"
    shape_px: tuple[int, int] = (256, 256)
    pixel_size_nm: float = 0.02
    dose_e_per_A2: float = 1e4
    seed: int = 0
    energy_keV: float = 200.0

    # --- specimen: crystal ----------------------------------------------------------
    thickness_nm: float = 4.0  # bulk crystals: slab thickness at the field centre
    layers: int = 1  # layered crystals (MoS2, graphene, hBN...): number of layers
    thickness_gradient_per_nm: float = 0.0  # wedge: relative thickness change per nm
    rotation_deg: float = 0.0  # in-plane rotation of the crystal
    tilt_mrad: float = 0.0  # tilt off the zone axis
    tilt_azimuth_deg: float = 0.0
    crystal_coverage: float = 1.0  # fraction of the field covered by the crystal
    grain_boundary_deg: float = 0.0  # misorientation of a second grain (0 = single grain)
    vacancy_fraction: float = 0.0  # probability that an atom is missing
    vacancy_element: str = ""  # restrict vacancies to one element ("" = any)
    substitution: str = ""  # "W:Mo" = W replaces Mo
    substitution_fraction: float = 0.0
    adatom_element: str = ""
    adatom_density_per_nm2: float = 0.0
    #: material "generic": the crystal as GenericLattice JSON (simulation.generic)
    generic_lattice: str = ""
    column_vacancy_fraction: float = 0.0  # probability that a lattice site has no column

    # --- specimen: particles and single atoms (scene "particles" / "single_atoms") -----
    particle_shape: str = "decahedron"
    particle_axis: str = "5fold"  # see PARTICLE_AXES
    particle_diameter_nm: float = 3.0
    n_particles: int = 1
    particle_random_orientation_fraction: float = 0.0
    single_atom_element: str = "Pt"
    single_atom_density_per_nm2: float = 0.0
    cluster_fraction: float = 0.0  # fraction of single-atom sites that are 2-12 atom clusters
    single_atom_depth_fraction: float = 0.0  # share of single atoms inside the support

    # --- specimen: amorphous layers ---------------------------------------------------
    support_thickness_nm: float = 0.0  # amorphous carbon support (0 = none)
    support_coverage: float = 1.0
    support_thickness_variation: float = 0.25  # relative rms of the support thickness
    contamination_coverage: float = 0.0  # fraction covered by hydrocarbon contamination
    contamination_thickness_nm: float = 1.5
    contamination_blob_size_nm: float = 3.0
    support_texture_rms: float = 0.0  # relative density fluctuation of the support ...
    support_texture_nm: float = 1.0  # ... and its feature size (medium-range order)

    # --- optics ---------------------------------------------------------------------
    defocus_nm: float = 0.0
    cs_um: float = 0.0
    astigmatism_nm: float = 0.0
    astigmatism_angle_deg: float = 0.0
    convergence_mrad: float = 25.0  # STEM probe semi-angle
    source_size_nm: float = 0.05  # STEM effective source size (FWHM)
    z_exponent: float | None = None  # HAADF Z exponent n of columns; None: calibrated
    haadf_saturation_atoms: float = 40.0  # column channelling saturation scale (atoms)
    adf_inner_mrad: float = 70.0  # annular detector (multislice modes)
    adf_outer_mrad: float = 200.0
    frozen_phonons: int = 8  # multislice modes: thermal configurations averaged
    multislice_sampling_nm: float = 0.005  # multislice potential sampling
    focal_spread_nm: float = 3.0  # HRTEM, 1/e width (abTEM convention)
    angular_spread_mrad: float = 0.1  # HRTEM illumination spread (std)
    objective_aperture_mrad: float = 0.0  # HRTEM objective aperture (0 = none)
    mtf_at_nyquist: float = 0.3  # camera MTF at Nyquist (HRTEM); 1 = ideal
    depth_of_field: bool = False  # STEM: single atoms / amorphous layers at their depth
    probe_tail_fraction: float = 0.0  # STEM: share of the probe current in a broad halo
    probe_tail_nm: float = 1.0  # FWHM of that halo
    z_exponent_isolated: float | None = None  # ... of isolated atoms; None: calibrated

    # --- detector and scan ------------------------------------------------------------
    detector_gain: float = 1.0  # counts per detected electron
    dark_offset_counts: float = 0.0
    read_noise_counts: float = 0.0
    scan_jitter_px: float = 0.0  # rms random shift of each scan line (STEM)
    drift_nm: tuple[float, float] = (0.0, 0.0)  # specimen drift (y, x) during the frame
    flyback_px: float = 0.0  # line-start distortion amplitude (STEM)
    flyback_decay_px: float = 12.0
    scan_lowpass_px: float = 0.0  # detector response smearing along the fast scan
    background_level: float = 0.0  # smooth additive background, fraction of mean signal
    illumination_gradient: float = 0.0  # relative intensity change across the field
    bright_spots_per_megapixel: float = 0.0
    drift_blur_nm: float = 0.0  # HRTEM: specimen motion during the exposure
    scan_line_noise: float = 0.0  # STEM: rms per-line offset / shot noise of the mean signal
    detector_gamma: float = 1.0  # response exponent (1 = linear detector)
    detector_saturation: float = 0.0  # saturation level / brightest signal (0 = none)

    # --- ground truth ---------------------------------------------------------------
    merge_distance_nm: float = 0.03  # atoms closer than this laterally form one column
    visibility_snr: float = 3.0  # columns below this matched-filter SNR are not "visible"
    heatmap_sigma_fraction: float = 0.15  # heatmap sigma = fraction x local NN spacing
    heatmap_sigma_max_nm: float = 0.05
    label_radius_fraction: float = 0.35  # column label disk radius = fraction x NN spacing

    extra: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        # Normalise tuples (JSON gives lists) before validating.
        object.__setattr__(self, "shape_px", tuple(int(v) for v in self.shape_px))
        object.__setattr__(self, "drift_nm", tuple(float(v) for v in self.drift_nm))
        validate_parameters(self)

    # --- derived ------------------------------------------------------------------------
    @property
    def field_of_view_nm(self) -> tuple[float, float]:
        """(height, width) of the image, nm."""
        return (self.shape_px[0] * self.pixel_size_nm, self.shape_px[1] * self.pixel_size_nm)

    def replace(self, **changes: Any) -> SimulationParameters:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict of every field (tuples as lists)."""
        out = {}
        for f in dataclasses.fields(self):
            if f.name == "extra":
                continue
            value = getattr(self, f.name)
            out[f.name] = list(value) if isinstance(value, tuple) else value
        return out

    def to_json(self) -> str:
        """:meth:`to_dict` as JSON with sorted keys."""
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SimulationParameters:
        """Build from a dict; unknown keys are an InputError (typos must not pass silently)."""
        names = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        unknown = sorted(set(data) - names)
        if unknown:
            raise InputError(f"SimulationParameters: unknown field(s) {', '.join(unknown)}")
        return cls(**data)


def _positive(value: float, name: str, high: float) -> None:
    check_range(value, 0.0, high, name)


def estimate_memory_bytes(p: SimulationParameters) -> int:
    """Rough peak memory of one simulation (bytes), used to refuse absurd requests.

    Parameters
    ----------
    p
        The simulation's parameters (mode, image size, sampling, thickness, phonons).

    Returns
    -------
    int
        Estimated peak memory, bytes.
    """
    h, w = p.shape_px
    px_A = p.pixel_size_nm * 10
    if p.mode in ("haadf", "hrtem"):
        # Internal grid is oversampled to about 0.2 A at most 4x, with padding; ~24 arrays
        # of complex128 / float64 live at once at the peak.
        s = min(4, max(1, math.ceil(px_A / 0.2)))
        pad = 2 * math.ceil(20 / (px_A / s))
        return int(((h * s + pad) * (w * s + pad)) * 16 * 24 + h * w * 4 * 30)
    # Multislice: abTEM holds the potential of every frozen-phonon configuration and a
    # batch of waves (complex64), of which FFTW buffers, aligned copies and the detector
    # make about eight copies at the peak (measured: 4.7 GB for 240 MoS2 probe waves on
    # a 435^2 grid, 6.1 GB for 256 SrTiO3 waves on 588^2).
    sampling = p.multislice_sampling_nm * 10
    pad = 30.0  # the specimen margin around the field, both sides (Angstrom)
    gy = math.ceil((h * px_A + pad) / sampling)
    gx = math.ceil((w * px_A + pad) / sampling)
    thickness_A = max(p.thickness_nm * 10, p.layers * 7, 20)
    n_slices = math.ceil(thickness_A / 1.0) + 10
    if p.mode == "haadf_multislice":
        configs = p.frozen_phonons
        waves = max(1, 256 // w) * w  # probe positions per batch (multislice.py)
    else:
        configs = max(1, p.frozen_phonons // 2)
        waves = configs  # one plane wave per configuration
    potential = configs * n_slices * gy * gx * 4
    return int(potential + 8 * waves * gy * gx * 8 + 300e6)


def available_memory_bytes() -> int:
    """Memory available to this process now (bytes)."""
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except ImportError:  # pragma: no cover - psutil comes with napari/dask
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))


def _validate_generic(p: SimulationParameters) -> None:
    from .generic import GenericLattice

    if not p.generic_lattice:
        raise InputError(
            "generic_lattice: material 'generic' needs a lattice (GenericLattice JSON, "
            "e.g. from simulation.generic.random_generic_lattice(...).to_json())"
        )
    GenericLattice.from_json(p.generic_lattice)
    check_range(p.thickness_nm, 0.1, 100.0, "thickness_nm")


def validate_parameters(p: SimulationParameters) -> None:
    """Raise InputError naming the first absurd field of ``p``."""
    # Imported here, not at the top: they import ase, which importing this module does not.
    from .materials import PARTICLE_CAPABLE, get_material
    from .potentials import element_symbol

    if p.mode not in MODES:
        raise InputError(f"mode: {p.mode!r} is not one of {', '.join(MODES)}")
    if p.scene not in SCENES:
        raise InputError(f"scene: {p.scene!r} is not one of {', '.join(SCENES)}")
    if len(p.shape_px) != 2 or not all(16 <= v <= 8192 for v in p.shape_px):
        raise InputError(f"shape_px: {p.shape_px} must be two sizes between 16 and 8192 px")
    check_pixel_size_nm(p.pixel_size_nm)
    check_range(p.pixel_size_nm, 0.002, 0.5, "pixel_size_nm")
    fov = max(p.field_of_view_nm)
    if fov > 200:
        raise InputError(f"field of view: {fov:.0f} nm is larger than the 200 nm supported")
    check_range(p.dose_e_per_A2, 1.0, 1e9, "dose_e_per_A2")
    check_range(p.energy_keV, 20.0, 1000.0, "energy_keV")
    if not isinstance(p.seed, (int,)) or isinstance(p.seed, bool) or p.seed < 0:
        raise InputError(f"seed: must be a non-negative integer, got {p.seed!r}")

    if p.scene == "lattice" and p.material == GENERIC:
        _validate_generic(p)
    elif p.scene == "lattice":
        mat = get_material(p.material)
        from .materials import _canonical_zone

        _canonical_zone(mat, p.zone_axis)
        if mat.kind == "layered":
            if not isinstance(p.layers, int) or not 1 <= p.layers <= 20:
                raise InputError(f"layers: {p.layers!r} must be an integer from 1 to 20")
        else:
            check_range(p.thickness_nm, 0.2, 100.0, "thickness_nm")
    elif p.scene == "particles":
        if p.material not in PARTICLE_CAPABLE:
            raise InputError(
                f"material: {p.material!r} cannot be a nanoparticle; choose one of "
                f"{', '.join(PARTICLE_CAPABLE)}"
            )
        if p.particle_shape not in PARTICLE_SHAPES:
            raise InputError(
                f"particle_shape: {p.particle_shape!r} is not one of {', '.join(PARTICLE_SHAPES)}"
            )
        if p.particle_axis not in PARTICLE_AXES[p.particle_shape]:
            raise InputError(
                f"particle_axis: {p.particle_axis!r} is not available for a "
                f"{p.particle_shape}; choose one of {', '.join(PARTICLE_AXES[p.particle_shape])}"
            )
        check_range(p.particle_diameter_nm, 0.5, 30.0, "particle_diameter_nm")
        if not 1 <= int(p.n_particles) <= 50:
            raise InputError(f"n_particles: {p.n_particles} must be between 1 and 50")
    for name in ("single_atom_element",):
        element_symbol(getattr(p, name))
    for name in ("adatom_element", "vacancy_element"):
        if getattr(p, name):
            element_symbol(getattr(p, name))
    if p.substitution:
        parts = p.substitution.split(":")
        if len(parts) != 2:
            raise InputError(f"substitution: {p.substitution!r} must look like 'W:Mo'")
        for part in parts:
            element_symbol(part)
    if p.scene == "single_atoms" and p.single_atom_density_per_nm2 <= 0:
        raise InputError("single_atom_density_per_nm2: must be > 0 for scene 'single_atoms'")

    for name, high in (
        ("crystal_coverage", 1.0),
        ("vacancy_fraction", 0.5),
        ("column_vacancy_fraction", 0.5),
        ("substitution_fraction", 1.0),
        ("particle_random_orientation_fraction", 1.0),
        ("cluster_fraction", 1.0),
        ("support_coverage", 1.0),
        ("support_thickness_variation", 1.0),
        ("contamination_coverage", 1.0),
        ("illumination_gradient", 0.9),
        ("background_level", 10.0),
    ):
        _positive(getattr(p, name), name, high)
    check_range(p.adatom_density_per_nm2, 0.0, 5.0, "adatom_density_per_nm2")
    check_range(p.single_atom_density_per_nm2, 0.0, 5.0, "single_atom_density_per_nm2")
    check_range(p.thickness_gradient_per_nm, -1.0, 1.0, "thickness_gradient_per_nm")
    check_range(p.rotation_deg, -360.0, 360.0, "rotation_deg")
    check_range(p.tilt_mrad, 0.0, 100.0, "tilt_mrad")
    check_range(p.tilt_azimuth_deg, -360.0, 360.0, "tilt_azimuth_deg")
    check_range(p.grain_boundary_deg, 0.0, 60.0, "grain_boundary_deg")
    check_range(p.support_thickness_nm, 0.0, 100.0, "support_thickness_nm")
    check_range(p.single_atom_depth_fraction, 0.0, 1.0, "single_atom_depth_fraction")
    check_range(p.support_texture_rms, 0.0, 1.0, "support_texture_rms")
    check_range(p.support_texture_nm, 0.1, 20.0, "support_texture_nm")
    check_range(p.probe_tail_fraction, 0.0, 0.8, "probe_tail_fraction")
    check_range(p.probe_tail_nm, 0.05, 10.0, "probe_tail_nm")
    check_range(p.scan_line_noise, 0.0, 20.0, "scan_line_noise")
    check_range(p.detector_gamma, 0.3, 3.0, "detector_gamma")
    check_range(p.detector_saturation, 0.0, 10.0, "detector_saturation")
    if not isinstance(p.depth_of_field, bool):
        raise InputError(f"depth_of_field: must be true or false, got {p.depth_of_field!r}")
    check_range(p.contamination_thickness_nm, 0.0, 30.0, "contamination_thickness_nm")
    check_range(p.contamination_blob_size_nm, 0.2, 200.0, "contamination_blob_size_nm")
    check_range(p.defocus_nm, -2000.0, 2000.0, "defocus_nm")
    check_range(p.cs_um, -5000.0, 5000.0, "cs_um")
    check_range(p.astigmatism_nm, 0.0, 500.0, "astigmatism_nm")
    check_range(p.astigmatism_angle_deg, -360.0, 360.0, "astigmatism_angle_deg")
    check_range(p.convergence_mrad, 1.0, 80.0, "convergence_mrad")
    check_range(p.source_size_nm, 0.0, 1.0, "source_size_nm")
    for name in ("z_exponent", "z_exponent_isolated"):
        if getattr(p, name) is not None:
            check_range(getattr(p, name), 1.0, 2.2, name)
    check_range(p.haadf_saturation_atoms, 1.0, 1e9, "haadf_saturation_atoms")
    check_range(p.adf_inner_mrad, 0.0, 500.0, "adf_inner_mrad")
    check_range(p.adf_outer_mrad, p.adf_inner_mrad + 1.0, 1000.0, "adf_outer_mrad")
    if not isinstance(p.frozen_phonons, int) or not 1 <= p.frozen_phonons <= 256:
        raise InputError(f"frozen_phonons: {p.frozen_phonons!r} must be an integer 1-256")
    check_range(p.multislice_sampling_nm, 0.001, 0.02, "multislice_sampling_nm")
    check_range(p.focal_spread_nm, 0.0, 50.0, "focal_spread_nm")
    check_range(p.angular_spread_mrad, 0.0, 5.0, "angular_spread_mrad")
    check_range(p.objective_aperture_mrad, 0.0, 200.0, "objective_aperture_mrad")
    check_range(p.mtf_at_nyquist, 0.01, 1.0, "mtf_at_nyquist")
    check_range(p.detector_gain, 1e-3, 1e6, "detector_gain")
    check_range(p.dark_offset_counts, -1e9, 1e9, "dark_offset_counts")
    check_range(p.read_noise_counts, 0.0, 1e7, "read_noise_counts")
    check_range(p.scan_jitter_px, 0.0, 20.0, "scan_jitter_px")
    for v in p.drift_nm:
        check_range(v, -100.0, 100.0, "drift_nm")
    check_range(p.flyback_px, 0.0, 50.0, "flyback_px")
    check_range(p.flyback_decay_px, 0.5, 500.0, "flyback_decay_px")
    check_range(p.scan_lowpass_px, 0.0, 20.0, "scan_lowpass_px")
    check_range(p.bright_spots_per_megapixel, 0.0, 1e4, "bright_spots_per_megapixel")
    check_range(p.drift_blur_nm, 0.0, 10.0, "drift_blur_nm")
    check_range(p.merge_distance_nm, 0.0, 0.2, "merge_distance_nm")
    check_range(p.visibility_snr, 0.0, 1e3, "visibility_snr")
    check_range(p.heatmap_sigma_fraction, 0.01, 1.0, "heatmap_sigma_fraction")
    check_range(p.heatmap_sigma_max_nm, 0.001, 1.0, "heatmap_sigma_max_nm")
    check_range(p.label_radius_fraction, 0.05, 0.5, "label_radius_fraction")

    if p.mode.endswith("multislice"):
        if fov > 8.0:
            raise InputError(
                f"field of view: {fov:.1f} nm is too large for multislice (at most 8 nm); "
                "multislice is for validating the fast models on small fields"
            )
        if p.pixel_size_nm > 0.05:
            raise InputError(
                f"pixel_size_nm: {p.pixel_size_nm} nm/px is too coarse for multislice "
                "(at most 0.05 nm/px)"
            )
    needed = estimate_memory_bytes(p)
    available = available_memory_bytes()
    if needed > 0.8 * available:
        raise InputError(
            f"memory: this simulation needs about {needed / 1e9:.1f} GB but only "
            f"{available / 1e9:.1f} GB is available; use fewer pixels, a coarser pixel "
            "size or a fast (non-multislice) mode"
        )
