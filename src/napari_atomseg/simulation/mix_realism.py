"""Draws and checks of the mixture keys for realistic training data.

:mod:`.mix` samples the recipe; the keys for data that real micrographs resemble --
electrons per probe position, Z exponents around the calibrated ones, the depth of
field, support texture, probe tails, scan-line noise, a non-linear detector, generic
lattices -- are drawn and validated here. Every draw is guarded by its probability, so a
mixture that leaves them off draws the same recipes as a mixture without these keys
(its libraries stay reproducible).
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import InputError
from .generic import MIN_SITE_DISTANCE_NM, GenericRanges
from .parameters import SimulationParameters
from .potentials import calibrated_z_exponent


def _loguniform(rng: np.random.Generator, bounds) -> float:
    low, high = bounds
    return float(math.exp(rng.uniform(math.log(low), math.log(high))))


def _uniform(rng: np.random.Generator, bounds) -> float:
    return float(rng.uniform(bounds[0], bounds[1]))


# --- drawing -------------------------------------------------------------------------------
def draw_dose(rng, m, mode: str, px_nm: float) -> float:
    """Dose per A^2: from electrons per probe position / camera pixel when the mix says so
    (what a microscope sets: current x dwell), else log-uniform per A^2."""
    per_pixel = (
        m.electrons_per_probe_haadf_log if mode == "haadf" else m.electrons_per_pixel_hrtem_log
    )
    if per_pixel is not None:
        return _loguniform(rng, per_pixel) / (px_nm * 10.0) ** 2
    dose_range = m.dose_haadf_e_per_A2_log if mode == "haadf" else m.dose_hrtem_e_per_A2_log
    return _loguniform(rng, dose_range)


def draw_realism(rng, m, kw: dict, mode: str, scene: str) -> None:
    """Draws a mix only makes when it asks for them (probabilities > 0), so mixes without
    them draw exactly the recipes they always drew."""
    support = kw.get("support_thickness_nm", 0.0)
    if m.p_support_texture > 0 and support > 0 and rng.random() < m.p_support_texture:
        kw["support_texture_rms"] = _uniform(rng, m.support_texture_rms)
        kw["support_texture_nm"] = _loguniform(rng, m.support_texture_nm_log)
    if mode == "haadf" and m.p_depth_of_field > 0 and rng.random() < m.p_depth_of_field:
        kw["depth_of_field"] = True
        if support > 0 and kw.get("single_atom_density_per_nm2", 0.0) > 0:
            kw["single_atom_depth_fraction"] = _uniform(rng, m.single_atom_depth_fraction)
            if scene == "single_atoms":
                # The operator focuses on the atoms: somewhere in the upper part of the film.
                kw["defocus_nm"] = kw.get("defocus_nm", 0.0) + _uniform(rng, (0.0, 0.7 * support))
    if mode != "haadf":
        return
    if m.p_probe_tail > 0 and rng.random() < m.p_probe_tail:
        kw["probe_tail_fraction"] = _uniform(rng, m.probe_tail_fraction)
        kw["probe_tail_nm"] = _loguniform(rng, m.probe_tail_nm_log)
    if m.p_scan_line_noise > 0 and rng.random() < m.p_scan_line_noise:
        kw["scan_line_noise"] = _uniform(rng, m.scan_line_noise)
    if m.p_detector_nonlinearity > 0 and rng.random() < m.p_detector_nonlinearity:
        kw["detector_gamma"] = _uniform(rng, m.detector_gamma)
        kw["detector_saturation"] = _uniform(rng, m.detector_saturation)


def draw_z_exponents(rng, m, energy_keV: float) -> tuple[float, float]:
    """Columns' and isolated atoms' exponents: the calibrated ones (for the parameters'
    default detector) shifted by one offset drawn from ``z_exponent_offset``."""
    fields = SimulationParameters.__dataclass_fields__
    detector = (fields["adf_inner_mrad"].default, fields["adf_outer_mrad"].default)
    offset = _uniform(rng, m.z_exponent_offset)
    return tuple(  # type: ignore[return-value]
        float(np.clip(calibrated_z_exponent(energy_keV, *detector, kind) + offset, 1.0, 2.2))
        for kind in ("columns", "isolated")
    )


def generic_ranges(m) -> GenericRanges:
    """The mix's ranges for :func:`.generic.random_generic_lattice`."""
    return GenericRanges(
        bravais=dict(m.generic_bravais),
        sublattices=dict(m.generic_sublattices),
        spacing_nm=tuple(m.generic_spacing_nm_log),  # type: ignore[arg-type]
        intensity_ratio=tuple(m.generic_intensity_ratio_log),  # type: ignore[arg-type]
        p_dumbbell=float(m.p_generic_dumbbell),
        dumbbell_nm=tuple(m.generic_dumbbell_nm),  # type: ignore[arg-type]
        strain=float(m.generic_strain),
        repeat_nm=tuple(m.generic_repeat_nm),  # type: ignore[arg-type]
    )


# --- validation ----------------------------------------------------------------------------
def validate_range_keys(m) -> None:
    """Ranges a SimulationParameters field would refuse, refused when the mix loads."""
    for name, low, high in (
        ("z_exponent", 1.0, 2.2),
        ("z_exponent_offset", -1.0, 1.0),
        ("source_size_nm", 0.0, 1.0),
        ("crystal_source_size_nm_log", 0.001, 1.0),
        ("haadf_saturation_atoms", 1.0, 1e9),
        ("support_thickness_variation", 0.0, 1.0),
        ("support_texture_rms", 0.0, 1.0),
        ("support_texture_nm_log", 0.1, 20.0),
        ("single_atom_depth_fraction", 0.0, 1.0),
        ("scan_jitter_px", 0.0, 20.0),
        ("flyback_px", 0.0, 50.0),
        ("flyback_decay_px", 0.5, 500.0),
        ("scan_lowpass_px", 0.0, 20.0),
        ("probe_tail_fraction", 0.0, 0.8),
        ("probe_tail_nm_log", 0.05, 10.0),
        ("scan_line_noise", 0.0, 20.0),
        ("detector_gamma", 0.3, 3.0),
        ("detector_saturation", 0.0, 10.0),
        ("electrons_per_probe_haadf_log", 1e-3, 1e9),
        ("electrons_per_pixel_hrtem_log", 1e-3, 1e9),
    ):
        value = getattr(m, name)
        if value is not None and (value[0] < low or value[1] > high):
            raise InputError(f"mix {name}: {list(value)} must lie within [{low}, {high}]")


def validate_generic_keys(m) -> None:
    """The generic-lattice ranges: spacings that keep sites apart, ratios, strain."""
    for name, low, high in (
        ("generic_spacing_nm_log", 2 * MIN_SITE_DISTANCE_NM, 3.0),
        ("generic_intensity_ratio_log", 0.01, 1.0),
        ("generic_dumbbell_nm", MIN_SITE_DISTANCE_NM, 0.5),
        ("generic_repeat_nm", 0.1, 2.0),
    ):
        lo, hi = getattr(m, name)
        if lo < low or hi > high:
            raise InputError(f"mix {name}: {[lo, hi]} must lie within [{low}, {high}]")
    if not 0.0 <= m.generic_strain <= 0.2:
        raise InputError(f"mix generic_strain: {m.generic_strain} must be within 0-0.2")
