"""Training configs: the YAML a run is described by, the task it names, the card it makes.

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

The card a run exports is merged from three layers: the task's ``card_defaults()``, the
card of the ``init_from`` model, and the config's ``card`` section (later wins).
"""

from __future__ import annotations

import dataclasses
import importlib
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import yaml

from ..errors import InputError
from .cards import ModelCard, card_from_dict, load_card
from .train_data import AugmentConfig

SCHEDULES = ("onecycle", "cosine", "constant")

#: Config fields that must be positive integers.
_POSITIVE_INTS = ("steps", "batch_size", "val_every", "checkpoint_every", "log_every", "crop_px")

#: Keys a stage of a multi-stage config may change.
STAGE_KEYS = (
    "steps", "task_options", "seed", "batch_size", "lr", "weight_decay", "schedule",
    "warmup_steps", "grad_clip", "val_examples", "val_every", "augment", "library",
    "library_fraction", "pairs", "val_pairs", "pairs_fraction", "crop_px", "example_pool",
    "init_from", "teacher", "distill_weight",
)  # fmt: skip

#: Card sections a fine-tuned or pruned model takes over from its ``init_from`` model.
_INHERITED_CARD_KEYS = ("task", "architecture", "outputs", "classes", "input")


@runtime_checkable
class TrainingTask(Protocol):
    """What a task gives the generic loop (see docs/backend.md).

    Optional extras the loop uses when present: ``example_from_library(record, rng)`` (a
    pair from a :class:`~napari_atomseg.backend.train_data.LibraryRecord`),
    ``augment(image, target, rng)`` (task-specific augmentation after the generic one),
    ``card_defaults()`` (a partial card mapping, e.g. outputs, classes and input, that the
    config's ``card`` section overrides), ``distill_loss(logits, teacher_logits,
    target)`` (for ``teacher``) and ``scale_reference_task()`` (the task whose examples
    are the images the pixel-size estimator will see).
    """

    channels_out: int

    def make_example(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """One training pair at the model's working sampling, input normalised.

        Returns
        -------
        image, target
            Image float32 ``(1, H, W)``; target float32 ``(C, H, W)`` or an int64
            ``(H, W)`` class map.
        """
        ...

    def loss(self, logits: Any, target: Any) -> Any:
        """Scalar training loss of a batch (torch tensors)."""
        ...

    def validation_metrics(self, logits: Any, target: Any) -> dict[str, float]:
        """Named metrics of a validation batch (averaged over batches by the loop)."""
        ...


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
    #: Several stages in one config: each a mapping with a ``name`` and the keys it
    #: changes (``steps`` at least); stage k > 0 starts from stage k - 1's model. Only the
    #: last stage's model is exported under ``name``; the others stay in ``out_dir``.
    stages: tuple[Mapping[str, Any], ...] = ()
    #: Where the config was read from (set by :meth:`from_yaml`; not a YAML key).
    config_path: str | None = None

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], config_path: str | None = None) -> TrainConfig:
        """A validated config from a mapping of YAML keys.

        Raises
        ------
        InputError
            Unknown or missing keys, or a value out of range.
        """
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
        values = {"card": {}, **data}
        values["stages"] = tuple(data.get("stages") or ())
        cfg = cls(**values, config_path=config_path)
        cfg.validate()
        return cfg

    @classmethod
    def from_yaml(cls, path: str | Path) -> TrainConfig:
        """A validated config read from a YAML file (remembered as ``config_path``)."""
        path = Path(path)
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            raise InputError(f"training config {path}: cannot be read ({exc})") from exc
        return cls.from_mapping(data, config_path=str(path))

    def validate(self) -> None:
        """Raise :class:`~napari_atomseg.errors.InputError` naming the first bad field."""
        for name in _POSITIVE_INTS:
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise InputError(
                    f"training config: {name} must be a positive integer, got {value!r}"
                )
        if not isinstance(self.val_examples, int) or self.val_examples < 0:
            raise InputError("training config: val_examples must be >= 0")
        if not isinstance(self.example_pool, int) or self.example_pool < 0:
            raise InputError("training config: example_pool must be an integer >= 0")
        if not isinstance(self.workers, int) or self.workers < 0:
            raise InputError("training config: workers must be >= 0")
        if self.schedule not in SCHEDULES:
            raise InputError(
                f"training config: schedule must be one of {SCHEDULES}, got {self.schedule!r}"
            )
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise InputError(f"training config: lr must be positive, got {self.lr}")
        self._validate_data_and_teacher()
        if ":" not in self.task:
            raise InputError(f"training config: task must be 'module:Class', got {self.task!r}")
        AugmentConfig.from_value(self.augment)
        self._validate_stages()

    def _validate_stages(self) -> None:
        names = set()
        for k, stage in enumerate(self.stages):
            if not isinstance(stage, Mapping) or not isinstance(stage.get("name"), str):
                raise InputError(f"training config: stage {k} needs a 'name'")
            if stage["name"] in names or not stage["name"].isidentifier():
                raise InputError(
                    f"training config: stage name {stage['name']!r} must be a unique identifier"
                )
            names.add(stage["name"])
            bad = set(stage) - set(STAGE_KEYS) - {"name"}
            if k > 0:
                bad |= {"init_from"} & set(stage)
            if bad:
                raise InputError(
                    f"training config: stage {stage['name']!r} cannot set {sorted(bad)}; "
                    f"a stage may change {sorted(STAGE_KEYS)} (init_from in the first only)"
                )
        for stage_cfg in self.stage_configs() if self.stages else ():
            stage_cfg.validate()

    def stage_configs(self) -> list[TrainConfig]:
        """One single-stage config per stage (just ``[self]`` without stages).

        Stage k trains from stage k - 1's exported model; its checkpoints, logs and model
        go to ``out_dir/STAGE``; the last stage is exported to ``export_dir`` as ``name``.
        """
        if not self.stages:
            return [self]
        base = self.to_dict()
        base.pop("stages")
        out, previous = [], None
        for k, stage in enumerate(self.stages):
            last = k == len(self.stages) - 1
            values = merge_mappings(base, {key: v for key, v in stage.items() if key != "name"})
            folder = self.out_path / stage["name"]
            values.update(
                name=self.name if last else f"{self.name}_{stage['name']}",
                out_dir=str(folder),
                export_dir=str(self.export_path if last else folder),
            )
            if previous is not None:
                values["init_from"] = str(previous.export_path / f"{previous.name}.yaml")
            stage_cfg = TrainConfig(**values, config_path=self.config_path)
            out.append(stage_cfg)
            previous = stage_cfg
        return out

    def _validate_data_and_teacher(self) -> None:
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

    def to_dict(self) -> dict[str, Any]:
        """The YAML keys and values (as recorded in the card)."""
        out = dataclasses.asdict(self)
        out.pop("config_path")
        out["stages"] = [dict(stage) for stage in self.stages]
        if not out["stages"]:
            out.pop("stages")
        return out

    @property
    def out_path(self) -> Path:
        """Folder for checkpoints and logs (``out_dir``, default ``runs/NAME``)."""
        return Path(self.out_dir) if self.out_dir else Path("runs") / self.name

    @property
    def export_path(self) -> Path:
        """Folder the model is exported to (``export_dir``, default :attr:`out_path`)."""
        return Path(self.export_dir) if self.export_dir else self.out_path


def as_config(config: TrainConfig | Mapping[str, Any] | str | Path) -> TrainConfig:
    """A :class:`TrainConfig` from itself, a mapping of YAML keys or a YAML path."""
    if isinstance(config, (str, Path)):
        return TrainConfig.from_yaml(config)
    if isinstance(config, TrainConfig):
        return config
    return TrainConfig.from_mapping(config)


#: Old module names -> current ones (and every module below them). Older cards and users'
#: configs name a task by its old module (e.g. ``task:
#: napari_atomseg.segment.training:SegmentationTask``); :func:`load_task` imports it from
#: the current module, so they keep working.
RENAMED_MODULES = {
    "napari_atomseg.segment": "napari_atomseg.segmentation",
    "napari_atomseg.simulate": "napari_atomseg.simulation",
    "napari_atomseg.backend.train": "napari_atomseg.backend.train_loop",
    "napari_atomseg.backend.normalise": "napari_atomseg.backend.normalisation",
    "napari_atomseg.track.register": "napari_atomseg.track.registration",
    "napari_atomseg.track.link": "napari_atomseg.track.linking",
}


def current_module_name(module: str) -> str:
    """``module`` under its current name (:data:`RENAMED_MODULES`); others unchanged."""
    for old, new in RENAMED_MODULES.items():
        if module == old or module.startswith(old + "."):
            return new + module[len(old) :]
    return module


def load_task(spec: str, options: Mapping[str, Any] | None = None) -> Any:
    """Instantiate ``module:attr`` with ``options`` as keyword arguments.

    A module renamed since the spec was written is imported under its new name
    (:data:`RENAMED_MODULES`).

    Raises
    ------
    InputError
        The task cannot be imported, rejects the options, or lacks a method the loop needs.
    """
    module_name, _, attr = spec.partition(":")
    module_name = current_module_name(module_name)
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


def merge_mappings(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` updated by ``over``, recursively for nested mappings (inputs untouched)."""
    out = dict(base)
    for k, v in over.items():
        out[k] = (
            merge_mappings(out[k], v)
            if isinstance(v, Mapping) and isinstance(out.get(k), Mapping)
            else v
        )
    return out


def resolve_card(cfg: TrainConfig, task: Any) -> tuple[ModelCard, ModelCard | None]:
    """The card the run trains (task defaults < ``init_from`` card < config ``card``).

    Returns
    -------
    card, init_card
        The card without weights, and the ``init_from`` model's card (None without one).

    Raises
    ------
    InputError
        The card would prepare images differently from the task, or its outputs do not
        have the task's number of channels.
    """
    card_data: dict[str, Any] = {}
    defaults = getattr(task, "card_defaults", None)
    if callable(defaults):
        card_data = merge_mappings(card_data, defaults())
    init_card = None
    if cfg.init_from:
        init_card = load_card(cfg.init_from)
        inherit = init_card.to_dict()
        card_data = merge_mappings(
            card_data, {k: inherit[k] for k in _INHERITED_CARD_KEYS if k in inherit}
        )
        # The scale reference is measured again on this run's examples.
        card_data.get("input", {}).pop("scale_reference", None)
    card_data = merge_mappings(card_data, cfg.card)
    card_data["name"] = cfg.name
    card_data.pop("weights", None)
    card = card_from_dict(card_data)
    if callable(defaults):
        # Asked again: the first answer's nested mappings went into the card data.
        _check_input_matches_task(card, defaults())
    if card.n_channels_out != task.channels_out:
        raise InputError(
            f"training: the card's outputs have {card.n_channels_out} channel(s) but the task "
            f"makes targets for {task.channels_out}"
        )
    return card, init_card


def _check_input_matches_task(card: ModelCard, task_defaults: Mapping[str, Any]) -> None:
    """Refuse a card whose input preparation differs from the one the task trains on:
    an init model's card or the config's card section must not change it silently."""
    want, have = task_defaults.get("input", {}), card.input.to_dict()
    for key in ("normalisation", "background_sigma_nm"):
        if (key in want or key in have) and want.get(key) != have.get(key):
            raise InputError(
                f"training: the card's input.{key} ({have.get(key)!r}) differs from "
                f"the task's ({want.get(key)!r}); set it in task_options so that "
                "training and inference prepare images the same way"
            )
