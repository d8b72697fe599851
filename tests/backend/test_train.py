"""The training loop: learning, determinism, resume, export round trip, fine-tuning, CLI."""

from __future__ import annotations

import csv
import importlib.util
import json

import numpy as np
import pytest
import torch
import yaml

from napari_atomseg import cli
from napari_atomseg.backend import predict
from napari_atomseg.backend.cards import load_card
from napari_atomseg.backend.normalisation import normalise
from napari_atomseg.backend.registry import get_model
from napari_atomseg.backend.train_config import RENAMED_MODULES, current_module_name
from napari_atomseg.backend.train_data import AugmentConfig, augment_pair, load_pairs, save_pairs
from napari_atomseg.backend.train_loop import (
    TrainConfig,
    iter_train,
    learning_rate,
    prepare_pair,
    train,
)
from napari_atomseg.errors import InputError
from tests._synth import blob_image
from tests.backend.blob_task import BlobTask

TASK = "tests.backend.blob_task:BlobTask"


def config(tmp_path, name="blob", **over):
    data = {
        "name": name,
        "task": TASK,
        "task_options": {"patch_px": 32},
        "card": {"architecture": {"base_channels": 4, "depth": 1}},
        "steps": 12,
        "batch_size": 4,
        "lr": 5e-3,
        "workers": 0,
        "val_examples": 8,
        "val_every": 6,
        "log_every": 3,
        "checkpoint_every": 6,
        "out_dir": str(tmp_path / name),
    }
    data.update(over)
    return data


def weights(card):
    from safetensors.torch import load_file

    return load_file(str(card.weights_path))


def same_weights(a, b):
    wa, wb = weights(a), weights(b)
    return set(wa) == set(wb) and all(torch.equal(wa[k], wb[k]) for k in wa)


def read_log(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_a_few_dozen_steps_reduce_the_loss(tmp_path):
    result = train(config(tmp_path, steps=48, lr=1e-2, log_every=8, val_every=48), log=None)
    rows = [r for r in read_log(result.log_csv) if r["train_loss"] != "nan"]
    first, last = float(rows[0]["train_loss"]), float(rows[-1]["train_loss"])
    assert last < 0.75 * first, (first, last)
    assert result.validation["loss"] < first
    assert {"loss", "mae"} <= set(result.validation)


def test_same_seed_same_weights_whatever_the_workers(tmp_path):
    a = train(config(tmp_path, "a"), log=None).card
    b = train(config(tmp_path, "b"), log=None).card
    c = train(config(tmp_path, "c", workers=2), log=None).card
    d = train(config(tmp_path, "d", seed=1), log=None).card
    assert same_weights(a, b)
    assert same_weights(a, c)  # examples depend on (seed, index) only
    assert not same_weights(a, d)


def test_resume_reaches_the_uninterrupted_weights(tmp_path):
    straight = train(config(tmp_path, "straight"), log=None).card
    cfg = config(tmp_path, "broken")
    gen = iter_train(cfg, log=None)
    for step in gen:
        if step.done == 6:  # a checkpoint was just written
            break
    gen.close()
    assert (tmp_path / "broken" / "checkpoint.safetensors").is_file()
    assert not (tmp_path / "broken" / "broken.safetensors").exists()
    resumed = train(cfg, resume=True, log=None)
    assert same_weights(straight, resumed.card)
    steps = [int(r["step"]) for r in read_log(resumed.log_csv)]
    assert steps == sorted(set(steps)) and steps[-1] == 12  # no duplicated rows after resuming


def test_resume_refuses_another_configuration(tmp_path):
    train(config(tmp_path, "x", steps=6), log=None)
    with pytest.raises(InputError, match="different configuration"):
        train(config(tmp_path, "x", steps=6, seed=5), resume=True, log=None)
    with pytest.raises(InputError, match="no checkpoint"):
        train(config(tmp_path, "y"), resume=True, log=None)


def test_card_round_trip_and_prediction_matches_the_network(tmp_path):
    result = train(config(tmp_path, steps=6), log=None, command="napari-atomseg train blob.yaml")
    card = load_card(result.card_path)
    assert card.weights.sha256 and card.weights_path == result.weights_path
    t = card.training
    assert t["command"] == "napari-atomseg train blob.yaml" and t["seed"] == 0 and t["steps"] == 6
    assert t["hardware"]["device"] == "cpu" and t["wall_time_s"] >= 0
    assert t["config"]["task"] == TASK and t["data"]["task_options"] == {"patch_px": 32}
    assert card.metrics["validation"]["loss"] == pytest.approx(result.validation["loss"], rel=1e-5)
    assert card.input.scale_reference is not None and card.input.scale_reference.n_examples == 8
    assert card.input.working_pixel_size_nm == 0.02  # from the task's card_defaults

    img, _ = blob_image(np.random.default_rng(5), (64, 64))
    pred = predict(card.path, img, 0.02)
    model = get_model(card.path)
    x = torch.from_numpy(normalise(img, "robust_zscore"))[None, None]
    with torch.inference_mode():
        want = torch.sigmoid(model.module(x))[0].numpy()
    assert np.allclose(pred.outputs, want, atol=1e-5)


def test_scale_reference_is_measured_on_the_task_s_raw_examples(tmp_path):
    class Prepared(BlobTask):
        """Trains on narrow blobs but says the estimator will see wide ones."""

        def scale_reference_task(self):
            return BlobTask(patch_px=self.patch_px, sigma_px=4.0)

    plain = train(config(tmp_path, "plain", steps=2), log=None).card
    prepared = train(config(tmp_path, "prep", steps=2), task=Prepared(patch_px=32), log=None).card
    # Same training examples (same seed), so the same validation loss; only the scale
    # reference comes from the other task's (wider) images.
    assert prepared.metrics["validation"]["loss"] == pytest.approx(
        plain.metrics["validation"]["loss"], rel=1e-6
    )
    ratio = (
        prepared.input.scale_reference.feature_sigma_nm
        / plain.input.scale_reference.feature_sigma_nm
    )
    assert ratio > 1.5
    assert prepared.input.scale_reference.n_examples == 8


def test_learned_model_finds_blobs(tmp_path):
    result = train(
        config(
            tmp_path,
            steps=80,
            lr=1e-2,
            batch_size=8,
            val_every=80,
            card={"architecture": {"base_channels": 8, "depth": 2}},
        ),
        log=None,
    )
    img, clean = blob_image(np.random.default_rng(99), (96, 96))
    heat = predict(result.card_path, img, 0.02).outputs[0]
    r = np.corrcoef(heat.ravel(), clean.ravel())[0, 1]
    r_raw = np.corrcoef(img.ravel(), clean.ravel())[0, 1]
    assert r > 0.8 and r > r_raw, (r, r_raw)


def test_fine_tuning_from_a_model_on_fixed_pairs(tmp_path):
    base = train(config(tmp_path, "base", steps=6), log=None).card
    rng = np.random.default_rng(0)
    pairs = []
    for _ in range(3):
        img, clean = blob_image(rng, (40, 50))
        pairs.append(prepare_pair(img, clean, 0.02, base))
    assert pairs[0][0].shape == (1, 40, 50) and pairs[0][1].shape == (1, 40, 50)
    save_pairs(tmp_path / "pairs.npz", pairs)
    assert len(load_pairs(tmp_path / "pairs.npz")) == 3
    tuned = train(
        config(
            tmp_path,
            "tuned",
            steps=6,
            init_from=str(base.path),
            pairs=str(tmp_path / "pairs.npz"),
            card={},
        ),
        val_pairs=pairs[:1],
        log=None,
    ).card
    assert tuned.training["init_from"]["sha256"] == base.weights.sha256
    assert tuned.training["data"]["fine_tuning_pairs"] == 3
    assert tuned.architecture == base.architecture
    assert not same_weights(base, tuned)


def test_task_examples_larger_than_the_crop_are_cropped_like_pairs(tmp_path):
    # a task that simulates a margin (tile 40 px) mixed with pairs cropped to 32 px: every
    # example of a batch must come out 32 px, whatever its source
    rng = np.random.default_rng(1)
    pairs = [
        (img[None], clean[None]) for img, clean in (blob_image(rng, (48, 48)) for _ in range(2))
    ]
    save_pairs(tmp_path / "pairs.npz", pairs)
    result = train(
        config(
            tmp_path,
            "margin",
            task_options={"patch_px": 40},
            crop_px=32,
            pairs=str(tmp_path / "pairs.npz"),
            pairs_fraction=0.5,
            steps=3,
            val_every=3,
            checkpoint_every=3,
        ),
        log=None,
    )
    assert result.card.training["data"]["fine_tuning_pairs"] == 2


def test_prepare_pair_resamples_images_and_class_maps(tmp_path):
    base = train(config(tmp_path, "base", steps=3), log=None).card
    img = np.random.default_rng(1).random((100, 80)).astype(np.float32)
    labels = np.zeros((100, 80), np.uint8)
    labels[:, 40:] = 2
    x, y = prepare_pair(img, labels, 0.01, base)  # working 0.02: half the pixels
    assert x.shape == (1, 50, 40) and y.shape == (50, 40) and y.dtype == np.int64
    assert set(np.unique(y)) == {0, 2}
    with pytest.raises(InputError, match="does not match"):
        prepare_pair(img, labels[:50], 0.01, base)


def test_prepare_pair_subtracts_the_card_s_background(tmp_path):
    from napari_atomseg.backend.cards import card_from_dict, save_card
    from napari_atomseg.backend.normalisation import subtract_background

    base = train(config(tmp_path, "base", steps=3), log=None).card
    data = base.to_dict()
    data["input"]["background_sigma_nm"] = 0.4
    flat = load_card(save_card(card_from_dict(data), tmp_path / "flat" / "flat.yaml"))
    img = np.random.default_rng(2).random((60, 70)).astype(np.float32) + np.arange(70) * 0.5
    target = np.zeros((60, 70), np.float32)
    x, _ = prepare_pair(img, target, 0.02, flat)  # working 0.02: 0.4 nm = 20 px
    want = normalise(subtract_background(img, 20.0), "robust_zscore")
    assert np.allclose(x[0], want, atol=1e-5)


ARCH = {"architecture": {"base_channels": 4, "depth": 1}}


def test_card_and_task_must_prepare_images_alike(tmp_path):
    with pytest.raises(InputError, match="background_sigma_nm"):
        train(config(tmp_path, card={**ARCH, "input": {"background_sigma_nm": 1.0}}), log=None)
    with pytest.raises(InputError, match="normalisation"):
        train(config(tmp_path, card={**ARCH, "input": {"normalisation": "zscore"}}), log=None)


def test_library_source(tmp_path):
    zarr = pytest.importorskip("zarr")
    rng = np.random.default_rng(0)
    n = 10
    g = zarr.open_group(str(tmp_path / "lib.zarr"), mode="w")
    imgs, heats = zip(*[blob_image(rng, (32, 32)) for _ in range(n)])
    g.create_array("image", data=np.stack(imgs), chunks=(1, 32, 32))
    g.create_array("heatmap", data=np.stack(heats), chunks=(1, 32, 32))
    g.create_array("done", data=np.array([True] * (n - 1) + [False]))
    g.attrs["parameters"] = [{"pixel_size_nm": 0.02, "seed": i} for i in range(n)]
    result = train(
        config(tmp_path, "lib", steps=4, library=str(tmp_path / "lib.zarr"), library_fraction=1.0),
        log=None,
    )
    assert result.card.training["data"]["library"].endswith("lib.zarr")
    from napari_atomseg.backend.train_data import ZarrLibrary

    lib = ZarrLibrary(tmp_path / "lib.zarr")
    assert len(lib) == 9
    rec = lib.record(3)
    assert rec.pixel_size_nm == 0.02 and rec.heatmap.shape == (32, 32) and rec.classes is None


def test_augmentation_keeps_image_and_target_aligned():
    rng = np.random.default_rng(0)
    img = np.zeros((1, 32, 32), np.float32)
    img[0, 3, 20] = 1.0
    tgt = img.copy()
    cls = (img[0] > 0).astype(np.int64)
    for seed in range(8):
        a, t = augment_pair(
            img, tgt, np.random.default_rng(seed), AugmentConfig(gain=0, offset=0, noise=0)
        )
        assert np.array_equal(np.argwhere(a[0] > 0.5), np.argwhere(t[0] > 0.5))
        a, c = augment_pair(
            img, cls, np.random.default_rng(seed), AugmentConfig(noise=0.1, scale_jitter=0.1)
        )
        assert c.dtype == np.int64 and set(np.unique(c)) <= {0, 1}
    assert np.array_equal(img, tgt) and img.sum() == 1.0  # inputs untouched
    with pytest.raises(InputError, match="unknown key"):
        AugmentConfig.from_value({"rotate": 45})
    assert rng is not None


def test_config_errors(tmp_path):
    with pytest.raises(InputError, match="unknown key"):
        TrainConfig.from_mapping({**config(tmp_path), "epochs": 3})
    with pytest.raises(InputError, match="missing required"):
        TrainConfig.from_mapping({"name": "x"})
    with pytest.raises(InputError, match="schedule"):
        TrainConfig.from_mapping(config(tmp_path, schedule="step"))
    with pytest.raises(InputError, match="library_fraction"):
        TrainConfig.from_mapping(config(tmp_path, library_fraction=0.5))
    with pytest.raises(InputError, match="cannot be imported"):
        train(config(tmp_path, task="no.such.module:Task"), log=None)
    with pytest.raises(InputError, match="channel"):
        arch = {"base_channels": 4, "depth": 1}
        outputs = [{"name": "a", "activation": "sigmoid", "channels": 2}]
        train(config(tmp_path, card={"architecture": arch, "outputs": outputs}), log=None)


@pytest.mark.parametrize("old, new", sorted(RENAMED_MODULES.items()))
def test_renamed_task_modules_resolve_under_their_new_names(old, new):
    # Cards and configs written before a module was renamed name the old module.
    assert importlib.util.find_spec(old) is None, f"{old} exists again: drop it from the table"
    assert importlib.util.find_spec(new) is not None
    assert current_module_name(old) == new
    assert current_module_name(f"{old}.sub") == f"{new}.sub"
    assert current_module_name(f"{old}_other") == f"{old}_other"  # whole names only
    assert current_module_name("tests.backend.blob_task") == "tests.backend.blob_task"


def test_task_returning_bad_examples_is_named(tmp_path):
    class Bad(BlobTask):
        def make_example(self, rng):
            x, y = super().make_example(rng)
            return x.astype(np.float64), y

    with pytest.raises(InputError, match=r"task\.make_example: image must be float32"):
        train(config(tmp_path), task=Bad(patch_px=32), log=None)


def test_learning_rate_schedules():
    lrs = [learning_rate(s, 100, 1e-3, "onecycle") for s in range(100)]
    assert lrs[0] == pytest.approx(1e-3 / 25) and max(lrs) == pytest.approx(1e-3, rel=1e-3)
    assert lrs[-1] < 1e-5 and np.argmax(lrs) == 30
    cos = [learning_rate(s, 100, 1e-3, "cosine", warmup=10) for s in range(100)]
    assert cos[9] == pytest.approx(1e-3) and cos[-1] < 2e-5
    assert learning_rate(50, 100, 1e-3, "constant") == 1e-3


def test_cli_trains_from_a_yaml_file(tmp_path, capsys):
    path = tmp_path / "blob.yaml"
    path.write_text(yaml.safe_dump(config(tmp_path, steps=100)))
    code = cli.main(
        ["train", str(path), "--steps", "3", "--quiet", "--export-dir", str(tmp_path / "export")]
    )
    assert code == 0
    card = load_card(tmp_path / "export" / "blob.yaml")
    assert card.training["steps"] == 3
    assert card.training["command"].startswith(f"napari-atomseg train {path} --steps 3")
    assert "model written" in capsys.readouterr().out
    args = ["train", str(path), "--steps", "3", "--seed", "11", "--quiet"]
    assert cli.main([*args, "--export-dir", str(tmp_path / "seeded")]) == 0
    seeded = load_card(tmp_path / "seeded" / "blob.yaml")
    assert seeded.training["seed"] == 11 and "--seed 11" in seeded.training["command"]
    assert seeded.weights.sha256 != card.weights.sha256  # another seed, another model
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"name": "x", "task": TASK, "steps": 2, "colour": 1}))
    assert cli.main(["train", str(bad)]) == 1
    assert "unknown key" in capsys.readouterr().err
    json.dumps(card.to_dict())  # the card is plain data


def test_example_pool_is_reproducible_cached_and_used(tmp_path, monkeypatch):
    from napari_atomseg.backend import train_sources

    calls = []
    original = train_sources._pool_example

    def counting(task, seed, j):
        calls.append(j)
        return original(task, seed, j)

    monkeypatch.setattr(train_sources, "_pool_example", counting)
    a = train(config(tmp_path, "pool", example_pool=10), log=None)
    assert sorted(calls) == list(range(10))  # simulated once each
    pool_file = tmp_path / "pool" / "example_pool.npz"
    assert pool_file.is_file()
    assert "example pool: 10 examples" in (tmp_path / "pool" / "pool.train_log.txt").read_text()
    # the same config reuses the cached pool (no new simulation) and gives the same model
    calls.clear()
    b = train(config(tmp_path, "pool", example_pool=10), log=None)
    assert calls == []
    assert same_weights(a.card, b.card)
    # a pool differs from simulating every example
    c = train(config(tmp_path, "nopool"), log=None)
    assert not same_weights(a.card, c.card)
    # a changed task invalidates the cache
    calls.clear()
    train(config(tmp_path, "pool", example_pool=10, task_options={"patch_px": 40}), log=None)
    assert sorted(calls) == list(range(10))
    # ...and so does changed simulator/task code (same config)
    calls.clear()
    monkeypatch.setattr(train_sources, "_generator_digest", lambda task: "other-code")
    train(config(tmp_path, "pool", example_pool=10, task_options={"patch_px": 40}), log=None)
    assert sorted(calls) == list(range(10))


def test_example_pool_in_worker_processes_matches_one_process(tmp_path):
    a = train(config(tmp_path, "p1", example_pool=6, workers=0), log=None).card
    b = train(config(tmp_path, "p2", example_pool=6, workers=2), log=None).card
    assert same_weights(a, b)


def test_example_pool_must_be_a_count(tmp_path):
    with pytest.raises(InputError, match="example_pool"):
        train(config(tmp_path, example_pool=-1), log=None)


def test_init_from_a_wider_model_prunes_it(tmp_path):
    """A narrower card with init_from a trained wider model starts from the pruned
    teacher (not from random weights) and records where it came from."""
    base = train(
        config(tmp_path, "wide", steps=6, card={"architecture": {"base_channels": 8, "depth": 1}}),
        log=None,
    ).card
    narrow = train(
        config(
            tmp_path,
            "narrow",
            steps=1,
            lr=1e-12,  # (one step that moves nothing: the weights are the pruned teacher)
            init_from=str(base.path),
            card={"architecture": {"base_channels": 6, "depth": 1}},
        ),
        log=None,
    ).card
    assert narrow.architecture["base_channels"] == 6
    info = narrow.training["init_from"]
    assert info["sha256"] == base.weights.sha256
    assert info["pruned_from_architecture"]["base_channels"] == 8
    w_wide, w_narrow = weights(base), weights(narrow)
    assert w_narrow["stem.0.weight"].shape[0] == 6
    # every kept stem filter is one of the teacher's
    for f in w_narrow["stem.0.weight"]:
        assert any(torch.allclose(f, g, atol=1e-6) for g in w_wide["stem.0.weight"])


class _DistilBlob(BlobTask):
    def distill_loss(self, logits, teacher_logits, target):
        soft = torch.sigmoid(teacher_logits[:, :1])
        return torch.nn.functional.binary_cross_entropy_with_logits(logits[:, :1], soft)


def test_distillation_pulls_the_student_towards_the_teacher(tmp_path):
    """With a teacher, the student also learns the teacher's output on every pixel: after
    the same steps from the same seed it answers much more like the teacher than a student
    trained on the targets alone, and its card names the teacher. (The teacher here is an
    untrained network, whose answer is far from the targets, so the pull is visible.)"""
    wide = {"architecture": {"base_channels": 8, "depth": 1}}
    narrow = {"architecture": {"base_channels": 4, "depth": 1}}
    teacher = train(config(tmp_path, "teacher", steps=1, lr=1e-12, card=wide), log=None).card
    common = {"steps": 60, "card": narrow, "seed": 3}
    task = _DistilBlob(patch_px=32)
    alone = train(config(tmp_path, "alone", **common), task=task, log=None).card
    taught = train(
        config(tmp_path, "taught", teacher=str(teacher.path), distill_weight=20.0, **common),
        task=task,
        log=None,
    ).card
    rng = np.random.default_rng(99)
    x = torch.from_numpy(
        np.stack([normalise(blob_image(rng, (32, 32))[0], "robust_zscore")[None] for _ in range(6)])
    )

    def out(card):
        with torch.no_grad():
            return torch.sigmoid(get_model(card.path, device="cpu").module(x))

    ref = out(teacher)
    gap_alone = float((out(alone) - ref).abs().mean())
    gap_taught = float((out(taught) - ref).abs().mean())
    assert gap_taught < 0.5 * gap_alone, (gap_taught, gap_alone)
    info = taught.training["teacher"]
    assert info["sha256"] == teacher.weights.sha256 and info["distill_weight"] == 20.0
    assert "teacher" not in alone.training


def test_distillation_config_errors(tmp_path):
    with pytest.raises(InputError, match="go together"):
        TrainConfig.from_mapping(config(tmp_path, teacher="x.yaml"))
    with pytest.raises(InputError, match="go together"):
        TrainConfig.from_mapping(config(tmp_path, distill_weight=1.0))
    with pytest.raises(InputError, match="distill_weight"):
        TrainConfig.from_mapping(config(tmp_path, teacher="x.yaml", distill_weight=-1.0))
    teacher = train(config(tmp_path, "t", steps=1), log=None).card
    with pytest.raises(InputError, match="cannot distil"):  # BlobTask has no distill_loss
        train(config(tmp_path, teacher=str(teacher.path), distill_weight=1.0), log=None)


def test_stages_of_one_config_train_in_turn_and_equal_separate_runs(tmp_path):
    """A config with two stages trains the second from the first and records both in the
    final card; it gives the very weights of two separate configs chained by init_from,
    and --resume skips a finished stage."""
    staged = config(
        tmp_path,
        "staged",
        steps=6,
        stages=[
            {"name": "first", "steps": 6, "lr": 5e-3},
            {"name": "second", "steps": 4, "lr": 1e-3, "seed": 3},
        ],
    )
    result = train(staged, log=None)
    assert result.card.name == "staged"
    assert result.card_path == tmp_path / "staged" / "staged.yaml"  # the final model
    assert (tmp_path / "staged" / "first" / "staged_first.yaml").is_file()
    stages = result.card.training["stages"]
    assert [s["stage"] for s in stages] == ["first"] and stages[0]["steps"] == 6
    assert result.card.training["init_from"]["sha256"] == stages[0]["sha256"]
    assert result.card.training["config"]["steps"] == 4

    first = train(config(tmp_path, "first", steps=6, lr=5e-3), log=None)
    second = train(
        config(tmp_path, "second", steps=4, lr=1e-3, seed=3, init_from=str(first.card_path)),
        log=None,
    )
    assert same_weights(result.card, second.card)

    lines = []
    again = train(staged, resume=True, log=lines.append)
    assert any("stage first: finished earlier" in line for line in lines)
    assert same_weights(again.card, result.card)


def test_stage_errors_are_named(tmp_path):
    with pytest.raises(InputError, match="stage 0 needs a 'name'"):
        TrainConfig.from_mapping(config(tmp_path, stages=[{"steps": 3}]))
    with pytest.raises(InputError, match="cannot set \\['card'\\]"):
        TrainConfig.from_mapping(config(tmp_path, stages=[{"name": "a", "steps": 3, "card": {}}]))
    with pytest.raises(InputError, match="cannot set \\['init_from'\\]"):
        TrainConfig.from_mapping(
            config(
                tmp_path,
                stages=[{"name": "a", "steps": 3}, {"name": "b", "steps": 2, "init_from": "x"}],
            )
        )
    with pytest.raises(InputError, match="unique"):
        TrainConfig.from_mapping(
            config(tmp_path, stages=[{"name": "a", "steps": 3}, {"name": "a", "steps": 2}])
        )
    with pytest.raises(InputError, match="steps must be a positive integer"):
        TrainConfig.from_mapping(config(tmp_path, stages=[{"name": "a", "steps": 0}]))
