"""Cutting an image into overlapping tiles and blending tile predictions back together.

Tiles are all the same shape (so they batch), laid on a regular grid whose last tile is
flush with the image's end. Where tiles overlap, predictions are blended with weights
that are zero in a thin band along the tile edge (the outermost ``overlap/4`` pixels,
where zero padding inside the network distorts the output), then rise as a raised cosine
over the middle half of the overlap and stay at one in the tile's interior. Neighbouring
ramps are complementary, so in the interior of the image every pixel is a convex
combination of tile predictions computed at least ``overlap/4`` pixels from any tile
edge; at the image's own borders the weight stays one (no other tile covers them).

Images smaller than one tile are reflect-padded up to the network's stride multiple and
run as a single tile.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from ..errors import InputError


@dataclass(frozen=True)
class Tile:
    """One tile: its top-left corner in the (padded) image and which sides face other tiles."""

    row: int
    col: int
    interior_top: bool
    interior_bottom: bool
    interior_left: bool
    interior_right: bool


@dataclass(frozen=True)
class TilePlan:
    """How an image of ``image_shape`` is padded and cut into ``tile_shape`` tiles."""

    image_shape: tuple[int, int]
    padded_shape: tuple[int, int]
    tile_shape: tuple[int, int]
    overlap_px: int
    tiles: tuple[Tile, ...]

    def __len__(self) -> int:
        return len(self.tiles)

    def batches(self, batch_size: int) -> Iterator[tuple[Tile, ...]]:
        """The tiles in order, ``batch_size`` at a time (the last batch may be shorter)."""
        for i in range(0, len(self.tiles), batch_size):
            yield self.tiles[i : i + batch_size]


def _round_up(n: int, multiple: int) -> int:
    return int(math.ceil(n / multiple) * multiple)


def _starts(length: int, tile: int, overlap: int) -> list[int]:
    if length <= tile:
        return [0]
    step = tile - overlap
    n = math.ceil((length - tile) / step) + 1
    starts = [i * step for i in range(n - 1)] + [length - tile]
    return sorted(set(starts))


def plan_tiles(
    image_shape: tuple[int, int], tile_px: int, overlap_px: int, multiple: int = 1
) -> TilePlan:
    """Plan the tiling of an image.

    Parameters
    ----------
    image_shape
        (H, W) of the image to be tiled, in pixels.
    tile_px
        Tile side in pixels; rounded up to ``multiple``. Images smaller than a tile in a
        dimension use a single tile of the padded image size there.
    overlap_px
        Overlap between neighbouring tiles in pixels (0 <= overlap <= tile/2).
    multiple
        Tile sides (and the padded image) must be multiples of this (the network's
        total stride).
    """
    h, w = (int(s) for s in image_shape)
    if h < 1 or w < 1:
        raise InputError(f"tiling: image shape must be positive, got {image_shape}")
    tile_px = _round_up(max(int(tile_px), multiple), multiple)
    overlap_px = int(overlap_px)
    if not 0 <= overlap_px <= tile_px // 2:
        raise InputError(
            f"tiling: overlap_px must be in [0, tile_px/2], got {overlap_px} for tile {tile_px}"
        )
    padded = (_round_up(h, multiple), _round_up(w, multiple))
    tile_shape = (min(tile_px, padded[0]), min(tile_px, padded[1]))
    rows = _starts(padded[0], tile_shape[0], overlap_px)
    cols = _starts(padded[1], tile_shape[1], overlap_px)
    tiles = tuple(
        Tile(r, c, i > 0, i < len(rows) - 1, j > 0, j < len(cols) - 1)
        for i, r in enumerate(rows)
        for j, c in enumerate(cols)
    )
    return TilePlan((h, w), padded, tile_shape, overlap_px, tiles)


def _ramp(length: int, overlap: int, rising: bool, falling: bool) -> np.ndarray:
    """1-D weight along one tile axis: 0 in the outer overlap/4, cosine over overlap/2."""
    w = np.ones(length, dtype=np.float32)
    if overlap <= 0:
        return w
    dead = overlap // 4
    ramp_len = overlap - 2 * dead
    if ramp_len > 0:
        t = (np.arange(ramp_len, dtype=np.float64) + 0.5) / ramp_len
        up = (0.5 - 0.5 * np.cos(np.pi * t)).astype(np.float32)
    else:
        up = np.zeros(0, np.float32)
    if rising:
        w[:dead] = 0.0
        w[dead : dead + ramp_len] = up
    if falling:
        w[length - dead :] = 0.0
        w[length - dead - ramp_len : length - dead] = up[::-1]
    return w


def axis_weights(plan: TilePlan, tile: Tile) -> tuple[np.ndarray, np.ndarray]:
    """The separable blending weights of one tile: (rows (tile_h,), cols (tile_w,))."""
    wy = _ramp(plan.tile_shape[0], plan.overlap_px, tile.interior_top, tile.interior_bottom)
    wx = _ramp(plan.tile_shape[1], plan.overlap_px, tile.interior_left, tile.interior_right)
    return wy, wx


def tile_weight(plan: TilePlan, tile: Tile) -> np.ndarray:
    """Blending weight (tile_h, tile_w) float32 of one tile (see module docstring)."""
    wy, wx = axis_weights(plan, tile)
    return np.outer(wy, wx)


def weight_sums(plan: TilePlan) -> tuple[np.ndarray, np.ndarray]:
    """Sum of all tiles' weights, as separable factors (rows (H_pad,), cols (W_pad,)).

    The tiles form a full grid and every weight is an outer product, so the 2-D sum is
    ``outer(rows, cols)``: no image-sized weight array is ever needed. Every entry is > 0.
    """
    rows = np.zeros(plan.padded_shape[0], np.float64)
    cols = np.zeros(plan.padded_shape[1], np.float64)
    first_row, first_col = plan.tiles[0].row, plan.tiles[0].col
    th, tw = plan.tile_shape
    for tile in plan.tiles:
        wy, wx = axis_weights(plan, tile)
        if tile.col == first_col:
            rows[tile.row : tile.row + th] += wy
        if tile.row == first_row:
            cols[tile.col : tile.col + tw] += wx
    return rows, cols


def pad_image(image: np.ndarray, padded_shape: tuple[int, int]) -> np.ndarray:
    """Reflect-pad a 2-D image at the bottom/right up to ``padded_shape`` (no copy if equal)."""
    ph = padded_shape[0] - image.shape[0]
    pw = padded_shape[1] - image.shape[1]
    if ph == 0 and pw == 0:
        return image
    # numpy's reflect repeats the reflection when the pad exceeds the image.
    return np.pad(image, ((0, ph), (0, pw)), mode="reflect")
