"""Synthetic images for the tests of every package, with exactly known content.

Independent of the simulation engine on purpose: a test that checks the finder, the
segmenter or a reader should not move when the simulator changes.

Atomic columns (positions in pixels, ``(row, col)``):
    :func:`hex_lattice_px`, :func:`square_lattice_px` and :func:`hex_hollows_px` give
    positions; :func:`render_columns` draws them as Gaussians, :func:`heatmap_for` as a
    network-like heatmap. :func:`low_dose_lattice_with_hollows` and
    :func:`graded_square_lattice` are ready-made scenes built on them.
Columns laid out in nm:
    :func:`counts_micrograph` (a rotated hexagonal/square lattice or scattered atoms on a
    smooth background, Poisson counts), for tests that change the pixel size.
Lattice fringes and masks, for segmentation:
    :func:`cosine_hex_lattice`, :func:`contaminated_lattice`, :func:`disc`.
Other scenes:
    :func:`nanoparticle_overview` (a low-magnification particle image), :func:`blob_image`
    (Gaussian blobs in noise, for training tests), :func:`cosine_pattern` (an integer
    test pattern for file readers and writers).

Several functions draw Gaussians; they differ in sampling (pixel corners or centres, a
truncated or full field) and the tests' recorded numbers depend on those details, so
each keeps its own arithmetic.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import ndimage as ndi

#: Pixel size the widget tests give :func:`graded_square_lattice` (its 12 px spacing is
#: then 0.24 nm) and the working pixel size of their tiny model, so nothing is resampled.
LATTICE_PIXEL_SIZE_NM = 0.02

#: Pixel size of :func:`nanoparticle_overview` (a 1.25 nm/px overview).
OVERVIEW_PIXEL_SIZE_NM = 1.25


# --------------------------------------------------------------------- column positions


def hex_lattice_px(
    shape: tuple[int, int],
    spacing_px: float,
    margin_px: float = 0.0,
    jitter_px: float = 0.0,
    seed: int = 0,
) -> np.ndarray:
    """(N, 2) (row, col) positions of a hexagonal lattice filling ``shape``.

    Parameters
    ----------
    shape
        Image shape (rows, cols).
    spacing_px
        Nearest-neighbour distance; rows of the lattice run along the image's columns.
    margin_px
        Positions closer than this to an edge are dropped.
    jitter_px
        Standard deviation of a Gaussian displacement of each position.
    seed
        Seeds the lattice's random offset and the jitter.
    """
    rng = np.random.default_rng(seed)
    dy = spacing_px * np.sqrt(3) / 2
    pts = []
    for i in range(-1, int(shape[0] / dy) + 2):
        for j in range(-1, int(shape[1] / spacing_px) + 2):
            pts.append((i * dy, j * spacing_px + (i % 2) * spacing_px / 2))
    pts = np.array(pts, dtype=np.float64) + rng.uniform(0, spacing_px, 2)
    keep = (
        (pts[:, 0] >= margin_px)
        & (pts[:, 1] >= margin_px)
        & (pts[:, 0] < shape[0] - margin_px)
        & (pts[:, 1] < shape[1] - margin_px)
    )
    pts = pts[keep]
    if jitter_px:
        pts = pts + rng.normal(0, jitter_px, pts.shape)
    return pts


def square_lattice_px(shape: tuple[int, int], spacing_px: float) -> np.ndarray:
    """(N, 2) (row, col) positions of a square lattice, the first half a spacing in."""
    ys, xs = np.meshgrid(
        np.arange(spacing_px / 2, shape[0], spacing_px),
        np.arange(spacing_px / 2, shape[1], spacing_px),
        indexing="ij",
    )
    return np.stack([ys.ravel(), xs.ravel()], axis=1)


def hex_hollows_px(true: np.ndarray, spacing_px: float, shape: tuple[int, int]) -> np.ndarray:
    """Centres of a :func:`hex_lattice_px` lattice's triangles (no column there), inside
    the field: where a network fooled by a phase-contrast pattern puts its peaks."""
    dy = spacing_px * np.sqrt(3) / 2
    h = np.asarray(true, dtype=float) + np.array([dy / 3, spacing_px / 2])
    inside = (h >= 4).all(axis=1) & (h[:, 0] < shape[0] - 4) & (h[:, 1] < shape[1] - 4)
    return h[inside]


# ------------------------------------------------------------------- drawing columns


def render_columns(
    shape: tuple[int, int],
    centres_px: np.ndarray,
    sigma_px: float | np.ndarray,
    amplitude: float | np.ndarray = 1.0,
    background: float = 0.0,
    reach_sigmas: float = 5.0,
) -> np.ndarray:
    """Sum of Gaussians (peak ``amplitude``) on a constant ``background`` (float64).

    Point-sampled at integer pixel coordinates (the model the Gaussian refiner fits) and
    drawn within ``reach_sigmas`` of each centre, so thousands of columns take
    milliseconds. ``sigma_px`` and ``amplitude`` may be scalars or one value per column.
    """
    img = np.full(shape, float(background))
    n = len(centres_px)
    sig = np.broadcast_to(np.asarray(sigma_px, float), (n,))
    amp = np.broadcast_to(np.asarray(amplitude, float), (n,))
    half = int(np.ceil(reach_sigmas * sig.max())) if n else 0
    off = np.arange(-half, half + 1)
    for (y, x), s, a in zip(centres_px, sig, amp):
        r0, c0 = int(np.rint(y)), int(np.rint(x))
        rows, cols = r0 + off, c0 + off
        rv = (rows >= 0) & (rows < shape[0])
        cv = (cols >= 0) & (cols < shape[1])
        gy = np.exp(-((rows[rv] - y) ** 2) / (2 * s * s))
        gx = np.exp(-((cols[cv] - x) ** 2) / (2 * s * s))
        img[np.ix_(rows[rv], cols[cv])] += a * np.outer(gy, gx)
    return img


def heatmap_for(shape: tuple[int, int], centres_px: np.ndarray, sigma_px: float) -> np.ndarray:
    """A network-like heatmap: max of unit-peak Gaussians (float32, in [0, 1])."""
    heat = np.zeros(shape)
    half = int(np.ceil(4 * sigma_px))
    off = np.arange(-half, half + 1)
    for y, x in centres_px:
        r0, c0 = int(np.rint(y)), int(np.rint(x))
        rows, cols = r0 + off, c0 + off
        rv = (rows >= 0) & (rows < shape[0])
        cv = (cols >= 0) & (cols < shape[1])
        g = np.outer(
            np.exp(-((rows[rv] - y) ** 2) / (2 * sigma_px**2)),
            np.exp(-((cols[cv] - x) ** 2) / (2 * sigma_px**2)),
        )
        sub = np.ix_(rows[rv], cols[cv])
        heat[sub] = np.maximum(heat[sub], g)
    return heat.astype(np.float32)


# ---------------------------------------------------------------- ready-made scenes


def low_dose_lattice_with_hollows(
    shape: tuple[int, int], pixel_size_nm: float, seed: int = 4
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(image, heatmap, columns, hollows): a Poisson-noisy lattice, columns 0.3 nm apart
    (4 counts at a column above 2 of background), whose heatmap marks every column at 0.85
    and every hollow at 0.5, as the default network does at low dose (docs/atoms.md)."""
    rng = np.random.default_rng(seed)
    spacing, width = 0.3 / pixel_size_nm, 0.045 / pixel_size_nm
    true = hex_lattice_px(shape, spacing, margin_px=4, seed=seed)
    img = rng.poisson(render_columns(shape, true, width, 4, 2)).astype(np.float32)
    hollows = hex_hollows_px(true, spacing, shape)
    heat = np.maximum(
        0.85 * heatmap_for(shape, true, width), 0.5 * heatmap_for(shape, hollows, width)
    )
    return img, heat, true, hollows


def graded_square_lattice(
    shape: tuple[int, int] = (128, 128), spacing_px: float = 12.0, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(image, heatmap, true positions, peak heights): a square lattice whose heatmap
    peaks have graded heights, for the widget tests.

    Peak heights run from 0.2 to 1.0 in a shuffled order, so the number of columns found
    depends on the threshold in a known way. The image is Poisson counts: columns 100
    high (sigma 1.8 px, drawn over the whole field) on a background of 20.
    """
    rng = np.random.default_rng(seed)
    true = square_lattice_px(shape, spacing_px)
    heights = np.linspace(0.2, 1.0, len(true))
    rng.shuffle(heights)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    image = np.zeros(shape)
    heat = np.zeros(shape)
    for (y, x), h in zip(true, heights):
        g = np.exp(-((yy - y) ** 2 + (xx - x) ** 2) / (2 * 1.8**2))
        image += 100 * g
        heat = np.maximum(heat, h * g)
    image = rng.poisson(image + 20).astype(np.float32)
    return image, heat.astype(np.float32), true, heights


# ------------------------------------------------------------- columns laid out in nm


def _lattice_positions_nm(
    rng: np.random.Generator,
    extent_nm: tuple[float, float],
    spacing_nm: float,
    kind: str,
    angle_rad: float,
) -> np.ndarray:
    lh, lw = extent_nm
    if kind == "random":
        n = max(3, int(lh * lw / spacing_nm**2 * 0.08))
        return rng.uniform([0, 0], [lh, lw], size=(n, 2))
    a1 = np.array([1.0, 0.0])
    a2 = np.array([0.5, np.sqrt(3) / 2]) if kind == "hex" else np.array([0.0, 1.0])
    rot = np.array(
        [[np.cos(angle_rad), -np.sin(angle_rad)], [np.sin(angle_rad), np.cos(angle_rad)]]
    )
    a1, a2 = rot @ a1 * spacing_nm, rot @ a2 * spacing_nm
    n = int(2 * max(lh, lw) / spacing_nm) + 4
    i, j = np.mgrid[-n:n, -n:n]
    pos = i.reshape(-1, 1) * a1 + j.reshape(-1, 1) * a2 + rng.uniform(0, spacing_nm, 2)
    keep = (pos[:, 0] > -0.5) & (pos[:, 0] < lh + 0.5) & (pos[:, 1] > -0.5) & (pos[:, 1] < lw + 0.5)
    return pos[keep]


def counts_micrograph(
    shape: tuple[int, int],
    pixel_size_nm: float,
    *,
    spacing_nm: float = 0.3,
    sigma_nm: float = 0.05,
    kind: str = "hex",
    dose: float = 30.0,
    background: float = 0.3,
    seed: int = 0,
) -> np.ndarray:
    """A float32 (H, W) Poisson counts image of Gaussian columns with a known pixel size.

    Columns (standard deviation ``sigma_nm``, peak ~``dose`` counts above the background)
    sit on a randomly rotated ``kind="hex"`` or ``"square"`` lattice of nearest-neighbour
    distance ``spacing_nm``, or are scattered at random (``"random"``, single atoms), on a
    smooth background varying over a few nm (support film thickness). Sampled at pixel
    centres in nm, so the same scene can be drawn at several pixel sizes.
    """
    rng = np.random.default_rng(seed)
    h, w = shape
    pos = _lattice_positions_nm(
        rng, (h * pixel_size_nm, w * pixel_size_nm), spacing_nm, kind, rng.uniform(0, np.pi)
    )
    yy = (np.arange(h) + 0.5) * pixel_size_nm
    xx = (np.arange(w) + 0.5) * pixel_size_nm
    img = np.zeros(shape, np.float64)
    r = int(np.ceil(4 * sigma_nm / pixel_size_nm)) + 1
    for py, px in pos:
        ci, cj = int(py / pixel_size_nm), int(px / pixel_size_nm)
        i0, i1, j0, j1 = max(0, ci - r), min(h, ci + r + 1), max(0, cj - r), min(w, cj + r + 1)
        if i0 < i1 and j0 < j1:
            gy = np.exp(-((yy[i0:i1] - py) ** 2) / (2 * sigma_nm**2))
            gx = np.exp(-((xx[j0:j1] - px) ** 2) / (2 * sigma_nm**2))
            img[i0:i1, j0:j1] += np.outer(gy, gx)
    gy = np.linspace(0, 1, h)[:, None]
    gx = np.linspace(0, 1, w)[None, :]
    img += background * (1 + 0.5 * np.sin(2 * np.pi * (gy * 0.7 + gx * 0.4) + rng.uniform(0, 6)))
    return rng.poisson(img * dose).astype(np.float32)


# ------------------------------------------------------------ fringes, for segmentation


def cosine_hex_lattice(
    shape: tuple[int, int], period_px: float, angle_deg: float = 7.0
) -> np.ndarray:
    """Phase-contrast-like fringes: three cosines 120 degrees apart (six Bragg spots at
    ``1 / period_px``), values in [-1.5, 3]."""
    yy, xx = np.mgrid[: shape[0], : shape[1]].astype(np.float64)
    out = np.zeros(shape)
    for k in range(3):
        a = np.deg2rad(angle_deg + 60.0 * k)
        out += np.cos(2 * np.pi * (xx * np.cos(a) + yy * np.sin(a)) / period_px)
    return out


def disc(shape: tuple[int, int], centre: tuple[float, float], radius_px: float) -> np.ndarray:
    """Boolean mask of the pixels within ``radius_px`` of ``centre`` (row, col)."""
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return (yy - centre[0]) ** 2 + (xx - centre[1]) ** 2 <= radius_px**2


def contaminated_lattice(
    shape: tuple[int, int] = (256, 256),
    period_px: float = 6.3,
    mask: np.ndarray | None = None,
    amorphous_amplitude: float = 3.0,
    noise: float = 1.0,
    seed: int = 0,
    vacuum: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(image, contamination mask): :func:`cosine_hex_lattice` with amorphous patches.

    Inside ``mask`` (default: one disc) smooth random speckle (no Bragg spots) lies on top
    of the lattice, as a hydrocarbon layer lies on graphene; ``vacuum`` marks pixels with
    neither. Positive, count-like float32 intensities around 100.
    """
    rng = np.random.default_rng(seed)
    if mask is None:
        mask = disc(shape, (shape[0] * 0.4, shape[1] * 0.55), min(shape) * 0.2)
    lattice = cosine_hex_lattice(shape, period_px)
    if vacuum is not None:
        lattice = lattice * ~vacuum
    speckle = ndi.gaussian_filter(rng.normal(size=shape), period_px / 3.0)
    speckle *= amorphous_amplitude / speckle.std()
    image = 100.0 + 10.0 * (lattice + speckle * mask + noise * rng.normal(size=shape))
    return image.astype(np.float32), mask


# ------------------------------------------------------------------------ other scenes


def nanoparticle_overview(
    seed: int = 0, shape: tuple[int, int] = (160, 160), bright: bool = True
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(image, true mask, true diameters in nm): a low-magnification HAADF-like scene at
    :data:`OVERVIEW_PIXEL_SIZE_NM`, ten discs of 5-12 nm on carbon whose thickness rises
    across the field, with shot noise. ``bright=False``: bright-field TEM, particles dark
    on a bright background."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[: shape[0], : shape[1]].astype(float)
    diameters = rng.uniform(5.0, 12.0, 10)
    centres, mask = [], np.zeros(shape, bool)
    while len(centres) < len(diameters):
        c = rng.uniform(12, shape[0] - 12, 2)
        if all(np.hypot(*(c - o)) > 14 for o in centres):
            centres.append(c)
    for (cy, cx), d in zip(centres, diameters):
        mask |= np.hypot(yy - cy, xx - cx) <= d / OVERVIEW_PIXEL_SIZE_NM / 2
    carbon = 40.0 * (1.0 + 0.6 * xx / shape[1])
    signal = carbon + np.where(mask, 140.0, 0.0)
    image = rng.poisson(signal).astype(np.float32)
    if not bright:
        image = image.max() - image
    return image, mask, diameters


def blob_image(
    rng: np.random.Generator,
    shape: tuple[int, int] = (48, 48),
    n_blobs: int = 6,
    sigma_px: float = 1.8,
    noise: float = 0.25,
) -> tuple[np.ndarray, np.ndarray]:
    """(noisy image, clean blob map in [0, 1]), both float32 (H, W): a few Gaussian blobs
    on a tilted background with Gaussian noise; the clean map is a training target."""
    h, w = shape
    yy, xx = np.mgrid[:h, :w].astype(np.float32)
    clean = np.zeros(shape, np.float32)
    for _ in range(n_blobs):
        cy, cx = rng.uniform(2, h - 2), rng.uniform(2, w - 2)
        clean = np.maximum(clean, np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * sigma_px**2)))
    tilt = rng.uniform(-0.3, 0.3) * (xx / w) + rng.uniform(-0.3, 0.3) * (yy / h)
    img = clean + tilt + rng.normal(0, noise, shape).astype(np.float32)
    return img.astype(np.float32), clean


def cosine_pattern(shape: tuple[int, ...] = (48, 64), dtype: type = np.uint16) -> np.ndarray:
    """A small, deterministic, non-constant test pattern for file readers and writers:
    a cosine lattice on a ramp, ``dtype``; a 3-D ``shape`` stacks offset copies."""
    yy, xx = np.indices(shape[-2:])
    img = 1000 + 500 * np.cos(yy * 0.7) * np.cos(xx * 0.9) + 3 * yy + xx
    if len(shape) == 3:
        img = np.stack([img + 10 * k for k in range(shape[0])])
    return img.astype(dtype)


# ----------------------------------------------------------------- exact column tables
#: Perovskite cell (SrTiO3) and pixel size of the exact column tables, nm.
PEROVSKITE_A_NM = 0.3905
TABLE_PIXEL_SIZE_NM = 0.02


def square_perovskite(n_cells: int = 24, oxygen: bool = False) -> pd.DataFrame:
    """Undeformed perovskite [001] columns (nm) around the origin, with brightness."""
    idx = np.arange(-n_cells // 2, n_cells // 2 + 1)
    ii, jj = np.meshgrid(idx, idx, indexing="ij")
    corners = np.column_stack([ii.ravel(), jj.ravel()]).astype(float)
    basis = [("Sr", (0.0, 0.0), 3.0), ("Ti", (0.5, 0.5), 2.0)]
    if oxygen:
        basis += [("O", (0.5, 0.0), 0.5), ("O", (0.0, 0.5), 0.5)]
    yx = np.concatenate([(corners + off) * PEROVSKITE_A_NM for _, off, _ in basis])
    element = np.concatenate([np.full(len(corners), e) for e, _, _ in basis])
    bright = np.concatenate([np.full(len(corners), b) for _, _, b in basis])
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {
            "y_nm": yx[:, 0],
            "x_nm": yx[:, 1],
            "element": element,
            "intensity": bright + rng.normal(0, 0.05, len(bright)),
        }
    )


def to_table(cols: pd.DataFrame, y_nm: np.ndarray, x_nm: np.ndarray) -> pd.DataFrame:
    """Columns at (y_nm, x_nm) shifted into a positive pixel frame (TABLE_PIXEL_SIZE_NM per px)."""
    out = cols.copy()
    out["y_nm"], out["x_nm"] = y_nm + 10.0, x_nm + 10.0
    out["y_px"], out["x_px"] = out["y_nm"] / TABLE_PIXEL_SIZE_NM, out["x_nm"] / TABLE_PIXEL_SIZE_NM
    return out[["y_px", "x_px", "y_nm", "x_nm", "element", "intensity"]]


def square_cell_nm() -> tuple[tuple[float, float], tuple[float, float]]:
    return ((0.0, PEROVSKITE_A_NM), (PEROVSKITE_A_NM, 0.0))
