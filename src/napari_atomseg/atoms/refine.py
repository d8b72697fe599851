"""Sub-pixel refinement of column positions on the original image.

Two refiners, both vectorised over columns (patches are gathered into one array and fitted
together in chunks, so tens of thousands of columns per second on one core):

- :func:`refine_center_of_mass` -- background-subtracted intensity centroid inside a disc,
  iterated; fast and robust, slightly biased towards the window centre by noise.
- :func:`refine_gaussian` -- least-squares fit of an elliptical 2-D Gaussian plus a constant
  background (7 parameters) in a disc around each column, by a batched Levenberg-Marquardt
  (numpy for the model, torch for the thousands of 7 x 7 normal equations); the precision
  tool for strain mapping (what Atomap does column by column).

Each column's window is a disc of radius ``radius_px`` (scalar or per column, typically
0.4-0.5 of the nearest-neighbour spacing so neighbours stay outside); pixels outside the
image carry zero weight, so columns at the border are refined with what is visible.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import InputError
from .spacing import as_points

#: Patches gathered per chunk: bounds memory to ~chunk x window pixels x 7 params x 8 B.
_CHUNK_PIXELS = 1 << 21


@dataclass(frozen=True)
class Patches:
    """Pixels around a batch of columns: values, their offsets and a window weight."""

    values: np.ndarray  # (N, M) float64 image values
    dy: np.ndarray  # (N, M) row of each pixel minus the column's initial row (px)
    dx: np.ndarray  # (N, M) col of each pixel minus the column's initial col (px)
    weight: np.ndarray  # (N, M) float64: 1 inside the disc and the image, else 0


def gather_patches(
    image: np.ndarray, positions_px: np.ndarray, radius_px: np.ndarray, half_px: float
) -> Patches:
    """Pixels within ``half_px`` of the rounded positions (a disc, flattened per column).

    Each column's own window (``radius_px``, <= ``half_px``) is encoded in ``weight``.
    """
    h, w = image.shape
    r = int(np.ceil(half_px))
    off = np.arange(-r, r + 1)
    oy, ox = np.meshgrid(off, off, indexing="ij")
    # Only the disc that can hold a window: a square wastes a quarter of the work.
    disc = oy**2 + ox**2 <= (half_px + 0.71) ** 2
    oy, ox = oy[disc], ox[disc]
    centre = np.rint(positions_px).astype(np.int64)
    rows = centre[:, :1] + oy[None, :]
    cols = centre[:, 1:] + ox[None, :]
    inside = (rows >= 0) & (rows < h) & (cols >= 0) & (cols < w)
    values = image[np.clip(rows, 0, h - 1), np.clip(cols, 0, w - 1)].astype(np.float64)
    dy = (rows - positions_px[:, :1]).astype(np.float32)
    dx = (cols - positions_px[:, 1:]).astype(np.float32)
    in_disc = dy * dy + dx * dx <= (radius_px[:, None] ** 2)
    weight = (inside & in_disc).astype(np.float32)
    return Patches(values, dy, dx, weight)


def _window_percentile(pt: Patches, q: float) -> np.ndarray:
    """Per-column ``q``-th percentile (0-100) of the values inside the window (0 if empty).

    Sorting the padded rows beats ``np.nanpercentile``, which loops in Python per row.
    """
    vals = np.where(pt.weight > 0, pt.values, np.inf)
    vals.sort(axis=1)
    count = (pt.weight > 0).sum(axis=1)
    k = np.floor(q / 100.0 * np.maximum(count - 1, 0)).astype(np.int64)
    out = vals[np.arange(len(vals)), k]
    return np.where(count > 0, out, 0.0)


def _check_inputs(image: np.ndarray, positions_px: object, radius_px: float | np.ndarray):
    img = np.asarray(image)
    if img.ndim != 2:
        raise InputError(f"image: expected a 2-D array, got shape {img.shape}")
    pos = as_points(positions_px, "positions_px")
    rad = np.broadcast_to(np.asarray(radius_px, dtype=np.float64), (len(pos),)).copy()
    if len(pos) and (not np.isfinite(rad).all() or rad.min() < 0.5):
        raise InputError("radius_px: the refinement window radius must be finite and >= 0.5 px")
    return img, pos, rad


def _radius_groups(radius_px: np.ndarray) -> list[tuple[np.ndarray, float]]:
    """Column indices grouped by window radius (whole-pixel bins) with each group's largest
    radius: a batch's patches are as wide as its widest window, so a few wide windows (an
    isolated column) no longer widen every column's patch."""
    bins = np.ceil(radius_px).astype(np.int64)
    groups = (np.flatnonzero(bins == b) for b in np.unique(bins))
    return [(idx, float(radius_px[idx].max())) for idx in groups]


def _chunks(n: int, pixels_per_item: int, min_parts: int = 1):
    """Slices of ``n`` items, each at most :data:`_CHUNK_PIXELS` patch pixels, and at
    least ``min_parts`` of them (when there are that many items)."""
    step = max(1, _CHUNK_PIXELS // max(1, pixels_per_item))
    step = max(1, min(step, -(-n // max(1, min_parts))))
    for start in range(0, n, step):
        yield slice(start, min(n, start + step))


@dataclass(frozen=True)
class CenterOfMassResult:
    """Output of :func:`refine_center_of_mass` (one entry per input column)."""

    positions_px: np.ndarray  # (N, 2) float64 refined (row, col)
    intensity: np.ndarray  # (N,) background-subtracted summed intensity in the window
    background: np.ndarray  # (N,) local background (image units)


def refine_center_of_mass(
    image: np.ndarray,
    positions_px: object,
    radius_px: float | np.ndarray,
    n_iter: int = 3,
) -> CenterOfMassResult:
    """Refine positions to the intensity centroid inside a disc of ``radius_px`` (px).

    The local background (the window's 10th-percentile value) is subtracted first,
    otherwise a flat background pulls every estimate towards the window centre. The window
    is re-centred on the new estimate ``n_iter`` times. A column whose window holds no
    signal above background keeps its input position. ``image`` is not modified.
    """
    img, pos, rad = _check_inputs(image, positions_px, radius_px)
    n = len(pos)
    out = pos.copy()
    inten = np.zeros(n)
    bg = np.zeros(n)
    if n == 0:
        return CenterOfMassResult(out, inten, bg)
    half = float(rad.max())
    m = int(np.pi * (half + 1) ** 2)
    for sl in _chunks(n, m):
        p = out[sl].copy()
        for _ in range(max(1, n_iter)):
            pt = gather_patches(img, p, rad[sl], half)
            b = _window_percentile(pt, 10.0)
            sig = np.clip(pt.values - b[:, None], 0.0, None) * pt.weight
            total = sig.sum(axis=1)
            ok = total > 0
            safe = np.where(ok, total, 1.0)
            shift_y = (sig * pt.dy).sum(axis=1) / safe
            shift_x = (sig * pt.dx).sum(axis=1) / safe
            # A step never leaves the window: that would be a neighbour, not this column.
            step = np.stack([shift_y, shift_x], axis=1)
            norm = np.hypot(step[:, 0], step[:, 1])
            limit = rad[sl]
            scale = np.where(norm > limit, limit / np.maximum(norm, 1e-12), 1.0)
            p = p + np.where(ok[:, None], step * scale[:, None], 0.0)
        out[sl] = p
        inten[sl] = total
        bg[sl] = b
    return CenterOfMassResult(out, inten, bg)


@dataclass(frozen=True)
class GaussianFitResult:
    """Output of :func:`refine_gaussian` (one entry per input column).

    ``sigma_major_px``/``sigma_minor_px`` are the Gaussian's principal widths and
    ``rotation_rad`` the angle of the major axis from the +col axis towards +row.
    ``intensity`` is the fitted integrated intensity above background (image units x px^2),
    ``amplitude`` the peak height above background. ``ok`` is False where the fit failed
    (no convergence, centre left the window, non-positive amplitude, absurd width); those
    columns keep their input position and NaN fit parameters.
    """

    positions_px: np.ndarray
    amplitude: np.ndarray
    background: np.ndarray
    sigma_major_px: np.ndarray
    sigma_minor_px: np.ndarray
    rotation_rad: np.ndarray
    intensity: np.ndarray
    ok: np.ndarray
    n_iter: np.ndarray


def _gaussian_model(p: np.ndarray, dy: np.ndarray, dx: np.ndarray, w: np.ndarray):
    """Windowed model values and Jacobian for p = [A, y0, x0, a, b, c, B].

    Model: ``B + A exp(-(a ry^2 + 2 b ry rx + c rx^2) / 2)`` with ``r = d - centre``; the
    Jacobian is returned as ``(N, 7, M)`` with rows already multiplied by the 0/1 window
    ``w``, so ``J @ J.T`` is the windowed normal matrix without another pass.
    """
    amp, y0, x0, a, b, c, bg = (p[:, i : i + 1].astype(dy.dtype) for i in range(7))
    ry = dy - y0
    rx = dx - x0
    q = a * ry * ry + 2.0 * b * ry * rx + c * rx * rx
    e = np.exp(-0.5 * np.clip(q, 0.0, 200.0)) * w
    ae = amp * e
    f = bg + ae
    jac = np.empty((len(p), 7, dy.shape[1]), dtype=dy.dtype)
    jac[:, 0] = e
    jac[:, 1] = ae * (a * ry + b * rx)
    jac[:, 2] = ae * (b * ry + c * rx)
    jac[:, 3] = -0.5 * ae * ry * ry
    jac[:, 4] = -ae * ry * rx
    jac[:, 5] = -0.5 * ae * rx * rx
    jac[:, 6] = w
    return f, jac


def _valid_params(p: np.ndarray, limit_px: float) -> np.ndarray:
    """Physically sensible parameters (data are normalised to a column height of ~1).

    Positive height and definite width, centre within ``limit_px`` of the start, widths
    >= 0.1 px, and height/background within a generous range: steps outside are rejected
    by the LM, which keeps float32 arithmetic far from overflow.
    """
    a, b, c = p[:, 3], p[:, 4], p[:, 5]
    with np.errstate(invalid="ignore"):
        return (
            np.isfinite(p).all(axis=1)
            & (p[:, 0] > 0)
            & (p[:, 0] < 1e3)
            & (np.abs(p[:, 6]) < 1e3)
            & (np.abs(p[:, 1]) <= limit_px)
            & (np.abs(p[:, 2]) <= limit_px)
            & (a > 0)
            & (c > 0)
            & (a < 100.0)
            & (c < 100.0)
            & (a * c - b * b > 0)
        )


def _normal_matrices(jac: np.ndarray) -> np.ndarray:
    """``J @ J.T`` per column, float64: torch's batched matmul, 2-3x numpy's stacked one
    on thousands of 7 x M matrices (docs/atoms.md, Speed)."""
    import torch

    j = torch.from_numpy(np.ascontiguousarray(jac))
    return torch.bmm(j, j.transpose(1, 2)).numpy().astype(np.float64)


def _solve_batched(lhs: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    """Solve every 7 x 7 system (torch's batched LU, 2-3x numpy's); a singular system's
    step is NaN, which the parameter check then rejects, instead of failing the batch."""
    import torch

    sol, info = torch.linalg.solve_ex(torch.from_numpy(lhs), torch.from_numpy(rhs[..., None]))
    step = sol.numpy()[..., 0]
    step[info.numpy() != 0] = np.nan
    return step


def _fit_chunk(
    pt: Patches, p0: np.ndarray, isotropic: bool, max_iter: int, tol_px: float, limit_px: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Batched Levenberg-Marquardt on one chunk; returns (params, converged, iterations).

    Only the columns still iterating are evaluated each round: when the active set has
    shrunk enough, the working arrays are compacted to it, so a few slow columns do not
    make every column pay.
    """
    n = len(p0)
    p_out = p0.copy()
    converged = np.zeros(n, dtype=bool)
    iters = np.zeros(n, dtype=np.int64)
    # Working set (compacted as columns finish); `ids` maps rows back to the chunk.
    ids = np.arange(n)
    vals, dy, dx, w = pt.values, pt.dy, pt.dx, pt.weight
    p = p0.copy()
    f, jac = _gaussian_model(p, dy, dx, w)
    res = (vals - f) * w
    cost = np.einsum("nm,nm->n", res, res, dtype=np.float64)
    lam = np.full(n, 1e-3)
    live = np.ones(n, dtype=bool)
    eye = np.eye(7)
    for _ in range(max_iter):
        if not live.any():
            break
        if live.sum() < 0.7 * len(live):
            ids, vals, dy, dx, w = ids[live], vals[live], dy[live], dx[live], w[live]
            p, jac, res, cost, lam = p[live], jac[live], res[live], cost[live], lam[live]
            live = np.ones(len(ids), dtype=bool)
        j = jac
        if isotropic:
            # One width: tie c to a and freeze b by projecting the Jacobian.
            j = jac.copy()
            j[:, 3] += j[:, 5]
            j[:, 4] = 0.0
            j[:, 5] = 0.0
        jtj = _normal_matrices(j)
        jtr = np.einsum("npm,nm->np", j, res).astype(np.float64)
        diag = np.diagonal(jtj, axis1=1, axis2=2)
        # Frozen parameters have a zero row: a unit diagonal keeps the system regular.
        lhs = jtj + (lam[:, None] * diag + (diag <= 0))[:, :, None] * eye
        step = _solve_batched(lhs, jtr)
        if isotropic:
            step[:, 5] = step[:, 3]
            step[:, 4] = 0.0
        valid = live & _valid_params(p + step, limit_px)
        # Invalid steps are rejected anyway; evaluating them could overflow.
        trial = np.where(valid[:, None], p + step, p)
        f_t, jac_t = _gaussian_model(trial, dy, dx, w)
        res_t = (vals - f_t) * w
        cost_t = np.einsum("nm,nm->n", res_t, res_t, dtype=np.float64)
        better = valid & (cost_t <= cost)
        # Most steps are accepted: keep the trial arrays and copy the few rejected rows back.
        worse = ~better
        jac_t[worse] = jac[worse]
        res_t[worse] = res[worse]
        p, jac, res = np.where(better[:, None], trial, p), jac_t, res_t
        cost = np.where(better, cost_t, cost)
        lam = np.where(better, np.maximum(lam / 3.0, 1e-9), lam * 4.0)
        iters[ids[live]] += 1
        small = better & (np.hypot(step[:, 1], step[:, 2]) < tol_px)
        converged[ids[small]] = True
        finished = live & (small | (lam > 1e8))
        p_out[ids[finished]] = p[finished]
        live &= ~finished
    p_out[ids[live]] = p[live]
    return p_out, converged, iters


def _fit_part(
    img: np.ndarray,
    pos: np.ndarray,
    rad: np.ndarray,
    sig0: np.ndarray,
    group_half: float,
    elliptical: bool,
    max_iter: int,
    tol_px: float,
    limit_px: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fit one chunk of columns: (params in image units, converged, iterations)."""
    pt = gather_patches(img, pos, rad, group_half)
    bg0 = _window_percentile(pt, 10.0)
    near = (pt.weight > 0) & (pt.dy**2 + pt.dx**2 <= 1.0)
    peak0 = np.where(near, pt.values, -np.inf).max(axis=1)
    amp0 = np.where(np.isfinite(peak0), peak0, bg0) - bg0
    scale = np.maximum(amp0, 1e-6 * (np.abs(bg0) + 1.0))
    # Fit in units of the column's own height above its background: the data are then
    # O(1) whatever the detector's counts, and float32 arithmetic is accurate enough (and
    # twice as fast as float64) for the model and normal equations.
    norm = Patches(
        ((pt.values - bg0[:, None]) / scale[:, None]).astype(np.float32),
        pt.dy,
        pt.dx,
        pt.weight,
    )
    prec0 = 1.0 / sig0**2
    zeros, ones = np.zeros(len(scale)), np.ones(len(scale))
    p0 = np.stack([ones, zeros, zeros, prec0, zeros, prec0, zeros], axis=1)
    p, c, it = _fit_chunk(norm, p0, not elliptical, max_iter, tol_px, limit_px)
    p[:, 0] *= scale
    p[:, 6] = p[:, 6] * scale + bg0
    return p, c, it


def _map_parts(fit, parts: list, threads: int):
    """``fit`` over ``parts``: in this thread, or ``threads`` threads of one torch
    thread each (the fits are half NumPy, which runs on one core; each column's fit does
    not depend on the others of its chunk, so the results are the same)."""
    if threads <= 1 or len(parts) <= 1:
        return map(fit, parts)
    from concurrent.futures import ThreadPoolExecutor

    from ..backend.device import torch_threads

    def one_thread(part):
        with torch_threads(1):
            return fit(part)

    with ThreadPoolExecutor(min(threads, len(parts)), thread_name_prefix="atomseg-fit") as pool:
        return list(pool.map(one_thread, parts))


def refine_gaussian(
    image: np.ndarray,
    positions_px: object,
    radius_px: float | np.ndarray,
    sigma_px: float | np.ndarray | None = None,
    elliptical: bool = True,
    max_iter: int = 30,
    tol_px: float = 1e-3,
    threads: int = 1,
) -> GaussianFitResult:
    """Fit a 2-D Gaussian plus constant background to each column (batched Levenberg-Marquardt).

    Parameters
    ----------
    image
        The original micrograph (any real 2-D array, columns bright; invert dark-atom HRTEM
        images first). Not modified.
    positions_px
        ``(N, 2)`` initial (row, col), e.g. heatmap peaks; within ~1 px of the truth.
    radius_px
        Fit window radius (px), scalar or per column; ~0.4-0.5 x nearest-neighbour spacing.
    sigma_px
        Initial Gaussian width (px); default a third of the window radius.
    elliptical
        Fit an elliptical, rotated Gaussian (Atomap's model) rather than a round one.
    max_iter, tol_px
        Iteration cap, and convergence when the centre moves less than ``tol_px``.
    threads
        Chunks of columns fitted at once, in threads of one torch thread each (the same
        results as one thread).

    Columns whose fit fails keep their input position (``ok`` False); nothing is dropped,
    so outputs align with inputs.
    """
    img, pos, rad = _check_inputs(image, positions_px, radius_px)
    n = len(pos)
    nan = np.full(n, np.nan)
    if n == 0:
        e = np.zeros(0)
        return GaussianFitResult(pos, e, e, e, e, e, e, np.zeros(0, bool), np.zeros(0, np.int64))
    sig0 = rad / 3.0 if sigma_px is None else np.broadcast_to(np.asarray(sigma_px, float), (n,))
    if not (np.isfinite(sig0).all() and (sig0 > 0).all()):
        raise InputError("sigma_px: initial widths must be positive and finite")
    half = float(rad.max())
    params = np.full((n, 7), np.nan)
    conv = np.zeros(n, dtype=bool)
    iters = np.zeros(n, dtype=np.int64)
    parts = [
        (idx[part], group_half)
        for idx, group_half in _radius_groups(rad)
        for part in _chunks(len(idx), int(np.pi * (group_half + 1) ** 2) * 7, threads)
    ]

    limit = half + 1.0  # a centre may not leave the widest window

    def fit(part: tuple[np.ndarray, float]) -> tuple[np.ndarray, ...]:
        sl, group_half = part
        fitted = _fit_part(
            img, pos[sl], rad[sl], sig0[sl], group_half, elliptical, max_iter, tol_px, limit
        )
        return (sl, *fitted)

    for sl, p, c, it in _map_parts(fit, parts, threads):
        params[sl], conv[sl], iters[sl] = p, c, it

    amp, dy0, dx0, a, b, c, bg = params.T
    det = a * c - b * b
    with np.errstate(all="ignore"):
        # Eigenvalues of the precision matrix [[a, b], [b, c]] -> principal widths.
        tr_half = 0.5 * (a + c)
        disc = np.sqrt(np.maximum(tr_half**2 - det, 0.0))
        lam_small, lam_big = tr_half - disc, tr_half + disc
        sig_major = 1.0 / np.sqrt(lam_small)
        sig_minor = 1.0 / np.sqrt(lam_big)
        # Major axis = eigenvector of the smaller precision eigenvalue, angle from +col.
        rot = 0.5 * np.arctan2(-2.0 * b, a - c)
        integral = 2.0 * np.pi * amp / np.sqrt(det)
    shift = np.hypot(dy0, dx0)
    ok = (
        conv
        & np.isfinite(params).all(axis=1)
        & (amp > 0)
        & (shift <= rad)
        & (sig_minor >= 0.2)
        & (sig_major <= 2.0 * rad)
    )
    out = pos.copy()
    out[ok, 0] += dy0[ok]
    out[ok, 1] += dx0[ok]

    def _masked(x: np.ndarray) -> np.ndarray:
        return np.where(ok, x, nan)

    return GaussianFitResult(
        positions_px=out,
        amplitude=_masked(amp),
        background=_masked(bg),
        sigma_major_px=_masked(sig_major),
        sigma_minor_px=_masked(sig_minor),
        rotation_rad=_masked(rot),
        intensity=_masked(integral),
        ok=ok,
        n_iter=iters,
    )
