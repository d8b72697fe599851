"""The networks of a training run: the model to train (seeded, fine-tuned from a trained
model or pruned from a wider one), the distillation teacher, and the optimiser."""

from __future__ import annotations

from typing import Any

from ..errors import InputError
from .cards import ModelCard, load_card
from .train_config import TrainConfig


def initial_model(card: ModelCard, init_card: ModelCard | None) -> tuple[Any, dict | None]:
    """The network of ``card``: seeded initialisation, ``init_card``'s weights, or those
    weights pruned into the narrower network (then the original architecture is returned)."""
    from .registry import build_from_card, load_weights

    model = build_from_card(card)
    if init_card is None:
        return model, None
    if dict(init_card.architecture) == dict(card.architecture):
        load_weights(init_card, model)
        return model, None
    from .nets import prune_into

    wide = load_weights(init_card, build_from_card(init_card))
    prune_into(wide, model)
    return model, dict(init_card.architecture)


def load_teacher(
    cfg: TrainConfig, task: Any, card: ModelCard, device: Any
) -> tuple[Any, ModelCard]:
    """The distillation teacher, frozen in eval mode on ``device``, and its card."""
    from .registry import build_from_card, load_weights

    if not callable(getattr(task, "distill_loss", None)):
        raise InputError(f"training task {cfg.task!r} cannot distil (no distill_loss method)")
    teacher_card = load_card(cfg.teacher)
    if teacher_card.n_channels_out != card.n_channels_out:
        raise InputError(
            f"teacher {teacher_card.name}: {teacher_card.n_channels_out} output "
            f"channel(s), the student has {card.n_channels_out}"
        )
    teacher = load_weights(teacher_card, build_from_card(teacher_card))
    teacher.to(device).eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    return teacher, teacher_card


def adamw(model: Any, cfg: TrainConfig) -> Any:
    """AdamW with weight decay on weight matrices and kernels only (not biases, norms)."""
    import torch

    decay, no_decay = [], []
    for p in model.parameters():
        (no_decay if p.ndim <= 1 else decay).append(p)
    return torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": cfg.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ],
        lr=cfg.lr,
    )
