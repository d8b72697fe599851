"""Loading models: card -> network -> verified weights, behind ONE cache.

:func:`get_model` is the only way any part of the plugin obtains a network. It reads the
card, checks the weights file's size and sha256 against the card *before* anything is
deserialised, loads the tensors with safetensors (never pickle), builds the network the
card describes, checks that every tensor matches it, folds batch norm for speed and
caches the result keyed by (model, device). Widgets, the CLI and scripts therefore share
one copy of each model, and a second click costs nothing.

A card whose weights changed on disk (a model re-trained or fine-tuned in place) is
reloaded: the cache entry remembers the sha256 it was loaded with.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import ModelError
from .cards import ModelCard, card_path, load_card
from .device import get_device
from .nets import build_model, fold_batchnorm

if TYPE_CHECKING:
    import torch

_HASH_CHUNK = 1 << 20


@dataclass(frozen=True)
class LoadedModel:
    """A network ready for inference: eval mode, on ``device``, built from ``card``."""

    card: ModelCard
    module: torch.nn.Module
    device: torch.device

    @property
    def name(self) -> str:
        """The model's name (from its card)."""
        return self.card.name

    @property
    def stride_multiple(self) -> int:
        """Input sides must be multiples of this (stem stride x 2**depth)."""
        return int(getattr(self.module, "stride_multiple", 1))


_cache: dict[tuple[str, str], tuple[str, LoadedModel]] = {}
_lock = threading.Lock()


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(_HASH_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def verify_weights(card: ModelCard) -> Path:
    """Check the weights file of ``card`` exists and matches its size and sha256; return its path."""
    path = card.weights_path
    if not path.is_file():
        raise ModelError(f"model {card.name!r}: weights file missing: {path}")
    size = path.stat().st_size
    if (
        card.weights is not None
        and card.weights.size_bytes >= 0
        and size != card.weights.size_bytes
    ):
        raise ModelError(
            f"model {card.name!r}: weights file {path} has {size} bytes, the card says "
            f"{card.weights.size_bytes}; the file is truncated or not the one the card describes"
        )
    digest = sha256_file(path)
    if card.weights is not None and digest != card.weights.sha256:
        raise ModelError(
            f"model {card.name!r}: sha256 of {path} is {digest}, the card says "
            f"{card.weights.sha256}; the weights are corrupt or were replaced. Re-install the "
            "plugin, or re-train/re-export the model to write a matching card"
        )
    return path


def build_from_card(card: ModelCard) -> torch.nn.Module:
    """The untrained network a card describes (train mode, CPU)."""
    return build_model(card.architecture, card.head_channels)


def load_weights(card: ModelCard, module: torch.nn.Module) -> torch.nn.Module:
    """Verify and load the card's safetensors weights into ``module`` (strict)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = verify_weights(card)
    try:
        state = load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError) as exc:
        raise ModelError(f"model {card.name!r}: cannot read {path} as safetensors ({exc})") from exc
    expected = module.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = sorted(
        k for k in set(expected) & set(state) if tuple(expected[k].shape) != tuple(state[k].shape)
    )
    if missing or unexpected or wrong:
        details = []
        if missing:
            details.append(f"missing {missing[:5]}{'...' if len(missing) > 5 else ''}")
        if unexpected:
            details.append(f"unexpected {unexpected[:5]}{'...' if len(unexpected) > 5 else ''}")
        if wrong:
            details.append(
                "shape mismatch "
                + ", ".join(
                    f"{k}: file {tuple(state[k].shape)} vs card {tuple(expected[k].shape)}"
                    for k in wrong[:3]
                )
            )
        raise ModelError(
            f"model {card.name!r}: the weights in {path} do not fit the architecture in the card "
            f"({'; '.join(details)})"
        )
    module.load_state_dict(state, strict=True)
    return module


def _cache_key(name_or_path: str | Path | ModelCard) -> str:
    if isinstance(name_or_path, ModelCard):
        if name_or_path.path is None:
            raise ModelError("get_model: an in-memory card has no weights on disk; save it first")
        return str(name_or_path.path.resolve())
    return str(card_path(name_or_path))


def get_model(
    name_or_path: str | Path | ModelCard, device: str | torch.device | None = None
) -> LoadedModel:
    """Return the model ``name_or_path`` (shipped name or card path), ready on ``device``.

    Cached: the same (model, device) returns the same :class:`LoadedModel` object until
    :func:`clear_cache` or until the card changes on disk (new weights: reloaded; the
    same weights with other settings, e.g. a fine-tune's chosen threshold: the same
    network with the new card).

    Parameters
    ----------
    name_or_path
        A shipped model name, a card path or a :class:`ModelCard` (read again from its
        path).
    device
        As for :func:`~napari_atomseg.backend.device.get_device` (None: the best available).

    Returns
    -------
    LoadedModel
        The network in eval mode (batch norm folded, no gradients) on the device, with
        its card.

    Raises
    ------
    ModelError
        For unknown models, missing/corrupt weights (sha256 or size mismatch) and weights
        that do not match the card's architecture.
    """
    dev = get_device(device)
    key = (_cache_key(name_or_path), str(dev))
    card = load_card(name_or_path if not isinstance(name_or_path, ModelCard) else name_or_path.path)
    if card.weights is None:
        raise ModelError(
            f"model {card.name!r}: the card has no 'weights' section; train or export it first"
        )
    with _lock:
        hit = _cache.get(key)
        if hit is not None and hit[0] == card.weights.sha256:
            if hit[1].card != card:
                # Same weights, card edited on disk (a fine-tune writes its chosen
                # threshold after loading the model): the module stays, the card is new.
                _cache[key] = (hit[0], replace(hit[1], card=card))
            return _cache[key][1]
        module = load_weights(card, build_from_card(card))
        module.eval()
        fold_batchnorm(module)
        for p in module.parameters():
            p.requires_grad_(False)
        module.to(dev)
        if dev.type == "cpu":
            import torch

            # NHWC convolutions are 1.5-2x faster with oneDNN on CPU (docs/backend.md).
            module.to(memory_format=torch.channels_last)
        loaded = LoadedModel(card=card, module=module, device=dev)
        _cache[key] = (card.weights.sha256, loaded)
        return loaded


def clear_cache() -> None:
    """Forget every loaded model (frees their memory once no one else holds them)."""
    with _lock:
        _cache.clear()


def cached_models() -> list[tuple[str, str]]:
    """The (card path, device) keys currently cached."""
    with _lock:
        return sorted(_cache)


def export_model(module: torch.nn.Module, card: ModelCard, out_dir: str | Path) -> ModelCard:
    """Write ``module``'s weights as ``NAME.safetensors`` and the card as ``NAME.yaml``.

    The card's ``weights`` section (file, sha256, size_bytes) is filled in from the file
    actually written. ``module`` must be the unfolded (trainable) network the card
    describes. Returns the card as loaded back from disk.
    """
    from safetensors.torch import save_file

    from .cards import WeightsSpec, save_card

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    expected = build_from_card(card).state_dict()
    state = {k: v.detach().to("cpu").contiguous() for k, v in module.state_dict().items()}
    if set(expected) != set(state) or any(expected[k].shape != state[k].shape for k in expected):
        raise ModelError(
            f"export_model: the module does not match the architecture of card {card.name!r}"
        )
    from ..io.writers import atomic_path

    wpath = out / f"{card.name}.safetensors"
    # (atomic, and with the usual permissions: safetensors alone writes 0600)
    with atomic_path(wpath) as tmp:
        save_file(state, tmp, metadata={"name": card.name, "format": "pt"})
    weights = WeightsSpec(
        file=wpath.name, sha256=sha256_file(wpath), size_bytes=wpath.stat().st_size
    )
    cpath = out / f"{card.name}.yaml"
    save_card(card.with_updates(weights=weights, path=cpath), cpath)
    return load_card(cpath)
