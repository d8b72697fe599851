"""The per-peak rescorer for noisy lattices (atoms.rescore, detect.heatmap_to_atoms)."""

from __future__ import annotations

import re

import numpy as np
import pytest

from napari_atomseg.atoms.candidates import peak_candidates
from napari_atomseg.atoms.find import heatmap_to_atoms
from napari_atomseg.atoms.heatmap import HeatmapResult
from napari_atomseg.atoms.metrics import point_metrics
from napari_atomseg.atoms.options import model_postprocess
from napari_atomseg.atoms.rescore import (
    FEATURE_NAMES,
    Lattice,
    Rescorer,
    features,
    in_gate,
    lattice_of,
)
from napari_atomseg.backend.cards import load_card
from napari_atomseg.errors import InputError
from tests.atoms.synth import heatmap_for, hex_lattice_px, low_dose_lattice_with_hollows, render

PS = 0.02
RAMP = {"threshold": 0.4, "threshold_noisy": 0.6, "noise_ramp": [0.1, 0.2]}
N = len(FEATURE_NAMES)


def _spec(b2: float = 0.0, w: dict | None = None, mean: dict | None = None, **extra) -> dict:
    """A one-unit rescorer: logit = b2 + 5 tanh(sum of w[name] (feature - mean[name]))."""
    w1 = [[(w or {}).get(name, 0.0) for name in FEATURE_NAMES]]
    return {
        "features": list(FEATURE_NAMES),
        "mean": [(mean or {}).get(name, 0.0) for name in FEATURE_NAMES],
        "std": [1.0] * N,
        "w1": w1,
        "b1": [0.0],
        "w2": [5.0 if w else 0.0],
        "b2": b2,
        "keep_probability": 0.5,
        **extra,
    }


@pytest.fixture(scope="module")
def scene():
    return low_dose_lattice_with_hollows((256, 256), PS)


def _result(scene, postprocess) -> HeatmapResult:
    img, heat, _, _ = scene
    res = HeatmapResult.from_arrays(img, heat, PS)
    res.postprocess = dict(postprocess)
    return res


def test_features_tell_hollows_from_columns(scene):
    """Hollows (heatmap 0.5) sit 0.58 spacings from a more confident column and are no
    image maxima; columns (0.85) have no more confident peak near them and are."""
    img, _heat, true, hollows = scene
    res = _result(scene, RAMP)
    cand = peak_candidates(res, contrast="bright", imaging="stem")
    assert cand.features.shape == (len(cand.positions_px), N)
    assert np.isfinite(cand.features).all()
    assert cand.lattice.n_confident == len(cand.positions_px)  # all peaks are >= 0.4 here
    assert cand.lattice.spacing_px * PS == pytest.approx(0.3 / np.sqrt(3), rel=0.05)
    assert cand.threshold == pytest.approx(0.6)  # the noise ramp's, for comparison
    f = dict(zip(FEATURE_NAMES, cand.features.T))
    is_col = cand.confidence > 0.7
    assert is_col.sum() >= 0.95 * len(true) and (~is_col).sum() >= 0.9 * len(hollows)
    assert np.median(f["distance_to_higher"][~is_col]) == pytest.approx(1.0, abs=0.1)
    assert np.all(f["distance_to_higher"][is_col] > 1.5)
    assert np.median(f["prominence"][is_col]) > 0.5 > np.median(f["prominence"][~is_col])
    assert f["rank"][is_col].max() < f["rank"][~is_col].min()
    assert np.allclose(f["noise_level"], res.noise_level)
    assert np.allclose(f["dark"], 0.0)
    # Dark columns: the image is inverted for the prominence, and the flag is set.
    dark = features(
        -img, cand.positions_px, cand.confidence, base_threshold=0.4,
        noise_level=0.3, pixel_size_nm=PS, dark=True,
    )  # fmt: skip
    assert np.allclose(dark[:, 7], cand.features[:, 7]) and np.allclose(dark[:, 9], 1.0)
    assert features(img, np.zeros((0, 2)), np.zeros(0), base_threshold=0.4, noise_level=0.3,
                    pixel_size_nm=PS, dark=False).shape == (0, N)  # fmt: skip


def test_rescorer_probability_is_the_card_s_network():
    rng = np.random.default_rng(0)
    spec = {
        "features": list(FEATURE_NAMES),
        "mean": rng.normal(size=N).tolist(),
        "std": rng.uniform(0.5, 2, N).tolist(),
        "w1": rng.normal(size=(3, N)).tolist(),
        "b1": rng.normal(size=3).tolist(),
        "w2": rng.normal(size=3).tolist(),
        "b2": 0.3,
        "keep_probability": 0.45,
    }
    r = Rescorer.from_card(spec)
    x = rng.normal(size=(7, N))
    z = (x - spec["mean"]) / spec["std"]
    h = np.tanh(z @ np.array(spec["w1"]).T + spec["b1"])
    expected = 1 / (1 + np.exp(-(h @ spec["w2"] + 0.3)))
    assert np.allclose(r.probability(x), expected)
    assert np.array_equal(r.keep(x), expected >= 0.45)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"features": ["logit_confidence"]}, "features"),
        ({"mean": [0.0] * (N - 1)}, "mean"),
        ({"std": [0.0] * N}, "std"),
        ({"b1": [float("nan")]}, "b1"),
        ({"w1": []}, "w1"),
        ({"w2": "x"}, "w2"),
        ({"keep_probability": 1.5}, "keep_probability"),
        ({"max_spacing_cv": "wide"}, "max_spacing_cv"),
    ],
)
def test_bad_rescorer_in_a_card_is_named(change, field):
    with pytest.raises(InputError, match=re.escape(f"postprocess.rescorer.{field}")):
        Rescorer.from_card({**_spec(), **change})
    with pytest.raises(InputError, match=r"postprocess\.rescorer"):
        Rescorer.from_card(["not", "a", "mapping"])


def test_gate_is_for_noisy_regular_lattices_only():
    lattice = Lattice(n_confident=200, spacing_px=10.0, spacing_cv=0.1)  # 0.2 nm at PS
    assert in_gate(lattice, PS, 0.3, "stem") and in_gate(lattice, PS, 0.3, None)
    assert not in_gate(lattice, PS, 0.3, "hrtem")
    assert not in_gate(lattice, PS, 0.05, "stem")  # clean: the threshold is right
    assert not in_gate(lattice, None, 0.3, "stem") and not in_gate(lattice, PS, None, "stem")
    assert not in_gate(Lattice(4, 10.0, 0.1), PS, 0.3, "stem")  # too few columns
    assert not in_gate(Lattice(200, 10.0, 0.8), PS, 0.3, "stem")  # irregular: single atoms
    assert not in_gate(Lattice(200, 30.0, 0.1), PS, 0.3, "stem")  # 0.6 nm apart
    # The peaks the noise ramp keeps must be as regular as those at the card's threshold.
    assert in_gate(lattice, PS, 0.3, "stem", kept=Lattice(120, 11.0, 0.2))
    assert not in_gate(lattice, PS, 0.3, "stem", kept=Lattice(120, 14.0, 0.6))
    # The noise level, costly to measure, only where the lattice qualifies.
    asked = []
    assert in_gate(lattice, PS, lambda: asked.append(1) or 0.3, "stem") and asked == [1]
    assert not in_gate(Lattice(200, 30.0, 0.1), PS, lambda: asked.append(2) or 0.3, "stem")
    assert asked == [1]
    # The spacing statistics: a regular lattice has a small coefficient of variation.
    pos = np.stack(np.meshgrid(np.arange(10) * 8.0, np.arange(10) * 8.0), -1).reshape(-1, 2)
    lat = lattice_of(pos, np.r_[np.full(90, 0.9), np.full(10, 0.2)], 0.4)
    assert lat.n_confident == 90 and lat.spacing_px == pytest.approx(8.0) and lat.spacing_cv < 1e-9
    assert lattice_of(pos[:1], np.ones(1), 0.4).spacing_px == np.inf


def test_heatmap_to_atoms_lets_the_rescorer_decide_each_peak(scene):
    """With a rescorer in the card, a noisy lattice's peaks down to 0.1 are judged one by
    one: one that keeps everything keeps the hollows the ramp drops, one that keeps
    nothing keeps nothing, one that looks at distance_to_higher keeps the columns only."""
    img, heat, true, hollows = scene
    n_peaks = len(heatmap_to_atoms(_result(scene, RAMP), threshold=0.1, refine="none",
                                   contrast_check=False))  # fmt: skip
    post = {"refine": "none", "contrast_check": False, "contrast": "bright"}
    everything = heatmap_to_atoms(_result(scene, {**RAMP, "rescorer": _spec(10.0)}), **post)
    assert everything.attrs["threshold_from"] == "rescorer"
    assert len(everything) == n_peaks >= len(true) + 0.9 * len(hollows)
    assert everything.attrs["rescorer_added"] == n_peaks - len(true) - everything.attrs[
        "rescorer_removed"]  # fmt: skip
    nothing = heatmap_to_atoms(_result(scene, {**RAMP, "rescorer": _spec(-10.0)}), **post)
    assert len(nothing) == 0 and nothing.attrs["rescorer_removed"] >= 0.95 * len(true)
    judged = heatmap_to_atoms(
        _result(
            scene,
            {
                **RAMP,
                "rescorer": _spec(0.0, {"distance_to_higher": 2.0}, {"distance_to_higher": 1.3}),
            },
        ),
        **post,
    )
    m = point_metrics(judged[["y_px", "x_px"]].to_numpy(), true, radius_px=3)
    assert m.f1 > 0.99
    # A threshold given, HRTEM, no pixel size, a clean image: the rescorer stays out.
    card = {**RAMP, "rescorer": _spec(10.0)}
    assert heatmap_to_atoms(_result(scene, card), threshold=0.4, **post).attrs[
        "threshold_from"] == "given"  # fmt: skip
    hrtem = heatmap_to_atoms(_result(scene, card), imaging="hrtem", **post)
    assert hrtem.attrs["threshold_from"] == "model card" and hrtem.attrs["rescorer_added"] == 0
    no_ps = HeatmapResult.from_arrays(img, heat, None)
    no_ps.postprocess = card
    assert heatmap_to_atoms(no_ps, **post).attrs["threshold_from"] == "model card"
    rng = np.random.default_rng(5)
    bright = rng.poisson(render(img.shape, true, 0.045 / PS, 6000, 2000)).astype(np.float32)
    clean = HeatmapResult.from_arrays(bright, heat, PS)
    clean.postprocess = card
    assert heatmap_to_atoms(clean, **post).attrs["threshold_from"] == "model card"


def test_single_atoms_keep_the_threshold():
    """Scattered atoms on a noisy support (nearest neighbours 0.4 nm and more apart, as on
    the real Pt images) never reach the rescorer. (A denser random scatter can: the
    coefficient of variation of its nearest-neighbour distances is 0.52, at the gate's
    0.5; docs/atoms.md, "Rescorer".)"""
    rng = np.random.default_rng(3)
    shape = (256, 256)
    atoms = rng.uniform(10, 246, (15, 2))
    img = rng.poisson(render(shape, atoms, 0.045 / PS, 4, 2)).astype(np.float32)
    res = HeatmapResult.from_arrays(img, 0.85 * heatmap_for(shape, atoms, 2.0), PS)
    res.postprocess = {**RAMP, "rescorer": _spec(10.0)}
    df = heatmap_to_atoms(res, refine="none", contrast_check=False)
    assert df.attrs["threshold_from"] != "rescorer" and df.attrs["rescorer_added"] == 0


def test_lattice_painted_on_noise_keeps_the_ramp():
    """The single-atom hazard: a heatmap with a regular lattice of weak peaks (0.5, as a
    network paints onto noisy carbon) and a few scattered strong ones (the atoms). At
    0.4 the peaks look like a lattice; the ramp's 0.6 keeps only the scattered ones, which
    do not, so the rescorer stays out (one that keeps everything would have kept the
    painted lattice)."""
    rng = np.random.default_rng(7)
    shape = (256, 256)
    painted = hex_lattice_px(shape, 0.2 / PS, margin_px=4, seed=7)
    atoms = painted[rng.choice(len(painted), 25, replace=False)]
    img = rng.poisson(render(shape, atoms, 0.045 / PS, 4, 2)).astype(np.float32)
    heat = np.maximum(0.5 * heatmap_for(shape, painted, 2.0), 0.85 * heatmap_for(shape, atoms, 2.0))
    res = HeatmapResult.from_arrays(img, heat.astype(np.float32), PS)
    res.postprocess = {**RAMP, "rescorer": _spec(10.0)}
    cand = peak_candidates(res, contrast="bright", imaging="stem")
    assert cand.lattice.spacing_cv < 0.5 < cand.kept_lattice.spacing_cv
    assert cand.threshold == pytest.approx(0.6) and cand.kept_lattice.n_confident == 25
    df = heatmap_to_atoms(res, refine="none", contrast_check=False)
    assert df.attrs["threshold_from"] == "noise" and len(df) == 25


def test_shipped_rescorer_loads_and_drops_the_hollows(scene):
    """The default card's rescorer, fitted by the repo's command, judges the toy noisy
    lattice as the ramp does: the columns stay, the hollows go."""
    card = load_card("atoms_default")
    pp = model_postprocess("default")
    r = Rescorer.from_card(pp["rescorer"])
    assert 0.2 <= r.keep_probability <= 0.8 and r.w1.shape[1] == N
    made = card.metrics["rescorer"]
    assert made["command"].startswith("OMP_NUM_THREADS=2 python benchmarks/atoms_rescorer.py")
    assert "seed" in made and "comparison_f1" in made
    df = heatmap_to_atoms(_result(scene, pp), contrast="bright", imaging="stem")
    assert df.attrs["threshold_from"] == "rescorer"
    _, _, true, _ = scene
    m = point_metrics(df[["y_px", "x_px"]].to_numpy(), true, radius_px=3)
    assert m.f1 > 0.97


def test_features_in_blocks_equal_features_at_once(monkeypatch):
    """Large images are featurised in blocks of candidates (bounded memory): the same
    numbers as all at once."""
    from napari_atomseg.atoms import rescore

    rng = np.random.default_rng(0)
    pos = rng.uniform(0, 300, (3000, 2))
    conf = rng.uniform(0.1, 1, 3000)
    img = rng.normal(size=(300, 300)).astype(np.float32)
    args = {"base_threshold": 0.4, "noise_level": 0.3, "pixel_size_nm": 0.03, "dark": False}
    monkeypatch.setattr(rescore, "_BLOCK", 700)
    blocked = features(img, pos, conf, **args)
    monkeypatch.setattr(rescore, "_BLOCK", 10**9)
    assert np.array_equal(blocked, features(img, pos, conf, **args))
