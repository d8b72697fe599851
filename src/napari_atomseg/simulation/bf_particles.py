"""Bright-field TEM of metal nanoparticles on amorphous carbon, from survey to lattice scale.

What such images show, and how each is made here (lengths in nm):

- **particles darker than the support**: mass-thickness contrast (the objective aperture
  stops electrons scattered by the heavy particle: amplitude ``exp(-t / 2L)`` for a
  projected thickness ``t`` and a material-and-aperture length ``L``) and *diffraction
  contrast* (a particle near a Bragg condition loses much more; some particles, or one
  twin domain of a particle, are much darker than others);
- **lattice fringes at random orientations**: a two-beam phase modulation of spacing
  ``d`` (Au {111} 0.235, {200} 0.204, ...) across a particle, at a random angle per
  particle or twin domain; it survives only where the sampling resolves it;
- **Fresnel fringes** from defocus: the exit wave (amplitude and the mean-inner-
  potential phase of particles and carbon) is propagated through the objective's transfer
  function (defocus, Cs, aperture, temporal-coherence envelope), so edges ring;
- **amorphous-carbon texture**: a random phase of ~0.3 nm correlation whose rms grows
  with the square root of the film thickness, on a slowly varying thickness;
- **uneven illumination** (a ramp and a vignette), **low dose** (Poisson counts),
  **camera MTF** (noise blurred too), read noise, and **8-bit quantisation into a
  narrow grey range** (many instrument exports use a few tens of grey levels).

The wave is computed on a grid finer than the pixel (:data:`MAX_FINE_NM` nm, at most
:data:`MAX_OVERSAMPLE` fine pixels per pixel) and binned, so what the pixel cannot resolve averages out as it does in a camera.
The truth: ``mask`` (pixel covered >= 50 % by a particle's projection) and ``instances``
(the particle covering most of the pixel), for the particles the image shows: a particle
whose contrast against the support, integrated over its footprint, stays under
:data:`VISIBILITY_SNR` times the noise there (Poisson counts, read noise, the grey-level
step, and the support's own fluctuation at the particle's size) is left out, as an
annotator and every method would leave it out (it is counted in ``hidden_particles``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .._validate import check_pixel_size_nm, check_range
from ..errors import InputError

#: Mean inner potential (V) of each particle material; amorphous carbon ~10 V.
INNER_POTENTIAL_V = {"Au": 30.0, "Pt": 33.0, "Pd": 27.0, "Ag": 24.0, "Cu": 23.0}
CARBON_INNER_POTENTIAL_V = 10.0
#: Low-index lattice spacings (nm) each material shows as fringes.
FRINGE_SPACINGS_NM = {
    "Au": (0.2355, 0.2039, 0.1442),
    "Pt": (0.2265, 0.1962, 0.1387),
    "Pd": (0.2246, 0.1945, 0.1376),
    "Ag": (0.2359, 0.2043, 0.1445),
    "Cu": (0.2087, 0.1808, 0.1278),
}
#: The fine grid samples at least this finely (nm) with at most MAX_OVERSAMPLE fine
#: pixels per image pixel (survey images: the carbon's sub-nm texture and the fringes
#: average out in the camera pixel anyway).
MAX_FINE_NM = 0.1
MAX_OVERSAMPLE = 4
#: A particle is in the truth when its matched-filter contrast-to-noise ratio reaches
#: this (the atom engine's ``visibility_snr``).
VISIBILITY_SNR = 3.0


@dataclass(frozen=True)
class BFParticleParameters:
    """One bright-field image of particles on carbon (see the module docstring)."""

    shape_px: tuple[int, int] = (256, 256)
    pixel_size_nm: float = 0.5
    energy_keV: float = 200.0
    seed: int = 0
    material: str = "Au"
    mean_diameter_nm: float = 3.0
    diameter_log_sd: float = 0.25
    coverage: float = 0.12  # projected area fraction of the particles
    touching_fraction: float = 0.15  # particles placed in contact with another
    aspect_sd: float = 0.12  # log-sd of the in-plane elongation
    mass_thickness_nm: float = 25.0  # L: intensity exp(-t / L)
    p_diffracting: float = 0.3
    diffraction_length_nm: float = 8.0  # extra L of a diffracting particle / domain
    p_twinned: float = 0.3
    fringe_fraction: float = 0.5
    fringe_rad: float = 0.3  # phase amplitude of the fringes at full thickness
    support_thickness_nm: float = 15.0
    support_variation: float = 0.2
    support_texture_rad: float = 0.12  # rms texture phase for 10 nm of carbon
    defocus_nm: float = 100.0  # positive = underfocus
    cs_mm: float = 1.2
    aperture_mrad: float = 12.0
    focal_spread_nm: float = 5.0
    dose_e_per_px: float = 200.0
    read_noise_e: float = 2.0
    mtf_at_nyquist: float = 0.35
    illumination_gradient: float = 0.15
    vignetting: float = 0.1
    grey_range: float = 60.0
    grey_offset: float = 90.0
    quantise: bool = True
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_pixel_size_nm(self.pixel_size_nm)
        if self.material not in INNER_POTENTIAL_V:
            raise InputError(f"material: expected one of {sorted(INNER_POTENTIAL_V)}")
        if len(self.shape_px) != 2 or not all(16 <= int(v) <= 4096 for v in self.shape_px):
            raise InputError(f"shape_px: {self.shape_px} must be two sizes in 16-4096")
        check_range(self.coverage, 0.0, 0.7, "coverage")
        check_range(self.mean_diameter_nm, 0.5, 200.0, "mean_diameter_nm")
        check_range(self.grey_range, 2.0, 255.0, "grey_range")


@dataclass
class BFParticleResult:
    """The image (float32, 8-bit grey values when quantised), its truth, its parameters."""

    image: np.ndarray
    mask: np.ndarray
    instances: np.ndarray
    pixel_size_nm: float
    parameters: BFParticleParameters
    diameters_nm: np.ndarray
    #: every particle the pixels hold, shown or hidden (int32, 1..N; what the shipped
    #: bright-field model was trained on)
    all_instances: np.ndarray

    @property
    def hidden_particles(self) -> int:
        """Particles left out of the truth because the image does not show them."""
        return int(self.all_instances.max(initial=0)) - int(self.instances.max(initial=0))


def _wavelength_nm(energy_keV: float) -> float:
    e = energy_keV * 1e3
    return 1.22639 / math.sqrt(e * (1 + 0.97845e-6 * e))  # nm


def _interaction_rad_per_v_nm(energy_keV: float) -> float:
    """sigma (rad / (V nm)) of the phase-object approximation."""
    lam = _wavelength_nm(energy_keV) * 1e-9
    m0c2 = 510998.95
    e = energy_keV * 1e3
    # sigma = (2 pi / (lambda E)) (m0c2 + E) / (2 m0c2 + E), in rad / (V m)
    sigma = (2 * math.pi / (lam * e)) * (m0c2 + e) / (2 * m0c2 + e)
    return sigma * 1e-9


def _smooth_field(rng: np.random.Generator, shape: tuple[int, int], corr_px: float) -> np.ndarray:
    """Unit-variance Gaussian random field with a Gaussian correlation of ``corr_px``
    (white noise filtered in Fourier space: one FFT whatever the width)."""
    ky = np.fft.fftfreq(shape[0])[:, None]
    kx = np.fft.rfftfreq(shape[1])[None, :]
    sigma = max(corr_px, 0.5)
    gain = np.exp(-2.0 * (math.pi * sigma) ** 2 * (ky * ky + kx * kx))
    f = np.fft.irfft2(np.fft.rfft2(rng.standard_normal(shape)) * gain, s=shape)
    return (f / max(float(f.std()), 1e-12)).astype(np.float32)


def _place(rng: np.random.Generator, p: BFParticleParameters, extent_nm: tuple[float, float]):
    """Particle centres (y, x nm), radii (nm), aspect ratios and angles."""
    h_nm, w_nm = extent_nm
    area = h_nm * w_nm
    mean_area = math.pi * (p.mean_diameter_nm / 2) ** 2 * math.exp(2 * p.diameter_log_sd**2)
    n_target = int(rng.poisson(max(p.coverage * area / mean_area, 0.0)))
    centres, radii = [], []
    for _ in range(min(n_target, 20000)):
        r = 0.5 * p.mean_diameter_nm * math.exp(rng.normal(0.0, p.diameter_log_sd))
        for _attempt in range(20):
            if centres and rng.random() < p.touching_fraction:
                j = int(rng.integers(len(centres)))
                angle = rng.uniform(0, 2 * math.pi)
                dist = (radii[j] + r) * rng.uniform(0.85, 1.0)
                c = centres[j] + dist * np.array([math.sin(angle), math.cos(angle)])
                touching = True
            else:
                c = rng.uniform([-r, -r], [h_nm + r, w_nm + r])
                touching = False
            if centres:
                d = np.hypot(*(np.asarray(centres) - c).T)
                gap = d - (np.asarray(radii) + r)
                if (gap < (-0.15 * r if touching else 0.2 * r)).sum() > (1 if touching else 0):
                    continue
            centres.append(c)
            radii.append(r)
            break
    n = len(centres)
    aspect = np.exp(rng.normal(0.0, p.aspect_sd, n))
    angle = rng.uniform(0, math.pi, n)
    return np.asarray(centres).reshape(n, 2), np.asarray(radii), aspect, angle


def _particle_maps(rng, p: BFParticleParameters, fine_nm: float, shape: tuple[int, int]):
    """Fine-grid maps: thickness (nm), extra attenuation, fringe phase, particle index."""
    h, w = shape
    centres, radii, aspect, angle = _place(rng, p, (h * fine_nm, w * fine_nm))
    thick = np.zeros(shape, np.float32)
    extra = np.zeros(shape, np.float32)
    fringe = np.zeros(shape, np.float32)
    owner = np.zeros(shape, np.int32)
    spacings = FRINGE_SPACINGS_NM[p.material]
    for i in range(len(centres)):
        cy, cx = centres[i] / fine_nm
        a = radii[i] * math.sqrt(aspect[i]) / fine_nm
        b = radii[i] / math.sqrt(aspect[i]) / fine_nm
        reach = math.ceil(max(a, b)) + 1
        y0, y1 = max(0, int(cy) - reach), min(h, int(cy) + reach + 2)
        x0, x1 = max(0, int(cx) - reach), min(w, int(cx) + reach + 2)
        if y0 >= y1 or x0 >= x1:
            continue
        yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
        dy, dx = yy - cy, xx - cx
        ca, sa = math.cos(angle[i]), math.sin(angle[i])
        u, v = (dx * ca + dy * sa) / a, (-dx * sa + dy * ca) / b
        rho2 = u * u + v * v
        inside = rho2 < 1.0
        if not inside.any():
            continue
        # Chord through an ellipsoid, flattened on top for faceted particles.
        t = 2.0 * radii[i] * np.sqrt(np.clip(1.0 - rho2, 0.0, 1.0))
        t = np.minimum(t, 2.0 * radii[i] * rng.uniform(0.75, 1.0))
        domains = np.zeros_like(inside, dtype=np.int8)
        if rng.random() < p.p_twinned:
            theta = rng.uniform(0, math.pi)
            offset = rng.uniform(-0.5, 0.5)
            domains = ((u * math.cos(theta) + v * math.sin(theta)) > offset).astype(np.int8)
        att = np.zeros_like(t)
        phase = np.zeros_like(t)
        for dom in (0, 1):
            sel = domains == dom
            if rng.random() < p.p_diffracting:
                att[sel] = t[sel] / (p.diffraction_length_nm * rng.uniform(0.5, 2.0))
            if rng.random() < p.fringe_fraction:
                d = spacings[int(rng.integers(len(spacings)))]
                g = rng.uniform(0, 2 * math.pi)
                k = 2 * math.pi * fine_nm / d
                wave = np.cos(k * (xx * math.cos(g) + yy * math.sin(g)) + rng.uniform(0, 6.3))
                phase[sel] = (p.fringe_rad * t / (2 * radii[i]) * wave)[sel]
        region = (slice(y0, y1), slice(x0, x1))
        take = inside & (t > thick[region])
        thick[region] = np.where(take, t, thick[region])
        extra[region] = np.where(take, att, extra[region])
        fringe[region] = np.where(take, phase, fringe[region])
        owner[region] = np.where(take, i + 1, owner[region])
    return thick, extra, fringe, owner, 2.0 * radii


def _transfer(p: BFParticleParameters, shape: tuple[int, int], fine_nm: float) -> np.ndarray:
    """Objective transfer exp(-i chi) x aperture x temporal envelope, on the FFT grid."""
    lam = _wavelength_nm(p.energy_keV)
    ky = np.fft.fftfreq(shape[0], fine_nm)[:, None]
    kx = np.fft.fftfreq(shape[1], fine_nm)[None, :]
    k2 = ky * ky + kx * kx
    chi = math.pi * lam * p.defocus_nm * k2 - 0.5 * math.pi * (p.cs_mm * 1e6) * lam**3 * k2 * k2
    envelope = np.exp(-0.5 * (math.pi * lam * p.focal_spread_nm) ** 2 * k2 * k2)
    aperture = k2 <= (p.aperture_mrad * 1e-3 / lam) ** 2
    return (np.exp(-1j * chi) * envelope * aperture).astype(np.complex64)


def _bin(fine: np.ndarray, factor: int) -> np.ndarray:
    h, w = fine.shape[0] // factor, fine.shape[1] // factor
    return fine[: h * factor, : w * factor].reshape(h, factor, w, factor).mean(axis=(1, 3))


def render_bf_particles(p: BFParticleParameters, visible_truth: bool = True) -> BFParticleResult:
    """Simulate one bright-field image of particles on carbon (deterministic given seed).

    ``visible_truth=False`` skips the visibility test (a second propagation and a filter
    per particle size): the truth then holds every particle, as training uses it.
    """
    from .detector import apply_mtf

    rng = np.random.default_rng(p.seed)
    h, w = (int(v) for v in p.shape_px)
    factor = max(1, min(math.ceil(p.pixel_size_nm / MAX_FINE_NM), MAX_OVERSAMPLE))
    fine_nm = p.pixel_size_nm / factor
    shape = (h * factor, w * factor)
    sigma = _interaction_rad_per_v_nm(p.energy_keV)

    thick, extra, fringe, owner, diameters = _particle_maps(rng, p, fine_nm, shape)
    support = p.support_thickness_nm * (
        1.0 + p.support_variation * _smooth_field(rng, shape, 20.0 / fine_nm)
    )
    support = np.clip(support, 0.5, None)
    texture = (
        _smooth_field(rng, shape, 0.15 / fine_nm) * p.support_texture_rad * np.sqrt(support / 10.0)
    )
    support_phase = sigma * CARBON_INNER_POTENTIAL_V * support + texture
    phase = support_phase + sigma * INNER_POTENTIAL_V[p.material] * thick + fringe
    log_amp = -0.5 * (thick / p.mass_thickness_nm + extra + support / 400.0)
    transfer = _transfer(p, shape, fine_nm)
    intensity = _image_intensity(log_amp, phase, transfer, factor)

    illumination = _illumination(rng, p, (h, w))
    expected = np.maximum(intensity * illumination, 0.0) * p.dose_e_per_px
    counts = rng.poisson(expected).astype(np.float32)
    counts = apply_mtf(counts, p.mtf_at_nyquist)
    counts += rng.normal(0.0, p.read_noise_e, counts.shape).astype(np.float32)
    lo, hi = np.percentile(apply_mtf(expected.astype(np.float32), p.mtf_at_nyquist), [0.5, 99.5])
    counts_per_grey = max(hi - lo, 1e-6) / p.grey_range
    image = p.grey_offset + (counts - lo) / counts_per_grey
    if p.quantise:
        image = np.clip(np.rint(image), 0, 255)

    inside = _bin((owner > 0).astype(np.float32), factor)
    every = _majority_owner(owner, factor, inside >= 0.5)
    instances = every
    if visible_truth:
        bare = _image_intensity(-0.5 * support / 400.0, support_phase, transfer, factor)
        bare_counts = np.maximum(bare * illumination, 0.0) * p.dose_e_per_px
        noise_var = p.read_noise_e**2 + (counts_per_grey**2 / 12.0 if p.quantise else 0.0)
        instances = _keep_labels(every, _visible_particles(expected, bare_counts, every, noise_var))
    return BFParticleResult(
        image=image.astype(np.float32),
        mask=instances > 0,
        instances=instances,
        pixel_size_nm=float(p.pixel_size_nm),
        parameters=p,
        diameters_nm=diameters,
        all_instances=every,
    )


def _image_intensity(log_amp, phase, transfer: np.ndarray, factor: int) -> np.ndarray:
    """|exit wave through the objective|^2, binned to the camera pixels."""
    wave = np.exp(log_amp + 1j * phase).astype(np.complex64)
    image_wave = np.fft.ifft2(np.fft.fft2(wave) * transfer)
    return _bin((image_wave.real**2 + image_wave.imag**2).astype(np.float32), factor)


def _illumination(rng: np.random.Generator, p: BFParticleParameters, shape) -> np.ndarray:
    """A ramp times a vignette (relative intensity, about 1)."""
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    ramp = 1.0 + p.illumination_gradient * (
        math.cos(a := rng.uniform(0, 2 * math.pi)) * (xx / w - 0.5) + math.sin(a) * (yy / h - 0.5)
    )
    r2 = ((yy - rng.uniform(0, h)) / h) ** 2 + ((xx - rng.uniform(0, w)) / w) ** 2
    return ramp * (1.0 - p.vignetting * r2)


def _visible_particles(
    expected: np.ndarray, bare: np.ndarray, instances: np.ndarray, noise_var: float
) -> list[int]:
    """Labels whose mean contrast over their pixels reaches VISIBILITY_SNR x the noise of
    that mean: shot, read and grey-step noise averaged over the footprint, plus the bare
    support's own fluctuation between footprint-sized patches (which averaging keeps)."""
    from scipy import ndimage as ndi

    n = int(instances.max())
    if n == 0:
        return []
    labels = np.arange(1, n + 1)
    area = ndi.sum(np.ones_like(expected), instances, labels)
    contrast = ndi.mean(bare - expected, instances, labels)
    shot = ndi.mean(bare, instances, labels)
    side = np.clip(np.rint(np.sqrt(area)).astype(int), 1, None)
    clutter = np.zeros(n)
    for s in np.unique(side):
        patches = ndi.uniform_filter(bare, size=int(s), mode="reflect")
        detail = patches - ndi.uniform_filter(bare, size=int(4 * s + 1), mode="reflect")
        clutter[side == s] = float(np.std(detail))
    snr = np.abs(contrast) / np.sqrt((shot + noise_var) / np.maximum(area, 1) + clutter**2)
    return [int(label) for label in labels[snr >= VISIBILITY_SNR]]


def _keep_labels(instances: np.ndarray, keep: list[int]) -> np.ndarray:
    """``instances`` with only the ``keep`` labels, relabelled 1..N."""
    from skimage.segmentation import relabel_sequential

    kept = np.where(np.isin(instances, keep), instances, 0)
    return relabel_sequential(kept)[0].astype(np.int32)


def _majority_owner(owner: np.ndarray, factor: int, mask: np.ndarray) -> np.ndarray:
    """The particle covering most of each masked pixel (0 elsewhere), relabelled 1..N."""
    from skimage.segmentation import relabel_sequential

    h, w = mask.shape
    blocks = owner[: h * factor, : w * factor].reshape(h, factor, w, factor)
    blocks = blocks.transpose(0, 2, 1, 3).reshape(h, w, factor * factor)
    if factor == 1:
        out = blocks[..., 0]
    else:
        # Mode of each block's non-zero owners: each sub-pixel's owner is a candidate,
        # counted over its block (factor^2 <= 100 candidates).
        best = np.zeros((h, w), np.int32)
        best_n = np.zeros((h, w), np.int32)
        for j in range(factor * factor):
            cand = blocks[..., j]
            n = (blocks == cand[..., None]).sum(axis=-1)
            better = (n > best_n) & (cand > 0)
            best = np.where(better, cand, best)
            best_n = np.where(better, n, best_n)
        out = best
    out = np.where(mask, out, 0).astype(np.int32)
    return relabel_sequential(out)[0].astype(np.int32)


def random_bf_parameters(
    rng: np.random.Generator,
    diameter_px: tuple[float, float] = (5.0, 48.0),
    diameter_nm: tuple[float, float] = (1.5, 12.0),
    pixel_size_nm: tuple[float, float] = (0.03, 1.5),
    shape_px: tuple[int, int] = (256, 256),
    materials: dict[str, float] | None = None,
) -> BFParticleParameters:
    """A random bright-field recipe: particles ``diameter_px`` across (log-uniform) from
    ``diameter_nm`` particles, so pixel sizes span survey (~1 nm/px) to lattice-resolving
    (~0.05 nm/px) sampling; optics, carbon, dose, camera and export drawn around what
    real instruments give."""

    def logu(lo: float, hi: float) -> float:
        """A log-uniform draw from [lo, hi]."""
        return float(math.exp(rng.uniform(math.log(lo), math.log(hi))))

    weights = materials or {"Au": 2.0, "Pt": 1.0, "Pd": 1.0, "Ag": 0.5, "Cu": 0.3}
    names = list(weights)
    prob = np.array([weights[n] for n in names], float)
    material = names[int(rng.choice(len(names), p=prob / prob.sum()))]
    d_nm = logu(*diameter_nm)
    d_px = logu(*diameter_px)
    px = float(np.clip(d_nm / d_px, *pixel_size_nm))
    lam = _wavelength_nm(200.0)
    # Fresnel fringes up to ~2 px wide: |defocus| <= (2 px)^2 / lambda.
    max_df = (2.0 * px) ** 2 / lam
    grey_range = logu(12.0, 200.0)
    return BFParticleParameters(
        shape_px=shape_px,
        pixel_size_nm=px,
        energy_keV=float(rng.choice([80.0, 200.0, 300.0], p=[0.15, 0.6, 0.25])),
        seed=int(rng.integers(0, 2**31 - 1)),
        material=material,
        mean_diameter_nm=d_nm,
        diameter_log_sd=rng.uniform(0.08, 0.4),
        coverage=rng.uniform(0.02, 0.4),
        touching_fraction=rng.uniform(0.0, 0.35),
        aspect_sd=rng.uniform(0.0, 0.2),
        mass_thickness_nm=logu(4.0, 25.0),
        p_diffracting=rng.uniform(0.0, 0.6),
        diffraction_length_nm=logu(3.0, 20.0),
        p_twinned=rng.uniform(0.0, 0.5),
        fringe_fraction=rng.uniform(0.0, 0.9),
        fringe_rad=rng.uniform(0.1, 0.6),
        support_thickness_nm=logu(3.0, 40.0),
        support_variation=rng.uniform(0.0, 0.35),
        support_texture_rad=rng.uniform(0.05, 0.3),
        defocus_nm=float(rng.uniform(-max_df, max_df)),
        cs_mm=rng.uniform(0.0, 2.0),
        aperture_mrad=rng.uniform(5.0, 30.0),
        focal_spread_nm=rng.uniform(2.0, 8.0),
        dose_e_per_px=logu(25.0, 3000.0),
        read_noise_e=rng.uniform(0.0, 4.0),
        mtf_at_nyquist=rng.uniform(0.08, 0.7),
        illumination_gradient=rng.uniform(0.0, 0.5),
        vignetting=rng.uniform(0.0, 0.4),
        grey_range=grey_range,
        grey_offset=rng.uniform(0.0, 255.0 - grey_range),
        quantise=bool(rng.random() < 0.8),
    )
