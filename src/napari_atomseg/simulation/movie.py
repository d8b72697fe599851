"""Synthetic HAADF movies with known trajectories, for tracking and drift registration.

One specimen (built once by the engine's :func:`~.scene.build_scene`) is imaged frame
after frame while

- the stage drifts: a random walk, scaled so that its largest excursion from frame 0 is
  ``drift_max_nm``; the drift moves the whole content of frame ``t`` by ``drift_px[t]``
  (row, col) relative to frame 0, applied as an exact Fourier phase ramp;
- single atoms hop: on a crystal between the lattice's hollow sites (the Voronoi
  vertices of the projected columns that keep clear of every column), on an amorphous
  support by a random step of ``hop_distance_nm``;
- a fraction of the crystal's columns fades for a few frames (its signal falls to
  ``fade_level`` of its own), as columns do under beam damage or a passing focus change;
- every frame gets its own shot noise at the given dose.

The imaging is the engine's fast incoherent HAADF model (:func:`~.stem.haadf_spectra`):
the static specimen is rendered once, the moving atoms and fading columns are added by
linearity each frame. Scan distortions within a frame are not modelled.

:func:`plan_movie` decides everything random up front (drift, hops, fades) and returns
the exact ground truth; :func:`render_frame` makes one frame of a plan, so a long movie
can be streamed to disk (:func:`iter_movie_frames`) without holding it in memory.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import fft as sfft
from scipy.spatial import Voronoi, cKDTree

from .._progress import Progress, ProgressGenerator, drain
from ..errors import InputError
from . import _fft
from .parameters import SimulationParameters

#: Truth columns: object id, frame, raw position in that frame, visibility, kind and site.
TRUTH_COLUMNS = ("object_id", "frame", "y_px", "x_px", "visible", "kind", "site")


@dataclass(frozen=True)
class MovieParameters:
    """A movie: the frame's :class:`SimulationParameters` plus what changes over time.

    ``frame.mode`` must be ``"haadf"``; ``frame.seed`` seeds everything. ``hop_distance_nm``
    applies on an amorphous support (``frame.scene`` other than ``"lattice"``); on a
    crystal atoms hop to a neighbouring hollow site.
    """

    frame: SimulationParameters = field(
        default_factory=lambda: SimulationParameters(
            material="MoS2", shape_px=(512, 512), pixel_size_nm=0.02, dose_e_per_A2=5e3
        )
    )
    n_frames: int = 100
    frame_time_s: float = 1.0
    drift_max_nm: float = 2.0
    hopping_element: str = "Pt"
    n_hopping_atoms: int = 12
    hop_probability: float = 0.15
    hop_distance_nm: tuple[float, float] = (0.2, 0.4)
    fading_fraction: float = 0.02
    fade_frames: tuple[int, int] = (2, 5)
    fade_level: float = 0.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "hop_distance_nm", tuple(float(v) for v in self.hop_distance_nm))
        object.__setattr__(self, "fade_frames", tuple(int(v) for v in self.fade_frames))
        if not isinstance(self.frame, SimulationParameters):
            raise InputError("MovieParameters.frame: expected SimulationParameters")
        if self.frame.mode != "haadf":
            raise InputError(f"movies are simulated in 'haadf' mode, got {self.frame.mode!r}")
        if self.frame.scan_jitter_px or self.frame.flyback_px or any(self.frame.drift_nm):
            raise InputError("movies do not model scan distortion within a frame")
        if not 2 <= int(self.n_frames) <= 100_000:
            raise InputError(f"n_frames: {self.n_frames} must be between 2 and 100000")
        checks = (
            (self.drift_max_nm, 0.0, 1e3, "drift_max_nm"),
            (self.hop_probability, 0.0, 1.0, "hop_probability"),
            (self.fading_fraction, 0.0, 1.0, "fading_fraction"),
            (self.fade_level, 0.0, 1.0, "fade_level"),
            (self.frame_time_s, 1e-9, 1e6, "frame_time_s"),
        )
        for value, low, high, name in checks:
            if not low <= float(value) <= high:
                raise InputError(f"{name}: {value} must be within {low:g}-{high:g}")
        lo, hi = self.fade_frames
        if self.fading_fraction > 0 and not 1 <= lo <= hi < self.n_frames:
            raise InputError(f"fade_frames: {self.fade_frames} must be 1 <= min <= max < n_frames")
        if self.n_hopping_atoms < 0:
            raise InputError(f"n_hopping_atoms: {self.n_hopping_atoms} must be >= 0")

    def replace(self, **changes: Any) -> MovieParameters:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)


@dataclass
class MoviePlan:
    """Everything random about a movie, decided up front, and what it needs to render."""

    parameters: MovieParameters
    drift_px: np.ndarray  # (T, 2) content shift of frame t relative to frame 0, (row, col)
    truth: pd.DataFrame  # TRUTH_COLUMNS, one row per object per frame (inside the field)
    hop_yx_A: np.ndarray  # (T, n_hop, 2) specimen positions of the hopping atoms
    fade: np.ndarray  # (T, n_fading) signal factor of each fading column
    fading_columns: np.ndarray  # scene column index of each fading column
    _render: dict[str, Any] = field(repr=False, default_factory=dict)

    @property
    def n_frames(self) -> int:
        """Number of frames."""
        return int(self.parameters.n_frames)

    @property
    def shape(self) -> tuple[int, int, int]:
        """(frames, rows, cols) of the movie."""
        return (self.n_frames, *self.parameters.frame.shape_px)

    @property
    def pixel_size_nm(self) -> float:
        """Pixel size of the frames, nm."""
        return float(self.parameters.frame.pixel_size_nm)


@dataclass
class MovieResult:
    """A simulated movie: ``frames`` (T, H, W) float32 and its exact ground truth."""

    frames: np.ndarray
    drift_px: np.ndarray
    truth: pd.DataFrame
    pixel_size_nm: float
    frame_time_s: float
    parameters: MovieParameters


# --- planning ------------------------------------------------------------------------------
def random_walk_drift(n_frames: int, max_px: float, rng: np.random.Generator) -> np.ndarray:
    """A (T, 2) Gaussian random walk starting at 0, scaled so its largest |shift| is ``max_px``."""
    steps = rng.standard_normal((n_frames, 2))
    steps[0] = 0.0
    walk = np.cumsum(steps, axis=0)
    peak = float(np.hypot(walk[:, 0], walk[:, 1]).max())
    return walk * (max_px / peak) if peak > 0 else walk


def hollow_sites(columns_yx_A: np.ndarray, clearance_A: float) -> np.ndarray:
    """Points of a projected crystal farthest from its columns: Voronoi vertices at least
    ``clearance_A`` from every column, duplicates within ``clearance_A / 2`` merged."""
    if len(columns_yx_A) < 4:
        return np.zeros((0, 2))
    vertices = Voronoi(columns_yx_A).vertices
    lo, hi = columns_yx_A.min(0), columns_yx_A.max(0)
    vertices = vertices[np.all((vertices >= lo) & (vertices <= hi), axis=1)]
    d, _ = cKDTree(columns_yx_A).query(vertices)
    vertices = vertices[d >= clearance_A]
    keep = np.ones(len(vertices), bool)
    for i, j in sorted(cKDTree(vertices).query_pairs(clearance_A / 2)):
        if keep[i]:
            keep[j] = False
    return vertices[keep]


def _hop_lattice(
    n_frames: int, sites: np.ndarray, n_atoms: int, p_hop: float, rng
) -> tuple[np.ndarray, np.ndarray]:
    """Site index of each hopping atom per frame: hops go to a free nearest-neighbour site."""
    tree = cKDTree(sites)
    d_nn = np.median(tree.query(sites, k=2)[0][:, 1])
    neighbours = tree.query_ball_point(sites, 1.3 * d_nn)
    start = rng.choice(len(sites), size=n_atoms, replace=False)
    index = np.zeros((n_frames, n_atoms), dtype=np.int64)
    index[0] = start
    for t in range(1, n_frames):
        index[t] = index[t - 1]
        for a in rng.permutation(n_atoms):
            if rng.random() >= p_hop:
                continue
            taken = set(index[t].tolist())
            free = [s for s in neighbours[index[t, a]] if s not in taken]
            if free:
                index[t, a] = free[rng.integers(len(free))]
    return sites[index], index


def _hop_amorphous(
    n_frames: int, bounds_A, n_atoms: int, p_hop: float, step_A: tuple[float, float], rng
) -> np.ndarray:
    """Positions of atoms hopping by random steps of ``step_A`` (min, max) on a support."""
    y0, y1, x0, x1 = bounds_A
    margin = step_A[1]
    pos = np.zeros((n_frames, n_atoms, 2))
    pos[0, :, 0] = rng.uniform(y0 + margin, y1 - margin, n_atoms)
    pos[0, :, 1] = rng.uniform(x0 + margin, x1 - margin, n_atoms)
    for t in range(1, n_frames):
        pos[t] = pos[t - 1]
        for a in np.flatnonzero(rng.random(n_atoms) < p_hop):
            for _ in range(20):  # keep clear of the field's edge and of the other atoms
                angle = rng.uniform(0, 2 * np.pi)
                new = pos[t, a] + rng.uniform(*step_A) * np.array([np.sin(angle), np.cos(angle)])
                others = np.delete(pos[t], a, axis=0)
                inside = y0 <= new[0] <= y1 and x0 <= new[1] <= x1
                if inside and (len(others) == 0 or np.hypot(*(others - new).T).min() > 2 * margin):
                    pos[t, a] = new
                    break
    return pos


def plan_movie(parameters: MovieParameters) -> MoviePlan:
    """Decide drift, hops and fades, build the specimen, and tabulate the ground truth."""
    from ..simulation.engine import _stem_margin_A, random_streams
    from . import detector as det
    from .scene import REGIONS, build_scene
    from .stem import haadf_spectra, stem_grid

    mp = parameters
    p = mp.frame
    rngs = random_streams(p.seed)
    movie_rng = rngs["extra"]
    px_A = p.pixel_size_nm * 10
    h, w = p.shape_px
    drift_A = mp.drift_max_nm * 10
    drift_px = random_walk_drift(mp.n_frames, drift_A / px_A, movie_rng)
    margin = drift_A + 2 * px_A
    fov = (-0.5 * px_A - margin, (h - 0.5) * px_A + margin, -0.5 * px_A - margin)
    fov = (*fov, (w - 0.5) * px_A + margin)
    grid = stem_grid(p, _stem_margin_A(p, det.ScanDistortion.none(p.shape_px, px_A)) + margin)
    scene = build_scene(p, grid.bounds_A, fov, rngs["scene"])
    spectra = haadf_spectra(p, scene, grid, rngs["render"])

    crystal = np.isin(scene.column_region, [REGIONS.index("crystal"), REGIONS.index("particle")])
    n_hop = int(mp.n_hopping_atoms)
    site_index = None
    if n_hop and p.scene == "lattice":
        cols = scene.column_yx_A[crystal]
        nn = float(np.median(cKDTree(cols).query(cols, k=2)[0][:, 1])) if len(cols) > 1 else 3.0
        sites = hollow_sites(cols, 0.45 * nn)
        # Hopping atoms start and stay in the frame-0 field (the drift may carry them out).
        view = (sites[:, 0] > fov[0] + margin) & (sites[:, 0] < fov[1] - margin)
        view &= (sites[:, 1] > fov[2] + margin) & (sites[:, 1] < fov[3] - margin)
        sites = sites[view]
        if len(sites) < 2 * n_hop:
            raise InputError(f"the crystal has too few hollow sites for {n_hop} hopping atoms")
        hop_yx, site_index = _hop_lattice(mp.n_frames, sites, n_hop, mp.hop_probability, movie_rng)
    elif n_hop:
        step = (mp.hop_distance_nm[0] * 10, mp.hop_distance_nm[1] * 10)
        field_A = (fov[0] + margin, fov[1] - margin, fov[2] + margin, fov[3] - margin)
        hop_yx = _hop_amorphous(mp.n_frames, field_A, n_hop, mp.hop_probability, step, movie_rng)
    else:
        hop_yx = np.zeros((mp.n_frames, 0, 2))

    candidates = np.flatnonzero(crystal)
    n_fading = round(mp.fading_fraction * len(candidates))
    fading = np.sort(movie_rng.choice(candidates, size=n_fading, replace=False))
    fade = np.ones((mp.n_frames, n_fading))
    lo, hi = mp.fade_frames
    for k in range(n_fading):
        length = int(movie_rng.integers(lo, hi + 1))
        start = int(movie_rng.integers(1, mp.n_frames - length + 1))
        fade[start : start + length, k] = mp.fade_level

    hop_weight = _single_atom_weight(p, mp.hopping_element)
    plan = MoviePlan(mp, drift_px, pd.DataFrame(), hop_yx, fade, fading)
    plan._render = {
        "grid": grid,
        "spectra": spectra,
        "scene": scene,
        "hop_weight": hop_weight,
        "noise_seed": int(movie_rng.integers(2**63)),
        "detector": _static_detector(p, rngs["noise"]),
    }
    visible = _static_visibility(plan, crystal, hop_weight)
    plan.truth = _truth_table(plan, crystal, visible, site_index)
    return plan


def _single_atom_weight(p: SimulationParameters, element: str) -> float:
    from ase.data import atomic_numbers

    from .potentials import element_symbol
    from .stem import _cross_sections, saturation_factor

    z = atomic_numbers[element_symbol(element)]
    return float(
        _cross_sections(p, np.array([z]))[0] * saturation_factor(1, p.haadf_saturation_atoms)
    )


def _static_detector(p: SimulationParameters, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """The parts of the detector response that do not change from frame to frame."""
    from . import detector as det

    out = {"ramp": det.illumination_ramp(p.shape_px, p.illumination_gradient, rng)}
    if p.background_level > 0:
        out["background"] = det.smooth_background(p.shape_px, rng, scale_px=max(p.shape_px) / 3)
    return out


# --- rendering -------------------------------------------------------------------------------
def _fraction_ft(plan: MoviePlan, t: int) -> np.ndarray:
    """rfft2 of frame ``t``'s beam fraction on the internal grid, before the drift."""
    from .render import bilinear_correction, deposit

    r = plan._render
    grid, spectra, scene = r["grid"], r["spectra"], r["scene"]
    total = spectra.columns_ft.copy()
    if spectra.other_ft is not None:
        total += spectra.other_ft
    points, weights = [plan.hop_yx_A[t]], [np.full(plan.hop_yx_A.shape[1], r["hop_weight"])]
    dimmed = np.flatnonzero(plan.fade[t] < 1.0)
    if len(dimmed):
        cols = plan.fading_columns[dimmed]
        sel = np.isin(scene.point_column, cols)
        factor = dict(zip(cols.tolist(), (plan.fade[t, dimmed] - 1.0).tolist()))
        points.append(scene.point_yx_A[sel])
        weights.append(spectra.point_weights[sel] * [factor[c] for c in scene.point_column[sel]])
    yx = np.concatenate(points)
    if len(yx):
        dep = deposit(grid, yx, np.concatenate(weights))
        dyn = sfft.rfft2(dep, workers=_fft.FFT_WORKERS) * bilinear_correction(grid.shape)
        total += dyn * spectra.psf_ft
    return total


def _shift_ramp(grid: Any, shift_A: np.ndarray) -> np.ndarray:
    ky = np.fft.fftfreq(grid.shape[0], d=grid.sampling_A)[:, None]
    kx = np.fft.rfftfreq(grid.shape[1], d=grid.sampling_A)[None, :]
    return np.exp(-2j * np.pi * (ky * shift_A[0] + kx * shift_A[1]))


def noise_free_frame(plan: MoviePlan, t: int) -> np.ndarray:
    """Expected detector counts of frame ``t`` (no shot noise), float64 (H, W)."""
    from .stem import sample_output

    p = plan.parameters.frame
    grid = plan._render["grid"]
    shift_A = plan.drift_px[t] * p.pixel_size_nm * 10
    total = _fraction_ft(plan, t) * _shift_ramp(grid, shift_A)
    fine = sfft.irfft2(total, s=grid.shape, workers=_fft.FFT_WORKERS)
    fraction = sample_output(grid, fine, None).astype(np.float64)
    electrons = p.dose_e_per_A2 * (p.pixel_size_nm * 10) ** 2
    expected = electrons * np.maximum(fraction, 0.0)
    det = plan._render["detector"]
    if "background" in det:
        level = p.background_level * max(float(expected.mean()), electrons * 1e-3)
        expected = expected + level * det["background"]
    return expected * det["ramp"]


def render_frame(plan: MoviePlan, t: int) -> np.ndarray:
    """Frame ``t`` of a planned movie with its own shot and read noise, float32 (H, W)."""
    from . import detector as det

    p = plan.parameters.frame
    if not 0 <= t < plan.n_frames:
        raise InputError(f"frame {t} is outside the movie's {plan.n_frames} frames")
    rng = np.random.default_rng([plan._render["noise_seed"], int(t)])
    counted = rng.poisson(noise_free_frame(plan, t)).astype(np.float32)
    image = det.scan_lowpass(p.detector_gain * counted, p.scan_lowpass_px)
    image = image + np.float32(p.dark_offset_counts)
    if p.read_noise_counts > 0:
        image = image + rng.normal(0.0, p.read_noise_counts, image.shape).astype(np.float32)
    return np.ascontiguousarray(image, dtype=np.float32)


def iter_movie_frames(plan: MoviePlan) -> Iterator[np.ndarray]:
    """The frames of ``plan`` one after the other (stream long movies to disk)."""
    for t in range(plan.n_frames):
        yield render_frame(plan, t)


def simulate_movie_steps(parameters: MovieParameters) -> ProgressGenerator[MovieResult]:
    """Generator form of :func:`simulate_movie`: yields Progress per frame."""
    yield Progress(0, parameters.n_frames, "building the specimen")
    plan = plan_movie(parameters)
    frames = np.empty(plan.shape, dtype=np.float32)
    for t in range(plan.n_frames):
        frames[t] = render_frame(plan, t)
        yield Progress(t + 1, plan.n_frames, f"frame {t + 1}/{plan.n_frames}")
    return MovieResult(
        frames, plan.drift_px, plan.truth, plan.pixel_size_nm, parameters.frame_time_s, parameters
    )


def simulate_movie(parameters: MovieParameters | None = None) -> MovieResult:
    """Simulate a whole movie in memory (see :class:`MovieParameters`)."""
    return drain(simulate_movie_steps(parameters or MovieParameters()))


# --- ground truth ------------------------------------------------------------------------------
def _static_visibility(plan: MoviePlan, crystal: np.ndarray, hop_weight: float) -> np.ndarray:
    """Visible (matched-filter SNR >= ``visibility_snr`` and resolved) per scene column,
    then per hopping atom, judged on frame 0 without fades (the engine's criterion)."""
    from .groundtruth import resolved_columns, sample_nearest
    from .stem import sample_output

    p = plan.parameters.frame
    r = plan._render
    grid, spectra, scene = r["grid"], r["spectra"], r["scene"]
    px_A = p.pixel_size_nm * 10
    electrons = p.dose_e_per_A2 * px_A**2
    columns = sample_output(grid, sfft.irfft2(spectra.columns_ft, s=grid.shape), None)
    frame0 = noise_free_frame(dataclasses.replace(plan, fade=np.ones_like(plan.fade)), 0)
    yx = np.concatenate([scene.column_yx_A, plan.hop_yx_A[0]]) / px_A
    signal = (
        electrons
        * spectra.psf_peak_per_A2
        * np.concatenate([spectra.column_signal_A2, np.full(plan.hop_yx_A.shape[1], hop_weight)])
    )
    footprint_px = max(1.0, spectra.psf_area_A2 / px_A**2)
    read_var = (p.read_noise_counts / p.detector_gain) ** 2
    shot = sample_nearest(frame0, yx[:, 0], yx[:, 1])
    snr = signal / np.sqrt((shot + read_var) / footprint_px + 1e-12)
    resolved = np.ones(len(yx), bool)
    n = scene.n_columns
    resolved[:n][crystal] = resolved_columns(columns, yx[:n][crystal, 0], yx[:n][crystal, 1])
    return (snr >= p.visibility_snr) & resolved


def _truth_table(
    plan: MoviePlan, crystal: np.ndarray, visible: np.ndarray, site_index: np.ndarray | None
) -> pd.DataFrame:
    from .groundtruth import inside_field

    p = plan.parameters.frame
    px_A = p.pixel_size_nm * 10
    scene = plan._render["scene"]
    cols = np.flatnonzero(crystal)
    n_hop = plan.hop_yx_A.shape[1]
    fading_pos = {c: k for k, c in enumerate(plan.fading_columns.tolist())}
    parts = []
    for t in range(plan.n_frames):
        yx = np.concatenate([scene.column_yx_A[cols], plan.hop_yx_A[t]]) / px_A + plan.drift_px[t]
        ids = np.concatenate([cols, scene.n_columns + np.arange(n_hop)])
        vis = np.concatenate([visible[cols], visible[scene.n_columns :]])
        for j, c in enumerate(cols.tolist()):
            k = fading_pos.get(c)
            if k is not None and plan.fade[t, k] < 0.5:
                vis[j] = False
        site = np.concatenate(
            [
                np.full(len(cols), -1),
                site_index[t] if site_index is not None else np.full(n_hop, -1),
            ]
        )
        inside = inside_field(yx[:, 0], yx[:, 1], p.shape_px)
        parts.append(
            pd.DataFrame(
                {
                    "object_id": ids[inside],
                    "frame": t,
                    "y_px": yx[inside, 0],
                    "x_px": yx[inside, 1],
                    "visible": vis[inside],
                    "kind": np.where(ids[inside] >= scene.n_columns, "single_atom", "column"),
                    "site": site[inside],
                }
            )
        )
    return pd.concat(parts, ignore_index=True)[list(TRUTH_COLUMNS)]
