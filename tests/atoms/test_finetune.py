"""Fine-tuning pairs from hand-labelled real images (atoms.finetune_user.point_pairs)."""

from __future__ import annotations

import numpy as np
import pytest

from napari_atomseg.atoms.finetune_user import point_pairs, read_points_table
from napari_atomseg.atoms.peaks import find_peaks
from napari_atomseg.atoms.training import AtomsTask, to_working_px
from napari_atomseg.io import read_image
from tests._data import shared_path
from tests._synth import render_columns


def test_pairs_put_a_target_peak_on_every_labelled_atom():
    task = AtomsTask(working_pixel_size_nm=0.03, patch_px=64)
    ps = 0.02
    rng = np.random.default_rng(0)
    grid = np.stack(np.meshgrid(np.arange(20, 140, 30), np.arange(20, 140, 40)), -1)
    points = grid.reshape(-1, 2).astype(float) + rng.uniform(-5, 5, (grid.size // 2, 2))
    image = rng.poisson(render_columns((150, 150), points, 0.05 / ps, 80, 20)).astype(np.float32)
    ((x, y),) = point_pairs([(image, ps, points)], task)
    assert x.shape == (1, 100, 100) and y.shape == (1, 100, 100)  # 150 px x 0.02 / 0.03
    assert abs(float(np.median(x))) < 0.5  # robust z-score
    found, _ = find_peaks(y[0], threshold=0.5, min_separation_px=1.5)
    expected = to_working_px(points, ps, 0.03)
    d = np.linalg.norm(found[:, None] - expected[None], axis=-1)
    assert len(found) == len(points)
    assert d.min(1).max() < 0.6  # every peak within a fraction of a working pixel


def test_real_pt_pairs():
    folder = shared_path("pt_single_atoms")
    image, cal = read_image(next((folder / "images").glob("021_*.tif")))
    ps = cal.pixel_size_nm
    points = read_points_table(folder / "coordinates" / "021_Results.csv")
    assert image.shape == (512, 512) and ps == pytest.approx(0.029296875)
    assert 20 < len(points) < 200
    ((x, y),) = point_pairs([(image, ps, points)], AtomsTask(working_pixel_size_nm=0.03))
    assert x.shape[-2:] == y.shape[-2:] == (500, 500)
    found, _ = find_peaks(y[0], threshold=0.5, min_separation_px=1.5)
    assert abs(len(found) - len(points)) <= 2  # (touching labels may merge)
