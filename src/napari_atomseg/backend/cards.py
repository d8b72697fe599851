"""Model cards: the YAML file that fully describes one model.

A card lives at ``src/napari_atomseg/models/NAME.yaml`` (shipped models) or anywhere on
disk (user / fine-tuned models); its weights are ``NAME.safetensors`` beside it. The
network is built from the card, the input is resampled and normalised as the card says,
and the card records how the model was trained and how well it did::

    name: atoms_unet_v1
    task: atoms                       # atoms | segmentation
    version: 1
    description: ...
    default: true                     # the default model of its task (optional)
    architecture: {type: unet, in_channels: 1, base_channels: 16, depth: 3,
                   stem_stride: 1, norm: batch}
    outputs:                          # heads, logits concatenated in this order
      - {name: heatmap, activation: sigmoid}
      - {name: classes, activation: softmax, channels: 3}   # channels default: classes
    classes: [vacuum, crystal, amorphous]                    # segmentation only
    input:
      normalisation: robust_zscore    # or {name: robust_zscore, low_pct: 1, high_pct: 99}
      background_sigma_nm: 1.2        # optional: subtract a Gaussian background first
      working_pixel_size_nm: 0.02     # null = use the image as it is
      pixel_size_range_nm: [0.005, 0.08]
      tile_px: 512
      overlap_px: 64
      scale_reference: {...}          # written by training, used to estimate pixel sizes
    weights: {file: atoms_unet_v1.safetensors, sha256: <64 hex>, size_bytes: 123456}
    training: {command: ..., config: {...}, seed: 0, steps: ..., wall_time_s: ..., hardware: ...}
    metrics: {command: ..., f1: ...}
    postprocess: {threshold: 0.4}     # recommended post-processing (optional)

Every malformed card raises :class:`~napari_atomseg.errors.ModelError` naming the file
and the field.
"""

from __future__ import annotations

import copy
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from ..errors import InputError, ModelError
from .normalisation import normalise, parse_normalisation, subtract_background

#: Folder of the shipped cards and weights.
MODELS_DIR = Path(__file__).resolve().parent.parent / "models"

ACTIVATIONS = ("sigmoid", "softmax", "identity")
TASKS = ("atoms", "segmentation")
_TOP_KEYS = {
    "name",
    "task",
    "version",
    "description",
    "default",
    "architecture",
    "outputs",
    "classes",
    "input",
    "weights",
    "training",
    "metrics",
    "notes",
    "postprocess",
}
_INPUT_KEYS = {
    "normalisation",
    "background_sigma_nm",
    "working_pixel_size_nm",
    "pixel_size_range_nm",
    "tile_px",
    "overlap_px",
    "batch_size",
    "scale_reference",
}
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")


@dataclass(frozen=True)
class OutputHead:
    """One output head: ``channels`` logits turned into maps by ``activation``."""

    name: str
    activation: str
    channels: int = 1
    channel_names: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """The head as the card's YAML has it (``channels`` only when not 1)."""
        out: dict[str, Any] = {"name": self.name, "activation": self.activation}
        if self.channels != 1:
            out["channels"] = self.channels
        return out


@dataclass(frozen=True)
class ScaleReference:
    """What features look like in the training data, for estimating unknown pixel sizes.

    Measured by :func:`napari_atomseg.backend.sampling.measure_scale_features` on the
    held-out training examples (whose pixel size is the working pixel size), so the
    estimator and its reference are calibrated against each other. Lengths in nm; the
    ``*_log_sd`` fields are the spread of ``ln(length)`` over the examples.
    """

    feature_sigma_nm: float
    feature_sigma_log_sd: float
    period_nm: float | None = None
    period_log_sd: float | None = None
    n_examples: int = 0

    def to_dict(self) -> dict[str, Any]:
        """The reference as the card's ``input.scale_reference`` mapping."""
        return {
            "feature_sigma_nm": self.feature_sigma_nm,
            "feature_sigma_log_sd": self.feature_sigma_log_sd,
            "period_nm": self.period_nm,
            "period_log_sd": self.period_log_sd,
            "n_examples": self.n_examples,
        }


@dataclass(frozen=True)
class InputSpec:
    """How an image must be prepared for the model."""

    normalisation: str = "robust_zscore"
    normalisation_params: Mapping[str, Any] = field(default_factory=dict)
    #: Width (nm) of the slowly varying background subtracted before normalising (None: none).
    background_sigma_nm: float | None = None
    working_pixel_size_nm: float | None = None
    pixel_size_range_nm: tuple[float, float] | None = None
    tile_px: int = 512
    overlap_px: int = 64
    batch_size: int | None = None
    scale_reference: ScaleReference | None = None

    def background_sigma_px(self, pixel_size_nm: float | None) -> float | None:
        """The background width in pixels of an image sampled at ``pixel_size_nm`` (None: off)."""
        if self.background_sigma_nm is None:
            return None
        if pixel_size_nm is None:
            raise InputError(
                "this model subtracts a background of a width given in nm, so it needs the "
                "image's pixel size (nm/px)"
            )
        return self.background_sigma_nm / float(pixel_size_nm)

    def prepare(self, image: Any, pixel_size_nm: float | None, *, out: Any = None) -> Any:
        """Background subtraction (if the card has one) then normalisation, as the network
        expects its input; ``image`` is at ``pixel_size_nm`` (the working sampling). ``out``
        may be ``image`` itself when the caller owns a float32 copy."""
        bg_px = self.background_sigma_px(pixel_size_nm)
        if bg_px is not None:
            image = subtract_background(image, bg_px, out=out)
            out = image  # a new float32 array (or ``out``): normalise it in place
        return normalise(image, self.normalisation_spec, out=out)

    @property
    def normalisation_spec(self) -> str | dict[str, Any]:
        """The spec :func:`~napari_atomseg.backend.normalisation.normalise` accepts."""
        if not self.normalisation_params:
            return self.normalisation
        return {"name": self.normalisation, **self.normalisation_params}

    def to_dict(self) -> dict[str, Any]:
        """The card's ``input`` section (optional keys only when set)."""
        out: dict[str, Any] = {"normalisation": self.normalisation_spec}
        if self.background_sigma_nm is not None:
            out["background_sigma_nm"] = self.background_sigma_nm
        out |= {
            "working_pixel_size_nm": self.working_pixel_size_nm,
            "pixel_size_range_nm": list(self.pixel_size_range_nm)
            if self.pixel_size_range_nm
            else None,
            "tile_px": self.tile_px,
            "overlap_px": self.overlap_px,
        }
        if self.batch_size is not None:
            out["batch_size"] = self.batch_size
        if self.scale_reference is not None:
            out["scale_reference"] = self.scale_reference.to_dict()
        return out


@dataclass(frozen=True)
class WeightsSpec:
    """The weights file (relative to the card's folder) and its integrity data."""

    file: str
    sha256: str
    size_bytes: int

    def to_dict(self) -> dict[str, Any]:
        """The card's ``weights`` section."""
        return {"file": self.file, "sha256": self.sha256, "size_bytes": self.size_bytes}


@dataclass(frozen=True)
class ModelCard:
    """A parsed, validated model card. Build one with :func:`load_card` or :func:`card_from_dict`."""

    name: str
    task: str
    architecture: Mapping[str, Any]
    outputs: tuple[OutputHead, ...]
    input: InputSpec
    version: str = "0"
    description: str = ""
    default: bool = False
    classes: tuple[str, ...] | None = None
    weights: WeightsSpec | None = None
    training: Mapping[str, Any] = field(default_factory=dict)
    metrics: Mapping[str, Any] = field(default_factory=dict)
    notes: str = ""
    #: Recommended post-processing settings of the task (e.g. the atom finder's detection
    #: ``threshold``), chosen on held-out data and recorded with how; callers' explicit
    #: options win.
    postprocess: Mapping[str, Any] = field(default_factory=dict)
    #: The YAML file this card was read from (None for an in-memory card).
    path: Path | None = field(default=None, compare=False)

    @property
    def channels(self) -> tuple[str, ...]:
        """Names of every output channel, in order (what ``Prediction.channels`` holds)."""
        return tuple(n for head in self.outputs for n in head.channel_names)

    @property
    def head_channels(self) -> tuple[int, ...]:
        """Number of channels of each output head, in card order."""
        return tuple(h.channels for h in self.outputs)

    @property
    def n_channels_out(self) -> int:
        """Total output channels of the network (all heads)."""
        return sum(self.head_channels)

    @property
    def weights_path(self) -> Path:
        """Absolute path of the weights file; ModelError if the card has none."""
        if self.weights is None:
            raise ModelError(f"model {self.name!r}: the card has no 'weights' section")
        base = self.path.parent if self.path is not None else MODELS_DIR
        return (base / self.weights.file).resolve()

    def to_dict(self) -> dict[str, Any]:
        """The card as plain YAML-able data (inverse of :func:`card_from_dict`)."""
        out: dict[str, Any] = {
            "name": self.name,
            "task": self.task,
            "version": self.version,
            "description": self.description,
        }
        if self.default:
            out["default"] = True
        out["architecture"] = dict(self.architecture)
        out["outputs"] = [h.to_dict() for h in self.outputs]
        if self.classes is not None:
            out["classes"] = list(self.classes)
        out["input"] = self.input.to_dict()
        if self.weights is not None:
            out["weights"] = self.weights.to_dict()
        out["training"] = _plain(self.training)
        out["metrics"] = _plain(self.metrics)
        if self.notes:
            out["notes"] = self.notes
        if self.postprocess:
            out["postprocess"] = _plain(self.postprocess)
        return _plain(out)

    def with_updates(self, **changes: Any) -> ModelCard:
        """A copy with some fields replaced (dataclasses.replace, re-validated)."""
        return card_from_dict(
            replace(self, **changes).to_dict(), path=changes.get("path", self.path)
        )


def _plain(value: Any) -> Any:
    """Convert numpy scalars / tuples / Paths to YAML-safe builtins."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (Path, str)):  # str subclasses (torch's version string) too
        return str(value)
    if isinstance(value, (bool, int, float)) or value is None:
        return value
    if hasattr(value, "item") and callable(value.item):  # numpy scalar
        return value.item()
    return value


def _where(path: Path | None) -> str:
    return f" ({path})" if path is not None else ""


def _positive(value: Any, what: str, where: str, allow_none: bool = False) -> float | None:
    if value is None and allow_none:
        return None
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ModelError(f"model card{where}: {what} must be a number, got {value!r}") from None
    if not math.isfinite(v) or v <= 0:
        raise ModelError(f"model card{where}: {what} must be positive, got {value!r}")
    return v


def card_from_dict(data: Mapping[str, Any], path: Path | None = None) -> ModelCard:
    """Validate a card mapping (as read from YAML) and build a :class:`ModelCard`.

    Parameters
    ----------
    data
        The card's fields (see the module docstring); not modified.
    path
        The YAML file it came from: named in error messages, and the weights file is
        looked up beside it.

    Returns
    -------
    ModelCard
        The validated card; a malformed one raises :class:`ModelError`.
    """
    where = _where(path)
    if not isinstance(data, Mapping):
        raise ModelError(f"model card{where}: expected a mapping at the top level")
    unknown = set(data) - _TOP_KEYS
    if unknown:
        raise ModelError(
            f"model card{where}: unknown field(s) {sorted(unknown)}; allowed: {sorted(_TOP_KEYS)}"
        )
    for key in ("name", "task", "architecture", "outputs", "input"):
        if key not in data:
            raise ModelError(f"model card{where}: missing required field {key!r}")
    name = str(data["name"])
    if not _NAME_RE.match(name):
        raise ModelError(f"model card{where}: name {name!r} must be letters, digits, '_', '-', '.'")
    task = str(data["task"])
    if task not in TASKS:
        raise ModelError(f"model card{where}: task must be one of {TASKS}, got {task!r}")
    arch = data["architecture"]
    if not isinstance(arch, Mapping):
        raise ModelError(f"model card{where}: architecture must be a mapping")

    classes = data.get("classes")
    if classes is not None:
        if not isinstance(classes, Sequence) or isinstance(classes, str) or len(classes) < 2:
            raise ModelError(f"model card{where}: classes must be a list of at least 2 names")
        classes = tuple(str(c) for c in classes)

    raw_outputs = data["outputs"]
    if not isinstance(raw_outputs, Sequence) or isinstance(raw_outputs, str) or not raw_outputs:
        raise ModelError(f"model card{where}: outputs must be a non-empty list of heads")
    heads: list[OutputHead] = []
    for i, head in enumerate(raw_outputs):
        if not isinstance(head, Mapping) or "name" not in head or "activation" not in head:
            raise ModelError(f"model card{where}: outputs[{i}] needs 'name' and 'activation'")
        act = str(head["activation"])
        if act not in ACTIVATIONS:
            raise ModelError(
                f"model card{where}: outputs[{i}].activation must be one of {ACTIVATIONS}, got {act!r}"
            )
        extra = set(head) - {"name", "activation", "channels"}
        if extra:
            raise ModelError(f"model card{where}: outputs[{i}] has unknown key(s) {sorted(extra)}")
        hname = str(head["name"])
        if act == "softmax":
            n = int(head.get("channels", len(classes) if classes else 0))
            if n < 2:
                raise ModelError(
                    f"model card{where}: softmax head {hname!r} needs 'channels' >= 2 or a 'classes' list"
                )
            if classes is not None and n == len(classes):
                names = classes
            else:
                names = tuple(f"{hname}_{j}" for j in range(n))
        else:
            n = int(head.get("channels", 1))
            if n < 1:
                raise ModelError(f"model card{where}: outputs[{i}].channels must be >= 1")
            names = (hname,) if n == 1 else tuple(f"{hname}_{j}" for j in range(n))
        heads.append(OutputHead(hname, act, n, names))
    all_names = [n for h in heads for n in h.channel_names]
    if len(set(all_names)) != len(all_names):
        raise ModelError(f"model card{where}: output channel names are not unique: {all_names}")

    inp = data["input"]
    if not isinstance(inp, Mapping):
        raise ModelError(f"model card{where}: input must be a mapping")
    bad = set(inp) - _INPUT_KEYS
    if bad:
        raise ModelError(
            f"model card{where}: input has unknown key(s) {sorted(bad)}; allowed: {sorted(_INPUT_KEYS)}"
        )
    try:
        norm_name, norm_params = parse_normalisation(inp.get("normalisation", "robust_zscore"))
    except InputError as exc:
        raise ModelError(f"model card{where}: input.{exc}") from None
    working = _positive(
        inp.get("working_pixel_size_nm"), "input.working_pixel_size_nm", where, allow_none=True
    )
    background = _positive(
        inp.get("background_sigma_nm"), "input.background_sigma_nm", where, allow_none=True
    )
    rng = inp.get("pixel_size_range_nm")
    if rng is not None:
        if not isinstance(rng, Sequence) or len(rng) != 2:
            raise ModelError(f"model card{where}: input.pixel_size_range_nm must be [low, high]")
        lo = _positive(rng[0], "input.pixel_size_range_nm[0]", where)
        hi = _positive(rng[1], "input.pixel_size_range_nm[1]", where)
        if lo > hi or (working is not None and not lo <= working <= hi):
            raise ModelError(
                f"model card{where}: input.pixel_size_range_nm {list(rng)} must be ordered and "
                f"contain working_pixel_size_nm {working}"
            )
        rng = (lo, hi)
    tile_px = int(inp.get("tile_px", 512))
    overlap_px = int(inp.get("overlap_px", 64))
    if tile_px < 16 or not 0 <= overlap_px <= tile_px // 2:
        raise ModelError(
            f"model card{where}: need tile_px >= 16 and 0 <= overlap_px <= tile_px/2, "
            f"got {tile_px} / {overlap_px}"
        )
    batch_size = inp.get("batch_size")
    if batch_size is not None and int(batch_size) < 1:
        raise ModelError(f"model card{where}: input.batch_size must be >= 1")
    sref = inp.get("scale_reference")
    scale_reference = None
    if sref is not None:
        try:
            scale_reference = ScaleReference(
                feature_sigma_nm=float(sref["feature_sigma_nm"]),
                feature_sigma_log_sd=float(sref["feature_sigma_log_sd"]),
                period_nm=None if sref.get("period_nm") is None else float(sref["period_nm"]),
                period_log_sd=None
                if sref.get("period_log_sd") is None
                else float(sref["period_log_sd"]),
                n_examples=int(sref.get("n_examples", 0)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(
                f"model card{where}: input.scale_reference is malformed ({exc})"
            ) from None
    input_spec = InputSpec(
        normalisation=norm_name,
        normalisation_params=norm_params,
        background_sigma_nm=background,
        working_pixel_size_nm=working,
        pixel_size_range_nm=rng,
        tile_px=tile_px,
        overlap_px=overlap_px,
        batch_size=None if batch_size is None else int(batch_size),
        scale_reference=scale_reference,
    )

    weights = None
    w = data.get("weights")
    if w is not None:
        if not isinstance(w, Mapping) or not {"file", "sha256"} <= set(w):
            raise ModelError(f"model card{where}: weights needs 'file' and 'sha256'")
        sha = str(w["sha256"]).lower()
        if not re.fullmatch(r"[0-9a-f]{64}", sha):
            raise ModelError(
                f"model card{where}: weights.sha256 must be 64 hex digits, got {w['sha256']!r}"
            )
        wfile = str(w["file"])
        if not wfile.endswith(".safetensors"):
            raise ModelError(
                f"model card{where}: weights.file must be a .safetensors file (no pickles), got {wfile!r}"
            )
        weights = WeightsSpec(wfile, sha, int(w.get("size_bytes", -1)))

    for key in ("training", "metrics", "postprocess"):
        if data.get(key) is not None and not isinstance(data[key], Mapping):
            raise ModelError(f"model card{where}: {key} must be a mapping")
    return ModelCard(
        name=name,
        task=task,
        architecture=dict(arch),
        outputs=tuple(heads),
        input=input_spec,
        version=str(data.get("version", "0")),
        description=str(data.get("description", "")),
        default=bool(data.get("default", False)),
        classes=classes,
        weights=weights,
        training=dict(data.get("training") or {}),
        metrics=dict(data.get("metrics") or {}),
        notes=str(data.get("notes", "")),
        postprocess=dict(data.get("postprocess") or {}),
        path=path,
    )


def _looks_like_path(name_or_path: str | Path) -> bool:
    s = str(name_or_path)
    return isinstance(name_or_path, Path) or s.endswith((".yaml", ".yml")) or "/" in s or "\\" in s


def card_path(name_or_path: str | Path) -> Path:
    """Where the card ``name_or_path`` lives: a shipped model name or a YAML path."""
    if _looks_like_path(name_or_path):
        return Path(name_or_path).expanduser().resolve()
    return MODELS_DIR / f"{name_or_path}.yaml"


def load_card(name_or_path: str | Path) -> ModelCard:
    """Read and validate a card: a shipped model name (``models/NAME.yaml``) or a YAML path.

    Parameters
    ----------
    name_or_path
        A shipped model's name, the path of a card (``.yaml``), or a :class:`ModelCard`
        (returned as it is).

    Returns
    -------
    ModelCard
        The validated card (its ``path`` set).

    Raises
    ------
    ModelError
        When the model does not exist (listing the shipped ones) or the card is malformed.
    """
    if isinstance(name_or_path, ModelCard):
        return name_or_path
    path = card_path(name_or_path)
    if not path.is_file():
        if _looks_like_path(name_or_path):
            raise ModelError(f"model card not found: {path}")
        known = sorted(p.stem for p in MODELS_DIR.glob("*.yaml"))
        raise ModelError(
            f"unknown model {str(name_or_path)!r}; shipped models: {known or 'none'}; "
            "or pass the path of a card (.yaml)"
        )
    return card_from_dict(copy.deepcopy(_read_card_yaml(path)), path=path)


#: Parsed card YAML keyed by (path, mtime, size): widgets and batch jobs look cards up on
#: every call (default model, class names...), and parsing a card takes about 0.1 s.
_YAML_CACHE: dict[tuple[str, int, int], Any] = {}


def _read_card_yaml(path: Path) -> Any:
    try:
        st = path.stat()
        key = (str(path), st.st_mtime_ns, st.st_size)
        if key not in _YAML_CACHE:
            loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
            _YAML_CACHE[key] = yaml.load(path.read_text(encoding="utf-8"), Loader=loader)
    except (OSError, yaml.YAMLError) as exc:
        raise ModelError(f"model card {path}: cannot be read as YAML ({exc})") from exc
    return _YAML_CACHE[key]


def save_card(card: ModelCard, path: str | Path) -> Path:
    """Write ``card`` as YAML to ``path`` (weights stay where ``card.weights.file`` says).

    Parameters
    ----------
    card
        The card to write.
    path
        The YAML file; its folder is created if missing, an existing file replaced.

    Returns
    -------
    Path
        ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = yaml.safe_dump(card.to_dict(), sort_keys=False, allow_unicode=True, width=100)
    path.write_text(text, encoding="utf-8")
    return path


def list_models(task: str | None = None, models_dir: Path | None = None) -> list[ModelCard]:
    """Every shipped model card (optionally only those of ``task``), default models first.

    Parameters
    ----------
    task
        Only the cards of this task (one of ``TASKS``); None: all.
    models_dir
        The folder of cards to list (default: the shipped models).

    Returns
    -------
    list of ModelCard
        Default models first, then by name.
    """
    if task is not None and task not in TASKS:
        raise InputError(f"task must be one of {TASKS} or None, got {task!r}")
    folder = MODELS_DIR if models_dir is None else Path(models_dir)
    cards = [load_card(p) for p in sorted(folder.glob("*.yaml"))]
    if task is not None:
        cards = [c for c in cards if c.task == task]
    return sorted(cards, key=lambda c: (not c.default, c.name))


def default_model_name(task: str) -> str:
    """Name of the shipped model marked ``default: true`` for ``task`` (ModelError if none).

    Parameters
    ----------
    task
        A model task (one of ``TASKS``).

    Returns
    -------
    str
        The model's name (first by name if several are marked default).
    """
    cards = [c for c in list_models(task) if c.default]
    if not cards:
        raise ModelError(
            f"no default {task!r} model is shipped yet (models/*.yaml with default: true)"
        )
    return cards[0].name
