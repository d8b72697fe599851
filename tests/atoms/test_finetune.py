"""Fine-tuning pairs from hand-labelled real images (atoms.finetune)."""

from __future__ import annotations

import numpy as np
import pytest

from napari_atomseg.atoms.finetune import (
    PT_FINETUNE_IMAGES,
    cv_folds,
    point_pairs,
    pt_image_keys,
    read_pt_image,
    write_pairs,
)
from napari_atomseg.atoms.peaks import find_peaks
from napari_atomseg.atoms.training import AtomsTask, to_working_px
from napari_atomseg.backend.train import TrainConfig
from napari_atomseg.backend.train_data import load_pairs
from napari_atomseg.errors import InputError
from tests._data import shared_path
from tests.atoms.synth import render


def test_pairs_put_a_target_peak_on_every_labelled_atom():
    task = AtomsTask(working_pixel_size_nm=0.03, patch_px=64)
    ps = 0.02
    rng = np.random.default_rng(0)
    grid = np.stack(np.meshgrid(np.arange(20, 140, 30), np.arange(20, 140, 40)), -1)
    points = grid.reshape(-1, 2).astype(float) + rng.uniform(-5, 5, (grid.size // 2, 2))
    image = rng.poisson(render((150, 150), points, 0.05 / ps, 80, 20)).astype(np.float32)
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
    image, ps, points = read_pt_image(folder, PT_FINETUNE_IMAGES[0])
    assert image.shape == (512, 512) and ps == pytest.approx(0.029296875)
    assert 20 < len(points) < 200
    ((x, y),) = point_pairs([(image, ps, points)], AtomsTask(working_pixel_size_nm=0.03))
    assert x.shape[-2:] == y.shape[-2:] == (500, 500)
    found, _ = find_peaks(y[0], threshold=0.5, min_separation_px=1.5)
    assert abs(len(found) - len(points)) <= 2  # (touching labels may merge)


def test_cv_folds_hold_out_every_image_once():
    keys = ["051", "021", "025", "027", "034", "037", "038", "045", "047", "048", "049"]
    folds = cv_folds(keys, 4)
    assert [len(f) for f in folds] == [3, 3, 3, 2]
    flat = [k for f in folds for k in f]
    assert sorted(flat) == sorted(keys) and len(set(flat)) == len(keys)
    assert folds[0] == ("021", "037", "048")  # round robin over the sorted keys
    assert cv_folds(list(reversed(keys)), 4) == folds  # order of the input does not matter
    with pytest.raises(InputError, match="n_folds"):
        cv_folds(keys, 1)
    with pytest.raises(InputError, match="n_folds"):
        cv_folds(keys[:3], 4)


def test_write_pairs_for_chosen_images(tmp_path):
    folder = shared_path("pt_single_atoms")
    keys = pt_image_keys(folder)
    assert len(keys) == 11 and keys[0] == "021"
    cfg = {
        "name": "t",
        "task": "napari_atomseg.atoms.training:AtomsTask",
        "steps": 1,
        "task_options": {
            "working_pixel_size_nm": 0.06,
            "sigma_fraction": 0.25,
            "sigma_max_nm": 0.08,
            "sigma_min_px": 1.5,
        },
        "pairs": str(tmp_path / "pairs.npz"),
    }
    path = write_pairs(TrainConfig.from_mapping(cfg), "034,047", folder=folder)
    pairs = load_pairs(path)
    assert len(pairs) == 2
    (x, y), _ = pairs
    assert x.shape == y.shape == (1, 250, 250)  # 512 px x 0.0293 / 0.06
    # Wide targets: sigma = max(0.08 nm = 1.33 working px, sigma_min_px 1.5) = 1.5 px, so
    # each isolated atom's half-maximum disc covers 2 ln2 pi sigma^2 = 9.8 px (the old
    # narrow targets: sigma 1 px, 4.4 px).
    points = read_pt_image(folder, "034")[2]
    area = float((y[0] >= 0.5).sum())
    assert 8.5 * len(points) < area < 11.0 * len(points)
