"""The main job for one image: find atoms, segment, flag, write -- no Qt.

This is what ``napari-atomseg demo`` (and any batch script) runs per image:

0. without a calibration, the image's one pixel-size estimate
   (:func:`napari_atomseg.scale.estimate_image_scale`) is made once and given to both
   steps, so they work at the same scale (its source, confidence and warnings go into
   the summary);
1. :func:`napari_atomseg.atoms.find_atoms` -> one row per atomic column;
2. :func:`napari_atomseg.segment.segment` (contamination / amorphous / vacuum, the default
   method) -> labels;
3. each column gets ``region`` (the class name under it) and ``in_contamination`` (bool),
   as in the graphene atom-and-bond workflow where contaminated columns are dropped --
   only when the image shows a lattice: on an image without one (single atoms on
   amorphous carbon) the amorphous class is the support, not contamination;
4. results written next to each other: ``NAME_atoms.csv`` (y_px, x_px, y_nm, x_nm and
   every feature), ``NAME_regions.tif`` (calibrated labels), ``NAME_summary.json``.

Writers never overwrite an input file (see :mod:`napari_atomseg.io.writers`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ._progress import Progress, ProgressGenerator, drain
from .errors import InputError
from .io import Calibration, write_labels_tiff, write_points_csv


@dataclass
class PipelineResult:
    """What :func:`process_image` found and wrote for one image."""

    name: str
    atoms: pd.DataFrame
    labels: np.ndarray
    class_names: tuple[str, ...]
    class_fractions: dict[str, float]
    pixel_size_nm: float | None
    pixel_size_estimated: bool
    files: dict[str, Path] = field(default_factory=dict)
    timings_s: dict[str, float] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    #: The pixel-size estimate both steps used (None when the file was calibrated).
    scale: Any = None
    #: Method that made the labels, whether a lattice is in view, and the warnings.
    segmentation: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """A JSON-friendly summary (what ``NAME_summary.json`` holds)."""
        n_cont = int(self.atoms["in_contamination"].sum()) if len(self.atoms) else 0
        return {
            "name": self.name,
            "n_columns": len(self.atoms),
            "n_columns_in_contamination": n_cont,
            "pixel_size_nm": self.pixel_size_nm,
            "pixel_size_estimated": self.pixel_size_estimated,
            "pixel_size_estimate": self.scale.to_metadata() if self.scale is not None else None,
            "segmentation": dict(self.segmentation),
            "class_fractions": {k: round(v, 6) for k, v in self.class_fractions.items()},
            "timings_s": {k: round(v, 3) for k, v in self.timings_s.items()},
            "atom_finder": {
                k: self.atoms.attrs[k] for k in _ATOM_SETTINGS if k in self.atoms.attrs
            },
            "files": {k: str(v) for k, v in self.files.items()},
            **self.extra,
        }


#: The atom finder's settings (its DataFrame's attrs) each summary records: what a batch
#: run over many files needs to tell how each one was processed.
_ATOM_SETTINGS = (
    "model",
    "threshold",
    "threshold_from",
    "noise_level",
    "rescorer_added",
    "rescorer_removed",
    "refine",
    "contrast",
    "imaging",
    "contrast_check",
    "min_prominence",
    "second_look",
    "network_input",
    "warnings",
)


def flag_atoms(
    atoms: pd.DataFrame,
    labels: np.ndarray,
    class_names: tuple[str, ...],
    flagged: int = 1,
    has_lattice: bool | None = True,
) -> pd.DataFrame:
    """Add ``region`` (class name under each column) and ``in_contamination`` columns.

    ``has_lattice=False`` (the segmentation found no lattice): the amorphous class is a
    support, so no column is in contamination. Returns a new DataFrame; ``atoms`` is not
    modified.
    """
    out = atoms.copy()
    if len(out) == 0:
        out["region"] = pd.Series([], dtype=object)
        out["in_contamination"] = pd.Series([], dtype=bool)
        return out
    h, w = labels.shape
    rows = np.clip(np.rint(out["y_px"].to_numpy()).astype(int), 0, h - 1)
    cols = np.clip(np.rint(out["x_px"].to_numpy()).astype(int), 0, w - 1)
    values = labels[rows, cols]
    out["region"] = [class_names[v] for v in values]
    out["in_contamination"] = (values == flagged) & (has_lattice is not False)
    return out


def iter_process_image(
    image: np.ndarray,
    calibration: Calibration | None,
    out_dir: str | Path,
    name: str,
    *,
    atoms_options: Mapping[str, Any] | None = None,
    segment_options: Mapping[str, Any] | None = None,
    inputs: tuple[Path, ...] = (),
    overwrite: bool = True,
    material: str | None = None,
) -> ProgressGenerator[PipelineResult]:
    """Generator form of :func:`process_image` (yields Progress, returns the result)."""
    from .atoms import find_atoms
    from .atoms.detect import imaging_from_metadata
    from .scale import estimate_image_scale
    from .segment import segment

    if not name or any(c in name for c in "/\\"):
        raise InputError(f"name: {name!r} is not a valid file-name stem")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    pixel_size_nm = calibration.pixel_size_nm if calibration is not None else None
    timings: dict[str, float] = {}
    scale = None
    if pixel_size_nm is None:
        yield Progress(0, 3, f"{name}: estimating the pixel size")
        t0 = time.perf_counter()
        scale = estimate_image_scale(image, material)
        pixel_size_nm = scale.pixel_size_nm
        timings["estimate_scale"] = time.perf_counter() - t0

    yield Progress(0, 3, f"{name}: finding atomic columns")
    t0 = time.perf_counter()
    atoms_opts = dict(atoms_options or {})
    if "imaging" not in atoms_opts and calibration is not None:
        # HRTEM or STEM as the file says (DM/TIA/EMD metadata); None where it does not.
        atoms_opts["imaging"] = imaging_from_metadata(calibration.metadata)
    atoms = find_atoms(image, pixel_size_nm, **atoms_opts)
    timings["find_atoms"] = time.perf_counter() - t0
    estimated = scale is not None or bool(atoms.attrs.get("pixel_size_estimated", False))
    if pixel_size_nm is None and atoms.attrs.get("pixel_size_nm"):
        pixel_size_nm = float(atoms.attrs["pixel_size_nm"])

    yield Progress(1, 3, f"{name}: segmenting contamination")
    t0 = time.perf_counter()
    size_for_segment: Any = scale if scale is not None and scale.pixel_size_nm else pixel_size_nm
    seg = segment(image, size_for_segment, task="contamination", **dict(segment_options or {}))
    timings["segment"] = time.perf_counter() - t0
    atoms = flag_atoms(atoms, seg.labels, seg.class_names, has_lattice=seg.has_lattice)

    yield Progress(2, 3, f"{name}: writing results")
    cal = calibration
    if cal is None or not cal.calibrated:
        cal = (
            Calibration.from_pixel_size_nm(pixel_size_nm)
            if pixel_size_nm is not None
            else Calibration.uncalibrated(2)
        )
    files = {
        "atoms_csv": out / f"{name}_atoms.csv",
        "regions_tif": out / f"{name}_regions.tif",
        "summary_json": out / f"{name}_summary.json",
    }
    coords = atoms[["y_px", "x_px"]].to_numpy(dtype=np.float64)
    features = atoms.drop(columns=[c for c in ("y_px", "x_px", "y_nm", "x_nm") if c in atoms])
    write_points_csv(
        files["atoms_csv"], coords, cal, features=features, inputs=inputs, overwrite=overwrite
    )
    write_labels_tiff(
        files["regions_tif"],
        seg.labels,
        cal,
        class_names=dict(enumerate(seg.class_names)),
        inputs=inputs,
        overwrite=overwrite,
    )
    result = PipelineResult(
        name=name,
        atoms=atoms,
        labels=seg.labels,
        class_names=tuple(seg.class_names),
        class_fractions=seg.class_fractions(),
        pixel_size_nm=pixel_size_nm,
        pixel_size_estimated=estimated,
        files=files,
        timings_s=timings,
        scale=scale,
        segmentation={
            "method": seg.details.get("method_used", seg.method),
            "has_lattice": seg.has_lattice,
            "warnings": list(seg.warnings),
        },
    )
    files["summary_json"].write_text(json.dumps(result.summary(), indent=2), encoding="utf-8")
    yield Progress(3, 3, f"{name}: {len(atoms)} columns, done")
    return result


def process_image(
    image: np.ndarray,
    calibration: Calibration | None,
    out_dir: str | Path,
    name: str,
    **kwargs: Any,
) -> PipelineResult:
    """Find atoms, segment contamination, flag contaminated columns, write the results.

    ``image`` is any real 2-D array (not modified); ``calibration`` its
    :class:`~napari_atomseg.io.Calibration` (or ``None``: the pixel size is then
    estimated). Options for the two steps go in ``atoms_options`` / ``segment_options``;
    the atom finder's ``imaging`` (STEM or HRTEM) comes from the calibration's metadata
    unless ``atoms_options`` names it.
    """
    return drain(iter_process_image(image, calibration, out_dir, name, **kwargs))
