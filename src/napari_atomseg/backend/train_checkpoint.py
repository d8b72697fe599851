"""Training checkpoints: model, AdamW state and step in one safetensors file (no pickle).

A checkpoint carries a fingerprint of the config fields that decide the weights, so a
resumed run refuses a checkpoint another configuration wrote; the learning rate is a
pure function of the step, so restoring (model, optimiser, step) continues to the very
weights an uninterrupted run reaches.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import InputError, ModelError
from .train_config import TrainConfig

#: File name of the checkpoint in a run's ``out_dir``.
CHECKPOINT_NAME = "checkpoint.safetensors"

#: Config fields a checkpoint must agree on with the run resuming from it.
_FINGERPRINT_KEYS = (
    "task",
    "task_options",
    "card",
    "seed",
    "batch_size",
    "library",
    "pairs",
    "init_from",
)


def config_fingerprint(cfg: TrainConfig) -> str:
    """Hash of what must not change between a checkpoint and its resumption."""
    data = {k: getattr(cfg, k) for k in _FINGERPRINT_KEYS}
    if cfg.teacher:  # absent without a teacher, so checkpoints of such runs keep their hash
        data["teacher"] = [cfg.teacher, cfg.distill_weight]
    blob = json.dumps(data, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def save_checkpoint(
    path: Path, model: Any, optimizer: Any, step: int, cfg: TrainConfig, extra: Mapping[str, Any]
) -> None:
    """Write model + AdamW state + step as one safetensors file (atomic replace).

    Parameters
    ----------
    path
        The checkpoint file.
    model, optimizer
        The torch module and its optimiser.
    step
        Steps done.
    cfg
        The run's config (its fingerprint is stored).
    extra
        JSON-able values restored by :func:`load_checkpoint` (e.g. the wall time so far).
    """
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
        "fingerprint": config_fingerprint(cfg),
        "param_groups": json.dumps(groups, default=float),
        "extra": json.dumps(dict(extra), default=float),
    }
    tmp = path.with_suffix(".tmp")
    save_file(tensors, str(tmp), metadata=meta)
    tmp.replace(path)


def load_checkpoint(
    path: Path, model: Any, optimizer: Any, cfg: TrainConfig
) -> tuple[int, dict[str, Any]]:
    """Restore model and optimiser from :func:`save_checkpoint`.

    Returns
    -------
    step, extra
        Steps done when it was written, and its ``extra`` mapping.

    Raises
    ------
    ModelError
        The file cannot be read.
    InputError
        It was written by a different configuration.
    """
    from safetensors import safe_open
    from safetensors.torch import load_file

    try:
        with safe_open(str(path), framework="pt") as fh:
            meta = fh.metadata() or {}
        tensors = load_file(str(path))
    except Exception as exc:  # safetensors raises its own error types
        raise ModelError(f"checkpoint {path} cannot be read ({exc})") from exc
    if meta.get("fingerprint") != config_fingerprint(cfg):
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
