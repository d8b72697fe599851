"""The one training loop: any :class:`TrainingTask` -> safetensors weights + model card.

``napari-atomseg train CONFIG.yaml`` (or :func:`train` / :func:`iter_train` from Python)
trains the U-Net a config describes on examples a task makes on the fly (DataLoader
worker processes), optionally mixed with a simulated zarr library and/or a fixed list of
real (image, target) pairs for fine-tuning, and writes ``NAME.safetensors`` + ``NAME.yaml``
(the card: architecture, input handling, sha256, the training command, config, seed,
steps, wall time, hardware, validation metrics and the measured scale reference).

Guarantees:

- determinism: every example is a function of (seed, stream, index) and the weights are
  initialised from the seed, so the same config on the same CPU gives the same weights,
  whatever the number of workers;
- resumable: a checkpoint (model, optimiser, step; safetensors, no pickle) every
  ``checkpoint_every`` steps; ``--resume`` continues to the very weights an uninterrupted
  run would have reached;
- a fixed, held-out validation set (its own seed stream), evaluated every ``val_every``
  steps and at the end; a CSV log and plain-text progress lines.

A config (YAML)::

    name: atoms_unet_v1
    task: napari_atomseg.atoms.training:AtomsTask     # module:class or module:factory
    task_options: {patch_px: 256}                      # keyword arguments for it
    card:                                              # the model card, minus weights
      task: atoms
      architecture: {type: unet, base_channels: 16, depth: 3, norm: batch}
      outputs: [{name: heatmap, activation: sigmoid}]
      input: {normalisation: robust_zscore, working_pixel_size_nm: 0.02,
              pixel_size_range_nm: [0.005, 0.08], tile_px: 512, overlap_px: 64}
    seed: 0
    steps: 20000
    batch_size: 16
    lr: 0.002
    schedule: onecycle            # onecycle | cosine | constant
    workers: 2
    val_examples: 128
    augment: {rot90: true, flip: true, gain: 0.2, offset: 0.2, noise: 0.05, scale_jitter: 0.05}
    out_dir: runs/atoms_unet_v1   # checkpoints, logs; export_dir (default out_dir) gets the model
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import hashlib
import importlib
import json
import math
import platform
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import yaml

from .._progress import Progress, ProgressGenerator, drain
from ..errors import InputError, ModelError
from .cards import ModelCard, card_from_dict, load_card
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

# torch is imported inside functions: importing this module (the CLI parser does) stays light.


@runtime_checkable
class TrainingTask(Protocol):
    """What a task gives the generic loop (see docs/backend.md).

    Optional extras the loop uses when present: ``example_from_library(record, rng)`` (a
    pair from a :class:`~napari_atomseg.backend.train_data.LibraryRecord`),
    ``augment(image, target, rng)`` (task-specific augmentation after the generic one) and
    ``card_defaults()`` (a partial card mapping, e.g. outputs, classes and input, that the
    config's ``card`` section overrides).
    """

    channels_out: int

    def make_example(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """One training pair at the model's working sampling, input normalised:
        image float32 (1, H, W), target (C, H, W) float32 or (H, W) int64 class map."""
        ...

    def loss(self, logits: Any, target: Any) -> Any: ...

    def validation_metrics(self, logits: Any, target: Any) -> dict[str, float]: ...


_SCHEDULES = ("onecycle", "cosine", "constant")


@dataclass(frozen=True)
class TrainConfig:
    """A training run; every field has the YAML key of the same name."""

    name: str
    task: str
    card: Mapping[str, Any]
    steps: int
    task_options: Mapping[str, Any] = field(default_factory=dict)
    seed: int = 0
    batch_size: int = 8
    lr: float = 2e-3
    weight_decay: float = 1e-4
    schedule: str = "onecycle"
    warmup_steps: int | None = None
    grad_clip: float | None = 1.0
    workers: int = 2
    val_examples: int = 64
    val_every: int = 500
    val_batch_size: int | None = None
    checkpoint_every: int = 500
    log_every: int = 50
    augment: Any = True
    library: str | None = None
    library_fraction: float = 0.0
    pairs: str | None = None
    val_pairs: str | None = None
    pairs_fraction: float = 1.0
    crop_px: int = 256
    #: > 0: simulate this many task examples once (in parallel, ``workers`` processes,
    #: cached in ``out_dir``) and draw every training example from that pool with fresh
    #: crops and augmentation. On a CPU, simulation costs more than a training step, so a
    #: pool buys several times more steps in the same time; 0 simulates every example.
    example_pool: int = 0
    init_from: str | None = None
    #: Knowledge distillation: a trained model (card name or path) whose outputs the
    #: student also learns, with weight ``distill_weight`` (the task's ``distill_loss``).
    #: A narrow network pruned from a wide one (``init_from``) can learn the wide one's
    #: answer on every pixel, not only the sparse targets.
    teacher: str | None = None
    distill_weight: float = 0.0
    out_dir: str | None = None
    export_dir: str | None = None
    device: str | None = None
    threads: int | None = None
    amp: bool = False
    #: Where the config was read from (set by :meth:`from_yaml`; not a YAML key).
    config_path: str | None = None

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], config_path: str | None = None) -> TrainConfig:
        if not isinstance(data, Mapping):
            raise InputError("training config: expected a mapping at the top level")
        names = {f.name for f in dataclasses.fields(cls)} - {"config_path"}
        bad = set(data) - names
        if bad:
            raise InputError(
                f"training config: unknown key(s) {sorted(bad)}; allowed: {sorted(names)}"
            )
        missing = [k for k in ("name", "task", "steps") if k not in data]
        if missing:
            raise InputError(f"training config: missing required key(s) {missing}")
        cfg = cls(**{"card": {}, **data}, config_path=config_path)
        cfg.validate()
        return cfg

    @classmethod
    def from_yaml(cls, path: str | Path) -> TrainConfig:
        path = Path(path)
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            raise InputError(f"training config {path}: cannot be read ({exc})") from exc
        return cls.from_mapping(data, config_path=str(path))

    def validate(self) -> None:
        def positive(name: str, value: Any) -> None:
            if not isinstance(value, int) or value < 1:
                raise InputError(
                    f"training config: {name} must be a positive integer, got {value!r}"
                )

        for name in (
            "steps",
            "batch_size",
            "val_every",
            "checkpoint_every",
            "log_every",
            "crop_px",
        ):
            positive(name, getattr(self, name))
        if not isinstance(self.val_examples, int) or self.val_examples < 0:
            raise InputError("training config: val_examples must be >= 0")
        if not isinstance(self.example_pool, int) or self.example_pool < 0:
            raise InputError("training config: example_pool must be an integer >= 0")
        if not isinstance(self.workers, int) or self.workers < 0:
            raise InputError("training config: workers must be >= 0")
        if self.schedule not in _SCHEDULES:
            raise InputError(
                f"training config: schedule must be one of {_SCHEDULES}, got {self.schedule!r}"
            )
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise InputError(f"training config: lr must be positive, got {self.lr}")
        for name in ("library_fraction", "pairs_fraction"):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise InputError(f"training config: {name} must be in [0, 1], got {v}")
        if not (0.0 <= self.distill_weight <= 100.0 and math.isfinite(self.distill_weight)):
            raise InputError(
                f"training config: distill_weight must be in [0, 100], got {self.distill_weight}"
            )
        if bool(self.teacher) != (self.distill_weight > 0):
            raise InputError(
                "training config: 'teacher' and a positive 'distill_weight' go together"
            )
        if self.library_fraction > 0 and not self.library:
            raise InputError("training config: library_fraction > 0 needs 'library: PATH'")
        if ":" not in self.task:
            raise InputError(f"training config: task must be 'module:Class', got {self.task!r}")
        AugmentConfig.from_value(self.augment)

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out.pop("config_path")
        return out

    @property
    def out_path(self) -> Path:
        return Path(self.out_dir) if self.out_dir else Path("runs") / self.name

    @property
    def export_path(self) -> Path:
        return Path(self.export_dir) if self.export_dir else self.out_path


@dataclass(frozen=True)
class TrainResult:
    """What a finished run produced."""

    card: ModelCard
    card_path: Path
    weights_path: Path
    validation: Mapping[str, float]
    log_csv: Path
    wall_time_s: float


# --------------------------------------------------------------------------- pieces


def load_task(spec: str, options: Mapping[str, Any] | None = None) -> Any:
    """Instantiate ``module:attr`` with ``options`` as keyword arguments."""
    module_name, _, attr = spec.partition(":")
    try:
        factory = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise InputError(f"training task {spec!r} cannot be imported ({exc})") from exc
    try:
        task = factory(**dict(options or {}))
    except TypeError as exc:
        raise InputError(f"training task {spec!r}: bad task_options ({exc})") from exc
    for name in ("make_example", "loss", "validation_metrics"):
        if not callable(getattr(task, name, None)):
            raise InputError(f"training task {spec!r} has no method {name}()")
    if not isinstance(getattr(task, "channels_out", None), int):
        raise InputError(f"training task {spec!r} has no integer channels_out")
    return task


def _merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        out[k] = (
            _merge(out[k], v) if isinstance(v, Mapping) and isinstance(out.get(k), Mapping) else v
        )
    return out


def learning_rate(
    step: int, total: int, lr: float, schedule: str, warmup: int | None = None
) -> float:
    """Learning rate at ``step`` (0-based) of ``total``: a pure function, so resuming is exact.

    ``onecycle``: cosine warm-up from lr/25 to lr over the first 30 % of the steps, then
    cosine annealing to lr/2.5e5 (torch's OneCycleLR defaults). ``cosine``: linear warm-up
    over ``warmup`` steps (default 5 %), then cosine to lr/100. ``constant``: warm-up, then lr.
    """
    if schedule == "onecycle":
        up = max(1, int(0.3 * total))
        start, end = lr / 25.0, lr / 25.0 / 1e4
        if step < up:
            return start + (lr - start) * 0.5 * (1 - math.cos(math.pi * step / up))
        t = (step - up) / max(1, total - up)
        return end + (lr - end) * 0.5 * (1 + math.cos(math.pi * min(t, 1.0)))
    warm = max(1, int(0.05 * total)) if warmup is None else max(0, warmup)
    if step < warm:
        return lr * (step + 1) / warm
    if schedule == "constant":
        return lr
    t = (step - warm) / max(1, total - warm)
    low = lr / 100.0
    return low + (lr - low) * 0.5 * (1 + math.cos(math.pi * min(t, 1.0)))


class ExampleSource:
    """Picks the source of example ``k`` (pairs / library / task) and augments it."""

    def __init__(
        self,
        task: Any,
        cfg: TrainConfig,
        stream: int,
        library: ZarrLibrary | None,
        library_indices: np.ndarray | None,
        pairs: Sequence[tuple[np.ndarray, np.ndarray]] | None,
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
        self.pool: list[tuple[np.ndarray, np.ndarray]] | None = None

    def example(self, k: int) -> tuple[np.ndarray, np.ndarray]:
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


POOL_STREAM = 7


def _pool_example(task: Any, seed: int, j: int) -> tuple[np.ndarray, np.ndarray]:
    return task.make_example(np.random.default_rng([seed, POOL_STREAM, j]))


def _generator_digest(task: Any) -> str:
    """sha256 of the source that makes examples: the task's module and the simulator."""
    import importlib
    import inspect

    simulator = importlib.import_module(__package__.rsplit(".", 1)[0] + ".simulate")
    files = sorted(Path(simulator.__file__).parent.rglob("*.py"))
    with contextlib.suppress(TypeError, OSError):
        files.append(Path(inspect.getfile(type(task))))
    h = hashlib.sha256()
    for f in files:
        h.update(f.name.encode())
        h.update(f.read_bytes())
    return h.hexdigest()[:16]


def build_example_pool(
    task: Any, cfg: TrainConfig, cache: Path | None = None
) -> ProgressGenerator[list[tuple[np.ndarray, np.ndarray]]]:
    """Simulate ``cfg.example_pool`` task examples, index-seeded (reproducible whatever
    the number of processes), in ``cfg.workers`` processes; reuse ``cache`` when it holds
    the same pool (same config fingerprint and size)."""
    n = int(cfg.example_pool)
    what = {
        "task": cfg.task,
        "task_options": cfg.task_options,
        "seed": cfg.seed,
        "n": n,
        # A pool made by older simulator/task code is stale even for the same config.
        "code": _generator_digest(task),
    }
    key = hashlib.sha256(json.dumps(what, sort_keys=True, default=str).encode()).hexdigest()
    if cache is not None and cache.is_file():
        with np.load(cache, allow_pickle=False) as z:
            stored = str(z["key"]) if "key" in z.files else ""
        if stored == key:
            pool = load_pairs(cache)
            yield Progress(n, n, f"example pool: {n} examples from {cache}")
            return pool
    pool: list[tuple[np.ndarray, np.ndarray]] = []
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
    if cache is not None:
        # same layout as train_data.save_pairs, plus the key of the config that made it,
        # so a changed config never reuses a stale pool
        arrays = {f"image_{j:06d}": img for j, (img, _) in enumerate(pool)}
        arrays.update({f"target_{j:06d}": tgt for j, (_, tgt) in enumerate(pool)})
        np.savez(cache, key=np.array(key), **arrays)
    return pool


def _make_dataset(source: ExampleSource) -> Any:
    import torch

    class _Dataset(torch.utils.data.Dataset):
        def __len__(self) -> int:
            return 1 << 62

        def __getitem__(self, k: int) -> tuple[Any, Any]:
            img, tgt = source.example(k)
            return torch.from_numpy(img), torch.from_numpy(tgt)

    return _Dataset()


def _worker_init(_: int) -> None:
    import torch

    # Examples are seeded by index; workers only need to stay single-threaded so they do
    # not fight the training process for the cores.
    torch.set_num_threads(1)


def _hardware(device: Any) -> dict[str, Any]:
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info = {
        "device": str(device),
        "cpu": cpu,
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


# --------------------------------------------------------------------------- checkpoints


def _config_fingerprint(cfg: TrainConfig) -> str:
    """Hash of what must not change between a checkpoint and its resumption."""
    keys = ("task", "task_options", "card", "seed", "batch_size", "library", "pairs", "init_from")
    data = {k: getattr(cfg, k) for k in keys}
    if cfg.teacher:  # (absent otherwise, so older checkpoints keep their fingerprint)
        data["teacher"] = [cfg.teacher, cfg.distill_weight]
    blob = json.dumps(data, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def save_checkpoint(
    path: Path, model: Any, optimizer: Any, step: int, cfg: TrainConfig, extra: Mapping[str, Any]
) -> None:
    """Model + AdamW state + step as one safetensors file (atomic replace)."""
    import torch
    from safetensors.torch import save_file

    tensors: dict[str, Any] = {
        f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()
    }
    opt = optimizer.state_dict()
    for idx, st in opt["state"].items():
        for key, val in st.items():
            t = val if torch.is_tensor(val) else torch.tensor(val)
            tensors[f"optim.{idx}.{key}"] = t.detach().cpu().contiguous()
    groups = [
        {k: v for k, v in g.items() if k != "params"} | {"params": list(g["params"])}
        for g in opt["param_groups"]
    ]
    meta = {
        "step": str(step),
        "fingerprint": _config_fingerprint(cfg),
        "param_groups": json.dumps(groups, default=float),
        "extra": json.dumps(dict(extra), default=float),
    }
    tmp = path.with_suffix(".tmp")
    save_file(tensors, str(tmp), metadata=meta)
    tmp.replace(path)


def load_checkpoint(
    path: Path, model: Any, optimizer: Any, cfg: TrainConfig
) -> tuple[int, dict[str, Any]]:
    """Restore model and optimiser from :func:`save_checkpoint`; returns (step, extra)."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    try:
        with safe_open(str(path), framework="pt") as fh:
            meta = fh.metadata() or {}
        tensors = load_file(str(path))
    except Exception as exc:  # safetensors raises its own error types
        raise ModelError(f"checkpoint {path} cannot be read ({exc})") from exc
    if meta.get("fingerprint") != _config_fingerprint(cfg):
        raise InputError(
            f"checkpoint {path} was written by a different configuration (task, card, seed, "
            "batch size or data changed); start a new out_dir or drop --resume"
        )
    model.load_state_dict(
        {k[6:]: v for k, v in tensors.items() if k.startswith("model.")}, strict=True
    )
    groups = json.loads(meta["param_groups"])
    state: dict[int, dict[str, Any]] = {}
    for k, v in tensors.items():
        if k.startswith("optim."):
            _, idx, key = k.split(".", 2)
            state.setdefault(int(idx), {})[key] = v
    optimizer.load_state_dict({"state": state, "param_groups": groups})
    return int(meta["step"]), json.loads(meta.get("extra", "{}"))


# --------------------------------------------------------------------------- the loop


def _log_line(log: Callable[[str], None] | None, text_log: Path, line: str) -> None:
    with open(text_log, "a", encoding="utf-8") as fh:
        fh.write(line + "\n")
    if log is not None:
        log(line)


def _validate(
    model: Any, task: Any, val: list[tuple[Any, Any]], device: Any, amp: bool
) -> dict[str, float]:
    import torch

    model.eval()
    totals: dict[str, float] = {}
    n = 0
    with torch.inference_mode():
        for x, y in val:
            x = x.to(device)
            y = y.to(device)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
                logits = model(x)
            logits = logits.float()
            m = {"loss": float(task.loss(logits, y))}
            m.update({k: float(v) for k, v in task.validation_metrics(logits, y).items()})
            b = x.shape[0]
            for k, v in m.items():
                totals[k] = totals.get(k, 0.0) + v * b
            n += b
    model.train()
    return {k: v / max(n, 1) for k, v in totals.items()}


def _val_batches(
    source: ExampleSource,
    n: int,
    batch: int,
    pairs: Sequence[tuple[np.ndarray, np.ndarray]] | None,
    crop_px: int,
    channels: int,
) -> list[tuple[Any, Any]]:
    import torch

    items: list[tuple[np.ndarray, np.ndarray]] = []
    if pairs:
        for img, tgt in pairs:
            img, tgt = check_example(img, tgt, channels, "validation pair")
            items.append(random_crop(img, tgt, crop_px, None))
    else:
        items = [source.example(k) for k in range(n)]
    out = []
    for i in range(0, len(items), batch):
        chunk = items[i : i + batch]
        try:
            x = torch.from_numpy(np.stack([c[0] for c in chunk]))
            y = torch.from_numpy(np.stack([c[1] for c in chunk]))
            out.append((x, y))
        except ValueError:  # different shapes: one by one
            out.extend((torch.from_numpy(c[0][None]), torch.from_numpy(c[1][None])) for c in chunk)
    return out


def iter_train(
    config: TrainConfig | Mapping[str, Any] | str | Path,
    *,
    resume: bool = False,
    pairs: Sequence[tuple[np.ndarray, np.ndarray]] | None = None,
    val_pairs: Sequence[tuple[np.ndarray, np.ndarray]] | None = None,
    task: Any = None,
    log: Callable[[str], None] | None = print,
    command: str | None = None,
) -> ProgressGenerator[TrainResult]:
    """Train as ``config`` says; a generator yielding Progress per step, returning a TrainResult.

    Parameters
    ----------
    config
        A :class:`TrainConfig`, a mapping, or the path of a YAML config.
    resume
        Continue from ``out_dir/checkpoint.safetensors`` (error if it is missing or was
        written by a different configuration).
    pairs, val_pairs
        Fixed real (image, target) pairs at the working sampling (override the config's
        ``pairs`` / ``val_pairs`` files), for fine-tuning; see :func:`prepare_pair`.
    task
        A task object to use instead of importing ``config.task`` (tests, notebooks).
    log
        Receives the plain-text progress lines (default ``print``; None: silent).
    command
        The command line recorded in the card (default: this process's argv).
    """
    import torch

    from .device import get_device, torch_threads
    from .registry import build_from_card, export_model, load_weights
    from .scale import scale_reference_from_examples

    if isinstance(config, (str, Path)):
        cfg = TrainConfig.from_yaml(config)
    elif isinstance(config, TrainConfig):
        cfg = config
    else:
        cfg = TrainConfig.from_mapping(config)
    task = task if task is not None else load_task(cfg.task, cfg.task_options)

    # The card: task defaults < the init model's card < the config's card section.
    card_data: dict[str, Any] = {}
    defaults = getattr(task, "card_defaults", None)
    if callable(defaults):
        card_data = _merge(card_data, defaults())
    init_card = None
    if cfg.init_from:
        init_card = load_card(cfg.init_from)
        inherit = init_card.to_dict()
        card_data = _merge(
            card_data,
            {
                k: inherit[k]
                for k in ("task", "architecture", "outputs", "classes", "input")
                if k in inherit
            },
        )
        card_data.get("input", {}).pop("scale_reference", None)
    card_data = _merge(card_data, cfg.card)
    card_data["name"] = cfg.name
    card_data.pop("weights", None)
    card = card_from_dict(card_data)
    if callable(defaults):
        # The input the task trains on must be the input the card makes inference give it
        # (an init model's card or the config's card section must not change it silently).
        want, have = defaults().get("input", {}), card.input.to_dict()
        for key in ("normalisation", "background_sigma_nm"):
            if (key in want or key in have) and want.get(key) != have.get(key):
                raise InputError(
                    f"training: the card's input.{key} ({have.get(key)!r}) differs from "
                    f"the task's ({want.get(key)!r}); set it in task_options so that "
                    "training and inference prepare images the same way"
                )
    if card.n_channels_out != task.channels_out:
        raise InputError(
            f"training: the card's outputs have {card.n_channels_out} channel(s) but the task "
            f"makes targets for {task.channels_out}"
        )

    out_dir = cfg.out_path
    out_dir.mkdir(parents=True, exist_ok=True)
    ckpt_path = out_dir / "checkpoint.safetensors"
    log_csv = out_dir / f"{cfg.name}.train_log.csv"
    text_log = out_dir / f"{cfg.name}.train_log.txt"
    device = get_device(cfg.device)
    amp = bool(cfg.amp and device.type == "cuda")

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

    with torch_threads(cfg.threads):
        torch.manual_seed(cfg.seed)
        model = build_from_card(card)
        pruned_from = None
        if init_card is not None:
            if dict(init_card.architecture) == dict(card.architecture):
                load_weights(init_card, model)
            else:
                # A narrower network from a trained one: structured pruning, then this
                # run fine-tunes it (nets.prune_into).
                from .nets import prune_into

                teacher = load_weights(init_card, build_from_card(init_card))
                prune_into(teacher, model)
                pruned_from = dict(init_card.architecture)
                del teacher
        model.to(device)
        teacher_model = teacher_card = None
        if cfg.teacher:
            if not callable(getattr(task, "distill_loss", None)):
                raise InputError(
                    f"training task {cfg.task!r} cannot distil (no distill_loss method)"
                )
            teacher_card = load_card(cfg.teacher)
            if teacher_card.n_channels_out != card.n_channels_out:
                raise InputError(
                    f"teacher {teacher_card.name}: {teacher_card.n_channels_out} output "
                    f"channel(s), the student has {card.n_channels_out}"
                )
            teacher_model = load_weights(teacher_card, build_from_card(teacher_card))
            teacher_model.to(device).eval()
            for p in teacher_model.parameters():
                p.requires_grad_(False)
        decay, no_decay = [], []
        for p in model.parameters():
            (no_decay if p.ndim <= 1 else decay).append(p)
        optimizer = torch.optim.AdamW(
            [
                {"params": decay, "weight_decay": cfg.weight_decay},
                {"params": no_decay, "weight_decay": 0.0},
            ],
            lr=cfg.lr,
        )
        start = 0
        wall_before = 0.0
        if resume:
            if not ckpt_path.is_file():
                raise InputError(f"--resume: no checkpoint at {ckpt_path}")
            start, extra = load_checkpoint(ckpt_path, model, optimizer, cfg)
            wall_before = float(extra.get("wall_time_s", 0.0))
            _trim_csv(log_csv, start)
            _log_line(log, text_log, f"resumed {cfg.name} at step {start} from {ckpt_path}")
        else:
            for p in (log_csv, text_log):
                p.unlink(missing_ok=True)

        train_source = ExampleSource(
            task, cfg, TRAIN_STREAM, library, lib_train, pairs, augment=True
        )
        val_source = ExampleSource(task, cfg, VAL_STREAM, library, lib_val, None, augment=False)
        if cfg.example_pool and cfg.steps > start:
            t_pool = time.perf_counter()
            train_source.pool = yield from build_example_pool(
                task, cfg, out_dir / "example_pool.npz"
            )
            _log_line(
                log,
                text_log,
                f"example pool: {len(train_source.pool)} examples "
                f"({time.perf_counter() - t_pool:.0f} s)",
            )
        if lib_val is not None and len(lib_val):
            val_source.library_fraction = 1.0
        val = _val_batches(
            val_source,
            cfg.val_examples,
            cfg.val_batch_size or cfg.batch_size,
            val_pairs,
            cfg.crop_px,
            task.channels_out,
        )

        remaining = cfg.steps - start
        if remaining < 0:
            raise InputError(
                f"--resume: the checkpoint is at step {start}, beyond steps={cfg.steps}"
            )
        loader = None
        if remaining > 0:
            sampler = range(start * cfg.batch_size, cfg.steps * cfg.batch_size)
            loader = torch.utils.data.DataLoader(
                _make_dataset(train_source),
                batch_size=cfg.batch_size,
                sampler=sampler,
                num_workers=cfg.workers,
                worker_init_fn=_worker_init if cfg.workers else None,
                persistent_workers=False,
                prefetch_factor=4 if cfg.workers else None,
                pin_memory=device.type == "cuda",
            )
        _log_line(
            log,
            text_log,
            f"training {cfg.name}: {cfg.steps} steps x {cfg.batch_size} on {device} "
            f"({torch.get_num_threads()} threads, {cfg.workers} data workers), "
            f"{sum(p.numel() for p in model.parameters()):,} parameters",
        )
        fields = ["step", "wall_time_s", "lr", "train_loss"]
        t0 = time.perf_counter()
        run_loss, run_n = 0.0, 0
        val_metrics: dict[str, float] = {}
        model.train()
        step = start
        for step, (x, y) in enumerate(loader or (), start=start):
            x = x.to(device, non_blocking=True)
            y = y.to(device, non_blocking=True)
            lr = learning_rate(step, cfg.steps, cfg.lr, cfg.schedule, cfg.warmup_steps)
            for g in optimizer.param_groups:
                g["lr"] = lr
            optimizer.zero_grad(set_to_none=True)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
                logits = model(x)
                if teacher_model is not None:
                    with torch.no_grad():
                        teacher_logits = teacher_model(x)
            loss = task.loss(logits.float(), y)
            if teacher_model is not None:
                loss = loss + cfg.distill_weight * task.distill_loss(
                    logits.float(), teacher_logits.float(), y
                )
            if not torch.isfinite(loss):
                raise ModelError(
                    f"training {cfg.name}: the loss became {float(loss)} at step {step + 1}; "
                    "lower lr or check the task's targets"
                )
            loss.backward()
            if cfg.grad_clip:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            optimizer.step()
            run_loss += float(loss.detach())
            run_n += 1
            done = step + 1
            wall = wall_before + time.perf_counter() - t0
            is_last = done == cfg.steps
            row: dict[str, Any] | None = None
            if done % cfg.log_every == 0 or is_last:
                row = {
                    "step": done,
                    "wall_time_s": round(wall, 3),
                    "lr": lr,
                    "train_loss": run_loss / run_n,
                }
                rate = (done - start) * cfg.batch_size / max(time.perf_counter() - t0, 1e-9)
                _log_line(
                    log,
                    text_log,
                    f"step {done}/{cfg.steps} loss {run_loss / run_n:.5f} lr {lr:.3g} {rate:.1f} examples/s",
                )
                run_loss, run_n = 0.0, 0
            if val and (done % cfg.val_every == 0 or is_last):
                val_metrics = _validate(model, task, val, device, amp)
                row = row or {
                    "step": done,
                    "wall_time_s": round(wall, 3),
                    "lr": lr,
                    "train_loss": float("nan"),
                }
                row.update({f"val_{k}": v for k, v in val_metrics.items()})
                _log_line(
                    log,
                    text_log,
                    f"step {done} validation "
                    + " ".join(f"{k} {v:.5g}" for k, v in val_metrics.items()),
                )
            if row is not None:
                fields = _append_csv(log_csv, row, fields)
            if done % cfg.checkpoint_every == 0 or is_last:
                save_checkpoint(ckpt_path, model, optimizer, done, cfg, {"wall_time_s": wall})
            yield Progress(done, cfg.steps, f"step {done}/{cfg.steps}")
        wall_time = wall_before + time.perf_counter() - t0
        if val and not val_metrics:
            val_metrics = _validate(model, task, val, device, amp)

        # The scale reference: the same feature measurements estimate_pixel_size_nm makes,
        # on the held-out examples, whose pixel size is the working pixel size.
        input_spec = card.to_dict()["input"]
        work = card.input.working_pixel_size_nm
        if work is not None and val and not val_pairs:
            # The estimator reads the image as it comes (before any background
            # subtraction): a task that prepares its inputs further names the task whose
            # examples are the same images without that step.
            raw_task = getattr(task, "scale_reference_task", lambda: task)()
            if raw_task is task:
                imgs = [x[i, 0].numpy() for x, _ in val for i in range(x.shape[0])]
            else:
                raw = ExampleSource(
                    raw_task, cfg, VAL_STREAM, library, lib_val, None, augment=False
                )
                imgs = [raw.example(k)[0][0] for k in range(cfg.val_examples)]
            try:
                input_spec["scale_reference"] = scale_reference_from_examples(imgs, work).to_dict()
            except InputError as exc:
                _log_line(log, text_log, f"no scale reference measured: {exc}")

        model.cpu()
        final = card.to_dict()
        final["input"] = input_spec
        final["training"] = {
            "command": command or _default_command(cfg),
            "config_file": cfg.config_path,
            "config": cfg.to_dict(),
            "seed": cfg.seed,
            "steps": cfg.steps,
            "batch_size": cfg.batch_size,
            "examples_seen": cfg.steps * cfg.batch_size,
            "wall_time_s": round(wall_time, 1),
            "hardware": _hardware(device),
            "data": {
                "task": cfg.task,
                "task_options": dict(cfg.task_options),
                "library": cfg.library,
                "library_fraction": cfg.library_fraction if cfg.library else 0.0,
                "fine_tuning_pairs": len(pairs) if pairs else 0,
                "validation": f"{len(val_pairs)} fixed pairs"
                if val_pairs
                else f"{cfg.val_examples} held-out examples (seed stream {VAL_STREAM})",
            },
            "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        if init_card is not None and init_card.weights is not None:
            final["training"]["init_from"] = {
                "name": init_card.name,
                "sha256": init_card.weights.sha256,
            }
            if pruned_from is not None:
                final["training"]["init_from"]["pruned_from_architecture"] = pruned_from
        if teacher_card is not None and teacher_card.weights is not None:
            final["training"]["teacher"] = {
                "name": teacher_card.name,
                "sha256": teacher_card.weights.sha256,
                "architecture": dict(teacher_card.architecture),
                "distill_weight": cfg.distill_weight,
            }
        final["metrics"] = {
            "command": final["training"]["command"],
            "validation": {k: round(v, 6) for k, v in val_metrics.items()},
            "n_validation": sum(int(x.shape[0]) for x, _ in val),
        }
        exported = export_model(model, card_from_dict(final), cfg.export_path)
        _log_line(log, text_log, f"wrote {exported.weights_path} and {exported.path}")
    return TrainResult(
        card=exported,
        card_path=Path(exported.path) if exported.path else cfg.export_path,
        weights_path=exported.weights_path,
        validation=val_metrics,
        log_csv=log_csv,
        wall_time_s=wall_time,
    )


def _default_command(cfg: TrainConfig) -> str:
    argv0 = Path(sys.argv[0]).name if sys.argv else ""
    if argv0.startswith("napari-atomseg"):
        return " ".join(["napari-atomseg", *sys.argv[1:]])
    return f"napari_atomseg.backend.train.train({cfg.config_path or cfg.name!r})"


def _append_csv(path: Path, row: Mapping[str, Any], fields: list[str]) -> list[str]:
    new_fields = fields + [k for k in row if k not in fields]
    rows: list[dict[str, Any]] = []
    if path.is_file() and new_fields != fields:
        with open(path, newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
    if not path.is_file() or rows or new_fields != fields:
        with open(path, "w", newline="", encoding="utf-8") as fh:
            w = csv.DictWriter(fh, fieldnames=new_fields)
            w.writeheader()
            w.writerows(rows)
            w.writerow(dict(row))
    else:
        with open(path, "a", newline="", encoding="utf-8") as fh:
            csv.DictWriter(fh, fieldnames=new_fields).writerow(dict(row))
    return new_fields


def _trim_csv(path: Path, step: int) -> None:
    """Drop log rows written after the checkpoint a resumed run restarts from."""
    if not path.is_file():
        return
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        names = reader.fieldnames or []
        rows = [r for r in reader if int(r["step"]) <= step]
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=names)
        w.writeheader()
        w.writerows(rows)


def train(config: TrainConfig | Mapping[str, Any] | str | Path, **kwargs: Any) -> TrainResult:
    """Run :func:`iter_train` to the end; same arguments."""
    return drain(iter_train(config, **kwargs))


def prepare_pair(
    image: np.ndarray,
    target: np.ndarray,
    pixel_size_nm: float,
    card: ModelCard | str | Path,
) -> tuple[np.ndarray, np.ndarray]:
    """Turn a real (image, target) at its own pixel size into a training pair for ``card``.

    The image is resampled to the card's working pixel size and normalised as the card
    says (exactly as inference does); a float target ``(C, H, W)``/``(H, W)`` is resampled
    the same way, an integer class map by nearest neighbour. Returns ``((1, h, w) float32,
    target)`` ready for ``iter_train(..., pairs=[...])``.
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
