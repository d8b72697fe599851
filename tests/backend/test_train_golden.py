"""The training loop reproduces recorded runs: same weights, logs and cards as the code
that made ``tests/backend/data/train_golden`` (see ``tests/backend/train_golden.py``)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.backend import train_golden as golden

pytest.importorskip("zarr")

RECORD = json.loads(golden.GOLDEN_JSON.read_text(encoding="utf-8"))
#: Bit for bit where the record was made; elsewhere within the record's tolerance.
EXACT = RECORD["platform"] == golden.platform_key()


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    return golden.run_all(tmp_path_factory.mktemp("golden"))


@pytest.mark.parametrize("scenario", list(golden.SCENARIOS))
def test_scenario_matches_the_record(runs, scenario):
    diffs = golden.differences(runs[scenario], RECORD["scenarios"][scenario], EXACT)
    assert not diffs, "\n".join(diffs[:20])


def test_resumed_run_matches_the_uninterrupted_record(tmp_path):
    from napari_atomseg.backend.train_loop import iter_train, train

    cfg = golden.base_config(tmp_path, "plain")
    gen = iter_train(cfg, log=None)
    for progress in gen:
        if progress.done == 6:  # a checkpoint was just written
            break
    gen.close()
    resumed = golden.run_summary(train(cfg, resume=True, log=None), tmp_path)
    want = RECORD["scenarios"]["plain"]
    for key in ("weights", "log_csv", "card", "validation"):
        diffs = golden.differences(resumed[key], want[key], EXACT, key)
        assert not diffs, "\n".join(diffs[:20])
    assert "resumed plain at step 6" in "\n".join(resumed["text_log"])


def test_a_card_written_by_the_finetune_command_still_loads_and_finds_atoms():
    from napari_atomseg.atoms import find_atoms
    from napari_atomseg.backend.cards import load_card
    from napari_atomseg.backend.registry import clear_cache, get_model
    from tests._synth import hex_lattice_px, render_columns

    card = load_card(golden.USER_CARD_DIR / "user_tuned.yaml")
    assert card.name == "user_tuned" and card.task == "atoms"
    assert card.training["command"].startswith("napari-atomseg finetune")
    assert card.metrics["fine_tuning"]["images"] == 2
    get_model(card.path, device="cpu")  # checks the weights' sha256 against the card
    true = hex_lattice_px((96, 96), 10.0, margin_px=2, seed=5)
    img = np.random.default_rng(5).poisson(render_columns((96, 96), true, 1.6, 200, 20))
    atoms = find_atoms(img.astype(np.float32), 0.025, model=card.path, threads=1)
    assert {"y_px", "x_px", "y_nm", "x_nm"} <= set(atoms.columns)
    clear_cache()
