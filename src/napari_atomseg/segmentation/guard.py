"""The default method's guard against confident nonsense.

``method="auto"`` (the default everywhere) runs the U-Net/Bragg average and then checks:

1. **Is there a lattice at all?** (:func:`lattice_in_view`: spots or a ring in the power
   spectrum, :mod:`napari_atomseg.scale.spectrum`, with the same rule the pixel-size
   estimate uses, or three weaker spots that close as lattice vectors do.) Without one,
   nothing can be crystal: every pixel the models call crystal is amorphous, and the
   result says ``has_lattice=False`` -- an amorphous *support* (single atoms on carbon),
   not contamination on a crystal, so the main job does not flag columns there.
2. **Do the U-Net and the Bragg filter disagree grossly?** With a lattice in view, when
   the U-Net calls at least :data:`GROSS_DISAGREEMENT` more of the image amorphous than
   the Bragg filter does, the crystal is one the network was not trained for (it has
   seen few crystals like it), and the Bragg filter -- which needs no training and sees
   any lattice -- is used instead, with a warning. The opposite disagreement (Bragg
   flags much more) only warns: a noisy lattice makes the Bragg residual high too.
3. **Is the input inside the model's training range?** Pixel size (given or estimated)
   beyond what the model saw after its scale jitter, a very noisy image, a handful of
   grey levels: warnings only.

``method="unet"`` runs the same checks but only warns.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

#: U-Net amorphous fraction minus the Bragg filter's, on an image with a lattice, above
#: which the default falls back to the Bragg filter.
GROSS_DISAGREEMENT = 0.35
#: Bragg amorphous fraction minus the U-Net's above which a warning is given.
REVERSE_DISAGREEMENT = 0.5
#: Share of the image variance that is pixel noise above which the input is "very noisy".
MAX_NOISE_FRACTION = 0.85
#: Fewer distinct grey levels than this: the image is coarsely quantised.
MIN_GREY_LEVELS = 12
#: The contamination model saw lattice periods down to about this many working pixels.
MIN_PERIOD_WORKING_PX = 2.5


@dataclass
class GuardReport:
    """What the checks found: the method that made the labels, and the warnings."""

    method_used: str
    has_lattice: bool = True
    warnings: list[str] = field(default_factory=list)


def lattice_in_view(image: np.ndarray) -> bool:
    """True when the power spectrum shows a lattice: spots in two directions, a ring, or
    one very strong spot direction (the pixel-size estimate's rule,
    :func:`napari_atomseg.scale.estimate.lattice_evidence`), or else three weaker spots
    that close as lattice vectors do (:func:`napari_atomseg.scale.spectrum.closing_spots`:
    a lattice whose spots the transfer function damps is still a lattice)."""
    from ..scale.estimate import lattice_evidence
    from ..scale.spectrum import closing_spots, lattice_peaks

    peaks, spec = lattice_peaks(image)
    return bool(lattice_evidence(peaks)[0]) or bool(closing_spots(spec))


def noise_fraction(image: np.ndarray) -> float:
    """Share of the image's variance that is pixel-to-pixel noise (1 for white noise).

    Half the variance of differences between neighbouring pixels over the variance of the
    image, on the finer of the two axes (smooth structure barely changes from one pixel
    to the next; white noise changes fully).
    """
    img = np.asarray(image, dtype=np.float32)
    var = float(img.var())
    if var <= 0:
        return 0.0
    dy = float(np.diff(img, axis=0).var())
    dx = float(np.diff(img, axis=1).var())
    return min(1.0, 0.5 * min(dy, dx) / var)


def input_warnings(
    image: np.ndarray,
    pixel_size_nm: float | None,
    working_pixel_size_nm: float | None,
    lattice_period_px: float | None,
) -> list[str]:
    """Warnings for inputs outside what the contamination model was trained on."""
    out = []
    known = pixel_size_nm is not None and working_pixel_size_nm and lattice_period_px
    if known and math.isfinite(lattice_period_px):
        period_work = lattice_period_px * pixel_size_nm / working_pixel_size_nm
        if period_work < MIN_PERIOD_WORKING_PX:
            out.append(
                f"the lattice period is {period_work:.2g} px at the model's working "
                f"sampling ({working_pixel_size_nm:g} nm/px), finer than it was trained on; "
                "check the pixel size"
            )
    nf = noise_fraction(image)
    if nf > MAX_NOISE_FRACTION:
        out.append(
            f"the image is mostly pixel noise ({100 * nf:.0f} % of its variance): outside "
            "the training range, the masks are unreliable"
        )
    levels = np.unique(np.asarray(image).ravel()[:: max(1, np.asarray(image).size // 200_000)])
    if levels.size < MIN_GREY_LEVELS:
        out.append(
            f"only {levels.size} grey levels: a coarsely quantised export; use the original "
            "data if you have it"
        )
    return out


def contamination_decision(
    unet_labels: np.ndarray, bragg_only_labels: np.ndarray, lattice: bool, fallback: bool
) -> tuple[np.ndarray, GuardReport]:
    """The labels to return and why (see the module docstring).

    ``unet_labels`` are the U-Net/Bragg average's classes (0 crystal, 1 amorphous, 2
    vacuum), ``bragg_only_labels`` the Bragg method's on the same image, ``lattice``
    whether a lattice is in view, ``fallback`` whether a gross disagreement may switch to
    the Bragg filter (``method="auto"``) or only warns (``"unet"``).
    """
    report = GuardReport(method_used="unet")
    if not lattice:
        report.has_lattice = False
        out = unet_labels.copy()
        out[out == 0] = 1
        report.warnings.append(
            "no lattice in view (no spots or ring in the power spectrum): nothing is "
            "called crystal; the amorphous class is the support (or a film), not "
            "contamination on a crystal"
        )
        return out, report
    unet_amorphous = float(np.mean(unet_labels == 1))
    bragg_amorphous = float(np.mean(bragg_only_labels == 1))
    gap = unet_amorphous - bragg_amorphous
    if gap >= GROSS_DISAGREEMENT:
        message = (
            f"the U-Net calls {100 * unet_amorphous:.0f} % amorphous where the Bragg filter, "
            f"which sees the lattice, calls {100 * bragg_amorphous:.0f} %: a crystal unlike "
            "the training data"
        )
        if fallback:
            report.method_used = "bragg (fallback)"
            report.warnings.append(message + "; the Bragg filter's labels are used")
            return bragg_only_labels.copy(), report
        report.warnings.append(message + "; consider method='bragg'")
    elif -gap >= REVERSE_DISAGREEMENT:
        report.warnings.append(
            f"the Bragg filter calls {100 * bragg_amorphous:.0f} % amorphous, the U-Net "
            f"{100 * unet_amorphous:.0f} %: check the mask by eye"
        )
    return unet_labels, report
