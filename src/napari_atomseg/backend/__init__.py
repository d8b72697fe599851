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

from typing import TYPE_CHECKING

from .._lazy import lazy_exports

# The lazy names for type checkers and IDEs (``name as name``: a re-export).
if TYPE_CHECKING:
    from .cards import InputSpec as InputSpec
    from .cards import ModelCard as ModelCard
    from .cards import OutputHead as OutputHead
    from .cards import ScaleReference as ScaleReference
    from .cards import card_from_dict as card_from_dict
    from .cards import default_model_name as default_model_name
    from .cards import list_models as list_models
    from .cards import load_card as load_card
    from .cards import save_card as save_card
    from .device import get_device as get_device
    from .device import torch_threads as torch_threads
    from .inference import Prediction as Prediction
    from .inference import iter_predict as iter_predict
    from .inference import predict as predict
    from .nets import build_model as build_model
    from .normalisation import normalise as normalise
    from .registry import LoadedModel as LoadedModel
    from .registry import clear_cache as clear_cache
    from .registry import get_model as get_model
    from .sampling import resample as resample
    from .scale import estimate_pixel_size_nm as estimate_pixel_size_nm
    from .scale import estimate_scale as estimate_scale
    from .train_loop import TrainConfig as TrainConfig
    from .train_loop import TrainingTask as TrainingTask
    from .train_loop import iter_train as iter_train
    from .train_loop import train as train

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
    "normalise": ".normalisation",
    "build_model": ".nets",
    "TrainingTask": ".train_loop",
    "TrainConfig": ".train_loop",
    "train": ".train_loop",
    "iter_train": ".train_loop",
}

__getattr__, __dir__, __all__ = lazy_exports(__name__, _LAZY)
