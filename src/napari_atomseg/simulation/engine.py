"""`simulate()`: parameters -> micrograph + exact ground truth + training targets.

The work is a generator (:func:`simulate_steps`) that yields
:class:`~napari_atomseg._progress.Progress` and returns a :class:`SimulationResult`; the
napari widget runs it in a worker, :func:`simulate` drains it. Everything is
deterministic given the parameters: independent random streams for the specimen, the
scan, the rendering and the noise are derived from ``seed``, so changing e.g. the dose
changes the noise but not the atoms.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from .._progress import Progress, ProgressGenerator, drain
from . import detector as det
from .groundtruth import (
    column_table,
    inside_field,
    local_mean,
    local_std,
    peak_distance_ratio,
    sample_nearest,
    sublattice_consensus,
)
from .parameters import SimulationParameters
from .scene import REGIONS, Scene, build_scene
from .targets import heatmap_and_labels, mean_spacing

#: regions whose columns are each on their own (no sublattice to agree with)
_INDEPENDENT_REGIONS = (REGIONS.index("single_atom"), REGIONS.index("adatom"))
#: number of independent random streams derived from the seed
_STREAMS = ("scene", "scan", "render", "noise", "extra")
#: specimen margin (Angstrom) around a STEM field beyond the probe's reach: atoms this far
#: outside still add probe-tail signal, and the periodic FFT grid must not wrap it back
STEM_MARGIN_A = 10.0


@dataclass
class SimulationResult:
    """A synthetic micrograph with its exact ground truth (see the module contract)."""

    image: np.ndarray
    image_clean: np.ndarray
    pixel_size_nm: float
    columns: pd.DataFrame
    heatmap: np.ndarray
    masks: dict[str, np.ndarray]
    column_spacing_nm: float
    parameters: SimulationParameters
    info: dict[str, Any] = field(default_factory=dict)


def random_streams(seed: int) -> dict[str, np.random.Generator]:
    """Independent generators for each stage, all derived from ``seed``."""
    children = np.random.SeedSequence(int(seed)).spawn(len(_STREAMS))
    return {name: np.random.default_rng(child) for name, child in zip(_STREAMS, children)}


def simulate(parameters: SimulationParameters, deformation: Any = None) -> SimulationResult:
    """Simulate one micrograph (blocking). See :func:`simulate_steps` for progress.

    Parameters
    ----------
    parameters
        Everything about the specimen, the microscope and the detector; its ``seed``
        makes the result deterministic.
    deformation
        A :class:`~napari_atomseg.simulation.deformation.Deformation` that strains,
        rotates or shifts the specimen's columns by a known field before imaging (None:
        none).

    Returns
    -------
    SimulationResult
        The noisy ``image`` and noise-free ``image_clean``, the pixel size (nm), the
        ground-truth ``columns`` table, the training ``heatmap`` and ``masks``, the mean
        column spacing (nm) and the parameters.
    """
    return drain(simulate_steps(parameters, deformation))


def simulate_steps(
    parameters: SimulationParameters, deformation: Any = None
) -> ProgressGenerator[SimulationResult]:
    """Generator version of :func:`simulate`: yields Progress, returns the result.

    Parameters
    ----------
    parameters, deformation
        As for :func:`simulate`.

    Yields
    ------
    Progress
        Per stage (specimen, imaging, detector noise, ground truth), with the multislice
        engine's own progress in the multislice modes.

    Returns
    -------
    SimulationResult
        What :func:`simulate` returns.
    """
    p = parameters
    if not isinstance(p, SimulationParameters):
        from ..errors import InputError

        raise InputError(f"simulate: expected SimulationParameters, got {type(p).__name__}")
    rngs = random_streams(p.seed)
    multislice = p.mode.endswith("multislice")
    total = 100 if multislice else 4
    yield Progress(0, total, "building the specimen")
    if p.mode.startswith("haadf"):
        result = yield from _haadf(p, rngs, total, multislice, deformation)
    else:
        result = yield from _hrtem(p, rngs, total, multislice, deformation)
    yield Progress(total, total, "done")
    return result


def _rescaled(gen, start: int, stop: int, total: int):
    """Re-emit a sub-generator's Progress inside [start, stop] of ``total``; return its value."""
    while True:
        try:
            step = next(gen)
        except StopIteration as done:
            return done.value
        done_units = start + int((stop - start) * step.fraction)
        yield Progress(done_units, total, step.message)


# --- fast HAADF ----------------------------------------------------------------------------
def _fov_bounds(p: SimulationParameters) -> tuple[float, float, float, float]:
    px = p.pixel_size_nm * 10
    h, w = p.shape_px
    return (-0.5 * px, (h - 0.5) * px, -0.5 * px, (w - 0.5) * px)


def _stem_margin_A(p: SimulationParameters, distortion: det.ScanDistortion) -> float:
    alpha = p.convergence_mrad * 1e-3
    probe_radius = abs(p.defocus_nm * 10) * alpha + abs(p.cs_um * 1e4) * alpha**3
    probe_radius += abs(p.astigmatism_nm * 10) * alpha
    return (
        STEM_MARGIN_A + probe_radius + 3 * p.source_size_nm * 10 + distortion.max_displacement_A()
    )


def _deformed(scene: Scene, p: SimulationParameters, deformation: Any) -> Scene:
    """The scene under ``deformation`` (centred on the field), or as it is."""
    if deformation is None:
        return scene
    h, w = p.shape_px
    centre_A = np.array([(h - 1) / 2, (w - 1) / 2]) * p.pixel_size_nm * 10
    if deformation.origin_nm is not None:
        centre_A = np.asarray(deformation.origin_nm, dtype=np.float64) * 10
    return deformation.apply(scene, centre_A)


def _haadf(p: SimulationParameters, rngs, total: int, multislice: bool, deformation=None):
    from .stem import render_haadf, stem_grid

    px = p.pixel_size_nm * 10
    distortion = det.ScanDistortion.from_parameters(p, rngs["scan"])
    grid = stem_grid(p, _stem_margin_A(p, distortion))
    scene = build_scene(p, grid.bounds_A, _fov_bounds(p), rngs["scene"], explicit=multislice)
    scene = _deformed(scene, p, deformation)
    yield Progress(1, total, "imaging (fast incoherent HAADF)")
    probe_yx = None if distortion.is_identity else distortion.probe_positions_A()
    # The fast model always runs: it gives each column's own signal for "visible".
    img = render_haadf(p, scene, grid, probe_yx, rngs["render"])
    fraction = img.columns.astype(np.float64) + img.other
    if multislice:
        from .multislice import haadf_multislice_steps

        steps = haadf_multislice_steps(p, scene, grid, probe_yx, rngs["render"])
        fraction = (yield from _rescaled(steps, 5, total - 5, total)).astype(np.float64)
    yield Progress(total - 3, total, "detector noise")

    noise = rngs["noise"]
    electrons = p.dose_e_per_A2 * px * px  # electrons per probe position
    expected = electrons * fraction
    if p.background_level > 0:
        bg = det.smooth_background(p.shape_px, noise, scale_px=max(p.shape_px) / 3)
        expected = expected + p.background_level * max(expected.mean(), electrons * 1e-3) * bg
    ramp = det.illumination_ramp(p.shape_px, p.illumination_gradient, noise)
    expected = expected * ramp
    counted = noise.poisson(np.maximum(expected, 0.0)).astype(np.float32)
    clean = det.scan_lowpass((p.detector_gain * expected).astype(np.float32), p.scan_lowpass_px)
    image = det.scan_lowpass(p.detector_gain * counted, p.scan_lowpass_px)
    clean, image = _response(p, clean, image)
    if p.scan_line_noise > 0:
        rms = p.scan_line_noise * p.detector_gain * np.sqrt(max(float(expected.mean()), 1e-6))
        image = image + det.line_offsets(p.shape_px, rms, noise)
    clean = clean + np.float32(p.dark_offset_counts)
    image = image + np.float32(p.dark_offset_counts)
    if p.read_noise_counts > 0:
        image = image + noise.normal(0.0, p.read_noise_counts, image.shape).astype(np.float32)
    if p.bright_spots_per_megapixel > 0:
        level = p.detector_gain * max(float(expected.mean()), 1.0)
        image = det.add_bright_spots(image, p.bright_spots_per_megapixel, level, noise)
    yield Progress(total - 2, total, "ground truth and targets")

    # Where each column appears: scan distortion, then the detector's lag along x.
    r, c = distortion.apparent_pixels(scene.column_yx_A[:, 0], scene.column_yx_A[:, 1])
    c = c + det.lowpass_delay_px(p.scan_lowpass_px)
    keep = np.nonzero(inside_field(r, c, p.shape_px))[0]
    r, c = r[keep], c[keep]
    # Columns of one sublattice are equally bright. (Atoms below the focal plane are
    # seen with a fainter, defocused probe: their own peak.)
    peak = img.psf_peak_per_A2 if img.column_peak_per_A2 is None else img.column_peak_per_A2[keep]
    signal = electrons * _consensus(scene, keep, r, c, peak * img.column_signal_A2[keep])
    signal = signal * sample_nearest(ramp, r, c)
    shot_var = np.maximum(sample_nearest(expected, r, c), 0.0)  # counts cannot be negative
    read_var = (p.read_noise_counts / p.detector_gain) ** 2
    window = max(5, round(0.6 / p.pixel_size_nm))
    clutter = sample_nearest(local_std(electrons * img.other * ramp, window), r, c)
    # Matched-filter SNR: the eye (and a network) integrates a column over its footprint,
    # which averages white noise but not the correlated clutter of amorphous material.
    footprint_px = max(1.0, img.psf_area_A2 / (px * px))
    snr = signal / np.sqrt((shot_var + read_var) / footprint_px + clutter**2 + 1e-12)
    # The local noise differs from column to column; a sublattice is seen or not as a whole.
    snr = _consensus(scene, keep, r, c, snr)
    # Resolved: a peak of its own in the noise-free image of the columns (same detector lag).
    ratio = peak_distance_ratio(
        det.scan_lowpass(img.columns.astype(np.float32), p.scan_lowpass_px), r, c
    )
    resolved = _consensus(scene, keep, r, c, ratio) <= 1.0
    visible = (snr >= p.visibility_snr) & resolved
    probe_positions = probe_yx if probe_yx is not None else _pixel_centres_A(p)
    return _finish(
        p,
        scene,
        image,
        clean,
        keep,
        r,
        c,
        visible,
        probe_positions,
        {"oversample": grid.oversample, "internal_shape": grid.shape, "snr": snr},
    )


def _pixel_centres_A(p: SimulationParameters) -> tuple[np.ndarray, np.ndarray]:
    px = p.pixel_size_nm * 10
    h, w = p.shape_px
    r, c = np.meshgrid(np.arange(h) * px, np.arange(w) * px, indexing="ij")
    return r, c


# --- fast HRTEM ----------------------------------------------------------------------------
def _hrtem(p: SimulationParameters, rngs, total: int, multislice: bool, deformation=None):
    from .hrtem import delocalisation_A, hrtem_grid, render_hrtem

    px = p.pixel_size_nm * 10
    # Atoms outside the field contribute through delocalisation; beyond ~50 A what they
    # add is faint fringes, so the margin is capped to keep grids small.
    margin = 10.0 + min(delocalisation_A(p), 50.0) + p.drift_blur_nm * 10
    grid = hrtem_grid(p, margin)
    scene = build_scene(p, grid.bounds_A, _fov_bounds(p), rngs["scene"], explicit=multislice)
    scene = _deformed(scene, p, deformation)
    yield Progress(1, total, "imaging (fast phase-object HRTEM)")
    img = render_hrtem(p, scene, grid, rngs["render"])
    intensity = img.intensity.astype(np.float32)
    if multislice:
        from .multislice import hrtem_multislice_steps

        steps = hrtem_multislice_steps(p, scene, grid, rngs["render"])
        intensity = yield from _rescaled(steps, 5, total - 5, total)
    yield Progress(total - 3, total, "camera noise")

    noise = rngs["noise"]
    if p.drift_blur_nm > 0:
        angle = noise.uniform(0, 2 * np.pi)
        intensity = det.motion_blur(intensity, p.drift_blur_nm / p.pixel_size_nm, angle)
    # What the specimen shows (before the slowly varying background and ramp): the
    # ground truth's "visible" is read from this noise-free image.
    seen = det.apply_mtf(intensity, p.mtf_at_nyquist)
    if p.background_level > 0:
        bg = det.smooth_background(p.shape_px, noise, scale_px=max(p.shape_px) / 3)
        intensity = intensity + np.float32(p.background_level * float(intensity.mean())) * bg
    ramp = det.illumination_ramp(p.shape_px, p.illumination_gradient, noise)
    intensity = intensity * ramp
    electrons = p.dose_e_per_A2 * px * px  # electrons per camera pixel in vacuum
    expected = electrons * np.maximum(intensity, 0.0)
    counted = noise.poisson(expected).astype(np.float32)
    clean = det.apply_mtf(expected.astype(np.float32), p.mtf_at_nyquist) * np.float32(
        p.detector_gain
    )
    image = det.apply_mtf(counted, p.mtf_at_nyquist) * np.float32(p.detector_gain)
    clean, image = _response(p, clean, image)
    clean = clean + np.float32(p.dark_offset_counts)
    image = image + np.float32(p.dark_offset_counts)
    if p.read_noise_counts > 0:
        image = image + noise.normal(0.0, p.read_noise_counts, image.shape).astype(np.float32)
    if p.bright_spots_per_megapixel > 0:
        level = p.detector_gain * electrons
        image = det.add_bright_spots(image, p.bright_spots_per_megapixel, level, noise)
    yield Progress(total - 2, total, "ground truth and targets")

    r = scene.column_yx_A[:, 0] / px
    c = scene.column_yx_A[:, 1] / px
    keep = np.nonzero(inside_field(r, c, p.shape_px))[0]
    r, c = r[keep], c[keep]
    # A column's contrast is what the noise-free image shows at it against the local mean
    # (HRTEM contrast is non-linear and delocalised: the linear image of the column alone
    # can be ~0 at a heavy column that the image shows as a strong dark blob). Equivalent
    # columns (same composition and region) share one value, so it cannot flicker with
    # the sub-pixel position.
    window = max(5, round(0.6 / p.pixel_size_nm))
    signed = _consensus(scene, keep, r, c, sample_nearest(seen - local_mean(seen, window), r, c))
    contrast = np.abs(signed)
    clutter = sample_nearest(
        local_std(det.apply_mtf(img.other_contrast, p.mtf_at_nyquist), window), r, c
    )
    local_i = np.maximum(sample_nearest(intensity, r, c), 1e-3)
    noise_rel2 = (
        1.0 / (electrons * local_i) + (p.read_noise_counts / (p.detector_gain * electrons)) ** 2
    )
    footprint_px = max(1.0, img.psf_area_A2 / (px * px))
    snr = contrast / np.sqrt(noise_rel2 / footprint_px + clutter**2 + 1e-12)
    snr = _consensus(scene, keep, r, c, snr)
    # Resolved: a peak (bright or dark, as the column's contrast) of its own in that image.
    sign = np.where(signed >= 0, 1.0, -1.0)
    resolved = _consensus(scene, keep, r, c, peak_distance_ratio(seen, r, c, sign)) <= 1.0
    visible = (snr >= p.visibility_snr) & resolved
    return _finish(
        p,
        scene,
        image,
        clean,
        keep,
        r,
        c,
        visible,
        _pixel_centres_A(p),
        {"oversample": grid.oversample, "internal_shape": grid.shape, "snr": snr},
    )


# --- common ----------------------------------------------------------------------------------
def _response(p: SimulationParameters, clean: np.ndarray, image: np.ndarray):
    """The detector's non-linearity and saturation, on the signal above the dark level."""
    if p.detector_gamma == 1.0 and p.detector_saturation <= 0:
        return clean, image
    reference = float(np.percentile(clean, 99.9))
    return (
        det.detector_response(clean, p.detector_gamma, p.detector_saturation, reference),
        det.detector_response(image, p.detector_gamma, p.detector_saturation, reference),
    )


def _consensus(
    scene: Scene, keep: np.ndarray, r: np.ndarray, c: np.ndarray, values: np.ndarray
) -> np.ndarray:
    """Per-column ``values`` made equal over each sublattice (see sublattice_consensus)."""
    counts = scene.column_counts[keep]
    region = scene.column_region[keep]
    return sublattice_consensus(
        values,
        counts,
        region,
        np.column_stack([r, c]),
        counts @ scene.column_atomic_numbers(),
        independent=np.isin(region, _INDEPENDENT_REGIONS),
    )


def _finish(
    p: SimulationParameters,
    scene: Scene,
    image: np.ndarray,
    clean: np.ndarray,
    keep: np.ndarray,
    r: np.ndarray,
    c: np.ndarray,
    visible: np.ndarray,
    positions_A: tuple[np.ndarray, np.ndarray],
    info: dict[str, Any],
) -> SimulationResult:
    """Column table, targets and masks; assemble the result."""
    table = column_table(scene, keep, r, c, p.pixel_size_nm, visible)
    vis = np.nonzero(visible)[0]
    heat, labels, _ = heatmap_and_labels(
        p.shape_px,
        r[vis],
        c[vis],
        (vis + 1).astype(np.int32),
        p.heatmap_sigma_fraction,
        p.heatmap_sigma_max_nm / p.pixel_size_nm,
        p.label_radius_fraction,
        0.12 / p.pixel_size_nm,
    )
    ys, xs = positions_A
    masks = {
        "classes": scene.class_mask(ys, xs),
        "particle": scene.particle_mask(ys, xs),
        "column_labels": labels,
    }
    spacing = mean_spacing(r[vis], c[vis]) * p.pixel_size_nm
    info = dict(info)
    info["n_scene_columns"] = scene.n_columns
    info["snr"] = info["snr"]
    return SimulationResult(
        image=np.ascontiguousarray(image, dtype=np.float32),
        image_clean=np.ascontiguousarray(clean, dtype=np.float32),
        pixel_size_nm=float(p.pixel_size_nm),
        columns=table,
        heatmap=heat,
        masks=masks,
        column_spacing_nm=float(spacing),
        parameters=p,
        info=info,
    )
