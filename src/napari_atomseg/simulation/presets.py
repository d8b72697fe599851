"""Named, realistic simulation recipes shared by the sample data, the demo and the docs.

Each preset is a dict of :class:`~napari_atomseg.simulation.SimulationParameters` fields;
:func:`preset_parameters` builds the validated dataclass.
"""

from __future__ import annotations

from typing import Any

#: Preset name -> SimulationParameters fields.
PRESETS: dict[str, dict[str, Any]] = {
    # Monolayer MoS2, aberration-corrected HAADF at 60 kV: Mo bright, S2 fainter, a few
    # S vacancies and W dopants, mild scan noise.
    "haadf_mos2": dict(
        mode="haadf",
        material="MoS2",
        shape_px=(384, 384),
        pixel_size_nm=0.02,
        energy_keV=60.0,
        convergence_mrad=30.0,
        adf_inner_mrad=80.0,
        adf_outer_mrad=200.0,
        source_size_nm=0.07,
        rotation_deg=13.0,
        vacancy_fraction=0.04,
        vacancy_element="S",
        substitution="W:Mo",
        substitution_fraction=0.03,
        dose_e_per_A2=4e4,
        detector_gain=2.0,
        dark_offset_counts=50.0,
        read_noise_counts=3.0,
        scan_jitter_px=0.3,
        flyback_px=1.0,
        scan_lowpass_px=0.5,
        background_level=0.2,
        seed=2024,
    ),
    # Graphene phase-contrast HRTEM at 80 kV (Cs-corrected, white atoms) with amorphous
    # hydrocarbon contamination patches, as in the Sadre et al. images.
    "hrtem_graphene_contamination": dict(
        mode="hrtem",
        material="graphene",
        shape_px=(512, 512),
        pixel_size_nm=0.03,
        energy_keV=80.0,
        defocus_nm=-6.0,
        cs_um=-20.0,
        focal_spread_nm=2.0,
        rotation_deg=21.0,
        contamination_coverage=0.35,
        contamination_thickness_nm=2.0,
        contamination_blob_size_nm=4.0,
        dose_e_per_A2=3e4,
        mtf_at_nyquist=0.35,
        read_noise_counts=1.0,
        illumination_gradient=0.1,
        seed=7,
    ),
    # A 4 nm Au decahedron on amorphous carbon, HAADF at 300 kV, with a few Au single atoms
    # on the support.
    "au_particle_on_carbon": dict(
        mode="haadf",
        scene="particles",
        material="Au",
        particle_shape="decahedron",
        particle_axis="5fold",
        particle_diameter_nm=4.0,
        n_particles=1,
        support_thickness_nm=4.0,
        single_atom_element="Au",
        single_atom_density_per_nm2=0.15,
        shape_px=(384, 384),
        pixel_size_nm=0.025,
        energy_keV=300.0,
        convergence_mrad=25.0,
        dose_e_per_A2=2e4,
        detector_gain=1.5,
        read_noise_counts=2.0,
        scan_jitter_px=0.25,
        background_level=0.1,
        seed=11,
    ),
}


def preset_parameters(name: str, **overrides: Any):
    """The :class:`~napari_atomseg.simulation.SimulationParameters` of preset ``name``."""
    from ..errors import InputError
    from .parameters import SimulationParameters

    if name not in PRESETS:
        raise InputError(f"preset: unknown name {name!r}; known: {sorted(PRESETS)}")
    return SimulationParameters(**{**PRESETS[name], **overrides})
