"""Weights: sha256 verification before loading, architecture checks, the one cache."""

from __future__ import annotations

import json
import os
import struct

import numpy as np
import pytest
import torch
import yaml

from napari_atomseg.backend import registry
from napari_atomseg.backend.cards import MODELS_DIR, card_from_dict, load_card
from napari_atomseg.backend.nets import build_model, fold_batchnorm, prune_into
from napari_atomseg.backend.registry import clear_cache, export_model, get_model, verify_weights
from napari_atomseg.errors import ModelError
from tests._models import randomise_batchnorm, tiny_card_dict


def test_export_writes_safetensors_and_a_matching_card(make_model):
    card = make_model()
    path = card.weights_path
    assert path.suffix == ".safetensors"
    raw = path.read_bytes()
    header_len = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8 : 8 + header_len])  # safetensors: JSON header, raw tensors, no pickle
    assert "stem.0.weight" in header
    assert card.weights.size_bytes == len(raw)
    assert verify_weights(card) == path


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
def test_exported_weights_are_readable_by_others(make_model):
    """safetensors writes 0600; an exported model gets the usual (umask) permissions."""
    umask = os.umask(0)
    os.umask(umask)
    mode = make_model().weights_path.stat().st_mode & 0o777
    assert mode == 0o666 & ~umask


def test_cache_returns_the_same_object_until_cleared(make_model):
    card = make_model()
    a = get_model(card.path)
    b = get_model(str(card.path))
    assert a is b
    assert not a.module.training
    assert all(not p.requires_grad for p in a.module.parameters())
    assert (str(card.path), "cpu") in registry.cached_models()
    clear_cache()
    c = get_model(card.path)
    assert c is not a
    assert registry.cached_models() == [(str(card.path), "cpu")]


def test_cache_reloads_when_the_weights_are_replaced(make_model):
    first = make_model("m", seed=0)
    a = get_model(first.path)
    second = make_model("m", seed=1)  # same name and folder: re-trained in place
    assert second.weights.sha256 != first.weights.sha256
    b = get_model(second.path)
    assert b is not a
    assert b.card.weights.sha256 == second.weights.sha256


def test_cache_follows_a_card_edited_on_disk(make_model):
    """A fine-tune loads its model, then writes the threshold it chose into the card: the
    next get_model must see the new card (a stale one kept the old defaults)."""
    from napari_atomseg.backend.cards import save_card

    card = make_model()
    a = get_model(card.path)
    save_card(card.with_updates(postprocess={"threshold": 0.42}), card.path)
    b = get_model(card.path)
    assert b.card.postprocess == {"threshold": 0.42}
    assert b.module is a.module  # same weights: not rebuilt
    assert get_model(card.path) is b


def test_sha_mismatch_is_refused_before_loading(make_model):
    card = make_model()
    raw = bytearray(card.weights_path.read_bytes())
    raw[-1] ^= 0xFF  # same size, different content
    card.weights_path.write_bytes(bytes(raw))
    with pytest.raises(ModelError, match=r"sha256 of .* is .* the card says"):
        get_model(card.path)


def test_size_mismatch_and_missing_file(make_model):
    card = make_model()
    card.weights_path.write_bytes(card.weights_path.read_bytes()[:-10])
    with pytest.raises(ModelError, match="truncated"):
        get_model(card.path)
    card.weights_path.unlink()
    with pytest.raises(ModelError, match="weights file missing"):
        get_model(card.path)


def test_card_architecture_mismatch_is_explained(make_model):
    card = make_model()
    data = yaml.safe_load(card.path.read_text())
    data["architecture"]["base_channels"] = 8  # the weights were saved for 4
    card.path.write_text(yaml.safe_dump(data))
    with pytest.raises(ModelError, match=r"do not fit the architecture.*shape mismatch"):
        get_model(card.path)
    data["architecture"]["depth"] = 3
    card.path.write_text(yaml.safe_dump(data))
    with pytest.raises(ModelError, match="missing"):
        get_model(card.path)


def test_card_without_weights_and_unknown_device(make_model, monkeypatch):
    card = make_model()
    data = yaml.safe_load(card.path.read_text())
    del data["weights"]
    card.path.write_text(yaml.safe_dump(data))
    with pytest.raises(ModelError, match="no 'weights' section"):
        get_model(card.path)


def test_export_refuses_a_module_of_another_architecture(tmp_path):
    card = card_from_dict(tiny_card_dict())
    other = build_model({"base_channels": 8, "depth": 2}, [1])
    with pytest.raises(ModelError, match="does not match"):
        export_model(other, card, tmp_path)


def test_loaded_model_reproduces_the_saved_network(make_model):
    """Folded batch norm + channels_last give the same numbers as the saved network."""
    card = make_model(seed=3)
    torch.manual_seed(3)
    reference = build_model(card.architecture, card.head_channels)
    randomise_batchnorm(reference, 3)
    reference.eval()
    x = torch.randn(2, 1, 64, 64)
    loaded = get_model(card.path)
    with torch.inference_mode():
        want = reference(x)
        got = loaded.module(x.contiguous(memory_format=torch.channels_last))
    assert torch.allclose(got, want, atol=1e-5, rtol=1e-4)
    assert loaded.stride_multiple == 4


def test_fold_batchnorm_keeps_outputs_and_removes_norms():
    torch.manual_seed(0)
    net = build_model({"base_channels": 8, "depth": 2, "stem_stride": 2}, [1, 3])
    randomise_batchnorm(net)
    net.eval()
    x = torch.randn(1, 1, 64, 64)
    with torch.no_grad():
        before = net(x)
        fold_batchnorm(net)
        after = net(x)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in net.modules())
    assert before.shape == (1, 4, 64, 64)
    assert torch.allclose(before, after, atol=1e-5)


@pytest.mark.parametrize("norm", ["batch", "group", "none"])
@pytest.mark.parametrize("upsample", ["bilinear", "transpose"])
def test_inference_decoder_without_cat_matches_the_training_path(norm, upsample):
    """Eval mode splits each decoder's first convolution instead of concatenating the
    skip connection (faster on CPU); it must compute the same function as training mode."""
    torch.manual_seed(1)
    net = build_model({"base_channels": 6, "depth": 3, "norm": norm, "upsample": upsample}, [1])
    if norm == "batch":
        randomise_batchnorm(net)
    x = torch.randn(2, 1, 48, 48)
    with torch.no_grad():
        net.eval()
        split = net(x)
        net.train()
        if (
            norm == "batch"
        ):  # training-mode batch norm uses batch statistics: compare the cat path in eval
            for m in net.modules():
                if isinstance(m, torch.nn.BatchNorm2d):
                    m.eval()
        cat = net(x)
    assert torch.allclose(split, cat, atol=1e-5)


def test_shipped_models_load_and_run():
    """Every shipped model verifies, loads and runs (none shipped yet: nothing to do)."""
    for path in MODELS_DIR.glob("*.yaml"):
        card = load_card(path)
        loaded = get_model(card.name)
        side = loaded.stride_multiple * 4
        with torch.inference_mode():
            out = loaded.module(torch.zeros(1, card.architecture.get("in_channels", 1), side, side))
        assert out.shape[1] == card.n_channels_out
        assert np.isfinite(out.numpy()).all()


@pytest.mark.parametrize("convs_per_block", [1, 2])
def test_pruning_keeps_live_channels_and_reproduces_the_teacher(convs_per_block):
    """A base-12 teacher whose every layer has 4 dead output channels (zero filter,
    zero scale and shift) computes the same function as the base-8 student pruned from
    it: pruning must keep the live channels and wire skips/decoders correctly."""
    torch.manual_seed(3)
    arch = {"depth": 3, "convs_per_block": convs_per_block}
    teacher = build_model({"base_channels": 12, **arch}, [1, 2])
    randomise_batchnorm(teacher)
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for m in teacher.modules():
            if isinstance(m, torch.nn.Sequential) and isinstance(m[0], torch.nn.Conv2d):
                n = m[0].out_channels
                dead = torch.randperm(n, generator=gen)[: n // 3]
                m[0].weight[dead] = 0
                m[1].weight[dead] = 0
                m[1].bias[dead] = 0
                # dead channels must also look unimportant after the running statistics
                m[1].running_mean[dead] = 0
    student = build_model({"base_channels": 8, **arch}, [1, 2])
    prune_into(teacher, student)
    teacher.eval()
    student.eval()
    x = torch.randn(2, 1, 40, 40)
    with torch.no_grad():
        assert torch.allclose(teacher(x), student(x), atol=1e-5)


def test_pruning_refuses_other_layouts():
    teacher = build_model({"base_channels": 8, "depth": 3}, [1])
    with pytest.raises(ModelError, match="pruning"):
        prune_into(teacher, build_model({"base_channels": 8, "depth": 2}, [1]))
    with pytest.raises(ModelError, match="wider"):
        prune_into(teacher, build_model({"base_channels": 12, "depth": 3}, [1]))
