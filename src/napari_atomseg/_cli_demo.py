"""``napari-atomseg demo``: the main job end to end, on your files or a simulated one.

Without INPUT it simulates two micrographs with exact ground truth (the presets of the
sample data, :mod:`napari_atomseg.simulation.presets`): HAADF-STEM of monolayer MoS2 with S
vacancies and W dopants, and phase-contrast HRTEM of graphene with hydrocarbon
contamination. The run then *scores itself*: each summary holds precision / recall / F1 /
RMS error of the found columns against the true visible ones (outside contamination) and
the Jaccard index of the amorphous (contamination) and vacuum masks against the true ones.
Simulated images and your files are segmented alike, with the default method of
:func:`napari_atomseg.segmentation.segment` (``auto``: the default U-Net checked against the
Bragg filter, which takes over on a crystal the network gets grossly wrong; an image
without a lattice has no crystal and no contamination flags). Without a calibration
(PNG/JPEG pictures, uncalibrated TIFFs) the pixel size is estimated once per image from
its lattice and shared by both steps; ``--material`` pins the spacing, ``--pixel-size-nm``
overrides it.

An image whose pixel size the atom finder's model does not cover (e.g. a 1.25 nm/px
overview of nanoparticles) gets what fits it: no atom search (the summary's
``atoms_skipped`` and the printed line say why) and, when it is too coarse for atoms,
particles segmented instead (``NAME_particles.csv``; see :mod:`napari_atomseg.pipeline`).

For each image it finds every atomic column (told STEM or HRTEM from the file's
acquisition mode where it records one; the simulated images say theirs), segments
contamination / amorphous / vacuum, flags columns inside contamination and writes
``NAME_atoms.csv``, ``NAME_regions.tif`` and ``NAME_summary.json`` (with the atom
finder's settings and warnings) to ``--out``. When a display exists (and ``--no-viewer`` is not
given) napari opens with the image, the columns (Points) and the regions (Labels), ready
for manual correction.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

#: Simulated demo images: output name -> preset (see simulation/presets.py).
DEMO_IMAGES = {
    "demo_MoS2_haadf": "haadf_mos2",
    "demo_graphene_hrtem_contamination": "hrtem_graphene_contamination",
}
#: Simulator mode -> the acquisition mode a microscope's file would record.
_ACQUISITION_MODE = {"haadf": "STEM", "hrtem": "TEM"}
#: Simulator class -> segment label (contamination task): crystal 0, amorphous 1, vacuum 2.
_SIM_TO_LABEL = {0: 2, 1: 0, 2: 1, 3: 1}


def configure(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``napari-atomseg demo``."""
    parser.add_argument(
        "inputs",
        nargs="*",
        metavar="INPUT",
        help="image files (DM3/DM4/MRC/TIFF/SER/EMD/HSPY/ZSPY, PNG/JPEG/BMP); none = simulate "
        "a demo micrograph",
    )
    parser.add_argument(
        "--out", default="atomseg_demo", help="output folder (default: ./atomseg_demo)"
    )
    parser.add_argument(
        "--no-viewer", action="store_true", help="do not open napari even if a display exists"
    )
    parser.add_argument(
        "--pixel-size-nm",
        type=float,
        default=None,
        help="override the pixel size (nm/px) of every input",
    )
    parser.add_argument(
        "--segment-model",
        default=None,
        help="segmentation model name or card (default: the shipped default)",
    )
    parser.add_argument(
        "--segment-method",
        choices=("auto", "unet", "bragg"),
        default="auto",
        help="contamination segmentation method (default auto, as segment() and the widget)",
    )
    parser.add_argument(
        "--material",
        default=None,
        help="catalogue material (e.g. graphene) pinning the lattice spacing of the "
        "pixel-size estimate of uncalibrated inputs",
    )


def score_against_truth(result: Any, sim: Any) -> dict[str, Any]:
    """F1 etc. of the found columns (outside contamination) and per-class mask Jaccard."""
    import numpy as np

    from .atoms.metrics import point_metrics

    truth = sim.columns[sim.columns["visible"].astype(bool)]
    classes = sim.masks["classes"]
    h, w = classes.shape
    r = np.clip(np.rint(truth["y_px"].to_numpy()).astype(int), 0, h - 1)
    c = np.clip(np.rint(truth["x_px"].to_numpy()).astype(int), 0, w - 1)
    clean_truth = truth[classes[r, c] != 3][["y_px", "x_px"]].to_numpy()
    found = result.atoms[~result.atoms["in_contamination"]][["y_px", "x_px"]].to_numpy()
    m = point_metrics(found, clean_truth, radius_nm=0.1, pixel_size_nm=sim.pixel_size_nm)
    true_labels = np.vectorize(_SIM_TO_LABEL.get, otypes=[np.uint8])(classes)
    jaccard = {}
    for value, name in enumerate(result.class_names):
        t, p = true_labels == value, result.labels == value
        union = np.logical_or(t, p).sum()
        if t.any():
            jaccard[name] = round(float(np.logical_and(t, p).sum() / union), 4)
    return {
        "columns_vs_truth": {
            "match_radius_nm": 0.1,
            "n_true_outside_contamination": len(clean_truth),
            "n_found_outside_contamination": len(found),
            "precision": round(m.precision, 4),
            "recall": round(m.recall, 4),
            "f1": round(m.f1, 4),
            "rms_error_pm": round(m.rms_error_px * sim.pixel_size_nm * 1000.0, 2),
        },
        "mask_jaccard_vs_truth": jaccard,
    }


def _has_display() -> bool:
    if sys.platform in ("darwin", "win32"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def _simulated(args: argparse.Namespace, out: Path) -> list[tuple[str, Any, Any, tuple, Any]]:
    from .io import Calibration, write_image_tiff, write_points_csv
    from .simulation import simulate
    from .simulation.presets import preset_parameters

    jobs = []
    for name, preset in DEMO_IMAGES.items():
        params = preset_parameters(preset)
        sim = simulate(params)
        # As a microscope's file says it (and the atom finder reads it: imaging mode).
        cal = Calibration.from_pixel_size_nm(
            sim.pixel_size_nm, acquisition_mode=_ACQUISITION_MODE[params.mode]
        )
        write_image_tiff(out / f"{name}.tif", sim.image, cal, overwrite=True)
        truth = sim.columns
        write_points_csv(
            out / f"{name}_truth.csv",
            truth[["y_px", "x_px"]].to_numpy(),
            cal,
            features=truth.drop(columns=["y_px", "x_px", "y_nm", "x_nm"], errors="ignore"),
            overwrite=True,
        )
        jobs.append((name, sim.image, cal, (), sim))
    return jobs


def _from_files(args: argparse.Namespace) -> tuple[list[tuple[str, Any, Any, tuple, Any]], int]:
    from .errors import AtomsegError
    from .io import Calibration, read_images

    jobs, failures = [], 0
    for item in args.inputs:
        path = Path(item)
        try:
            images = read_images(path)
        except (AtomsegError, OSError) as exc:
            print(f"[demo] {path}: skipped: {exc}", file=sys.stderr)
            failures += 1
            continue
        for k, im in enumerate(images):
            data, cal = im.data, im.calibration
            if data.ndim == 3:
                print(f"[demo] {path}: a stack of {data.shape[0]} frames; using frame 0")
                data = data[0]
                cal = (
                    Calibration.from_pixel_size_nm(cal.pixel_size_nm, source_path=str(path))
                    if cal.pixel_size_nm
                    else Calibration.uncalibrated(2)
                ).with_metadata(**im.calibration.acquisition_facts())
            if args.pixel_size_nm is not None:
                cal = Calibration.from_pixel_size_nm(
                    args.pixel_size_nm, source_path=str(path)
                ).with_metadata(**im.calibration.acquisition_facts())
            name = path.stem if len(images) == 1 else f"{path.stem}_{k}"
            jobs.append((name, data, cal, (path,), None))
    return jobs, failures


def _segment_options(args: argparse.Namespace) -> dict[str, Any]:
    options: dict[str, Any] = {"method": args.segment_method}
    if args.segment_method != "bragg" and args.segment_model:
        options["model"] = args.segment_model
    return options


def run(args: argparse.Namespace) -> int:
    """``napari-atomseg demo``: process, write, print, open napari. Returns the exit code."""
    from .errors import AtomsegError
    from .pipeline import process_image

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.inputs:
        jobs, failures = _from_files(args)
    else:
        print("[demo] simulating HAADF MoS2 and HRTEM graphene with contamination ...")
        jobs, failures = _simulated(args, out), 0
    results = []
    for name, data, cal, inputs, sim in jobs:
        try:
            res = process_image(
                data,
                cal,
                out,
                name,
                inputs=inputs,
                segment_options=_segment_options(args),
                material=args.material,
            )
        except AtomsegError as exc:
            print(f"[demo] {name}: failed: {exc}", file=sys.stderr)
            failures += 1
            continue
        if sim is not None:
            res.extra.update(score_against_truth(res, sim))
            res.files["summary_json"].write_text(
                json.dumps(res.summary(), indent=2), encoding="utf-8"
            )
        results.append((res, data))
        s = res.summary()
        fractions = ", ".join(f"{k} {v:.1%}" for k, v in res.class_fractions.items())
        if res.atoms_skipped:
            found = f"atoms skipped: {res.atoms_skipped}"
        else:
            found = f"{s['n_columns']} columns ({s['n_columns_in_contamination']} in contamination)"
        if "particles" in s:
            p = s["particles"]
            size = p.get("median_equivalent_diameter_nm")
            found += f"; {p['count']} particles ({p['method']}" + (
                f", median diameter {size:.2f} nm)" if size is not None else ")"
            )
        print(
            f"[demo] {name}: {found}; {fractions}; atoms {s['timings_s']['find_atoms']:.2f} s, "
            f"segment {s['timings_s']['segment']:.2f} s"
        )
        if "columns_vs_truth" in s:
            cv = s["columns_vs_truth"]
            masks = ", ".join(f"{k} {v:.3f}" for k, v in s["mask_jaccard_vs_truth"].items())
            print(
                f"[demo] vs ground truth: columns F1 {cv['f1']:.3f} (precision "
                f"{cv['precision']:.3f}, recall {cv['recall']:.3f}), RMS error "
                f"{cv['rms_error_pm']:.1f} pm; mask Jaccard {masks}"
            )
        if res.scale is not None:
            print(f"[demo]   pixel size: {res.scale.describe()}")
        for warning in res.segmentation.get("warnings", ()):
            print(f"[demo]   warning: {warning}")
        for kind, path in res.files.items():
            print(f"[demo]   {kind}: {path}")
    if results and not args.no_viewer and _has_display():
        from ._napari.launch import show_results

        print("[demo] opening napari (close the window to finish)")
        show_results(results)
    elif results and not args.no_viewer:
        print("[demo] no display: not opening napari (results are in the files above)")
    if failures:
        print(f"[demo] {failures} input(s) failed (see above)", file=sys.stderr)
        return 1
    return 0 if results else 1
