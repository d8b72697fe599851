"""npe2 sample data (File > Open Sample): ready synthetic micrographs with ground truth.

Each sample is one :func:`napari_atomseg.simulate.simulate` call with fixed parameters
(seeded, so it is the same image every time) and returns napari LayerData tuples: the
micrograph (scale = pixel size in nm, ``metadata["pixel_size_nm"]``), the ground-truth
columns as Points (features ``z_sum, n_atoms, elements, visible, region``) and the class
Labels (vacuum / crystal / support / contamination) plus the column instance labels.

:func:`result_layers` turns any :class:`~napari_atomseg.simulate.SimulationResult` into
those layers; it is pure (no viewer, no Qt) and shared with the "Simulate micrograph"
widget through :func:`napari_atomseg._napari.layers.simulation_layers`.
"""

from __future__ import annotations

from typing import Any

from .layers import LayerData, simulation_layers

__all__ = [
    "SAMPLES",
    "au_particle_on_carbon",
    "haadf_mos2",
    "hrtem_graphene_contamination",
    "result_layers",
    "sample_parameters",
]

#: The parameters of each sample (SimulationParameters fields).
SAMPLES: dict[str, dict[str, Any]] = {
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

#: Layer names of each sample.
_NAMES = {
    "haadf_mos2": "HAADF MoS2 (simulated)",
    "hrtem_graphene_contamination": "HRTEM graphene + contamination (simulated)",
    "au_particle_on_carbon": "Au particle on carbon (simulated)",
}


def sample_parameters(name: str):
    """The :class:`~napari_atomseg.simulate.SimulationParameters` of sample ``name``."""
    from napari_atomseg.simulate import SimulationParameters

    return SimulationParameters(**SAMPLES[name])


def result_layers(result: Any, name: str) -> list[LayerData]:
    """A SimulationResult as napari LayerData: Image, ground-truth Points, class Labels.

    Pure: builds ``(data, kwargs, layer_type)`` tuples only (napari is imported only to
    make the label colormap). Shared with the "Simulate micrograph" widget.
    """
    return simulation_layers(result, name)


def _sample(key: str) -> list[LayerData]:
    from napari_atomseg.simulate import simulate

    layers = result_layers(simulate(sample_parameters(key)), _NAMES[key])
    # The ground truth is the point of a sample: show the columns over the image.
    for _data, kwargs, layer_type in layers:
        if layer_type == "points":
            kwargs["visible"] = True
    return layers


def haadf_mos2() -> list[LayerData]:
    """Monolayer MoS2 HAADF-STEM (60 kV) with S vacancies and W dopants."""
    return _sample("haadf_mos2")


def hrtem_graphene_contamination() -> list[LayerData]:
    """Graphene HRTEM (80 kV, white atoms) with hydrocarbon contamination patches."""
    return _sample("hrtem_graphene_contamination")


def au_particle_on_carbon() -> list[LayerData]:
    """A Au decahedron and single Au atoms on amorphous carbon, HAADF-STEM (300 kV)."""
    return _sample("au_particle_on_carbon")
