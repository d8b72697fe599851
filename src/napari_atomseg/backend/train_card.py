"""The end of a training run: the model card filled in (how it was trained, what it
measured, the scale reference) and exported with the weights as ``NAME.yaml`` +
``NAME.safetensors``."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import InputError
from .cards import ModelCard, card_from_dict
from .train_config import TrainConfig
from .train_data import VAL_STREAM
from .train_log import TrainLog, default_command, hardware_record
from .train_sources import ExampleSource, TrainingData


@dataclass(frozen=True)
class RunRecord:
    """How a run went, as the card's ``training`` section records it.

    Attributes
    ----------
    cfg
        The run's config.
    command
        The command that reproduces the run (None: :func:`~.train_log.default_command`).
    wall_time_s
        Training time, resumed parts included.
    device
        The torch device it ran on.
    data
        The run's fixed data (pairs, validation pairs, library).
    init_card, pruned_from
        The model it started from and, when pruned to a narrower network, that model's
        architecture (None otherwise).
    teacher_card
        The distillation teacher's card (None without one).
    stages_before
        Records (:func:`stage_record`) of the earlier stages of a multi-stage config.
    """

    cfg: TrainConfig
    command: str | None
    wall_time_s: float
    device: Any
    data: TrainingData
    init_card: ModelCard | None = None
    pruned_from: Mapping[str, Any] | None = None
    teacher_card: ModelCard | None = None
    stages_before: tuple[Mapping[str, Any], ...] = ()


def input_with_scale_reference(
    card: ModelCard,
    task: Any,
    cfg: TrainConfig,
    data: TrainingData,
    val: Sequence[tuple[Any, Any]],
    run_log: TrainLog,
) -> dict[str, Any]:
    """The card's ``input`` section with the scale reference measured on the held-out
    examples (at the working pixel size), the measurements ``estimate_pixel_size_nm``
    makes; unchanged without synthetic validation examples or a working pixel size."""
    from .scale import scale_reference_from_examples

    input_spec = card.to_dict()["input"]
    work = card.input.working_pixel_size_nm
    if work is None or not val or data.val_pairs:
        return input_spec
    # The estimator reads the image as it comes (before any background subtraction): a
    # task that prepares its inputs further names the task whose examples are the same
    # images without that step.
    raw_task = getattr(task, "scale_reference_task", lambda: task)()
    if raw_task is task:
        imgs = [x[i, 0].numpy() for x, _ in val for i in range(x.shape[0])]
    else:
        raw = ExampleSource(
            raw_task, cfg, VAL_STREAM, data.library, data.library_val, None, augment=False
        )
        imgs = [raw.example(k)[0][0] for k in range(cfg.val_examples)]
    try:
        input_spec["scale_reference"] = scale_reference_from_examples(imgs, work).to_dict()
    except InputError as exc:
        run_log.line(f"no scale reference measured: {exc}")
    return input_spec


def training_section(record: RunRecord) -> dict[str, Any]:
    """The card's ``training`` section: command, config, data recipe, hardware, origin."""
    cfg, data = record.cfg, record.data
    out: dict[str, Any] = {
        "command": record.command or default_command(cfg),
        "config_file": cfg.config_path,
        "config": cfg.to_dict(),
        "seed": cfg.seed,
        "steps": cfg.steps,
        "batch_size": cfg.batch_size,
        "examples_seen": cfg.steps * cfg.batch_size,
        "wall_time_s": round(record.wall_time_s, 1),
        "hardware": hardware_record(record.device),
        "data": {
            "task": cfg.task,
            "task_options": dict(cfg.task_options),
            "library": cfg.library,
            "library_fraction": cfg.library_fraction if cfg.library else 0.0,
            "fine_tuning_pairs": len(data.pairs) if data.pairs else 0,
            "validation": f"{len(data.val_pairs)} fixed pairs"
            if data.val_pairs
            else f"{cfg.val_examples} held-out examples (seed stream {VAL_STREAM})",
        },
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    if record.stages_before:
        out["stages"] = [dict(stage) for stage in record.stages_before]
    init, teacher = record.init_card, record.teacher_card
    if init is not None and init.weights is not None:
        out["init_from"] = {"name": init.name, "sha256": init.weights.sha256}
        if record.pruned_from is not None:
            out["init_from"]["pruned_from_architecture"] = dict(record.pruned_from)
    if teacher is not None and teacher.weights is not None:
        out["teacher"] = {
            "name": teacher.name,
            "sha256": teacher.weights.sha256,
            "architecture": dict(teacher.architecture),
            "distill_weight": cfg.distill_weight,
        }
    return out


def stage_record(stage_name: str, cfg: TrainConfig, card: ModelCard) -> dict[str, Any]:
    """What a finished stage of a multi-stage config leaves in the final card: its
    settings, time, weights and validation."""
    training = card.training or {}
    return {
        "stage": stage_name,
        "steps": cfg.steps,
        "lr": cfg.lr,
        "schedule": cfg.schedule,
        "seed": cfg.seed,
        "example_pool": cfg.example_pool,
        "task_options": dict(cfg.task_options),
        "wall_time_s": training.get("wall_time_s"),
        "sha256": card.weights.sha256 if card.weights is not None else None,
        "validation": dict((card.metrics or {}).get("validation", {})),
    }


def export_trained_model(
    model: Any,
    card: ModelCard,
    input_spec: Mapping[str, Any],
    record: RunRecord,
    val_metrics: Mapping[str, float],
    n_validation: int,
) -> ModelCard:
    """Write the weights and the completed card to ``export_dir``; the card as written."""
    from .registry import export_model

    final = card.to_dict()
    final["input"] = dict(input_spec)
    final["training"] = training_section(record)
    final["metrics"] = {
        "command": final["training"]["command"],
        "validation": {k: round(v, 6) for k, v in val_metrics.items()},
        "n_validation": n_validation,
    }
    return export_model(model, card_from_dict(final), record.cfg.export_path)
