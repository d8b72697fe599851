"""npe2 sample data (File > Open Sample): ready synthetic micrographs with ground truth.

Each sample is one :func:`napari_atomseg.simulation.simulate` call with fixed parameters
(seeded, so it is the same image every time) and returns napari LayerData tuples: the
micrograph (scale = pixel size in nm, ``metadata["pixel_size_nm"]``), the ground-truth
columns as Points (features ``z_sum, n_atoms, elements, visible, region``) and the class
Labels (vacuum / crystal / support / contamination) plus the column instance labels.

:func:`result_layers` turns any :class:`~napari_atomseg.simulation.SimulationResult` into
those layers; it is pure (no viewer, no Qt) and shared with the "Simulate micrograph"
widget through :func:`napari_atomseg._napari.layers.simulation_layers`.
"""

from __future__ import annotations

from typing import Any

from napari_atomseg.simulation.presets import PRESETS

from .layers import LayerData, simulation_layers

__all__ = [
    "SAMPLES",
    "au_particle_on_carbon",
    "haadf_mos2",
    "hrtem_graphene_contamination",
    "result_layers",
    "sample_parameters",
]

#: The parameters of each sample (SimulationParameters fields; see simulation/presets.py).
SAMPLES: dict[str, dict[str, Any]] = PRESETS

#: Layer names of each sample.
_NAMES = {
    "haadf_mos2": "HAADF MoS2 (simulated)",
    "hrtem_graphene_contamination": "HRTEM graphene + contamination (simulated)",
    "au_particle_on_carbon": "Au particle on carbon (simulated)",
}


def sample_parameters(name: str):
    """The :class:`~napari_atomseg.simulation.SimulationParameters` of sample ``name``."""
    from napari_atomseg.simulation.presets import preset_parameters

    return preset_parameters(name)


def result_layers(result: Any, name: str) -> list[LayerData]:
    """A SimulationResult as napari LayerData: Image, ground-truth Points, class Labels.

    Pure: builds ``(data, kwargs, layer_type)`` tuples only (napari is imported only to
    make the label colormap). Shared with the "Simulate micrograph" widget.
    """
    return simulation_layers(result, name)


def _sample(key: str) -> list[LayerData]:
    from napari_atomseg.simulation import simulate

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
