"""Open napari on the main job's results (``napari-atomseg demo``).

Kept apart from the widgets: it only turns :class:`~napari_atomseg.pipeline.PipelineResult`
objects into layers (image, columns as Points with every feature, regions as Labels with
named classes, all in the image's physical scale) and runs the event loop.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def result_layer_data(result: Any, image: np.ndarray) -> list[tuple[Any, dict, str]]:
    """LayerData tuples (image, points, labels) for one pipeline result."""
    from ..io import Calibration

    if result.pixel_size_nm:
        cal = Calibration.from_pixel_size_nm(result.pixel_size_nm)
    else:
        cal = Calibration.uncalibrated(2)
    spatial = cal.layer_kwargs()
    meta = {"pixel_size_nm": result.pixel_size_nm, "calibration": cal.to_dict()}
    atoms = result.atoms
    coords = atoms[["y_px", "x_px"]].to_numpy(dtype=np.float64)
    spacing = atoms["nn_spacing_px"].median() if "nn_spacing_px" in atoms and len(atoms) else 8
    size_px = float(np.clip(0.5 * spacing, 2.0, 40.0)) if np.isfinite(spacing) else 6.0
    features = atoms.drop(columns=[c for c in ("y_px", "x_px") if c in atoms]).reset_index(
        drop=True
    )
    if result.pixel_size_nm:  # as every Points layer of the plugin (napari's CSV keeps it)
        features["pixel_size_nm"] = float(result.pixel_size_nm)
    contaminated = features["in_contamination"].to_numpy(dtype=bool)
    face = np.where(contaminated[:, None], [[1.0, 0.3, 0.2, 1.0]], [[0.1, 0.9, 1.0, 1.0]])
    layers = [
        (image, {"name": result.name, "metadata": meta, **spatial}, "image"),
        (
            coords,
            {
                "name": f"{result.name} columns",
                "features": features,
                "size": size_px * float(cal.scale[-1]),
                "face_color": face,
                "border_width": 0,
                "metadata": {**meta, "source": "napari-atomseg find_atoms"},
                **spatial,
            },
            "points",
        ),
        (
            result.labels,
            {
                "name": f"{result.name} regions",
                "opacity": 0.35,
                "metadata": {**meta, "class_names": list(result.class_names)},
                "features": {
                    "index": np.arange(len(result.class_names)),
                    "class": list(result.class_names),
                },
                **spatial,
            },
            "labels",
        ),
    ]
    if result.atoms_skipped:  # (an overview image: no columns were looked for)
        del layers[1]
    return layers


def show_results(results: Sequence[tuple[Any, np.ndarray]], run: bool = True) -> Any:
    """Open a viewer with every (result, image) pair as layers; block until it closes."""
    import napari

    viewer = napari.Viewer(title="napari-atomseg demo")
    for result, image in results:
        for data, kwargs, kind in result_layer_data(result, image):
            getattr(viewer, f"add_{kind}")(data, **kwargs)
    # napari >= 0.9 moved the scale bar to the canvas overlays.
    canvas = getattr(viewer, "canvas", None)
    scale_bar = canvas.overlays.scale_bar if canvas is not None else viewer.scale_bar
    scale_bar.visible = True
    if run:
        napari.run()
    return viewer
