"""A learned second opinion on each heatmap peak of a noisy lattice (the "rescorer").

At low dose one threshold per image is not enough: the network's lattice prior marks
empty hollows with confidence 0.5-0.6 while faint real columns of the same image sit at
0.3-0.5 (docs/atoms.md, "Noise-adapted threshold"). The noise ramp
(:func:`~napari_atomseg.atoms.candidates.default_threshold`) raises the threshold with the
image's noise; on the benchmark's further low-dose images the best threshold *per image*
would still gain up to 0.06 F1 over it. The rescorer decides per peak instead, from what a
microscopist looks at: the peak's confidence against its neighbours', whether a more
confident peak sits closer than a column spacing, whether the image has a local maximum
there, how noisy the image is.

It is a tiny multilayer perceptron (12 features, one hidden layer of tanh units) whose
weights live in the model card (``postprocess.rescorer``), fitted by
``OMP_NUM_THREADS=2 python benchmarks/atoms_rescorer.py --write-card`` on synthetic images
(seeds apart from every benchmark set; docs/atoms.md, "Rescorer"). Numpy only: no torch
at post-processing time, about 10-30 ms per image.

It only ever runs where it was trained to help (:func:`in_gate`): a lattice (median
nearest-neighbour distance of the confident peaks below 0.4 nm, and regular: their
coefficient of variation below 0.5, and that of the peaks the noise ramp keeps too), a
noisy one (noise level above 0.1), not HRTEM.
Single atoms on carbon, clean lattices and HRTEM keep the card's threshold and noise ramp.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.spatial import cKDTree

from ..errors import InputError
from .peaks import local_prominence
from .spacing import nearest_neighbour_distances_px

#: The features, in the order the weights expect (each is one column of
#: :func:`features`).
FEATURE_NAMES = (
    "logit_confidence",  # the peak's own confidence (logit)
    "noise_level",  # the image's noise level (noise.noise_level)
    "neighbour_confidence",  # median confidence of its 6 nearest peaks (logit)
    "image_confidence_q90",  # 90th percentile of the image's peak confidences (logit)
    "fraction_confident",  # fraction of the image's peaks above 0.6
    "distance_to_higher",  # distance to the nearest more confident peak / spacing (<= 3)
    "n_close",  # confident peaks closer than 0.85 spacing
    "prominence",  # local image maximum, relative to the confident peaks' median
    "log_spacing_nm",  # log of the lattice spacing (median NN distance, nm)
    "dark",  # columns dark (1) or bright (0)
    "min_neighbour_confidence",  # least confident of its 6 nearest peaks (logit)
    "rank",  # confidence rank in the image, 0 (most confident) to 1
)
#: Peaks down to this confidence are candidates (the card may say otherwise).
CANDIDATE_THRESHOLD = 0.1
#: Peaks at least this confident define the lattice spacing and the prominence reference.
_PROMINENCE_REFERENCE = 0.5
_FEATURE_CONFIDENT = 0.6
_CLOSE_FRACTION = 0.85
_N_NEIGHBOURS = 6
_N_HIGHER = 20
_BLOCK = 65_536
#: The gate's defaults (a card's rescorer may set its own): at least this many confident
#: peaks, their median nearest-neighbour distance below this (nm) and their coefficient of
#: variation below this (a lattice, not single atoms), the image's noise level above this.
MIN_CONFIDENT = 5
MAX_SPACING_NM = 0.4
MAX_SPACING_CV = 0.5
MIN_NOISE_LEVEL = 0.1


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=np.float64), 1e-4, 1 - 1e-4)
    return np.log(p / (1 - p))


@dataclass(frozen=True)
class Lattice:
    """What the gate looks at: the confident peaks' spacing and its regularity."""

    n_confident: int
    spacing_px: float  # median nearest-neighbour distance of the confident peaks
    spacing_cv: float  # their coefficient of variation (std / mean)


def lattice_of(positions_px: np.ndarray, confidence: np.ndarray, base: float) -> Lattice:
    """Spacing statistics of the peaks with ``confidence >= base`` (the card's threshold)."""
    hi = np.asarray(positions_px)[np.asarray(confidence) >= base]
    return lattice_from_distances(nearest_neighbour_distances_px(hi))


def lattice_from_distances(nn: np.ndarray) -> Lattice:
    """:class:`Lattice` of peaks from their nearest-neighbour distances (NaN: fewer than
    two peaks)."""
    nn = np.asarray(nn, dtype=np.float64)
    if len(nn) < 2 or not np.isfinite(nn).all():
        return Lattice(len(nn), math.inf, math.inf)
    mean = float(np.mean(nn))
    return Lattice(
        len(nn), float(np.median(nn)), float(np.std(nn) / mean) if mean > 0 else math.inf
    )


def in_gate(
    lattice: Lattice,
    pixel_size_nm: float | None,
    noise_level: float | Callable[[], float | None] | None,
    imaging: str | None,
    max_spacing_nm: float = MAX_SPACING_NM,
    max_spacing_cv: float = MAX_SPACING_CV,
    min_noise_level: float = MIN_NOISE_LEVEL,
    kept: Lattice | None = None,
) -> bool:
    """Whether an image is one the rescorer is for: a regular lattice of at least
    :data:`MIN_CONFIDENT` confident peaks, noisy, with a pixel size, not HRTEM.

    ``lattice`` describes the peaks at the card's threshold; ``kept``, where given, the
    peaks the noise ramp keeps, which must be as regular. A network that paints a
    lattice onto noisy amorphous carbon (single-atom images) gives peaks that look
    regular at 0.4 and grow irregular as the threshold rises (coefficient of variation
    0.46 -> 0.61 at 0.6 on such an image), where a real lattice stays regular (0.27 ->
    0.32 for WS2 at the same noise). ``noise_level`` may be a function, called only when
    the lattice qualifies (measuring it costs 0.03 s for 1024^2)."""
    if imaging == "hrtem" or pixel_size_nm is None or lattice.n_confident < MIN_CONFIDENT:
        return False
    regular = lattice.spacing_cv < max_spacing_cv and (
        kept is None or kept.spacing_cv < max_spacing_cv
    )
    if not (regular and lattice.spacing_px * pixel_size_nm < max_spacing_nm):
        return False
    level = noise_level() if callable(noise_level) else noise_level
    return level is not None and level > min_noise_level


@dataclass(frozen=True)
class Rescorer:
    """A fitted rescorer (from a card's ``postprocess.rescorer``; see :meth:`from_card`)."""

    mean: np.ndarray  # (F,) feature standardisation
    std: np.ndarray  # (F,)
    w1: np.ndarray  # (H, F)
    b1: np.ndarray  # (H,)
    w2: np.ndarray  # (H,)
    b2: float
    keep_probability: float  # tau: peaks with probability >= tau are columns
    candidate_threshold: float = CANDIDATE_THRESHOLD
    max_spacing_nm: float = MAX_SPACING_NM
    max_spacing_cv: float = MAX_SPACING_CV
    min_noise_level: float = MIN_NOISE_LEVEL

    @classmethod
    def from_card(cls, spec: Mapping[str, Any]) -> Rescorer:
        """Build from the card's mapping; InputError naming the field that is wrong."""
        if not isinstance(spec, Mapping):
            raise InputError("postprocess.rescorer: expected a mapping")
        names = tuple(spec.get("features", ()))
        if names != FEATURE_NAMES:
            raise InputError(
                f"postprocess.rescorer.features: expected {list(FEATURE_NAMES)}, got {list(names)}"
            )
        n = len(FEATURE_NAMES)

        def arr(key: str, shape: tuple[int, ...]) -> np.ndarray:
            try:
                a = np.asarray(spec[key], dtype=np.float64)
            except KeyError:
                raise InputError(f"postprocess.rescorer.{key}: missing") from None
            except (TypeError, ValueError):
                raise InputError(f"postprocess.rescorer.{key}: not numbers") from None
            if a.shape != shape or not np.isfinite(a).all():
                raise InputError(
                    f"postprocess.rescorer.{key}: expected finite numbers of shape {shape}, "
                    f"got shape {a.shape}"
                )
            return a

        w1 = np.asarray(spec.get("w1", []), dtype=object)
        hidden = len(w1)
        if hidden < 1:
            raise InputError("postprocess.rescorer.w1: expected a (hidden, features) matrix")
        std = arr("std", (n,))
        if (std <= 0).any():
            raise InputError("postprocess.rescorer.std: must be positive")

        def num(key: str, default: float, lo: float, hi: float) -> float:
            v = spec.get(key, default)
            try:
                v = float(v)
            except (TypeError, ValueError):
                raise InputError(f"postprocess.rescorer.{key}: not a number ({v!r})") from None
            if not lo <= v <= hi:
                raise InputError(f"postprocess.rescorer.{key}: {v} not in [{lo}, {hi}]")
            return v

        return cls(
            mean=arr("mean", (n,)),
            std=std,
            w1=arr("w1", (hidden, n)),
            b1=arr("b1", (hidden,)),
            w2=arr("w2", (hidden,)),
            b2=float(arr("b2", ())),
            keep_probability=num("keep_probability", 0.5, 0.0, 1.0),
            candidate_threshold=num("candidate_threshold", CANDIDATE_THRESHOLD, 0.0, 1.0),
            max_spacing_nm=num("max_spacing_nm", MAX_SPACING_NM, 0.0, 100.0),
            max_spacing_cv=num("max_spacing_cv", MAX_SPACING_CV, 0.0, 100.0),
            min_noise_level=num("min_noise_level", MIN_NOISE_LEVEL, 0.0, 100.0),
        )

    def gate(
        self,
        lattice: Lattice,
        pixel_size_nm: float | None,
        noise_level: float | Callable[[], float | None] | None,
        imaging: str | None,
        kept: Lattice | None = None,
    ) -> bool:
        """Whether the rescorer decides for this image (else the threshold and ramp do);
        see :func:`in_gate`."""
        return in_gate(
            lattice,
            pixel_size_nm,
            noise_level,
            imaging,
            max_spacing_nm=self.max_spacing_nm,
            max_spacing_cv=self.max_spacing_cv,
            min_noise_level=self.min_noise_level,
            kept=kept,
        )

    def probability(self, feats: np.ndarray) -> np.ndarray:
        """Probability that each peak (a row of :func:`features`) is a column."""
        x = (np.asarray(feats, dtype=np.float64) - self.mean) / self.std
        z = np.tanh(x @ self.w1.T + self.b1) @ self.w2 + self.b2
        return 1.0 / (1.0 + np.exp(-z))

    def keep(self, feats: np.ndarray) -> np.ndarray:
        return self.probability(feats) >= self.keep_probability


def features(
    image: np.ndarray,
    positions_px: np.ndarray,
    confidence: np.ndarray,
    *,
    base_threshold: float,
    noise_level: float,
    pixel_size_nm: float,
    dark: bool,
    spacing_px: float | None = None,
) -> np.ndarray:
    """The (N, 12) feature matrix of :data:`FEATURE_NAMES` for N candidate peaks.

    ``image`` is the image the heatmap was computed on (the network's working sampling),
    ``positions_px``/``confidence`` the peaks after suppression, ``base_threshold`` the
    card's threshold (its peaks define the lattice spacing: ``spacing_px``, the median
    nearest-neighbour distance of the peaks at it, where the caller has it already).
    """
    pos = np.asarray(positions_px, dtype=np.float64).reshape(-1, 2)
    conf = np.asarray(confidence, dtype=np.float64).reshape(-1)
    n = len(pos)
    out = np.zeros((n, len(FEATURE_NAMES)), dtype=np.float64)
    if n == 0:
        return out
    hi = conf >= base_threshold
    if spacing_px is not None and math.isfinite(spacing_px):
        spacing = float(spacing_px)
    elif hi.sum() > 1:
        spacing = float(np.median(nearest_neighbour_distances_px(pos[hi])))
    elif n > 1:
        spacing = float(np.median(nearest_neighbour_distances_px(pos)))
    else:
        spacing = 0.3 / pixel_size_nm
    spacing = max(spacing, 1e-6)
    tree = cKDTree(pos)
    k = min(_N_NEIGHBOURS + 1, n)
    kk = max(min(_N_HIGHER, n), k)
    # One neighbour query (its first k columns are the nearest peaks), in blocks: a huge
    # image's million candidates x 20 neighbours would cost ~0.6 GB at once.
    neighbour_conf = np.empty((n, max(k - 1, 1)))
    for start in range(0, n, _BLOCK):
        rows = slice(start, min(start + _BLOCK, n))
        d2, i2 = tree.query(pos[rows], k=kk)
        m = len(pos[rows])
        d2, i2 = np.asarray(d2).reshape(m, kk), np.asarray(i2).reshape(m, kk)
        neighbour_conf[rows] = conf[i2[:, 1:k]] if k > 1 else conf[rows, None]
        higher = conf[i2] > conf[rows, None]
        nearest = np.where(higher, d2, np.inf).min(axis=1)
        out[rows, 5] = np.minimum(nearest / spacing, 3.0)
    out[:, 0] = _logit(conf)
    out[:, 1] = noise_level
    out[:, 2] = _logit(np.median(neighbour_conf, axis=1))
    out[:, 3] = _logit(np.quantile(conf, 0.9))
    out[:, 4] = (conf > _FEATURE_CONFIDENT).mean()
    if hi.any():
        near = cKDTree(pos[hi]).query_ball_point(pos, _CLOSE_FRACTION * spacing, return_length=True)
        out[:, 6] = np.asarray(near) - hi.astype(int)
    img = -np.asarray(image) if dark else np.asarray(image)
    prom = local_prominence(img, pos, np.full(n, spacing))
    ref = prom[conf >= _PROMINENCE_REFERENCE]
    med = float(np.median(ref)) if len(ref) else 0.0
    if med <= 0:
        med = float(np.median(np.abs(prom))) + 1e-9
    out[:, 7] = np.clip(prom / med, -3, 3)
    out[:, 8] = math.log(spacing * pixel_size_nm)
    out[:, 9] = float(dark)
    out[:, 10] = _logit(neighbour_conf.min(axis=1))
    out[:, 11] = np.argsort(np.argsort(-conf, kind="stable"), kind="stable") / max(n - 1, 1)
    return out
