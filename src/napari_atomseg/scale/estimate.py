"""One physical pixel-size estimate per image: :func:`estimate_image_scale`.

First resort, wherever a lattice is visible: the spots and rings of the power spectrum
(:mod:`.spectrum`) are matched to the spacings a catalogue material shows along one of its
zone axes (:mod:`.reflections`). Each hypothesis -- a zone, a family assigned to one of
the strongest peaks -- fixes a pixel size ``p = spacing_nm / period_px``; it is scored by

- how much of the observed peak strength its predicted spacings explain (within 3.5 % in
  period) and whether the angles between the explained spots are angles its reciprocal
  lattice has (within 4 degrees);
- a penalty for each reflection it predicts at a lower frequency than every observed
  peak (low orders pass every transfer function best, so they are rarely missing);
- priors: how common the material and zone axis are (:func:`.reflections.zone_prior`) and a broad
  log-normal prior on the pixel size itself
  (median :data:`PIXEL_PRIOR_MEDIAN_NM`, log-sd :data:`PIXEL_PRIOR_LOG_SD`: most
  lattice images are sampled at 0.005-0.1 nm/px).

Hypotheses whose pixel sizes agree within 3 % are pooled (graphene and hBN, or a zone
seen through two of its reflections); the confidence is the pooled posterior of the best
group, lowered when the lattice is faint. Naming the material (``material=``) restricts
the match to its zone axes. The winning pixel size is refined from every explained peak,
and for the best hypotheses a linear distortion of the pixel grid (non-square pixels, scan
shear; :func:`_distortion`) is fitted to the spots and the hypothesis re-scored in the
undistorted frame, with a prior against large distortions: the result then has different
pixel sizes along y and x.

Without a lattice (single atoms, amorphous film, survey images of particles) it falls
back to the width of the finest features (:func:`napari_atomseg.backend.scale.
measure_scale_features`) against :data:`FEATURE_SIGMA_REFERENCE_NM`, with low confidence
and a warning; a featureless image gives ``pixel_size_nm=None`` and a warning. It never
raises for lack of structure.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from .._validate import as_image2d
from ..errors import InputError
from .reflections import ZoneReflections, reflections_for, zone_prior
from .spectrum import SpectrumPeak, fold_angle_deg, lattice_peaks

#: Layer-metadata key under which widgets keep an image's estimate.
SCALE_METADATA_KEY = "atomseg_scale"
#: Broad prior on the pixel size of a lattice image (median, log-sd).
PIXEL_PRIOR_MEDIAN_NM = 0.025
PIXEL_PRIOR_LOG_SD = 1.2
#: Pixel sizes a lattice hypothesis may give at all.
LATTICE_PIXEL_RANGE_NM = (0.002, 0.5)
#: A peak is explained by a predicted spacing within this relative difference in period.
MATCH_TOLERANCE = 0.035
#: Angles between explained spots must be reciprocal-lattice angles within this many degrees.
ANGLE_TOLERANCE_DEG = 4.0
#: Hypotheses whose pixel sizes agree within this relative difference are pooled.
POOL_TOLERANCE = 0.03
#: Score weights (nats): explained fraction, angle consistency, reflections predicted at
#: lower frequency than every observed peak but not seen.
W_EXPLAINED = 8.0
W_ANGLES = 3.0
W_MISSING = 2.0
#: The strongest peaks tried as the anchor of a hypothesis, and the families tried for it.
N_ANCHORS = 3
N_ANCHOR_FAMILIES = 4
#: Only the lowest-order families explain peaks: dense high orders would explain any
#: stray peak and favour needlessly small pixel sizes.
N_MATCH_FAMILIES = 10
MIN_ANCHOR_INTENSITY = 0.04
#: Relative difference of the y and x pixel sizes reported as non-square.
MIN_ANISOTROPY = 0.02
#: Non-square pixels: prior log-sd of the y/x pixel-size ratio, the largest |ln ratio|
#: considered, the loose match that feeds its fit, and how many hypotheses try it.
ANISOTROPY_LOG_SD = 0.1
MAX_LOG_ANISOTROPY = 0.25
ANISOTROPY_FIT_TOLERANCE = 0.12
N_ANISOTROPY_HYPOTHESES = 12
#: Spots along one direction only (no second direction, no ring) count as a lattice only
#: this strong; "one direction" means within COLLINEAR_DEG degrees.
MIN_LONE_SPOT_PROMINENCE = 6.0
COLLINEAR_DEG = 5.0
#: Width (sigma) of the finest features of an atomic-resolution image, nm: the reference
#: the atom finder ``atoms_default`` measured on its training examples (probe-limited
#: columns and single atoms), used when no lattice is visible.
FEATURE_SIGMA_REFERENCE_NM = 0.038


@dataclass(frozen=True)
class MatchedPeak:
    """An observed peak and the spacing it was assigned (``None``: unexplained)."""

    peak: SpectrumPeak
    spacing_nm: float | None


@dataclass(frozen=True)
class Alternative:
    """A pooled group of hypotheses: pixel size, posterior, and its best material/zone."""

    pixel_size_nm: float
    probability: float
    material: str
    zone_axis: str
    spacing_nm: float


@dataclass(frozen=True)
class ImageScale:
    """A physical pixel-size estimate and how it was reached.

    Attributes
    ----------
    pixel_size_nm
        nm per pixel (the geometric mean of y and x), or ``None`` when nothing in the
        image carries a length scale.
    pixel_size_yx_nm
        ``(y, x)`` pixel sizes; equal unless the lattice shows non-square pixels.
    source
        ``"lattice"`` (spectrum peaks matched to a catalogue material), ``"material"``
        (the same, with the material named by the user), ``"features"`` (width of the
        finest features; no lattice), ``"user"`` (typed in) or ``"none"``.
    confidence
        0-1: the posterior of the chosen pixel size among the lattice hypotheses, lowered
        for faint lattices; 0.2 for the feature width; 1 for a user value.
    material, zone_axis, spacing_nm
        The hypothesis that won (lattice sources): e.g. ``graphene``, ``001``, 0.2134.
    peaks
        The observed spectrum peaks and the spacing each was explained by.
    alternatives
        Other pooled hypotheses, most probable first (what else the lattice could be).
    warnings
        Human-readable caveats (ambiguity, fallbacks, clipping).
    """

    pixel_size_nm: float | None
    pixel_size_yx_nm: tuple[float, float] | None = None
    source: str = "none"
    confidence: float = 0.0
    material: str | None = None
    zone_axis: str | None = None
    spacing_nm: float | None = None
    peaks: tuple[MatchedPeak, ...] = ()
    alternatives: tuple[Alternative, ...] = ()
    warnings: tuple[str, ...] = ()
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def confidence_label(self) -> str:
        """``high`` (>= 0.8), ``medium`` (>= 0.5), ``low`` or ``none``."""
        if self.pixel_size_nm is None:
            return "none"
        return "high" if self.confidence >= 0.8 else "medium" if self.confidence >= 0.5 else "low"

    @property
    def has_lattice(self) -> bool:
        """True when a lattice was found in the spectrum (sources lattice / material)."""
        return self.source in ("lattice", "material") or bool(self.extra.get("lattice_found"))

    def describe(self) -> str:
        """One line for a status bar: value, source, confidence."""
        if self.pixel_size_nm is None:
            return "pixel size unknown (no lattice, no features)"
        value = f"{self.pixel_size_nm:.4g} nm/px"
        y, x = self.pixel_size_yx_nm or (self.pixel_size_nm, self.pixel_size_nm)
        if abs(y / x - 1.0) > MIN_ANISOTROPY:
            value += f" (y {y:.4g}, x {x:.4g})"
        if self.source in ("lattice", "material"):
            how = f"{self.material} [{self.zone_axis}] {self.spacing_nm:.4g} nm spacing"
        else:
            how = {"features": "feature width", "user": "typed in"}.get(self.source, self.source)
        return f"{value} from {how}, {self.confidence_label} confidence ({self.confidence:.2f})"

    def with_user_value(self, pixel_size_nm: float) -> ImageScale:
        """This estimate replaced by a value the user typed (kept: what it replaced)."""
        from .._validate import check_pixel_size_nm

        value = check_pixel_size_nm(pixel_size_nm)
        assert value is not None
        replaced = {"replaced": self.describe()} if self.pixel_size_nm is not None else {}
        return ImageScale(
            pixel_size_nm=value,
            pixel_size_yx_nm=(value, value),
            source="user",
            confidence=1.0,
            peaks=self.peaks,
            extra={**replaced, "lattice_found": self.has_lattice},
        )

    def to_metadata(self) -> dict[str, Any]:
        """A JSON-friendly dict (what widgets keep in ``layer.metadata``)."""
        return {
            "pixel_size_nm": self.pixel_size_nm,
            "pixel_size_yx_nm": list(self.pixel_size_yx_nm) if self.pixel_size_yx_nm else None,
            "source": self.source,
            "confidence": round(float(self.confidence), 4),
            "confidence_label": self.confidence_label,
            "material": self.material,
            "zone_axis": self.zone_axis,
            "spacing_nm": self.spacing_nm,
            "description": self.describe(),
            "peaks": [
                {
                    "period_px": round(m.peak.period_px, 4),
                    "angle_deg": None if m.peak.ring else round(m.peak.angle_deg, 2),
                    "prominence": round(m.peak.prominence, 3),
                    "ring": m.peak.ring,
                    "spacing_nm": m.spacing_nm,
                }
                for m in self.peaks
            ],
            "alternatives": [
                {
                    "pixel_size_nm": a.pixel_size_nm,
                    "probability": round(a.probability, 4),
                    "material": a.material,
                    "zone_axis": a.zone_axis,
                    "spacing_nm": a.spacing_nm,
                }
                for a in self.alternatives
            ],
            "warnings": list(self.warnings),
            "extra": {
                k: v for k, v in self.extra.items() if isinstance(v, (str, int, float, bool))
            },
        }

    @classmethod
    def from_metadata(cls, data: Mapping[str, Any]) -> ImageScale:
        """Inverse of :meth:`to_metadata` (peaks and alternatives included)."""
        try:
            peaks = tuple(
                MatchedPeak(
                    SpectrumPeak(
                        k=1.0 / float(p["period_px"]),
                        ky=0.0,
                        kx=1.0 / float(p["period_px"]),
                        angle_deg=math.nan if p.get("angle_deg") is None else float(p["angle_deg"]),
                        prominence=float(p["prominence"]),
                        ring=bool(p.get("ring", False)),
                    ),
                    None if p.get("spacing_nm") is None else float(p["spacing_nm"]),
                )
                for p in data.get("peaks") or ()
            )
            alts = tuple(
                Alternative(
                    float(a["pixel_size_nm"]),
                    float(a["probability"]),
                    str(a["material"]),
                    str(a["zone_axis"]),
                    float(a["spacing_nm"]),
                )
                for a in data.get("alternatives") or ()
            )
            yx = data.get("pixel_size_yx_nm")
            px = data.get("pixel_size_nm")
            return cls(
                pixel_size_nm=None if px is None else float(px),
                pixel_size_yx_nm=None if yx is None else (float(yx[0]), float(yx[1])),
                source=str(data.get("source", "none")),
                confidence=float(data.get("confidence", 0.0)),
                material=data.get("material"),
                zone_axis=data.get("zone_axis"),
                spacing_nm=None if data.get("spacing_nm") is None else float(data["spacing_nm"]),
                peaks=peaks,
                alternatives=alts,
                warnings=tuple(str(w) for w in data.get("warnings") or ()),
                extra=dict(data.get("extra") or {}),
            )
        except (KeyError, TypeError, ValueError, ZeroDivisionError) as exc:
            raise InputError(f"pixel-size estimate in the metadata is malformed ({exc})") from exc


@dataclass(frozen=True)
class _Hypothesis:
    zone: ZoneReflections
    pixel_size_nm: float  # geometric mean of y and x
    anchor_spacing_nm: float
    log_score: float
    assigned: tuple[float | None, ...]  # spacing explaining each observed peak
    anchor_index: int = 0
    #: Row-major 2 x 2 map of the peaks into a square-pixel frame (None: square pixels).
    transform: tuple[float, float, float, float] | None = None

    @property
    def transform_matrix(self) -> np.ndarray | None:
        """:attr:`transform` as a 2 x 2 array (None: square pixels)."""
        return None if self.transform is None else np.asarray(self.transform).reshape(2, 2)


#: Only this many of the strongest explained spots enter the angle check (pairs grow
#: quadratically; faint spots add little).
N_ANGLE_SPOTS = 10


def _angle_consistency(
    peaks: Sequence[SpectrumPeak], assigned: Sequence[float | None], zone: ZoneReflections
) -> float:
    """Weighted fraction of explained spot pairs whose angle the zone's lattice has."""
    angles = {f.spacing_nm: np.asarray(f.angles_deg) for f in zone.families}
    spots = [(p, s) for p, s in zip(peaks, assigned) if s is not None and not p.ring]
    spots = sorted(spots, key=lambda ps: -ps[0].prominence)[:N_ANGLE_SPOTS]
    ok = total = 0.0
    for i in range(len(spots)):
        for j in range(i + 1, len(spots)):
            (pa, sa), (pb, sb) = spots[i], spots[j]
            observed = fold_angle_deg(pa.angle_deg - pb.angle_deg)
            diff = np.abs(angles[sa][:, None] - angles[sb][None, :]) % 180.0
            allowed = np.minimum(diff, 180.0 - diff)
            weight = pa.prominence * pb.prominence
            total += weight
            if float(np.abs(allowed - observed).min()) <= ANGLE_TOLERANCE_DEG:
                ok += weight
    return ok / total if total > 0 else 1.0


def _score(
    zone: ZoneReflections,
    anchor_k: float,
    anchor_spacing: float,
    peaks: Sequence[SpectrumPeak],
    k_min: float,
    prior: float,
) -> _Hypothesis | None:
    px = anchor_k * anchor_spacing
    if not LATTICE_PIXEL_RANGE_NM[0] <= px <= LATTICE_PIXEL_RANGE_NM[1]:
        return None
    visible = [f for f in zone.families[:N_MATCH_FAMILIES] if k_min <= px / f.spacing_nm <= 0.48]
    if not visible:
        return None
    k = np.array([p.k for p in peaks])
    spacing = np.array([f.spacing_nm for f in visible])
    # Strong peaks count more than many faint ones (detector streaks, noise).
    weight = np.array([p.prominence for p in peaks]) ** 2
    mismatch = np.abs(np.log(k[:, None] * spacing[None, :] / px))
    nearest = np.argmin(mismatch, axis=1)
    hit = mismatch[np.arange(len(k)), nearest] <= MATCH_TOLERANCE
    assigned = [float(spacing[j]) if h else None for j, h in zip(nearest, hit)]
    explained, total = float(weight[hit].sum()), float(weight.sum())
    # Low-order reflections are the ones every transfer function passes best: a
    # hypothesis that puts a family at a lower frequency than any peak observed, where
    # nothing is seen, is unlikely (weakly, for nearly extinct families).
    k_lowest = float(k.min())
    missing = sum(
        min(1.0, math.sqrt(f.intensity / 0.1))
        for f in visible
        if px / f.spacing_nm < k_lowest * (1 - MATCH_TOLERANCE)
    )
    log_px = math.log(px / PIXEL_PRIOR_MEDIAN_NM) / PIXEL_PRIOR_LOG_SD
    # Without the angle term (added by _with_angles: it can only lower the score).
    log_score = (
        W_EXPLAINED * explained / total
        - W_MISSING * missing
        + math.log(prior)
        - 0.5 * log_px * log_px
    )
    return _Hypothesis(zone, px, anchor_spacing, log_score, tuple(assigned))


#: Hypotheses this far (nats) below the best are not worth their angle check.
ANGLE_CHECK_MARGIN = 10.0


def _with_angles(hyps: Sequence[_Hypothesis], peaks: Sequence[SpectrumPeak]) -> list[_Hypothesis]:
    """The hypotheses with the angle term added, best first; those that cannot reach the
    best even without an angle penalty are dropped (the angle term is <= 0)."""
    out: list[_Hypothesis] = []
    best = -math.inf
    for h in sorted(hyps, key=lambda h: -h.log_score):
        if h.log_score < best - ANGLE_CHECK_MARGIN:
            break
        consistency = _angle_consistency(peaks, h.assigned, h.zone)
        h = replace(h, log_score=h.log_score - W_ANGLES * (1.0 - consistency))
        best = max(best, h.log_score)
        out.append(h)
    return out


def _stretched(peaks: Sequence[SpectrumPeak], transform: np.ndarray | None) -> list[SpectrumPeak]:
    """The peaks as square pixels would show them: ``k' = T k`` (``T`` of determinant 1)."""
    if transform is None:
        return list(peaks)
    out = []
    for p in peaks:
        if p.ring:
            out.append(p)
            continue
        ky, kx = transform @ np.array([p.ky, p.kx])
        angle = math.degrees(math.atan2(ky, kx)) % 180.0
        out.append(
            SpectrumPeak(float(math.hypot(ky, kx)), float(ky), float(kx), angle, p.prominence)
        )
    return out


def _distortion(h: _Hypothesis, peaks: Sequence[SpectrumPeak]) -> np.ndarray | None:
    """The linear distortion (non-square pixels, scan shear) ``h``'s spots imply.

    A spot of spacing ``d`` at ``k`` (cycles/px) obeys ``k^T M k = 1 / d^2`` with ``M``
    the symmetric metric of the pixel grid (``M = I / p^2`` for square pixels of size
    ``p``): linear least squares in its three entries, over the spots loosely matched to
    ``h``'s families. Returns ``T = sqrt(M) / det(M)^(1/4)`` (determinant 1: it maps the
    peaks to a square-pixel frame of the same mean pixel size), or None when the spots do
    not span two directions or the distortion is implausibly large.
    """
    rows, rhs, weights = [], [], []
    for p in peaks:
        if p.ring:
            continue
        f = min(h.zone.families, key=lambda f: abs(math.log(p.k * f.spacing_nm / h.pixel_size_nm)))
        if abs(math.log(p.k * f.spacing_nm / h.pixel_size_nm)) <= ANISOTROPY_FIT_TOLERANCE:
            rows.append((p.ky * p.ky, 2.0 * p.ky * p.kx, p.kx * p.kx))
            rhs.append(1.0 / f.spacing_nm**2)
            weights.append(p.prominence)
    if len(rows) < 3:
        return None
    w = np.sqrt(np.asarray(weights))
    a = np.asarray(rows) * w[:, None]
    b = np.asarray(rhs) * w
    sv = np.linalg.svd(a, compute_uv=False)
    if sv[-1] < 0.05 * sv[0]:
        return None
    (u, c, v), *_ = np.linalg.lstsq(a, b, rcond=None)
    metric = np.array([[u, c], [c, v]])
    evals, evecs = np.linalg.eigh(metric)
    if evals.min() <= 0 or abs(0.25 * math.log(evals.max() / evals.min())) > MAX_LOG_ANISOTROPY:
        return None
    root = evecs @ np.diag(np.sqrt(evals)) @ evecs.T
    return root / math.sqrt(math.sqrt(evals.prod()))


def _log_anisotropy(transform: np.ndarray | None) -> float:
    """ln of the larger singular value of a determinant-1 map (0 = no distortion)."""
    if transform is None:
        return 0.0
    return float(math.log(np.linalg.svd(transform, compute_uv=False)[0]))


def _with_anisotropy(
    hyps: Sequence[_Hypothesis], peaks: Sequence[SpectrumPeak], k_min: float, named: bool
) -> list[_Hypothesis]:
    """The best hypotheses re-scored in the pixel frame their spots imply."""
    out = list(hyps)
    seen = set()
    for h in sorted(hyps, key=lambda h: -h.log_score):
        key = (h.zone.label, round(math.log(h.pixel_size_nm), 2))
        if key in seen:
            continue
        seen.add(key)
        if len(seen) > N_ANISOTROPY_HYPOTHESES:
            break
        transform = _distortion(h, peaks)
        amount = _log_anisotropy(transform)
        if transform is None or amount < MIN_ANISOTROPY / 2:
            continue
        fixed = _stretched(peaks, transform)
        n_zones = len(reflections_for(h.zone.material))
        prior = 1.0 if named else zone_prior(h.zone.material, h.zone.zone_axis, n_zones)
        again = _score(h.zone, fixed[h.anchor_index].k, h.anchor_spacing_nm, fixed, k_min, prior)
        if again is None:
            continue
        again = _with_angles([again], fixed)[0]
        penalty = 0.5 * (amount / ANISOTROPY_LOG_SD) ** 2
        out.append(
            replace(
                again,
                log_score=again.log_score - penalty,
                anchor_index=h.anchor_index,
                transform=tuple(transform.ravel()),
            )
        )
    return out


def _hypotheses(
    peaks: Sequence[SpectrumPeak], zones: Sequence[ZoneReflections], k_min: float, named: bool
) -> list[_Hypothesis]:
    anchors = sorted(peaks, key=lambda p: -p.prominence)[:N_ANCHORS]
    n_zones = {}
    for z in zones:
        n_zones[z.material] = n_zones.get(z.material, 0) + 1
    out = []
    for zone in zones:
        # A material's prior is shared by its zone axes; a named material has no prior.
        prior = 1.0 if named else zone_prior(zone.material, zone.zone_axis, n_zones[zone.material])
        families = [f for f in zone.families if f.intensity >= MIN_ANCHOR_INTENSITY]
        for anchor in anchors:
            index = list(peaks).index(anchor)
            for fam in families[:N_ANCHOR_FAMILIES]:
                h = _score(zone, anchor.k, fam.spacing_nm, peaks, k_min, prior)
                if h is not None:
                    out.append(replace(h, anchor_index=index))
    return out


def _refined_pixel_size(h: _Hypothesis, peaks: Sequence[SpectrumPeak]) -> tuple[float, float]:
    """(y, x) pixel sizes from every peak ``h`` explains (in its square-pixel frame)."""
    transform = h.transform_matrix
    logs, weights = [], []
    for p, s in zip(_stretched(peaks, transform), h.assigned):
        if s is not None:
            logs.append(math.log(p.k * s))
            weights.append(p.prominence)
    mean = math.exp(float(np.average(logs, weights=weights)))
    if transform is None:
        return mean, mean
    # A spot along y (k = (1, 0)) maps to the first column of T: p_y = mean / |T e_y|.
    return mean / float(np.hypot(*transform[:, 0])), mean / float(np.hypot(*transform[:, 1]))


def _pool(hyps: Sequence[_Hypothesis]) -> list[tuple[float, list[_Hypothesis]]]:
    """Group hypotheses by pixel size (within POOL_TOLERANCE); (probability, members)."""
    scores = np.array([h.log_score for h in hyps])
    weights = np.exp(scores - scores.max())
    weights /= weights.sum()
    groups: list[tuple[float, list[_Hypothesis]]] = []
    for i in np.argsort(-weights):
        h = hyps[int(i)]
        for g, (prob, members) in enumerate(groups):
            if abs(math.log(h.pixel_size_nm / members[0].pixel_size_nm)) <= POOL_TOLERANCE:
                groups[g] = (prob + float(weights[i]), [*members, h])
                break
        else:
            groups.append((float(weights[i]), [h]))
    return sorted(groups, key=lambda g: -g[0])


def lattice_evidence(peaks: Sequence[SpectrumPeak]) -> tuple[list[SpectrumPeak], str]:
    """The peaks that make a lattice, and a note when some were set aside.

    A 2-D lattice shows spots in two directions, many crystals a ring. Spots along one
    line only (the streak of a straight edge, scan-line noise, or the fringes of one
    particle) count as a lattice only when the strongest is very strong
    (:data:`MIN_LONE_SPOT_PROMINENCE`), and then as that spot alone.
    """
    peaks = list(peaks)
    spots = [p for p in peaks if not p.ring]
    if any(p.ring for p in peaks) or not spots:
        return peaks, ""
    first = spots[0].angle_deg
    if any(fold_angle_deg(p.angle_deg - first) > COLLINEAR_DEG for p in spots):
        return peaks, ""
    strongest = max(spots, key=lambda p: p.prominence)
    if strongest.prominence >= MIN_LONE_SPOT_PROMINENCE:
        return [strongest], ""
    return [], (
        f"{len(spots)} spectral peak(s) along one direction only (period "
        f"{strongest.period_px:.3g} px) were not taken as a lattice"
    )


def _features_fallback(img: np.ndarray, warnings: list[str], lattice_found: bool) -> ImageScale:
    from ..backend.scale import measure_scale_features

    try:
        sigma_px = measure_scale_features(img).feature_sigma_px
    except InputError:
        warnings.append(
            "no lattice and no measurable features: the pixel size cannot be estimated; "
            "give it (nm/px) if you know it"
        )
        return ImageScale(None, source="none", warnings=tuple(warnings))
    px = FEATURE_SIGMA_REFERENCE_NM / sigma_px
    warnings.append(
        "no lattice in the power spectrum: pixel size from the width of the finest "
        f"features ({sigma_px:.2g} px taken as {FEATURE_SIGMA_REFERENCE_NM} nm, atom-sized); "
        "low confidence -- give the pixel size if you know it"
    )
    return ImageScale(
        pixel_size_nm=px,
        pixel_size_yx_nm=(px, px),
        source="features",
        confidence=0.2,
        warnings=tuple(warnings),
        extra={"feature_sigma_px": float(sigma_px), "lattice_found": lattice_found},
    )


def estimate_image_scale(
    image: Any,
    material: str | None = None,
    zone_axis: str | None = None,
) -> ImageScale:
    """Estimate the physical pixel size of a micrograph (see the module docstring).

    Parameters
    ----------
    image
        Any real 2-D array (not modified).
    material
        A catalogue material (:func:`napari_atomseg.simulation.list_materials`) to pin the
        spacings, e.g. ``"graphene"`` ({100} = 0.2134 nm); ``None`` matches them all.
    zone_axis
        With ``material``: restrict to one zone axis (e.g. ``"001"``).

    Returns
    -------
    ImageScale
        Never raises for lack of structure: a featureless image gives
        ``pixel_size_nm=None`` and a warning.
    """
    zones = reflections_for(material, zone_axis)
    img = as_image2d(image)
    peaks, spec = lattice_peaks(img)
    warnings: list[str] = []
    peaks, note = lattice_evidence(peaks)
    if note:
        warnings.append(note)
    if not peaks:
        return _features_fallback(img, warnings, lattice_found=False)
    named = material is not None
    hyps = _with_angles(_hypotheses(peaks, zones, spec.k_min, named), peaks)
    if not hyps:
        name = material or "any catalogue material"
        warnings.append(f"the spectrum peaks fit no spacing of {name} at a plausible pixel size")
        return _features_fallback(img, warnings, lattice_found=True)
    groups = _pool(_with_anisotropy(hyps, peaks, spec.k_min, named))
    prob, members = groups[0]
    best = max(members, key=lambda h: h.log_score)
    yx = _refined_pixel_size(best, peaks)
    px = math.sqrt(yx[0] * yx[1])
    aniso = abs(math.log(yx[0] / yx[1])) >= MIN_ANISOTROPY
    strength = min(1.0, max(p.prominence for p in peaks) / 4.0)
    confidence = float(prob * strength)
    alternatives = tuple(
        Alternative(
            g[1][0].pixel_size_nm,
            g[0],
            max(g[1], key=lambda h: h.log_score).zone.material,
            max(g[1], key=lambda h: h.log_score).zone.zone_axis,
            max(g[1], key=lambda h: h.log_score).anchor_spacing_nm,
        )
        for g in groups[1:6]
    )
    if alternatives and alternatives[0].probability > 0.1:
        alt = alternatives[0]
        warnings.append(
            f"the lattice also fits {alt.material} [{alt.zone_axis}] at {alt.pixel_size_nm:.4g} "
            f"nm/px (probability {alt.probability:.2f}); name the material to pin the spacing"
        )
    if aniso:
        warnings.append(
            f"pixels look non-square (y {yx[0]:.4g}, x {yx[1]:.4g} nm/px): scan distortion "
            "or a miscalibrated axis"
        )
    matched = tuple(MatchedPeak(p, s) for p, s in zip(peaks, best.assigned))
    extra: dict[str, Any] = {"lattice_found": True, "n_hypotheses": len(hyps)}
    if best.transform is not None:
        extra["distortion"] = ",".join(f"{v:.4f}" for v in best.transform)
    return ImageScale(
        pixel_size_nm=px,
        pixel_size_yx_nm=yx,
        source="material" if material is not None else "lattice",
        confidence=confidence,
        material=best.zone.material,
        zone_axis=best.zone.zone_axis,
        spacing_nm=best.anchor_spacing_nm,
        peaks=matched,
        alternatives=alternatives,
        warnings=tuple(warnings),
        extra=extra,
    )


def scale_from_metadata(metadata: Mapping[str, Any]) -> ImageScale | None:
    """The estimate a widget stored in a layer's metadata, or ``None``.

    Parameters
    ----------
    metadata
        A layer's ``metadata`` mapping.

    Returns
    -------
    ImageScale or None
        The estimate under :data:`SCALE_METADATA_KEY`; None when there is none.
    """
    data = metadata.get(SCALE_METADATA_KEY)
    return ImageScale.from_metadata(data) if isinstance(data, Mapping) else None


__all__ = [
    "SCALE_METADATA_KEY",
    "Alternative",
    "ImageScale",
    "MatchedPeak",
    "estimate_image_scale",
    "scale_from_metadata",
]
