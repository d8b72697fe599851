"""What the image itself shows: how strongly each proposed column is in the image.

The network proposes columns; the image must confirm each one. All proposals of an image
are fitted to it at once -- a Gaussian of the image's column width at each proposal, plus a
smooth background (bilinear on a coarse grid), by linear least squares -- and a column's
*evidence* is its fitted height over the height's standard error (the pixel noise over the
Gaussian's norm). A proposal where the image has a column gets a positive height several
noise levels up, however bright its neighbours (their tails are in the model, not in its
height); a proposal in the hollow between columns -- where a network with a lattice prior
may mark one -- gets a height near zero or below. So the prior can raise or lower the
confidence of what the image shows, but cannot put a column where the image shows nothing.
The fitted heights are the columns' intensities above the background (as StatSTEM's
model-based intensities), for free.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi
from scipy import sparse
from scipy.sparse.linalg import cg

#: Column width (Gaussian sigma) assumed when it cannot be measured, nm.
DEFAULT_COLUMN_SIGMA_NM = 0.045
#: ... and without a pixel size, px.
DEFAULT_COLUMN_SIGMA_PX = 2.0
#: Spacing of the background grid, nm (never finer than 6 column widths): smooth enough
#: that the background cannot grow a bump where a column should be.
BACKGROUND_STEP_NM = 0.6
#: A Gaussian reaches this many sigmas in the fit.
REACH_SIGMAS = 3.0
#: Columns whose width is measured to set the image's column width.
WIDTH_SAMPLE = 300

# Immerkaer's noise estimator: a difference of two Laplacians that cancels smooth signal;
# its response to white noise of std s has std 6 s.
_IMMERKAER = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], dtype=np.float32)


def pixel_noise_sigma(image: np.ndarray) -> float:
    """Standard deviation of the pixel noise of a 2-D image (robust: the median absolute
    deviation of the response of Immerkaer's kernel, so columns and edges barely count)."""
    img = np.asarray(image, dtype=np.float32)
    response = ndi.convolve(img, _IMMERKAER, mode="reflect")[1:-1, 1:-1].ravel()
    if response.size > 400_000:  # a regular subsample is as good and bounded in time
        response = response[:: response.size // 400_000 + 1]
    mad = float(np.median(np.abs(response - np.median(response))))
    return 1.4826 * mad / 6.0


@dataclass(frozen=True)
class Evidence:
    """The joint fit of an image's proposed columns."""

    height: np.ndarray  # (N,) fitted column height above the background (image units)
    snr: np.ndarray  # (N,) height over its standard error (noise levels)
    sigma_px: float  # the column width used
    noise_px: float  # pixel noise of the image (std)


def column_sigma_px(
    image_bright: np.ndarray, positions_px: np.ndarray, pixel_size_nm: float | None
) -> float:
    """The image's column width: the median width of Gaussians fitted to up to
    :data:`WIDTH_SAMPLE` proposals (the first ones: the most confident), clipped to half to
    twice the default width."""
    from .refine import refine_gaussian

    default = (
        DEFAULT_COLUMN_SIGMA_NM / pixel_size_nm
        if pixel_size_nm is not None
        else DEFAULT_COLUMN_SIGMA_PX
    )
    default = max(default, 0.7)
    sample = np.asarray(positions_px, dtype=np.float64)[:WIDTH_SAMPLE]
    if len(sample) < 3:
        return default
    fit = refine_gaussian(image_bright, sample, 2.5 * default, sigma_px=default, elliptical=False)
    widths = np.sqrt(fit.sigma_major_px * fit.sigma_minor_px)[fit.ok]
    if len(widths) < 3:
        return default
    return float(np.clip(np.median(widths), 0.5 * default, 2.0 * default))


def _tent_weights(n: int, step_px: float) -> np.ndarray:
    """(nodes, n) weights of 1-D tent functions every ``step_px`` over ``n`` pixels."""
    nodes = max(2, math.ceil((n - 1) / step_px) + 1)
    centres = np.linspace(0.0, n - 1.0, nodes)
    spacing = centres[1] - centres[0] if nodes > 1 else 1.0
    pixels = np.arange(n, dtype=np.float64)
    return np.clip(1.0 - np.abs(pixels[None, :] - centres[:, None]) / spacing, 0.0, None)


def _gauss_products_1d(a: np.ndarray, b: np.ndarray, sigma: float, n: int) -> np.ndarray:
    """sum over pixels 0..n-1 of exp(-(y-a)^2/2s^2) exp(-(y-b)^2/2s^2) (as an integral
    over the pixels' extent, so a column at the edge counts only its part inside)."""
    from scipy.special import erf

    c = 0.5 * (a + b)
    inside = erf((n - 0.5 - c) / sigma) - erf((-0.5 - c) / sigma)
    return np.exp(-((a - b) ** 2) / (4 * sigma**2)) * sigma * math.sqrt(math.pi) / 2 * inside


def _gauss_tent_1d(centre: np.ndarray, sigma: float, tents: np.ndarray) -> tuple[np.ndarray, ...]:
    """For each column coordinate: the two tents (indices) it lies between and the sums
    over pixels of its 1-D Gaussian times each of them."""
    n_nodes, n = tents.shape
    r = math.ceil(4 * sigma)
    pix = np.rint(centre).astype(np.int64)[:, None] + np.arange(-r, r + 1)[None, :]
    inside = (pix >= 0) & (pix < n)
    g = np.where(inside, np.exp(-((pix - centre[:, None]) ** 2) / (2 * sigma**2)), 0.0)
    pix = np.clip(pix, 0, n - 1)
    first = np.clip(np.floor(centre / (n - 1) * (n_nodes - 1)).astype(np.int64), 0, n_nodes - 2)
    sums = [(g * tents[first[:, None] + k, pix]).sum(axis=1) for k in (0, 1)]
    return first, sums[0], sums[1]


def _normal_equations(
    image: np.ndarray, positions_px: np.ndarray, sigma_px: float, step_px: float
) -> tuple[sparse.csr_matrix, np.ndarray, np.ndarray, int]:
    """Gram matrix, right-hand side and column norms of the joint fit, built from 1-D sums.

    Columns are unit-height Gaussians g_i, the background a sum of separable tents B_k;
    both separate into row and column factors, so every inner product over the image's
    pixels is a product of two 1-D sums (edges included), and <g_i, I> is the image
    smoothed by the Gaussian (zero outside the image) at the column. No pixel-by-column
    matrix is ever built.
    """
    from scipy.spatial import cKDTree

    h, w = image.shape
    n = len(positions_px)
    y, x = positions_px[:, 0], positions_px[:, 1]
    ty, tx = _tent_weights(h, step_px), _tent_weights(w, step_px)
    ny, nx = len(ty), len(tx)
    pairs = cKDTree(positions_px).query_pairs(6.0 * sigma_px, output_type="ndarray")
    i, j = pairs[:, 0], pairs[:, 1]
    off = _gauss_products_1d(y[i], y[j], sigma_px, h) * _gauss_products_1d(x[i], x[j], sigma_px, w)
    norm2 = _gauss_products_1d(y, y, sigma_px, h) * _gauss_products_1d(x, x, sigma_px, w)
    cc = sparse.coo_matrix(
        (np.concatenate([off, off, norm2]),
         (np.concatenate([i, j, np.arange(n)]), np.concatenate([j, i, np.arange(n)]))),
        shape=(n, n),
    )  # fmt: skip
    fy, sy0, sy1 = _gauss_tent_1d(y, sigma_px, ty)
    fx, sx0, sx1 = _gauss_tent_1d(x, sigma_px, tx)
    rows, cols, vals = [], [], []
    for ky, sy in ((0, sy0), (1, sy1)):
        for kx, sx in ((0, sx0), (1, sx1)):
            rows.append(np.arange(n))
            cols.append((fy + ky) * nx + fx + kx)
            vals.append(sy * sx)
    cb = sparse.coo_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n, ny * nx)
    )
    bb = sparse.kron(sparse.csr_matrix(ty @ ty.T), sparse.csr_matrix(tx @ tx.T))
    gram = sparse.bmat([[cc, cb], [cb.T, bb]], format="csr")
    smoothed = ndi.gaussian_filter(image, sigma_px, mode="constant", truncate=4.0)
    at_columns = ndi.map_coordinates(smoothed, positions_px.T, order=1, mode="nearest")
    rhs = np.concatenate([2.0 * math.pi * sigma_px**2 * at_columns, (ty @ image @ tx.T).ravel()])
    return gram, rhs, np.sqrt(norm2), n


def column_evidence(
    image_bright: np.ndarray,
    positions_px: np.ndarray,
    pixel_size_nm: float | None,
    sigma_px: float | None = None,
) -> Evidence:
    """Fit every proposed column of ``image_bright`` (columns bright) at once.

    Parameters
    ----------
    image_bright
        The image in the columns' contrast. Not modified.
    positions_px
        ``(N, 2)`` proposed columns (row, col), most confident first.
    pixel_size_nm
        Sets the background grid and the default column width; None: pixel defaults.
    sigma_px
        The column width; None measures it (:func:`column_sigma_px`).
    """
    img = np.asarray(image_bright, dtype=np.float32)
    pos = np.asarray(positions_px, dtype=np.float64).reshape(-1, 2)
    noise = pixel_noise_sigma(img)
    if sigma_px is None:
        sigma_px = column_sigma_px(img, pos, pixel_size_nm)
    if len(pos) == 0:
        e = np.zeros(0)
        return Evidence(e, e, float(sigma_px), noise)
    step = BACKGROUND_STEP_NM / pixel_size_nm if pixel_size_nm is not None else 20.0
    gram, rhs, norm, n = _normal_equations(
        img.astype(np.float64), pos, sigma_px, max(step, 6 * sigma_px)
    )
    diagonal = gram.diagonal()
    ridge = 1e-6 * float(diagonal.max())
    preconditioner = sparse.diags(1.0 / (diagonal + ridge))
    solution, _ = cg(
        gram + ridge * sparse.identity(len(rhs)), rhs, rtol=1e-6, maxiter=500, M=preconditioner
    )
    height = solution[:n]
    # The height's standard error under white noise, neighbours' overlaps neglected:
    # noise / ||g_i|| (the norm over the pixels inside the image).
    floor = 1e-3 * float(np.abs(height).max() + 1e-30)  # a noise-free image still divides
    snr = height * norm / max(noise, floor)
    return Evidence(height, snr, float(sigma_px), noise)
