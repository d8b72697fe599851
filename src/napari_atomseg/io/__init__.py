"""Reading electron micrographs with their calibration, and writing results.

Pure Python: no napari, no Qt. The napari reader/writer in ``napari_atomseg._napari`` and
the batch CLI are thin layers over these functions.

Reading::

    from napari_atomseg.io import read_image, read_images
    image, cal = read_image("haadf.dm4")
    cal.pixel_size_nm        # e.g. 0.0177516, or None when uncalibrated / reciprocal
    cal.scale, cal.units     # per axis, e.g. (0.0177516, 0.0177516), ("nm", "nm")
    cal.metadata["voltage_kV"], cal.metadata["instrument"]
    for im in read_images("multi_signal.dm3"):   # one ImageData per image signal
        print(im.name, im.data.shape, im.calibration.scale)

Point tables (this plugin's CSV, napari's Points CSV, ImageJ Results)::

    from napari_atomseg.io import read_points_table
    t = read_points_table("columns.csv")   # t.points_px, t.features, t.calibration

Writing::

    from napari_atomseg.io import write_points_csv, write_labels_tiff
    write_points_csv("columns.csv", points_px, cal, features={"confidence": conf})
    write_labels_tiff("mask.tif", labels, cal, class_names={0: "lattice", 1: "contamination"})
"""

from __future__ import annotations

from .calibration import (
    SQUARE_PIXEL_RTOL,
    Calibration,
    CalibrationWarning,
    ImageData,
    RawAxis,
    build_calibration,
)
from .points_table import PointsTable, read_points_table, sniff_points_csv
from .readers import (
    PICTURE_EXTENSIONS,
    SUPPORTED_EXTENSIONS,
    read_image,
    read_images,
    sniff_format,
)
from .units import NM, PER_NM, PX, length_to_nm, parse_unit, reciprocal_to_per_nm
from .writers import read_points_csv, write_image_tiff, write_labels_tiff, write_points_csv

__all__ = [
    "NM",
    "PER_NM",
    "PICTURE_EXTENSIONS",
    "PX",
    "SQUARE_PIXEL_RTOL",
    "SUPPORTED_EXTENSIONS",
    "Calibration",
    "CalibrationWarning",
    "ImageData",
    "PointsTable",
    "RawAxis",
    "build_calibration",
    "length_to_nm",
    "parse_unit",
    "read_image",
    "read_images",
    "read_points_csv",
    "read_points_table",
    "reciprocal_to_per_nm",
    "sniff_format",
    "sniff_points_csv",
    "write_image_tiff",
    "write_labels_tiff",
    "write_points_csv",
]
