"""The ONE torch backend shared by every model of napari-atomseg.

Nothing outside this package creates devices, loads weights, tiles images or runs a
training loop. Public API (imported lazily, so ``import napari_atomseg.backend`` does not
import torch)::

    get_device(prefer=None) -> torch.device
    load_card(name_or_path) -> ModelCard;  list_models(task=None) -> list[ModelCard]
    get_model(name_or_path, device=None) -> LoadedModel      # cached by (model, device)
    iter_predict(model, image, pixel_size_nm=None, *, tile_px, overlap_px, batch_size)
        -> generator yielding Progress, returning Prediction
    predict(...) -> Prediction
    resample(image, from_pixel_size_nm, to_pixel_size_nm) -> np.ndarray
    estimate_pixel_size_nm(image, card) -> float
    normalise(image, spec) -> np.ndarray
    TrainingTask, TrainConfig, train(...)                    # backend.train

See docs/backend.md for the design, measured speeds and how to train a model.
"""

from __future__ import annotations

from .._lazy import lazy_exports

_LAZY = {
    "get_device": ".device",
    "torch_threads": ".device",
    "ModelCard": ".cards",
    "OutputHead": ".cards",
    "InputSpec": ".cards",
    "ScaleReference": ".cards",
    "load_card": ".cards",
    "save_card": ".cards",
    "card_from_dict": ".cards",
    "list_models": ".cards",
    "default_model_name": ".cards",
    "get_model": ".registry",
    "LoadedModel": ".registry",
    "clear_cache": ".registry",
    "iter_predict": ".inference",
    "predict": ".inference",
    "Prediction": ".inference",
    "resample": ".sampling",
    "estimate_pixel_size_nm": ".scale",
    "estimate_scale": ".scale",
    "normalise": ".normalise",
    "build_model": ".nets",
    "TrainingTask": ".train",
    "TrainConfig": ".train",
    "train": ".train",
    "iter_train": ".train",
}

__getattr__, __dir__, __all__ = lazy_exports(__name__, _LAZY)
