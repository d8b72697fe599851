"""File > Open Sample: the manifest's sample-data contributions work through npe2."""

from __future__ import annotations

import numpy as np


def test_sample_data_opens_from_the_manifest():
    """File > Open Sample: the manifest's three samples, by key, through npe2."""
    from napari.components import ViewerModel

    viewer = ViewerModel()
    layers = viewer.open_sample("napari-atomseg", "haadf_mos2")
    names = [layer.name for layer in layers]
    assert names[0] == "HAADF MoS2 (simulated)"
    image = viewer.layers[names[0]]
    np.testing.assert_allclose(image.scale, (0.02, 0.02))
    import npe2

    pm = npe2.PluginManager.instance()
    samples = {
        c.key: c.display_name for c in pm.get_manifest("napari-atomseg").contributions.sample_data
    }
    assert samples == {
        "haadf_mos2": "HAADF MoS2",
        "hrtem_graphene_contamination": "HRTEM graphene with contamination",
        "au_particle_on_carbon": "Au particle on carbon",
    }
