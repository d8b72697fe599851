"""Where a training run's examples come from: the task, a pre-simulated pool, a zarr
library or fixed real pairs, mixed by index-seeded draws and batched by a DataLoader.

Example ``k`` of a stream is a pure function of ``(seed, stream, k)`` (see
:mod:`.train_data`), so the batches do not depend on the number of worker processes and a
resumed run sees the examples an uninterrupted run would have seen.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import inspect
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .._progress import Progress, ProgressGenerator
from ..errors import InputError
from .cards import ModelCard, load_card
from .train_config import TrainConfig
from .train_data import (
    TRAIN_STREAM,
    VAL_STREAM,
    AugmentConfig,
    ZarrLibrary,
    augment_pair,
    check_example,
    load_pairs,
    random_crop,
)

#: Seed stream of the example pool (apart from the training and validation streams).
POOL_STREAM = 7

Pair = tuple[np.ndarray, np.ndarray]


class ExampleSource:
    """Picks the source of example ``k`` (pairs / library / pool / task) and augments it.

    Parameters
    ----------
    task
        The training task.
    cfg
        The run's config (seed, mixing fractions, crop size, augmentation).
    stream
        Seed stream (:data:`~.train_data.TRAIN_STREAM` or ``VAL_STREAM``).
    library, library_indices
        A zarr library and the indices of its images this source may use (or None).
    pairs
        Fixed real (image, target) pairs (or None).
    augment
        Apply the config's augmentation (training) or not (validation).
    """

    def __init__(
        self,
        task: Any,
        cfg: TrainConfig,
        stream: int,
        library: ZarrLibrary | None,
        library_indices: np.ndarray | None,
        pairs: Sequence[Pair] | None,
        augment: bool,
    ) -> None:
        self.task = task
        self.seed = int(cfg.seed)
        self.stream = stream
        self.library = library
        self.library_indices = library_indices
        self.pairs = list(pairs) if pairs else None
        self.pairs_fraction = cfg.pairs_fraction if self.pairs else 0.0
        self.library_fraction = cfg.library_fraction if library is not None else 0.0
        self.crop_px = cfg.crop_px
        self.augment_cfg = AugmentConfig.from_value(cfg.augment) if augment else None
        self.channels_out = task.channels_out
        #: Pre-simulated task examples (see ``TrainConfig.example_pool``), or None.
        self.pool: list[Pair] | None = None

    def example(self, k: int) -> Pair:
        """Example ``k``: image float32 ``(1, H, W)`` and its target, checked."""
        rng = np.random.default_rng([self.seed, self.stream, int(k)])
        u = rng.random()
        if self.pairs and u < self.pairs_fraction:
            img, tgt = self.pairs[int(rng.integers(len(self.pairs)))]
            img, tgt = check_example(img, tgt, self.channels_out, "fine-tuning pair")
            img, tgt = random_crop(img, tgt, self.crop_px, rng)
            where = "fine-tuning pair"
        elif self.library is not None and rng.random() < self.library_fraction:
            assert self.library_indices is not None
            j = int(self.library_indices[int(rng.integers(len(self.library_indices)))])
            img, tgt = self.task.example_from_library(self.library.record(j), rng)
            where = "task.example_from_library"
        elif self.pool:
            img, tgt = self.pool[int(rng.integers(len(self.pool)))]
            img, tgt = random_crop(img, tgt, self.crop_px, rng)
            where = "example pool"
        else:
            img, tgt = self.task.make_example(rng)
            where = "task.make_example"
            if max(img.shape[-2:]) > self.crop_px:
                # a task that simulates a margin (e.g. for its scale jitter) is cropped
                # like its pooled examples; equal sizes draw nothing (same streams)
                img, tgt = random_crop(img, tgt, self.crop_px, rng)
        img, tgt = check_example(img, tgt, self.channels_out, where)
        if self.augment_cfg is not None:
            img, tgt = augment_pair(img, tgt, rng, self.augment_cfg)
            extra = getattr(self.task, "augment", None)
            if callable(extra):
                img, tgt = check_example(*extra(img, tgt, rng), self.channels_out, "task.augment")
        return img, tgt


# --------------------------------------------------------------------------- a run's data


@dataclass(frozen=True)
class TrainingData:
    """The fixed data of a run: real pairs and a library split into train / validation."""

    pairs: list[Pair] | None
    val_pairs: list[Pair] | None
    library: ZarrLibrary | None
    library_train: np.ndarray | None
    library_val: np.ndarray | None


def load_training_data(
    cfg: TrainConfig,
    task: Any,
    pairs: Sequence[Pair] | None = None,
    val_pairs: Sequence[Pair] | None = None,
) -> TrainingData:
    """Pairs given (else the config's files) and the config's library.

    With ``library_fraction`` 1 the library's last fifth (at most ``val_examples``
    images) is held out for validation; otherwise validation uses task examples.
    """
    pairs = list(pairs) if pairs is not None else (load_pairs(cfg.pairs) if cfg.pairs else None)
    val_pairs = (
        list(val_pairs)
        if val_pairs is not None
        else (load_pairs(cfg.val_pairs) if cfg.val_pairs else None)
    )
    library = ZarrLibrary(cfg.library) if cfg.library else None
    lib_train = lib_val = None
    if library is not None:
        if not callable(getattr(task, "example_from_library", None)):
            raise InputError(
                f"training task {cfg.task!r} cannot read libraries (no example_from_library method)"
            )
        idx = np.arange(len(library))
        n_val_lib = min(cfg.val_examples, len(idx) // 5) if cfg.library_fraction >= 1.0 else 0
        lib_train, lib_val = idx[: len(idx) - n_val_lib], idx[len(idx) - n_val_lib :]
    return TrainingData(pairs, val_pairs, library, lib_train, lib_val)


def make_sources(
    task: Any, cfg: TrainConfig, data: TrainingData
) -> tuple[ExampleSource, ExampleSource]:
    """The training source (augmented, with the pairs) and the validation source."""
    train = ExampleSource(
        task, cfg, TRAIN_STREAM, data.library, data.library_train, data.pairs, augment=True
    )
    val = ExampleSource(task, cfg, VAL_STREAM, data.library, data.library_val, None, augment=False)
    if data.library_val is not None and len(data.library_val):
        val.library_fraction = 1.0
    return train, val


def validation_batches(
    source: ExampleSource, cfg: TrainConfig, val_pairs: Sequence[Pair] | None
) -> list[tuple[Any, Any]]:
    """The fixed validation set as torch batches: centred crops of ``val_pairs`` or the
    first ``val_examples`` examples of ``source``; examples of unequal shapes go one by one."""
    import torch

    items: list[Pair] = []
    if val_pairs:
        for img, tgt in val_pairs:
            img, tgt = check_example(img, tgt, source.channels_out, "validation pair")
            items.append(random_crop(img, tgt, cfg.crop_px, None))
    else:
        items = [source.example(k) for k in range(cfg.val_examples)]
    batch = cfg.val_batch_size or cfg.batch_size
    out = []
    for i in range(0, len(items), batch):
        chunk = items[i : i + batch]
        try:
            x = torch.from_numpy(np.stack([c[0] for c in chunk]))
            y = torch.from_numpy(np.stack([c[1] for c in chunk]))
            out.append((x, y))
        except ValueError:
            out.extend((torch.from_numpy(c[0][None]), torch.from_numpy(c[1][None])) for c in chunk)
    return out


class _IndexedExamples:
    """Map-style dataset over a source's (endless) example indices; module-level so
    that DataLoader workers started by ``spawn`` can unpickle it."""

    def __init__(self, source: ExampleSource) -> None:
        self.source = source

    def __len__(self) -> int:
        return 1 << 62

    def __getitem__(self, k: int) -> tuple[Any, Any]:
        import torch

        img, tgt = self.source.example(k)
        return torch.from_numpy(img), torch.from_numpy(tgt)


def make_loader(source: ExampleSource, cfg: TrainConfig, start: int, device: Any) -> Any:
    """DataLoader over the training examples of steps ``start`` to ``cfg.steps``, or None
    when no step is left.

    Raises
    ------
    InputError
        ``start`` (a resumed checkpoint's step) is beyond ``cfg.steps``.
    """
    import torch

    remaining = cfg.steps - start
    if remaining < 0:
        raise InputError(f"--resume: the checkpoint is at step {start}, beyond steps={cfg.steps}")
    if remaining == 0:
        return None
    return torch.utils.data.DataLoader(
        _IndexedExamples(source),
        batch_size=cfg.batch_size,
        sampler=range(start * cfg.batch_size, cfg.steps * cfg.batch_size),
        num_workers=cfg.workers,
        worker_init_fn=_worker_init if cfg.workers else None,
        persistent_workers=False,
        prefetch_factor=4 if cfg.workers else None,
        pin_memory=device.type == "cuda",
    )


def _worker_init(_: int) -> None:
    import torch

    # Examples are seeded by index; workers only need to stay single-threaded so they do
    # not fight the training process for the cores.
    torch.set_num_threads(1)


# --------------------------------------------------------------------------- example pool


def _pool_example(task: Any, seed: int, j: int) -> Pair:
    return task.make_example(np.random.default_rng([seed, POOL_STREAM, j]))


def _generator_digest(task: Any) -> str:
    """sha256 of the source that makes examples: the task's module and the simulator."""
    simulator = importlib.import_module(__package__.rsplit(".", 1)[0] + ".simulation")
    files = sorted(Path(simulator.__file__).parent.rglob("*.py"))
    with contextlib.suppress(TypeError, OSError):
        files.append(Path(inspect.getfile(type(task))))
    h = hashlib.sha256()
    for f in files:
        h.update(f.name.encode())
        h.update(f.read_bytes())
    return h.hexdigest()[:16]


def _pool_key(task: Any, cfg: TrainConfig) -> str:
    what = {
        "task": cfg.task,
        "task_options": cfg.task_options,
        "seed": cfg.seed,
        "n": int(cfg.example_pool),
        # Code changes make a pool stale even for the same config.
        "code": _generator_digest(task),
    }
    return hashlib.sha256(json.dumps(what, sort_keys=True, default=str).encode()).hexdigest()


def build_example_pool(
    task: Any, cfg: TrainConfig, cache: Path | None = None
) -> ProgressGenerator[list[Pair]]:
    """Simulate ``cfg.example_pool`` task examples, index-seeded, in ``cfg.workers``
    processes (the same pool whatever their number).

    ``cache`` (an ``.npz``) is reused when it holds the pool of the same config
    fingerprint, size and generating code, and rewritten otherwise.
    """
    n = int(cfg.example_pool)
    key = _pool_key(task, cfg)
    if cache is not None and cache.is_file():
        with np.load(cache, allow_pickle=False) as z:
            stored = str(z["key"]) if "key" in z.files else ""
        if stored == key:
            pool = load_pairs(cache)
            yield Progress(n, n, f"example pool: {n} examples from {cache}")
            return pool
    pool = yield from _simulate_pool(task, cfg, n)
    if cache is not None:
        # The layout of train_data.save_pairs plus the key of the config that made it.
        arrays = {f"image_{j:06d}": img for j, (img, _) in enumerate(pool)}
        arrays.update({f"target_{j:06d}": tgt for j, (_, tgt) in enumerate(pool)})
        np.savez(cache, key=np.array(key), **arrays)
    return pool


def _simulate_pool(task: Any, cfg: TrainConfig, n: int) -> ProgressGenerator[list[Pair]]:
    pool: list[Pair] = []
    if cfg.workers > 1:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor
        from functools import partial

        ctx = mp.get_context("spawn")
        with ProcessPoolExecutor(
            cfg.workers, mp_context=ctx, initializer=_worker_init, initargs=(0,)
        ) as ex:
            work = partial(_pool_example, task, int(cfg.seed))
            for j, item in enumerate(ex.map(work, range(n), chunksize=8)):
                pool.append(item)
                if (j + 1) % 50 == 0 or j + 1 == n:
                    yield Progress(j + 1, n, "simulating the example pool")
    else:
        for j in range(n):
            pool.append(_pool_example(task, int(cfg.seed), j))
            if (j + 1) % 50 == 0 or j + 1 == n:
                yield Progress(j + 1, n, "simulating the example pool")
    return pool


# --------------------------------------------------------------------------- real pairs


def prepare_pair(
    image: np.ndarray,
    target: np.ndarray,
    pixel_size_nm: float,
    card: ModelCard | str | Path,
) -> Pair:
    """Turn a real (image, target) at its own pixel size into a training pair for ``card``.

    The image is resampled to the card's working pixel size and prepared as the card says
    (exactly as inference does); a float target ``(C, H, W)``/``(H, W)`` is resampled the
    same way, an integer class map by nearest neighbour.

    Returns
    -------
    image, target
        ``(1, h, w)`` float32 and the target, ready for ``iter_train(..., pairs=[...])``.
    """
    from .._validate import as_image2d
    from .sampling import resample, resample_labels

    card = load_card(card) if not isinstance(card, ModelCard) else card
    img = as_image2d(image)
    tgt = np.asarray(target)
    if tgt.shape[-2:] != img.shape:
        raise InputError(f"prepare_pair: target shape {tgt.shape} does not match image {img.shape}")
    work = card.input.working_pixel_size_nm
    if work is not None:
        img = resample(img, pixel_size_nm, work)
        if tgt.dtype.kind in "iub":
            tgt = resample_labels(tgt, pixel_size_nm, work, output_shape=img.shape)
        else:
            tgt = resample(tgt.astype(np.float32), pixel_size_nm, work, output_shape=img.shape)
    img = card.input.prepare(img, work if work is not None else pixel_size_nm)[None]
    if tgt.dtype.kind in "iub":
        tgt = tgt.astype(np.int64)
    else:
        tgt = tgt.astype(np.float32)
        tgt = tgt[None] if tgt.ndim == 2 else tgt
    return np.ascontiguousarray(img), np.ascontiguousarray(tgt)
