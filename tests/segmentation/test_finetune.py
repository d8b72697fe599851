"""Fine-tuning on real labelled images: pairs (pre-processing, partial labels) and a run."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

torch = pytest.importorskip("torch")

from napari_atomseg._progress import drain  # noqa: E402
from napari_atomseg.backend.cards import MODELS_DIR, load_card  # noqa: E402
from napari_atomseg.backend.registry import get_model  # noqa: E402
from napari_atomseg.backend.train_data import load_pairs  # noqa: E402
from napari_atomseg.errors import InputError  # noqa: E402
from napari_atomseg.segmentation import finetune  # noqa: E402
from napari_atomseg.segmentation.data import LabelledImage  # noqa: E402
from napari_atomseg.segmentation.training import NOT_FLAGGED, SegmentationTask  # noqa: E402
from tests._data import REPO_ROOT, shared_path  # noqa: E402
from tests._synth import contaminated_lattice  # noqa: E402


def _items(n: int = 3) -> list[LabelledImage]:
    out = []
    for i in range(n):
        image, mask = contaminated_lattice((96, 96), period_px=6.0, seed=10 + i)
        out.append(LabelledImage(f"img{i}", image.astype(np.float32), mask, 0.02, "", f"s{i}"))
    return out


def test_real_pairs_preprocess_and_partial_labels():
    task = SegmentationTask("contamination", working_pixel_size_nm=0.04)
    items = _items(2)
    pairs = finetune.real_pairs(items, task)
    assert len(pairs) == 2
    for (x, t), it in zip(pairs, items):
        assert x.shape == (1, 48, 48) and x.dtype == np.float32
        assert t.shape == (48, 48) and set(np.unique(t)) <= {1, NOT_FLAGGED}
        assert (t == 1).mean() == pytest.approx(it.mask.mean(), abs=0.03)
        # normalised as the card says (robust z-score): median ~0
        assert abs(float(np.median(x))) < 0.2
    # The flat-field the U-Net path applies is applied here too: a strong ramp is removed.
    ramp = items[0].image * np.linspace(0.5, 1.5, 96)[None, :]
    tilted = LabelledImage("ramp", ramp.astype(np.float32), items[0].mask, 0.02)
    (xr, _), (x0, _) = finetune.real_pairs([tilted, items[0]], task)
    left, right = xr[0, :, :12].mean(), xr[0, :, -12:].mean()
    assert abs(left - right) < 0.5
    np.testing.assert_allclose(xr, x0, atol=0.6)
    with pytest.raises(InputError, match="no pixel size"):
        finetune.real_pairs([LabelledImage("x", ramp, items[0].mask, None)], task)


def _tiny_config(tmp_path: Path) -> dict:
    return {
        "name": "tiny_contamination",
        "task": "napari_atomseg.segmentation.training:SegmentationTask",
        "task_options": {"mode": "contamination", "working_pixel_size_nm": 0.04, "tile_px": 32},
        "card": {
            "architecture": {"type": "unet", "base_channels": 4, "depth": 1, "norm": "group"},
            "input": {"tile_px": 64, "overlap_px": 8},
        },
        "seed": 3,
        "steps": 4,
        "batch_size": 2,
        "crop_px": 32,
        "workers": 0,
        "threads": 1,
        "val_examples": 0,
        "pairs_fraction": 1.0,  # real pairs only: the simulation engine is not needed
        "pairs": str(tmp_path / "pairs.npz"),
        "out_dir": str(tmp_path / "run"),
    }


def test_iter_finetune_trains_on_pairs_and_exports_a_card(tmp_path):
    cfg = _tiny_config(tmp_path)
    task = finetune.task_from_config(cfg)
    pairs = finetune.real_pairs(_items(3), task)
    result = drain(finetune.iter_finetune(cfg, pairs, tmp_path / "fold0", name="tiny_fold0"))
    card = load_card(result.card_path)
    assert card.name == "tiny_fold0" and card.classes == ("crystal", "amorphous", "vacuum")
    assert card.training["data"]["fine_tuning_pairs"] == 3
    assert Path(result.weights_path).is_file()
    assert Path(result.card_path).parent == tmp_path / "fold0"


def test_a_card_written_before_the_package_rename_still_loads(tmp_path):
    # Cards exported before issue 22 (by 'napari-atomseg train' and the fine-tune command)
    # name the task in napari_atomseg.segment, now napari_atomseg.segmentation.
    shipped = MODELS_DIR / "segment_contamination.yaml"
    data = yaml.safe_load(shipped.read_text(encoding="utf-8"))
    data["training"]["config"]["task"] = "napari_atomseg.segment.training:SegmentationTask"
    shutil.copy(MODELS_DIR / data["weights"]["file"], tmp_path)
    path = tmp_path / "old_contamination.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    card = load_card(path)
    recorded = card.training["config"]
    assert recorded["task"] == "napari_atomseg.segment.training:SegmentationTask"
    task = finetune.task_from_config(recorded)
    assert isinstance(task, SegmentationTask) and task.mode == "contamination"
    assert get_model(path).card.name == "segment_contamination"


def test_write_pairs_from_the_real_set(tmp_path):
    folder = shared_path("graphene_contamination")
    cfg = _tiny_config(tmp_path)
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    # both from the selection set: the final set's images are refused
    with pytest.raises(InputError, match="selection"):
        finetune.write_pairs(path, folder, names=["2014_0601_Gr_FS_017_layer_0014"])
    names = ["2013_1213_Gr_129", "2014_0531_Graph_FS_020_layer_0007"]
    out = finetune.write_pairs(path, folder, names=names)
    pairs = load_pairs(out)
    assert len(pairs) == 2
    (x0, t0), (_x1, t1) = pairs
    # 256 px at 0.0337 nm -> 0.04 nm working pixels: 216 px
    assert x0.shape == (1, 216, 216) and t0.shape == (216, 216)
    assert 0.05 < (t0 == 1).mean() < 0.2  # 12 % of that image is labelled contamination
    assert (t1 == 1).mean() < 0.06  # and ~4 % of this one (the cleanest selection image)
    with pytest.raises(InputError, match=r"not in the \(selection\) set"):
        finetune.write_pairs(path, folder, names=["nope"])


def test_shipped_finetune_config_is_consistent():
    cfg = yaml.safe_load((REPO_ROOT / "configs" / "segment_contamination.yaml").read_text())
    pre = yaml.safe_load(
        (REPO_ROOT / "configs" / "segment_contamination_synthetic.yaml").read_text()
    )
    # Same task (mix, sampling) as the model it starts from.
    assert cfg["task_options"] == pre["task_options"]
    assert Path(cfg["init_from"]).stem == pre["name"]
    assert cfg["card"].get("default") is True and not pre["card"].get("default")
