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

This module is the loop; its parts live beside it: :mod:`.train_config` (the YAML config,
the task, the card), :mod:`.train_sources` (examples, pool, DataLoader, real pairs),
:mod:`.train_checkpoint`, :mod:`.train_log` and :mod:`.train_card` (the export). The
names callers use are importable from here.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .._progress import Progress, ProgressGenerator, as_part, drain
from ..errors import InputError, ModelError
from .cards import ModelCard
from .train_card import RunRecord, export_trained_model, input_with_scale_reference, stage_record
from .train_checkpoint import CHECKPOINT_NAME, load_checkpoint, save_checkpoint
from .train_config import TrainConfig, TrainingTask, as_config, load_task, resolve_card
from .train_log import TrainLog
from .train_model import adamw, initial_model, load_teacher
from .train_sources import (
    POOL_STREAM,
    ExampleSource,
    build_example_pool,
    load_training_data,
    make_loader,
    make_sources,
    prepare_pair,
    validation_batches,
)

# torch is imported inside functions, so importing this module does not import torch.

__all__ = [
    "POOL_STREAM",
    "ExampleSource",
    "TrainConfig",
    "TrainResult",
    "TrainingTask",
    "build_example_pool",
    "iter_train",
    "learning_rate",
    "load_checkpoint",
    "load_task",
    "prepare_pair",
    "save_checkpoint",
    "train",
]


@dataclass(frozen=True)
class TrainResult:
    """What a finished run produced."""

    card: ModelCard
    card_path: Path
    weights_path: Path
    validation: Mapping[str, float]
    log_csv: Path
    wall_time_s: float


def train(config: TrainConfig | Mapping[str, Any] | str | Path, **kwargs: Any) -> TrainResult:
    """Run :func:`iter_train` to the end; same arguments.

    Parameters
    ----------
    config
        A :class:`TrainConfig`, a mapping, or the path of a YAML config.
    **kwargs
        The keyword-only arguments of :func:`iter_train` (``resume``, ``pairs``,
        ``val_pairs``, ``task``, ``log``, ``command``, ``stages_before``).

    Returns
    -------
    TrainResult
        The exported card and weights, the final validation metrics, the CSV log's path
        and the wall time (s).
    """
    return drain(iter_train(config, **kwargs))


def iter_train(
    config: TrainConfig | Mapping[str, Any] | str | Path,
    *,
    resume: bool = False,
    pairs: Sequence[tuple[np.ndarray, np.ndarray]] | None = None,
    val_pairs: Sequence[tuple[np.ndarray, np.ndarray]] | None = None,
    task: Any = None,
    log: Callable[[str], None] | None = print,
    command: str | None = None,
    stages_before: Sequence[Mapping[str, Any]] = (),
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
    stages_before
        The records of the stages a multi-stage config ran before this one (kept in the
        card's ``training.stages``).

    Yields
    ------
    Progress
        While the example pool is simulated, then once per optimiser step (stages of a
        multi-stage config as parts of one bar).

    Returns
    -------
    TrainResult
        What the run exported (the last stage's, for a multi-stage config).
    """
    import torch

    from .device import get_device, torch_threads

    cfg = as_config(config)
    if cfg.stages:
        return (yield from _iter_stages(cfg, resume, pairs, val_pairs, task, log, command))
    task = task if task is not None else load_task(cfg.task, cfg.task_options)
    card, init_card = resolve_card(cfg, task)
    cfg.out_path.mkdir(parents=True, exist_ok=True)
    run_log = TrainLog(cfg.out_path, cfg.name, log)
    device = get_device(cfg.device)
    data = load_training_data(cfg, task, pairs, val_pairs)
    with torch_threads(cfg.threads):
        torch.manual_seed(cfg.seed)
        loop, pruned_from = _set_up(cfg, task, card, init_card, device, resume, run_log)
        train_source, val_source = make_sources(task, cfg, data)
        if cfg.example_pool and cfg.steps > loop.start:
            train_source.pool = yield from _example_pool(task, cfg, run_log)
        loop.val = validation_batches(val_source, cfg, data.val_pairs)
        loader = make_loader(train_source, cfg, loop.start, device)
        _log_start(loop)
        val_metrics, wall_time_s = yield from _run_steps(loop, loader)
        if loop.val and not val_metrics:
            val_metrics = _evaluate(loop)
        input_spec = input_with_scale_reference(card, task, cfg, data, loop.val, run_log)
        loop.model.cpu()
        record = RunRecord(
            cfg=cfg,
            command=command,
            wall_time_s=wall_time_s,
            device=device,
            data=data,
            init_card=init_card,
            pruned_from=pruned_from,
            teacher_card=loop.teacher_card,
            stages_before=tuple(stages_before),
        )
        n_val = sum(int(x.shape[0]) for x, _ in loop.val)
        exported = export_trained_model(loop.model, card, input_spec, record, val_metrics, n_val)
        run_log.line(f"wrote {exported.weights_path} and {exported.path}")
    return TrainResult(
        card=exported,
        card_path=Path(exported.path) if exported.path else cfg.export_path,
        weights_path=exported.weights_path,
        validation=val_metrics,
        log_csv=run_log.csv_path,
        wall_time_s=wall_time_s,
    )


def _iter_stages(
    cfg: TrainConfig,
    resume: bool,
    pairs: Any,
    val_pairs: Any,
    task: Any,
    log: Callable[[str], None] | None,
    command: str | None,
) -> ProgressGenerator[TrainResult]:
    """Run a multi-stage config stage by stage; the last stage's result, its card
    recording every stage (``training.stages``)."""
    from .cards import load_card

    stages = cfg.stage_configs()
    lineage: list[dict[str, Any]] = []
    result = None
    for k, stage in enumerate(stages):
        card_path = stage.export_path / f"{stage.name}.yaml"
        done = resume and k < len(stages) - 1 and _finished(card_path, stage)
        if done:
            if log:
                log(f"stage {cfg.stages[k]['name']}: finished earlier ({card_path}), skipped")
            card = load_card(card_path)
        else:
            checkpoint = stage.out_path / CHECKPOINT_NAME
            steps = iter_train(
                stage,
                resume=resume and checkpoint.exists(),
                pairs=pairs,
                val_pairs=val_pairs,
                task=task,
                log=log,
                command=command,
                stages_before=tuple(lineage),
            )
            result = yield from as_part(steps, k, len(stages), f"stage {cfg.stages[k]['name']}")
            card = result.card
        lineage.append(stage_record(cfg.stages[k]["name"], stage, card))
    return result


def _finished(card_path: Path, stage: TrainConfig) -> bool:
    """Whether a stage's model was exported by this very stage configuration."""
    from .cards import load_card

    if not card_path.is_file():
        return False
    recorded = (load_card(card_path).training or {}).get("config", {})
    return recorded == stage.to_dict()


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


# --------------------------------------------------------------------------- set-up


@dataclass
class _Loop:
    """What the steps of a run share: the model, its optimiser, the validation batches
    and where progress goes."""

    cfg: TrainConfig
    task: Any
    model: Any
    optimizer: Any
    device: Any
    amp: bool
    run_log: TrainLog
    checkpoint: Path
    #: Steps already done (a resumed checkpoint's step, else 0) and their wall time.
    start: int = 0
    wall_before_s: float = 0.0
    teacher: Any = None
    teacher_card: ModelCard | None = None
    val: list[tuple[Any, Any]] | None = None


def _set_up(
    cfg: TrainConfig,
    task: Any,
    card: ModelCard,
    init_card: ModelCard | None,
    device: Any,
    resume: bool,
    run_log: TrainLog,
) -> tuple[_Loop, dict[str, Any] | None]:
    """The model (initialised, or restored from the checkpoint), its optimiser and
    teacher; also the architecture it was pruned from (None unless pruned)."""
    model, pruned_from = initial_model(card, init_card)
    model.to(device)
    loop = _Loop(
        cfg=cfg,
        task=task,
        model=model,
        optimizer=None,
        device=device,
        amp=bool(cfg.amp and device.type == "cuda"),
        run_log=run_log,
        checkpoint=cfg.out_path / CHECKPOINT_NAME,
    )
    if cfg.teacher:
        loop.teacher, loop.teacher_card = load_teacher(cfg, task, card, device)
    loop.optimizer = adamw(model, cfg)
    if resume:
        _restore(loop)
    else:
        run_log.start_afresh()
    return loop, pruned_from


def _restore(loop: _Loop) -> None:
    """Load the checkpoint into the model and optimiser; forget log rows written after it."""
    if not loop.checkpoint.is_file():
        raise InputError(f"--resume: no checkpoint at {loop.checkpoint}")
    loop.start, extra = load_checkpoint(loop.checkpoint, loop.model, loop.optimizer, loop.cfg)
    loop.wall_before_s = float(extra.get("wall_time_s", 0.0))
    loop.run_log.trim_after(loop.start)
    loop.run_log.line(f"resumed {loop.cfg.name} at step {loop.start} from {loop.checkpoint}")


def _example_pool(task: Any, cfg: TrainConfig, run_log: TrainLog) -> ProgressGenerator[list]:
    t_pool = time.perf_counter()
    pool = yield from build_example_pool(task, cfg, cfg.out_path / "example_pool.npz")
    run_log.line(f"example pool: {len(pool)} examples ({time.perf_counter() - t_pool:.0f} s)")
    return pool


def _log_start(loop: _Loop) -> None:
    import torch

    cfg = loop.cfg
    n_params = sum(p.numel() for p in loop.model.parameters())
    loop.run_log.line(
        f"training {cfg.name}: {cfg.steps} steps x {cfg.batch_size} on {loop.device} "
        f"({torch.get_num_threads()} threads, {cfg.workers} data workers), "
        f"{n_params:,} parameters"
    )


# --------------------------------------------------------------------------- the steps


def _run_steps(loop: _Loop, loader: Any) -> ProgressGenerator[tuple[dict[str, float], float]]:
    """Train on every batch of ``loader``, logging, validating and checkpointing on the
    config's schedule; returns the last validation metrics and the total wall time."""
    cfg = loop.cfg
    t0 = time.perf_counter()
    running = _RunningLoss()
    val_metrics: dict[str, float] = {}
    loop.model.train()
    for step, (x, y) in enumerate(loader or (), start=loop.start):
        lr = learning_rate(step, cfg.steps, cfg.lr, cfg.schedule, cfg.warmup_steps)
        loss = _optimisation_step(loop, x, y, lr, step)
        running.add(float(loss.detach()))
        done = step + 1
        wall = loop.wall_before_s + time.perf_counter() - t0
        is_last = done == cfg.steps
        row: dict[str, Any] | None = None
        if done % cfg.log_every == 0 or is_last:
            row = _log_training_loss(loop, done, lr, wall, running.take(), t0)
        if loop.val and (done % cfg.val_every == 0 or is_last):
            val_metrics = _evaluate(loop)
            row = _log_validation(loop, done, lr, wall, row, val_metrics)
        if row is not None:
            loop.run_log.row(row)
        if done % cfg.checkpoint_every == 0 or is_last:
            save_checkpoint(
                loop.checkpoint, loop.model, loop.optimizer, done, cfg, {"wall_time_s": wall}
            )
        yield Progress(done, cfg.steps, f"step {done}/{cfg.steps}")
    return val_metrics, loop.wall_before_s + time.perf_counter() - t0


def _optimisation_step(loop: _Loop, x: Any, y: Any, lr: float, step: int) -> Any:
    """One AdamW step on batch ``(x, y)`` at learning rate ``lr``; returns the loss."""
    import torch

    cfg, task, device = loop.cfg, loop.task, loop.device
    x = x.to(device, non_blocking=True)
    y = y.to(device, non_blocking=True)
    for g in loop.optimizer.param_groups:
        g["lr"] = lr
    loop.optimizer.zero_grad(set_to_none=True)
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=loop.amp):
        logits = loop.model(x)
        if loop.teacher is not None:
            with torch.no_grad():
                teacher_logits = loop.teacher(x)
    loss = task.loss(logits.float(), y)
    if loop.teacher is not None:
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
        torch.nn.utils.clip_grad_norm_(loop.model.parameters(), cfg.grad_clip)
    loop.optimizer.step()
    return loss


class _RunningLoss:
    """Mean training loss since the last log line."""

    def __init__(self) -> None:
        self.total, self.n = 0.0, 0

    def add(self, loss: float) -> None:
        """Count one step's loss."""
        self.total += loss
        self.n += 1

    def take(self) -> float:
        """The mean so far; starts a new mean."""
        mean = self.total / self.n
        self.total, self.n = 0.0, 0
        return mean


def _log_training_loss(
    loop: _Loop, done: int, lr: float, wall: float, loss: float, t0: float
) -> dict[str, Any]:
    """Write the progress line; the CSV row of this step."""
    cfg = loop.cfg
    rate = (done - loop.start) * cfg.batch_size / max(time.perf_counter() - t0, 1e-9)
    loop.run_log.line(f"step {done}/{cfg.steps} loss {loss:.5f} lr {lr:.3g} {rate:.1f} examples/s")
    return {"step": done, "wall_time_s": round(wall, 3), "lr": lr, "train_loss": loss}


def _log_validation(
    loop: _Loop,
    done: int,
    lr: float,
    wall: float,
    row: dict[str, Any] | None,
    val_metrics: Mapping[str, float],
) -> dict[str, Any]:
    """Write the validation line; ``row`` (a new one without a training loss) with the
    metrics as ``val_NAME``."""
    row = row or {"step": done, "wall_time_s": round(wall, 3), "lr": lr, "train_loss": math.nan}
    row.update({f"val_{k}": v for k, v in val_metrics.items()})
    loop.run_log.line(
        f"step {done} validation " + " ".join(f"{k} {v:.5g}" for k, v in val_metrics.items())
    )
    return row


def _evaluate(loop: _Loop) -> dict[str, float]:
    """The task's loss and validation metrics on the validation batches (example-weighted
    means); the model goes back to training mode."""
    import torch

    model, task, device = loop.model, loop.task, loop.device
    model.eval()
    totals: dict[str, float] = {}
    n = 0
    with torch.inference_mode():
        for x, y in loop.val or ():
            x = x.to(device)
            y = y.to(device)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=loop.amp):
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
