"""The main job for one image: find atoms, segment, flag, write -- no Qt.

This is what ``napari-atomseg demo`` (and any batch script) runs per image:

0. without a calibration, the image's one pixel-size estimate
   (:func:`napari_atomseg.scale.estimate_image_scale`) is made once and given to both
   steps, so they work at the same scale (its source, confidence and warnings go into
   the summary);
1. :func:`napari_atomseg.atoms.find_atoms` -> one row per atomic column;
2. :func:`napari_atomseg.segmentation.segment` (contamination / amorphous / vacuum, the default
   method) -> labels;
3. each column gets ``region`` (the class name under it) and ``in_contamination`` (bool),
   as in the graphene atom-and-bond workflow where contaminated columns are dropped --
   only when the image shows a lattice: on an image without one (single atoms on
   amorphous carbon) the amorphous class is the support, not contamination;
4. results written next to each other: ``NAME_atoms.csv`` (y_px, x_px, y_nm, x_nm and
   every feature), ``NAME_regions.tif`` (calibrated labels), ``NAME_summary.json``.

It does what fits the image. When the pixel size lies outside what the atom finder's
model supports (:func:`atoms_skip_reason`) -- e.g. a 1.25 nm/px overview of
nanoparticles, where no column is resolved -- the atoms are skipped, the summary's
``atoms_skipped`` says why, and a too-coarse image is segmented for **particles**
instead (:func:`particle_segmentation`: the particle U-Net where its pixel-size range
covers the image, else by Z contrast, :mod:`napari_atomseg.segmentation.intensity`), with
``NAME_particles.csv`` (one row per particle: centre, area, equivalent diameter) in
place of the atoms table.

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
    #: Why no atoms were looked for ('' when they were).
    atoms_skipped: str = ""
    #: One row per particle when the image was segmented for particles, else None.
    particles: pd.DataFrame | None = None
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
            **({"atoms_skipped": self.atoms_skipped} if self.atoms_skipped else {}),
            "files": {k: str(v) for k, v in self.files.items()},
            **self.extra,
        }


#: The atom finder's settings (its DataFrame's attrs) each summary records: what a batch
#: run over many files needs to tell how each one was processed.
_ATOM_SETTINGS = (
    "model",
    "threshold",
    "threshold_from",
    "min_evidence",
    "unsupported_removed",
    "refine",
    "contrast",
    "polarity",
    "imaging",
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


def _atoms_card(model: Any = "default") -> Any:
    from .backend import default_model_name
    from .backend.cards import ModelCard, load_card

    if isinstance(model, ModelCard):
        return model
    return load_card(default_model_name("atoms") if model in (None, "default") else model)


def atoms_skip_reason(pixel_size_nm: float | None, model: Any = "default") -> str:
    """Why the atom finder's ``model`` cannot work at ``pixel_size_nm`` ('' if it can).

    Outside the pixel-size range on its card the network would see columns at a scale it
    never learnt (coarser: columns are not even resolved). An unknown pixel size is left
    to the model's own estimate.
    """
    if pixel_size_nm is None:
        return ""
    card = _atoms_card(model)
    span = card.input.pixel_size_range_nm
    if span is None or span[0] <= pixel_size_nm <= span[1]:
        return ""
    if pixel_size_nm > span[1]:
        return (
            f"pixel size {pixel_size_nm:g} nm/px is coarser than the {span[1]:g} nm/px up to "
            f"which model {card.name!r} finds atomic columns: at this magnification columns "
            "are not resolved, so no atoms were looked for"
        )
    return (
        f"pixel size {pixel_size_nm:g} nm/px is finer than the {span[0]:g} nm/px model "
        f"{card.name!r} supports: bin the image to find atoms; none were looked for"
    )


def particle_segmentation(
    image: np.ndarray, pixel_size_nm: float, calibration: Calibration | None
) -> ProgressGenerator[Any]:
    """Particles of an image too coarse for atoms: the particle U-Net where its range
    covers ``pixel_size_nm``, else by Z contrast (bright particles unless the file says
    bright-field TEM)."""
    from .errors import ModelError
    from .segmentation import iter_segment
    from .segmentation._unet import default_model
    from .segmentation.intensity import iter_particles_by_intensity

    try:
        span = default_model("particles").input.pixel_size_range_nm
    except ModelError:  # no particle U-Net installed
        span = (0.0, 0.0)
    if span is None or span[0] <= pixel_size_nm <= span[1]:
        return (yield from iter_segment(image, pixel_size_nm, "particles", "unet"))
    mode = (calibration.metadata.get("acquisition_mode") if calibration else None) or ""
    bright = str(mode).upper() != "TEM"
    return (yield from iter_particles_by_intensity(image, pixel_size_nm, bright=bright))


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
    from .scale import estimate_image_scale
    from .segmentation import segment

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

    atoms_opts = dict(atoms_options or {})
    skipped = atoms_skip_reason(pixel_size_nm, atoms_opts.get("model", "default"))
    t0 = time.perf_counter()
    yield Progress(
        0, 3, f"{name}: " + (f"atoms skipped ({skipped})" if skipped else "finding atomic columns")
    )
    atoms = _no_atoms() if skipped else _find_atoms(image, pixel_size_nm, calibration, atoms_opts)
    timings["find_atoms"] = time.perf_counter() - t0
    estimated = scale is not None or bool(atoms.attrs.get("pixel_size_estimated", False))
    if pixel_size_nm is None and atoms.attrs.get("pixel_size_nm"):
        pixel_size_nm = float(atoms.attrs["pixel_size_nm"])

    t0 = time.perf_counter()
    if skipped and pixel_size_nm is not None and "coarser" in skipped:
        yield Progress(1, 3, f"{name}: segmenting particles")
        seg = drain(particle_segmentation(image, pixel_size_nm, calibration))
    else:
        yield Progress(1, 3, f"{name}: segmenting contamination")
        size: Any = scale if scale is not None and scale.pixel_size_nm else pixel_size_nm
        seg = segment(image, size, task="contamination", **dict(segment_options or {}))
    timings["segment"] = time.perf_counter() - t0
    if not skipped:
        atoms = flag_atoms(atoms, seg.labels, seg.class_names, has_lattice=seg.has_lattice)

    yield Progress(2, 3, f"{name}: writing results")
    result = PipelineResult(
        name=name,
        atoms=atoms,
        labels=seg.labels,
        class_names=tuple(seg.class_names),
        class_fractions=seg.class_fractions(),
        pixel_size_nm=pixel_size_nm,
        pixel_size_estimated=estimated,
        timings_s=timings,
        atoms_skipped=skipped,
        particles=_particles_of(seg, pixel_size_nm),
        scale=scale,
        segmentation={
            "method": seg.details.get("method_used", seg.method),
            "has_lattice": seg.has_lattice,
            "warnings": list(seg.warnings),
        },
    )
    if result.particles is not None:
        result.extra["particles"] = particle_summary(result.particles, seg.method)
    _write_results(result, calibration, out, inputs, overwrite)
    yield Progress(3, 3, f"{name}: {len(atoms)} columns, done")
    return result


def _find_atoms(
    image: np.ndarray,
    pixel_size_nm: float | None,
    calibration: Calibration | None,
    options: dict[str, Any],
) -> pd.DataFrame:
    from .atoms import find_atoms
    from .atoms.imaging import imaging_from_metadata

    if "imaging" not in options and calibration is not None:
        # HRTEM or STEM as the file says (DM/TIA/EMD metadata); None where it does not.
        options["imaging"] = imaging_from_metadata(calibration.metadata)
    return find_atoms(image, pixel_size_nm, **options)


def _no_atoms() -> pd.DataFrame:
    """The empty columns table of an image where no atoms were looked for."""
    return flag_atoms(pd.DataFrame({"y_px": [], "x_px": []}), np.zeros((1, 1), int), ("",))


def _particles_of(seg: Any, pixel_size_nm: float | None) -> pd.DataFrame | None:
    """The particles table of a particles segmentation (None for contamination)."""
    from scipy import ndimage

    from .segmentation.instances import particle_table

    if seg.task != "particles":
        return None
    if "particles" in seg.details:
        return seg.details["particles"]
    # The U-Net's instances (touching particles split), as the CSV writer wants them.
    instances = seg.instances if seg.instances is not None else ndimage.label(seg.flagged_mask)[0]
    return particle_table(instances, pixel_size_nm)


def _write_results(
    result: PipelineResult,
    calibration: Calibration | None,
    out: Path,
    inputs: tuple[Path, ...],
    overwrite: bool,
) -> None:
    """``NAME_atoms.csv`` (or ``NAME_particles.csv``), ``NAME_regions.tif`` and
    ``NAME_summary.json``; fills ``result.files``."""
    cal = calibration
    if cal is None or not cal.calibrated:
        ps = result.pixel_size_nm
        cal = Calibration.from_pixel_size_nm(ps) if ps is not None else Calibration.uncalibrated(2)
    table = "atoms" if result.particles is None else "particles"
    rows = result.atoms if result.particles is None else result.particles
    files = result.files
    files[f"{table}_csv"] = out / f"{result.name}_{table}.csv"
    files["regions_tif"] = out / f"{result.name}_regions.tif"
    files["summary_json"] = out / f"{result.name}_summary.json"
    # A points CSV (opens in napari as a Points layer): particles at their centroids.
    yx = ["y_px", "x_px"] if result.particles is None else ["centroid_y_px", "centroid_x_px"]
    coords = rows[yx].to_numpy(dtype=np.float64)
    dropped = (*yx, "y_nm", "x_nm", "centroid_y_nm", "centroid_x_nm")
    features = rows.drop(columns=[c for c in dropped if c in rows])
    write_points_csv(
        files[f"{table}_csv"], coords, cal, features=features, inputs=inputs, overwrite=overwrite
    )
    write_labels_tiff(
        files["regions_tif"],
        result.labels,
        cal,
        class_names=dict(enumerate(result.class_names)),
        inputs=inputs,
        overwrite=overwrite,
    )
    summary = json.dumps(result.summary(), indent=2)
    files["summary_json"].write_text(summary, encoding="utf-8")


def particle_summary(particles: pd.DataFrame, method: str) -> dict[str, Any]:
    """Count and sizes of the particles, for the summary."""
    out: dict[str, Any] = {"method": method, "count": len(particles)}
    if len(particles) and "equivalent_diameter_nm" in particles:
        diameters = particles["equivalent_diameter_nm"].to_numpy(float)
        out["median_equivalent_diameter_nm"] = round(float(np.median(diameters)), 3)
        out["equivalent_diameter_nm_range"] = [
            round(float(diameters.min()), 3),
            round(float(diameters.max()), 3),
        ]
    return out


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
