"""npe2 reader: micrographs -> calibrated Image layers; point tables -> Points layers.

``get_reader`` looks only at the extension (and, for CSV, the header line); it never
raises. It returns :func:`read_layers` for every existing file with an extension this
plugin reads -- also when the first bytes say the file is damaged or another format, so
the user learns *why* it does not open -- and for CSV tables in one of the layouts of
:mod:`napari_atomseg.io.points_table` (this plugin's, napari's Points CSV, ImageJ
Results). Anything else gets None.

Errors: napari wraps an exception raised by a reader function in its own message ("Tried
to read ... Try associating a different plugin ..."), with the plugin's reason on the
last line of the expanded text. So :func:`read_layers` does not raise for a file it
cannot read: it shows the reason itself, as a napari error notification whose text is
the :class:`~napari_atomseg.errors.FileReadError` message (file name first, then what is
wrong, the file by its name; "View Traceback" has the library's own error and the whole
path), opens whatever else it was given,
and returns napari's "nothing to add" value ``[(None,)]`` when nothing opened. Scripts
that want the exception call :func:`layer_data` (or :func:`napari_atomseg.io.read_images`).

Point tables come in with the scale they hold (:mod:`napari_atomseg.io.points_table`);
one without a scale (ImageJ Results) takes that of the one calibrated image it fits on in
the viewer, so the points land on their image (:func:`points_layer_data`).

Images: one layer per image signal, ``scale`` = pixel size, ``units`` = nm / 1/nm (or
``pixel`` when uncalibrated), ``axis_labels``, and ``metadata`` holding the calibration
(``metadata["calibration"]``, see :meth:`napari_atomseg.io.Calibration.from_dict`), the
source path and the file's own metadata tree. Complex data gives a magnitude layer and a
hidden phase layer; label TIFFs written by this plugin come back as Labels layers.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from napari_atomseg.errors import FileReadError
from napari_atomseg.io import ImageData, read_images, read_points_table, sniff_points_csv
from napari_atomseg.io.readers import FORMATS

from .layers import Geometry, table_points

LayerData = tuple[Any, dict[str, Any], str]
#: napari's "read, but nothing to add" answer (its null layer sentinel).
NOTHING = [(None,)]


def _paths(path: Any) -> list[str] | None:
    try:
        paths = [path] if isinstance(path, str | os.PathLike) else list(path)
    except TypeError:
        return None
    if not paths or any(not isinstance(p, str | os.PathLike) for p in paths):
        return None
    return [os.fspath(p) for p in paths]


def _ours(path: str) -> bool:
    """An image file (or ZSPY folder) with one of our extensions, or a known point table."""
    try:
        p = Path(path)
        suffix = p.suffix.lower()
        if suffix == ".csv":
            return sniff_points_csv(p) is not None
        if suffix == ".zspy":
            return p.exists()
        return suffix in FORMATS and p.is_file()
    except (OSError, ValueError):
        return False


def get_reader(
    path: str | Sequence[str],
) -> Callable[[str | Sequence[str]], list[Any]] | None:
    """Return :func:`read_layers` if every path is a file this plugin reads, else None."""
    paths = _paths(path)
    if paths is None or not all(_ours(p) for p in paths):
        return None
    return read_layers


def read_layers(path: str | Sequence[str]) -> list[Any]:
    """Layer data for every path; unreadable files are reported, not raised (see above)."""
    layers: list[Any] = []
    for p in _paths(path) or []:
        try:
            layers.extend(layer_data(p))
        except FileReadError as exc:
            report_read_error(exc, p)
    return layers or NOTHING


def report_read_error(exc: FileReadError, path: str) -> None:
    """Show ``exc`` as a napari error notification, traceback on demand. The toast shows
    its first ~40 characters, so the file is named by its name, not its whole path."""
    from napari.utils.notifications import ErrorNotification, notification_manager

    text = str(exc)
    if text.startswith(path):
        text = Path(path).name + text[len(path) :]
    notification = ErrorNotification(exc)
    notification.message = text
    notification_manager.dispatch(notification)


def layer_data(path: str | os.PathLike[str]) -> list[LayerData]:
    """Layer data tuples of one file; raises :class:`FileReadError` naming the problem."""
    source = os.fspath(path)
    if Path(source).suffix.lower() == ".csv":
        return [points_layer_data(source, _open_images())]
    return [image_to_layer_data(image, source) for image in read_images(source)]


def points_layer_data(path: str, images: Sequence[Any] = ()) -> LayerData:
    """A point table (any layout :func:`napari_atomseg.io.read_points_table` reads) as a
    Points layer with the table's calibration as scale and its other columns as features.

    A table in pixels without a scale (ImageJ Results, napari's CSV of a layer without
    ``pixel_size_nm``) takes the geometry of the one calibrated image layer in ``images``
    it fits in (all points inside its pixel grid), so it lands on that image;
    ``metadata["calibration_note"]`` says so. None or several: it stays in pixels.
    """
    table = read_points_table(path)
    metadata = {
        "source_path": path,
        "points_layout": table.layout,
        **{k: v for k, v in table.calibration.metadata.items() if k == "calibration_note"},
    }
    geometry = Geometry.from_calibration(table.calibration)
    if not table.calibration.calibrated:
        image = _image_for(table.points_px, images)
        if image is not None:
            geometry = Geometry.from_layer(image)
            unit = {"nanometer": "nm"}.get(str(image.units[-1]), str(image.units[-1]))
            metadata["calibration_note"] = (
                f"the table has no scale: its pixels taken as those of image layer "
                f"{image.name!r} ({image.scale[-1]:.6g} {unit}/px)"
            )
    return table_points(table.points_px, table.features, geometry, Path(path).stem, metadata)


def _image_for(points_px: Any, images: Sequence[Any]) -> Any:
    """The one calibrated, non-RGB image layer whose pixel grid holds every point."""
    import numpy as np

    points = np.asarray(points_px, dtype=float)
    fits = []
    for layer in images:
        units = [str(u) for u in tuple(layer.units)[-2:]]
        if getattr(layer, "rgb", False) or "pixel" in units or layer.ndim != points.shape[1]:
            continue
        shape = np.asarray(layer.data.shape[-layer.ndim :], dtype=float)
        if len(points) and (points >= -0.5).all() and (points <= shape - 0.5).all():
            fits.append(layer)
    return fits[0] if len(fits) == 1 else None


def _open_images() -> list[Any]:
    """Image layers of the viewer the user is opening files into (none in scripts)."""
    from napari.layers import Image

    import napari

    viewer = napari.current_viewer()
    return [] if viewer is None else [x for x in viewer.layers if isinstance(x, Image)]


def image_to_layer_data(image: ImageData, source_path: str) -> LayerData:
    """One :class:`ImageData` as a napari layer data tuple (Image, or Labels for masks)."""
    cal = image.calibration
    metadata = {
        "calibration": cal.to_dict(),
        "pixel_size_nm": cal.pixel_size_nm,
        "source_path": source_path,
        "original_metadata": image.original_metadata,
    }
    kwargs: dict[str, Any] = {
        "name": image.name,
        "metadata": metadata,
        **cal.layer_kwargs(),
    }
    if "class_names" in cal.metadata and not image.rgb:
        data = image.data
        if data.dtype.kind == "f":  # >65535 labels were stored as float32
            data = data.astype("int32")
        metadata["class_names"] = dict(cal.metadata["class_names"])
        return data, kwargs, "labels"
    kwargs["rgb"] = image.rgb
    part = cal.metadata.get("complex_part")
    if part == "phase":
        kwargs["colormap"] = "twilight_shifted"
        kwargs["visible"] = False
    return image.data, kwargs, "image"
