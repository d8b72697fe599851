"""The benchmarks' shared library: folds of the Pt set, scoring rules."""

from __future__ import annotations

import numpy as np
import pytest
from benchmarks.lib.cases import Case, box_score, score
from benchmarks.lib.pt import cv_folds, pt_image_keys, read_pt_image

from napari_atomseg.errors import InputError
from tests._data import shared_path


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


def test_real_pt_images_and_labels():
    folder = shared_path("pt_single_atoms")
    keys = pt_image_keys(folder)
    assert len(keys) == 11 and keys[0] == "021"
    image, ps, points = read_pt_image("021", folder)
    assert image.shape == (512, 512) and ps == pytest.approx(0.029296875)
    assert 20 < len(points) < 200


def test_scores_pool_images_and_report_precision_and_recall():
    truth = np.array([[20.0, 20.0], [20.0, 60.0], [60.0, 20.0]])
    case = Case("g/0", np.zeros((100, 100), np.float32), 0.02, truth, np.zeros((0, 2)), True, 0.05)
    pred = np.array([[20.5, 20.0], [20.0, 61.0], [90.0, 90.0]])
    s = score([pred], [case])
    assert (s["precision"], s["recall"]) == (pytest.approx(2 / 3), pytest.approx(2 / 3))
    b = box_score([pred, pred], [case, case])
    assert b["columns"] == 6 and b["per_image_f1"] == {"g/0": pytest.approx(2 / 3, abs=1e-3)}
