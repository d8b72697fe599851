"""The graphene-contamination loader and grouped k-fold splits."""

from __future__ import annotations

import numpy as np
import pytest

from napari_atomseg.errors import FileReadError, InputError
from napari_atomseg.segmentation.data import (
    GRAPHENE_CLASSES,
    kfold_splits,
    load_graphene_contamination,
    series_of,
)
from tests._data import shared_path


@pytest.mark.shared_data
def test_load_real_graphene_set():
    folder = shared_path("graphene_contamination")
    items = load_graphene_contamination(folder)
    assert len(items) == 31
    assert GRAPHENE_CLASSES == ("clean", "contamination")
    first = items[0]
    image, mask, pixel_size_nm = first  # unpacks as a triple
    assert image.shape == mask.shape == (256, 256)
    assert image.dtype == np.float32 and mask.dtype == bool
    assert 0.02 < pixel_size_nm < 0.11
    fractions = np.array([it.mask.mean() for it in items])
    assert fractions.min() == 0.0  # one image has no contamination
    assert 0.05 < fractions.mean() < 0.2
    assert items[-3].series == items[-2].series == "2015_0310_Gr_D4_FS_001"


def test_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(FileReadError, match="needs images/ and labels/"):
        load_graphene_contamination(tmp_path)
    (tmp_path / "images").mkdir()
    (tmp_path / "labels").mkdir()
    with pytest.raises(FileReadError, match=r"no \.png"):
        load_graphene_contamination(tmp_path)


def test_series_of():
    assert series_of("2015_0310_Gr_D4_FS_001_layer_0035") == "2015_0310_Gr_D4_FS_001"
    assert series_of("2013_1213_Gr_129.png") == "2013_1213_Gr_129"


def test_kfold_groups_stay_together_and_everything_is_tested_once():
    groups = ["a", "a", "b", "c", "c", "c", "d", "e", "f", "g", "h"]
    splits = kfold_splits(groups, k=4, seed=3)
    tested = np.concatenate([test for _, test in splits])
    assert sorted(tested.tolist()) == list(range(len(groups)))
    for train, test in splits:
        assert not set(train) & set(test)
        assert len(train) + len(test) == len(groups)
        for g in set(groups):
            members = {i for i, gi in enumerate(groups) if gi == g}
            assert members <= set(test) or not members & set(test)
    sizes = sorted(len(t) for _, t in splits)
    assert sizes[-1] - sizes[0] <= 3
    again = kfold_splits(groups, k=4, seed=3)
    assert all((a[1] == b[1]).all() for a, b in zip(splits, again))
    with pytest.raises(InputError, match="k-fold"):
        kfold_splits(groups, k=1)
    with pytest.raises(InputError, match="groups"):
        kfold_splits(["a", "a", "b"], k=3)
