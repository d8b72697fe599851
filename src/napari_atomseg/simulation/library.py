"""Training libraries: many random micrographs in one chunked zarr store, made with dask.

Layout (zarr v3 group; N images of H x W; chunks of ``chunk_images`` along N)::

    image          float32 (N, H, W)   the micrograph (noise included)
    image_clean    float32 (N, H, W)   the same without detector noise (optional)
    heatmap        float32 (N, H, W)   Gaussian column targets in [0, 1]
    classes        uint8   (N, H, W)   0 vacuum, 1 crystal, 2 support, 3 contamination
    particle       uint8   (N, H, W)   1 = crystalline particle or lattice
    column_labels  int32   (N, H, W)   row + 1 of the column in that image's table
    pixel_size_nm  float64 (N,)
    column_spacing_nm float64 (N,)
    parameters     string  (N,)        SimulationParameters as JSON
    columns        string  (N,)        the column table as CSV (y_px, x_px, y_nm, ...)
    done           bool    (N,)        True once image i is written

``attrs`` hold the seed, the mixture and the format version. Image ``i`` depends only on
``(seed, i)`` and the mixture: its recipe is ``random_parameters(default_rng([seed, i]),
mix)``. A task writes whole chunks, so workers never share a chunk; a second run with
the same arguments skips finished chunks (resume), and a larger ``n`` grows the store.
"""

from __future__ import annotations

import io
import json
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .._progress import Progress, ProgressGenerator, drain
from ..errors import FileWriteError, InputError
from . import _fft
from .mix import MixConfig

FORMAT_VERSION = 1
IMAGE_ARRAYS = {
    "image": "float32",
    "image_clean": "float32",
    "heatmap": "float32",
    "classes": "uint8",
    "particle": "uint8",
    "column_labels": "int32",
}


def image_parameters(seed: int, index: int, mix: MixConfig):
    """The recipe of image ``index`` of a library with ``seed`` (independent of the rest)."""
    from .mix import random_parameters

    return random_parameters(np.random.default_rng([int(seed), int(index)]), mix)


@dataclass
class LibrarySummary:
    """What a run did: images in the library, written now, skipped, seconds, images/s."""

    path: Path
    n_images: int
    written: int
    skipped: int
    seconds: float

    @property
    def images_per_second(self) -> float:
        """Images written per second of this run (NaN for no time)."""
        return self.written / self.seconds if self.seconds > 0 else float("nan")


# --- store -----------------------------------------------------------------------------------
def _open_or_create(path: Path, n: int, seed: int, mix: MixConfig, chunk: int, store_clean: bool):
    import zarr

    h, w = mix.shape_px
    attrs = {
        "format": "napari-atomseg simulated library",
        "format_version": FORMAT_VERSION,
        "seed": int(seed),
        "mix": mix.to_dict(),
        "chunk_images": int(chunk),
        "store_clean": bool(store_clean),
    }
    if path.exists():
        try:
            group = zarr.open_group(str(path), mode="r+")
        except Exception as exc:  # zarr raises several types for "not a group"
            raise FileWriteError(f"{path}: exists and is not a zarr library ({exc})") from exc
        old = dict(group.attrs)
        for key in ("seed", "mix", "chunk_images", "store_clean"):
            if key in old and json.dumps(old[key], sort_keys=True) != json.dumps(
                attrs[key], sort_keys=True
            ):
                raise FileWriteError(
                    f"{path}: an existing library was made with a different {key}; "
                    "choose another --out or the same settings to resume"
                )
        if "done" not in group:
            raise FileWriteError(f"{path}: exists but is not a napari-atomseg library")
        if group["done"].shape[0] < n:
            for name in group.array_keys():
                arr = group[name]
                arr.resize((n, *arr.shape[1:]))
        return group
    path.parent.mkdir(parents=True, exist_ok=True)
    group = zarr.open_group(str(path), mode="w")
    group.attrs.update(attrs)
    for name, dtype in IMAGE_ARRAYS.items():
        if name == "image_clean" and not store_clean:
            continue
        group.create_array(name, shape=(n, h, w), chunks=(chunk, h, w), dtype=dtype, fill_value=0)
    for name in ("pixel_size_nm", "column_spacing_nm"):
        group.create_array(name, shape=(n,), chunks=(chunk,), dtype="float64", fill_value=np.nan)
    for name in ("parameters", "columns"):
        group.create_array(name, shape=(n,), chunks=(chunk,), dtype=str, fill_value="")
    group.create_array("done", shape=(n,), chunks=(chunk,), dtype="bool", fill_value=False)
    return group


def _table_csv(columns) -> str:
    buffer = io.StringIO()
    columns.to_csv(buffer, index=False, float_format="%.4f")
    return buffer.getvalue()


def simulate_chunk(
    path: str, start: int, stop: int, seed: int, mix_dict: dict, fft_workers: int = 1
) -> tuple[int, float]:
    """Simulate images ``start..stop-1`` and write them (one task of the generator).

    Returns (images written, seconds). Runs in dask workers: everything it needs travels
    as plain values.
    """
    import zarr

    from .engine import simulate

    t0 = time.perf_counter()
    _fft.FFT_WORKERS = int(fft_workers)
    mix = MixConfig.from_dict(mix_dict)
    group = zarr.open_group(path, mode="r+")
    n = stop - start
    h, w = mix.shape_px
    names = [name for name in IMAGE_ARRAYS if name in group]
    block = {name: np.zeros((n, h, w), dtype=IMAGE_ARRAYS[name]) for name in names}
    px = np.full(n, np.nan)
    spacing = np.full(n, np.nan)
    params = [""] * n
    tables = [""] * n
    for k, i in enumerate(range(start, stop)):
        p = image_parameters(seed, i, mix)
        r = simulate(p)
        block["image"][k] = r.image
        if "image_clean" in block:
            block["image_clean"][k] = r.image_clean
        block["heatmap"][k] = r.heatmap
        block["classes"][k] = r.masks["classes"]
        block["particle"][k] = r.masks["particle"]
        block["column_labels"][k] = r.masks["column_labels"]
        px[k] = r.pixel_size_nm
        spacing[k] = r.column_spacing_nm
        params[k] = p.to_json()
        tables[k] = _table_csv(r.columns)
    for name in names:
        group[name][start:stop] = block[name]
    group["pixel_size_nm"][start:stop] = px
    group["column_spacing_nm"][start:stop] = spacing
    group["parameters"][start:stop] = np.array(params, dtype=object)
    group["columns"][start:stop] = np.array(tables, dtype=object)
    # Written last: a chunk interrupted before this line is simply redone on resume.
    group["done"][start:stop] = np.ones(n, dtype=bool)
    return n, time.perf_counter() - t0


# --- driver ------------------------------------------------------------------------------------
def generate_library_steps(
    out: str | Path,
    n: int,
    mix: MixConfig | None = None,
    seed: int = 0,
    scheduler: str = "local",
    workers: int | None = None,
    chunk_images: int = 8,
    store_clean: bool = True,
) -> ProgressGenerator[LibrarySummary]:
    """Generator version of :func:`generate_library` (yields Progress per chunk).

    Parameters
    ----------
    out, n, mix, seed, scheduler, workers, chunk_images, store_clean
        As for :func:`generate_library`.

    Yields
    ------
    Progress
        Images done of ``n``, once at the start and once per finished chunk.

    Returns
    -------
    LibrarySummary
        What the run did.
    """
    mix = mix if mix is not None else MixConfig()
    if not isinstance(n, (int, np.integer)) or n < 1:
        raise InputError(f"n: the number of images must be a positive integer, got {n!r}")
    if not 1 <= int(chunk_images) <= 1024:
        raise InputError(f"chunk_images: {chunk_images} must be between 1 and 1024")
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise InputError(f"seed: must be a non-negative integer, got {seed!r}")
    path = Path(out)
    group = _open_or_create(path, int(n), int(seed), mix, int(chunk_images), store_clean)
    n_total = int(group["done"].shape[0])
    done = np.asarray(group["done"][:n], dtype=bool)
    chunks = [
        (start, min(start + chunk_images, n))
        for start in range(0, n, chunk_images)
        if not done[start : min(start + chunk_images, n)].all()
    ]
    skipped = int(n - sum(b - a for a, b in chunks))
    t0 = time.perf_counter()
    yield Progress(skipped, n, f"{skipped} images already done; {n - skipped} to simulate")
    written = 0
    for count in _run_chunks(str(path), chunks, int(seed), mix.to_dict(), scheduler, workers):
        written += count
        yield Progress(skipped + written, n, f"{skipped + written}/{n} images")
    seconds = time.perf_counter() - t0
    return LibrarySummary(path, n_total, written, skipped, seconds)


def generate_library(
    out: str | Path,
    n: int,
    mix: MixConfig | None = None,
    seed: int = 0,
    scheduler: str = "local",
    workers: int | None = None,
    chunk_images: int = 8,
    store_clean: bool = True,
) -> LibrarySummary:
    """Write (or finish) a library of ``n`` random images at ``out`` (zarr).

    Images already stored are skipped, so running again resumes and a larger ``n``
    extends the library.

    Parameters
    ----------
    out
        The zarr folder (created, or resumed).
    n
        Number of images the library should hold.
    mix
        The mixture the recipes are drawn from (default: :class:`MixConfig` defaults).
    seed
        Library seed (>= 0); image ``i``'s recipe depends only on ``(seed, i)``.
    scheduler
        "local" (a dask LocalCluster of ``workers`` processes, default the CPU count),
        "synchronous" (this process, no dask), "threads" or the address of a running
        dask.distributed scheduler ("tcp://host:8786"; the workers must see ``out``).
    workers
        Worker processes for "local" (None: the CPU count).
    chunk_images
        Images per zarr chunk and per task (1-1024).
    store_clean
        Also store the noise-free images.

    Returns
    -------
    LibrarySummary
        Images in the library, written now, skipped, seconds and images/s.
    """
    return drain(
        generate_library_steps(out, n, mix, seed, scheduler, workers, chunk_images, store_clean)
    )


def _run_chunks(
    path: str,
    chunks: list[tuple[int, int]],
    seed: int,
    mix_dict: dict,
    scheduler: str,
    workers: int | None,
) -> Iterator[int]:
    if not chunks:
        return
    if scheduler == "synchronous":
        for a, b in chunks:
            yield simulate_chunk(path, a, b, seed, mix_dict, fft_workers=2)[0]
        return
    from dask.distributed import as_completed

    from .._batch import check_scheduler, dask_client

    check_scheduler(scheduler, workers)
    with dask_client(scheduler, workers) as client:
        futures = [
            client.submit(simulate_chunk, path, a, b, seed, mix_dict, 1, pure=False)
            for a, b in chunks
        ]
        for future in as_completed(futures):
            yield future.result()[0]


# --- reading -------------------------------------------------------------------------------------
class Library:
    """Read access to a library: ``len``, ``result(i)`` and ``columns(i)``."""

    def __init__(self, path: str | Path):
        import zarr

        self.path = Path(path)
        if not self.path.exists():
            raise InputError(f"library not found: {self.path}")
        self.group = zarr.open_group(str(self.path), mode="r")
        if "done" not in self.group:
            raise InputError(f"{self.path}: not a napari-atomseg library (no 'done' array)")

    def __len__(self) -> int:
        return int(self.group["done"].shape[0])

    @property
    def done(self) -> np.ndarray:
        """bool per image: simulated and stored."""
        return np.asarray(self.group["done"][:], dtype=bool)

    @property
    def attrs(self) -> dict[str, Any]:
        """The library's attributes (seed, mixture, shape, ...), a copy."""
        return dict(self.group.attrs)

    def parameters(self, i: int):
        """Image ``i``'s :class:`~.parameters.SimulationParameters`."""
        from .parameters import SimulationParameters

        return SimulationParameters.from_dict(json.loads(str(self.group["parameters"][i])))

    def columns(self, i: int):
        """Image ``i``'s ground-truth column table (empty when it has none)."""
        import pandas as pd

        text = str(self.group["columns"][i])
        if not text:
            from .groundtruth import empty_table

            return empty_table()
        table = pd.read_csv(io.StringIO(text), keep_default_na=False)
        table["visible"] = table["visible"].astype(str).str.lower().eq("true")
        return table

    def result(self, i: int):
        """Image ``i`` as a :class:`SimulationResult` (image_clean may be absent -> image)."""
        from .engine import SimulationResult

        g = self.group
        if not bool(g["done"][i]):
            raise InputError(f"{self.path}: image {i} has not been simulated yet")
        image = np.asarray(g["image"][i])
        clean = np.asarray(g["image_clean"][i]) if "image_clean" in g else image
        spacing = float(g["column_spacing_nm"][i])
        return SimulationResult(
            image=image,
            image_clean=clean,
            pixel_size_nm=float(g["pixel_size_nm"][i]),
            columns=self.columns(i),
            heatmap=np.asarray(g["heatmap"][i]),
            masks={
                "classes": np.asarray(g["classes"][i]),
                "particle": np.asarray(g["particle"][i]),
                "column_labels": np.asarray(g["column_labels"][i]),
            },
            column_spacing_nm=spacing if math.isfinite(spacing) else float("nan"),
            parameters=self.parameters(i),
        )


def open_library(path: str | Path) -> Library:
    """Open a library written by :func:`generate_library` for reading.

    Parameters
    ----------
    path
        The library's zarr folder.

    Returns
    -------
    Library
        Read access: ``len``, ``done``, ``result(i)``, ``columns(i)``, ``parameters(i)``.
    """
    return Library(path)
