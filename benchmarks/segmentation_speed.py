"""Segmentation speed per stage, old vs new: U-Net and Bragg filter at 256^2 and 2048^2.

Usage::

    OMP_NUM_THREADS=2 python benchmarks/segmentation_speed.py              # ~2 min
    OMP_NUM_THREADS=2 python benchmarks/segmentation_speed.py --sizes 2048 --repeats 5

The image is a real graphene image of ../shared/data/graphene_contamination (the same
one as ``benchmarks/segmentation.py --sections timing``), tiled 8 x 8 for 2048^2, so the
lattice and the contamination are realistic. Each stage is what
:func:`napari_atomseg.segment` runs for the default contamination task:

- U-Net: pre-processing (spike filter + flat-field), network (shared backend: the same
  code in both columns), the Bragg filter when ``segment()`` averages its map with the
  U-Net's (``bragg_weight`` > 0 by default), labels (arg-max), mask clean-up, and
  ``segment()`` as a whole;
- Bragg: pre-processing (spike filter + flat-field + standardisation), Bragg filter,
  labels, clean-up, and ``segment()``.

"old" is the code of ``segmentation/preprocess.py``, ``cleanup.py`` and ``bragg.py``
(``segment/`` in older revisions) at ``--old-rev`` (default: the commit before the speed
work), read with ``git show`` and swapped into ``segment()``; "new" is the working tree.
Old and new run alternately, one repeat each in turn, so a change of machine load hits
both; the table gives the median wall time and the median CPU time of this process (less
sensitive to other load), and the number of label pixels where old and new ``segment()``
differ. The load average is printed with every table: on a shared machine wall times are
only comparable at a similar load. The network (torch, 2 threads) suffers most: with one
other busy process its 2048^2 wall time ranges from 0.9 to 5 s between runs, so a
``segment()`` total measured on a shared machine can exceed the sum of its stage medians.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import inspect
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "2")

import numpy as np

REPO = Path(__file__).resolve().parents[1]
#: The last commit before the segmentation speed work (issue 5's 2 s target).
DEFAULT_OLD_REV = "43a7158"
_MODULES = ("preprocess", "cleanup", "bragg")


def _show_old_module(rev: str, name: str) -> str:
    """The source of segmentation module ``name`` at ``rev`` (``segment/`` before the rename)."""
    for package in ("segmentation", "segment"):
        shown = subprocess.run(
            ["git", "-C", str(REPO), "show", f"{rev}:src/napari_atomseg/{package}/{name}.py"],
            capture_output=True,
            text=True,
        )
        if shown.returncode == 0:
            return shown.stdout
    raise FileNotFoundError(f"{rev}: no src/napari_atomseg/{{segmentation,segment}}/{name}.py")


def load_old_modules(rev: str, folder: Path) -> dict[str, ModuleType]:
    """The segment modules of git revision ``rev``, imported under private names."""
    modules = {}
    for name in _MODULES:
        source = _show_old_module(rev, name)
        path = folder / f"{name}.py"
        path.write_text(source, encoding="utf-8")
        # A name inside the package, so the modules' relative imports resolve.
        full = f"napari_atomseg.segmentation._old_{name}"
        spec = importlib.util.spec_from_file_location(full, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[full] = module
        spec.loader.exec_module(module)
        modules[name] = module
    old_filter = modules["bragg"].bragg_filter
    if "lattice_amplitude" not in inspect.signature(old_filter).parameters:
        # Options added since (skipping a map) only save time: the old code ignores them.
        def bragg_filter(*args: Any, lattice_amplitude: bool = True, **kwargs: Any) -> Any:
            return old_filter(*args, **kwargs)

        modules["bragg"].bragg_filter = bragg_filter
    return modules


@contextlib.contextmanager
def using(modules: dict[str, ModuleType]) -> Iterator[None]:
    """Run ``segment()`` with the given pre-processing / clean-up / Bragg modules."""
    from napari_atomseg.segmentation import api

    saved = (api.preprocess, api.clean_labels, api._bragg)
    api.preprocess = modules["preprocess"].preprocess
    api.clean_labels = modules["cleanup"].clean_labels
    api._bragg = modules["bragg"]
    try:
        yield
    finally:
        api.preprocess, api.clean_labels, api._bragg = saved


def _one(fn: Callable[[], object]) -> tuple[float, float, object]:
    t0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    return time.perf_counter() - t0, time.process_time() - c0, out


def compare(
    stages: dict[str, tuple[Callable[[], object] | None, Callable[[], object]]], repeats: int
) -> dict[str, dict[str, float]]:
    """Median wall / CPU seconds of old and new per stage (old ``None``: same code)."""
    rows: dict[str, dict[str, list[float]]] = {}
    for name, (old, new) in stages.items():
        if old is not None:
            old()  # warm-up
        new()
        times: dict[str, list[float]] = {"old": [], "new": [], "old_cpu": [], "new_cpu": []}
        for _ in range(repeats):
            for label, fn in (("old", old), ("new", new)):
                if fn is None:
                    continue
                wall, cpu, _ = _one(fn)
                times[label].append(wall)
                times[f"{label}_cpu"].append(cpu)
        if old is None:
            times["old"], times["old_cpu"] = times["new"], times["new_cpu"]
        rows[name] = times
    return {
        name: {key: float(np.median(values)) for key, values in times.items()}
        for name, times in rows.items()
    }


def method_stages(method: str, image: np.ndarray, pixel_size_nm: float, old: dict, new: dict):
    """``{stage: (old_fn, new_fn)}`` for one method on one image, as segment() runs it."""
    from napari_atomseg import segment
    from napari_atomseg._progress import drain
    from napari_atomseg.segmentation import _unet, api
    from napari_atomseg.segmentation.api import _DEFAULT_CLEANUP, _DEFAULT_PREPROCESS, _cleanup_px
    from napari_atomseg.segmentation.bragg_labels import bragg_labels as _bragg_labels

    pre_opts = _DEFAULT_PREPROCESS["contamination"]
    cleanup = _DEFAULT_CLEANUP[method]
    stages: dict[str, tuple[Callable[[], object] | None, Callable[[], object]]] = {}
    stages["spike filter"] = tuple(  # type: ignore[assignment]
        (lambda m=m: m["preprocess"].remove_spikes(image)) for m in (old, new)
    )
    if method == "unet":
        from dataclasses import replace

        pre_opts = replace(pre_opts, standardise=False)
    stages["pre-processing (all)"] = tuple(  # type: ignore[assignment]
        (lambda m=m: m["preprocess"].preprocess(image, pre_opts)) for m in (old, new)
    )
    pre = new["preprocess"].preprocess(image, pre_opts)
    if method == "unet":
        run = drain(_unet.iter_unet(pre, pixel_size_nm, "contamination"))
        stages["network"] = (
            None,
            lambda: drain(_unet.iter_unet(pre, pixel_size_nm, "contamination")),
        )
        probabilities = run.probabilities
        # segment() may also run the Bragg filter to average its map with the U-Net's
        # (api._DEFAULT_UNET's bragg_weight > 0); time it too when it does.
        unet_defaults = getattr(api, "_DEFAULT_UNET", {}).get("contamination")
        if getattr(unet_defaults, "bragg_weight", 0) > 0:
            stages["Bragg filter (U-Net average)"] = tuple(  # type: ignore[assignment]
                (lambda m=m: m["bragg"].bragg_filter(pre, m["bragg"].BraggParameters()))
                for m in (old, new)
            )
            # What it costs when only the residual is computed (lattice_amplitude=False).
            stages["  same, residual only"] = tuple(  # type: ignore[assignment]
                (
                    lambda m=m: m["bragg"].bragg_filter(
                        pre, m["bragg"].BraggParameters(), lattice_amplitude=False
                    )
                )
                for m in (old, new)
            )
        stages["labels (arg-max)"] = (
            None,
            lambda: np.argmax(probabilities, axis=0).astype(np.uint8),
        )
        labels = np.argmax(probabilities, axis=0).astype(np.uint8)
        sigma_px, area_px = _cleanup_px(cleanup, run.pixel_size_nm, float("nan"))
    else:
        params = new["bragg"].BraggParameters()
        stages["Bragg filter"] = tuple(  # type: ignore[assignment]
            (lambda m=m: m["bragg"].bragg_filter(pre, m["bragg"].BraggParameters()))
            for m in (old, new)
        )
        result = new["bragg"].bragg_filter(pre, params)
        stages["labels"] = (
            None,
            lambda: _bragg_labels(result, "contamination", params.vacuum_fraction, 0.5),
        )
        labels = _bragg_labels(result, "contamination", params.vacuum_fraction, 0.5)
        sigma_px, area_px = _cleanup_px(cleanup, None, result.lattice_period_px)
    stages["clean-up"] = tuple(  # type: ignore[assignment]
        (
            lambda m=m: m["cleanup"].clean_labels(
                labels, smooth_sigma_px=sigma_px, min_region_px=area_px, fill=cleanup.fill_holes
            )
        )
        for m in (old, new)
    )

    def total(modules: dict) -> np.ndarray:
        with using(modules):
            return segment(image, pixel_size_nm, method=method).labels

    stages["segment() total"] = (lambda: total(old), lambda: total(new))
    return stages


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="256,2048", help="comma-separated: 256, 2048")
    parser.add_argument("--methods", default="unet,bragg")
    parser.add_argument("--repeats", type=int, default=0, help="default: 7 (256), 3 (2048)")
    parser.add_argument("--old-rev", default=DEFAULT_OLD_REV)
    args = parser.parse_args(argv)

    import torch

    from napari_atomseg import segment as segment_fn
    from napari_atomseg.errors import ModelError
    from napari_atomseg.segmentation import bragg, cleanup, preprocess
    from napari_atomseg.segmentation.data import load_graphene_contamination

    new = {"preprocess": preprocess, "cleanup": cleanup, "bragg": bragg}
    items = load_graphene_contamination()
    small, pixel_size_nm = items[3].image, items[3].pixel_size_nm
    images = {"256": small, "2048": np.tile(small, (8, 8))}
    print(
        f"threads: OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}, "
        f"torch {torch.get_num_threads()}; old = git {args.old_rev}; "
        f"image: {items[3].name} ({pixel_size_nm} nm/px)"
    )
    with tempfile.TemporaryDirectory() as tmp:
        old = load_old_modules(args.old_rev, Path(tmp))
        for size in args.sizes.split(","):
            image = images[size.strip()]
            repeats = args.repeats or (7 if image.shape[0] <= 512 else 3)
            for method in args.methods.split(","):
                method = method.strip()
                try:
                    stages = method_stages(method, image, pixel_size_nm, old, new)
                except ModelError as exc:
                    print(f"\n{method}: skipped ({exc})")
                    continue
                load_before = os.getloadavg()
                rows = compare(stages, repeats)
                load_after = os.getloadavg()
                with using(old):
                    ref = segment_fn(image, pixel_size_nm, method=method).labels
                labels = segment_fn(image, pixel_size_nm, method=method).labels
                differ = int(np.count_nonzero(ref != labels))
                print(
                    f"\n{method}, {image.shape[0]}x{image.shape[1]}, median of {repeats}; "
                    f"load average {load_before[0]:.2f} before, {load_after[0]:.2f} after; "
                    f"old vs new labels differ in {differ} of {labels.size} px"
                )
                print(
                    "| stage | old wall s | new wall s | speed-up | old CPU s | new CPU s |\n"
                    "|---|---:|---:|---:|---:|---:|"
                )
                for name, t in rows.items():
                    print(
                        f"| {name} | {t['old']:.3f} | {t['new']:.3f} | "
                        f"{t['old'] / t['new']:.1f}x | {t['old_cpu']:.3f} | {t['new_cpu']:.3f} |"
                    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
