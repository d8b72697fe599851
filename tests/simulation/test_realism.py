"""What makes synthetic images look like real ones: per-sublattice visibility, depth of
field, probe tails, scan-line noise, a non-linear detector, dose as a microscope sets it."""

from __future__ import annotations

import numpy as np
import pytest

from napari_atomseg.errors import InputError
from napari_atomseg.simulation import MixConfig, SimulationParameters, random_parameters, simulate
from napari_atomseg.simulation.detector import detector_response
from napari_atomseg.simulation.groundtruth import (
    peak_distance_ratio,
    resolved_columns,
    sublattice_consensus,
)
from napari_atomseg.simulation.imagestats import fit_poisson_gaussian


# --- per-sublattice visibility -------------------------------------------------------------
def test_sublattice_consensus_joins_columns_one_atom_apart_but_not_half_columns():
    rng = np.random.default_rng(0)
    yx = rng.uniform(0, 100, (40, 2))
    # Cd10 and Cd11 columns (one sublattice, the slab's partial repeat) mixed in space,
    # plus Cd5 columns that lost half their atoms.
    counts = np.array([[10]] * 15 + [[11]] * 15 + [[5]] * 10)
    region = np.zeros(40, int)
    values = np.array([1.0] * 15 + [3.0] * 15 + [9.0] * 10)
    out = sublattice_consensus(values, counts, region, yx, counts[:, 0] * 48.0, neighbours=40)
    assert np.ptp(out[:30]) == 0 and 1.0 <= out[0] <= 3.0
    np.testing.assert_array_equal(out[30:], 9.0)
    votes = sublattice_consensus(values > 2, counts, region, yx, counts[:, 0] * 48.0)
    assert votes.dtype == bool
    # Independent columns (single atoms) keep their own values.
    alone = sublattice_consensus(
        values, counts, region, yx, counts[:, 0] * 48.0, independent=np.ones(40, bool)
    )
    np.testing.assert_array_equal(alone, values)


def test_sublattice_consensus_is_local_so_a_wedge_keeps_its_gradient():
    x = np.linspace(0, 100, 60)
    yx = np.stack([np.zeros(60), x], axis=1)
    counts = np.full((60, 1), 10)
    values = x.copy()  # e.g. contrast falling across a wedge
    out = sublattice_consensus(
        values, counts, np.zeros(60, int), yx, np.full(60, 480.0), neighbours=7
    )
    assert np.corrcoef(out, x)[0, 1] > 0.99
    assert np.abs(out - x).max() < 10


def test_peak_distance_ratio_is_the_continuous_resolved_criterion():
    img = np.zeros((40, 40))
    img[10, 10] = 1.0
    img[10, 25] = 1.0
    ys, xs = np.array([10.0, 10.4, 30.0]), np.array([10.0, 25.0, 30.0])
    ratio = peak_distance_ratio(img, ys, xs)
    np.testing.assert_array_equal(ratio <= 1.0, resolved_columns(img, ys, xs))
    # Radius: 0.3 x the distance to the nearest other column.
    assert ratio[0] == 0.0 and ratio[1] == pytest.approx(0.4 / (0.3 * np.hypot(0.4, 15.0)))
    assert ratio[2] > 1.0


def test_hrtem_sublattice_split_by_the_partial_repeat_is_seen_as_one():
    # CdSe [11-20] at 0.07 nm/px: half the Cd columns hold 10 atoms and half 11 (the slab
    # ends inside a repeat). Judged per composition, the Cd11 columns were all targets and
    # the identical-looking Cd10 columns none.
    p = SimulationParameters(
        mode="hrtem",
        material="CdSe",
        zone_axis="11-20",
        thickness_nm=4.315,
        shape_px=(192, 192),
        pixel_size_nm=0.0707,
        rotation_deg=163.8,
        tilt_mrad=12.06,
        tilt_azimuth_deg=158.6,
        energy_keV=80.0,
        defocus_nm=4.946,
        cs_um=23.53,
        focal_spread_nm=4.157,
        angular_spread_mrad=0.243,
        mtf_at_nyquist=0.314,
        dose_e_per_A2=4664.0,
        seed=1341323014,
    )
    t = simulate(p).columns
    cd10 = t[t.elements == "Cd10"].visible.mean()
    cd11 = t[t.elements == "Cd11"].visible.mean()
    assert abs(cd10 - cd11) < 0.15


# --- depth of field, probe tails -----------------------------------------------------------
def _atoms_in_carbon(**kw) -> SimulationParameters:
    base = dict(
        scene="single_atoms",
        single_atom_element="Pt",
        single_atom_density_per_nm2=0.4,
        support_thickness_nm=25.0,
        support_thickness_variation=0.0,
        shape_px=(160, 160),
        pixel_size_nm=0.03,
        energy_keV=300.0,
        dose_e_per_A2=1e7,
        seed=7,
    )
    base.update(kw)
    return SimulationParameters(**base)


def _peaks(result) -> np.ndarray:
    t = result.columns[(result.columns.region == "single_atom") & (result.columns.n_atoms == 1)]
    img = result.image_clean
    return img[t.y_px.round().astype(int), t.x_px.round().astype(int)] - np.median(img)


def test_atoms_deep_in_the_support_are_fainter_with_depth_of_field():
    top = simulate(_atoms_in_carbon(depth_of_field=True))
    deep = simulate(_atoms_in_carbon(depth_of_field=True, single_atom_depth_fraction=1.0))
    same_without = simulate(_atoms_in_carbon(single_atom_depth_fraction=1.0))
    # The same atoms (positions drawn first); without the depth of field depth is ignored.
    np.testing.assert_allclose(top.columns.x_px, deep.columns.x_px)
    np.testing.assert_array_equal(simulate(_atoms_in_carbon()).image, same_without.image)
    assert np.median(_peaks(deep)) < 0.6 * np.median(_peaks(top))
    # Ground truth follows: atoms far out of focus stop being targets.
    assert deep.columns.visible.sum() < top.columns.visible.sum()
    # The support is averaged over its depth: less fine speckle than a focused probe gives.
    hp = lambda im: im - __import__("scipy.ndimage").ndimage.gaussian_filter(im, 2.0)  # noqa: E731
    no_dof = simulate(_atoms_in_carbon(single_atom_density_per_nm2=0.01))
    dof = simulate(_atoms_in_carbon(single_atom_density_per_nm2=0.01, depth_of_field=True))
    assert hp(dof.image_clean).std() < 0.8 * hp(no_dof.image_clean).std()


def test_probe_tails_move_signal_from_the_peak_into_a_halo():
    sharp = simulate(_atoms_in_carbon(support_thickness_nm=3.0))
    tailed = simulate(_atoms_in_carbon(support_thickness_nm=3.0, probe_tail_fraction=0.3))
    assert tailed.image_clean.mean() == pytest.approx(sharp.image_clean.mean(), rel=0.02)
    assert np.median(_peaks(tailed)) == pytest.approx(0.7 * np.median(_peaks(sharp)), rel=0.1)


# --- detector ------------------------------------------------------------------------------
def test_scan_line_noise_appears_as_line_offsets():
    p = _atoms_in_carbon(single_atom_density_per_nm2=0.01, dose_e_per_A2=3e4, detector_gain=5.0)
    quiet = fit_poisson_gaussian(simulate(p).image)
    noisy = fit_poisson_gaussian(simulate(p.replace(scan_line_noise=0.6)).image)
    assert quiet.line_noise_fraction < 0.1
    assert noisy.line_noise_fraction == pytest.approx(0.6, rel=0.3)


def test_detector_response_compresses_and_saturates():
    x = np.linspace(0, 200.0, 201)
    assert detector_response(x, 1.0, 0.0, 100.0) is x
    g = detector_response(x, 0.7, 0.0, 100.0)
    assert g[100] == pytest.approx(100.0) and g[50] > 50.0 and np.all(np.diff(g) > 0)
    s = detector_response(x, 1.0, 0.8, 100.0)
    assert s[10] == pytest.approx(10.0, rel=0.01) and s.max() <= 80.0 + 1e-6
    assert np.all(np.diff(s) >= 0)
    p = _atoms_in_carbon(support_thickness_nm=3.0, detector_saturation=0.5)
    r = simulate(p)
    top = np.percentile(r.image_clean - p.dark_offset_counts, 99.99)
    plain = simulate(p.replace(detector_saturation=0.0)).image_clean
    assert top <= 0.5 * np.percentile(plain, 99.9) * 1.001
    with pytest.raises(InputError, match="detector_gamma"):
        p.replace(detector_gamma=5.0)


# --- dose and voltage as a microscope sets them ------------------------------------------------
def test_mix_draws_electrons_per_probe_and_low_voltage_for_2d_crystals():
    mix = MixConfig(
        electrons_per_probe_haadf_log=(200.0, 2000.0),
        electrons_per_pixel_hrtem_log=(50.0, 500.0),
        energy_keV_2d={"60": 1.0},
        scenes={"lattice": 1.0},
    )
    rng = np.random.default_rng(4)
    for _ in range(80):
        p = random_parameters(rng, mix)
        electrons = p.dose_e_per_A2 * (p.pixel_size_nm * 10) ** 2
        low, high = (200, 2000) if p.mode == "haadf" else (50, 500)
        assert low * 0.999 <= electrons <= high * 1.001
        if p.material in ("MoS2", "WS2", "MoSe2", "WSe2", "graphene", "hBN"):
            assert p.energy_keV == 60.0
    with pytest.raises(InputError, match="electrons_per_probe_haadf_log"):
        MixConfig(electrons_per_probe_haadf_log=(0.0, 10.0))


@pytest.mark.parametrize(
    ("mix", "seed", "pixel_size_nm"),
    [("default", 1152881118, 0.021883), ("atoms", 1055163415, 0.043424)],
)
def test_shipped_mix_recipes_are_pinned(mix, seed, pixel_size_nm):
    # Trained configs rebuild their example pools from their mixture: a shipped mixture
    # must draw the same recipes whatever keys are added to MixConfig. The 200th recipe
    # depends on every draw before it.
    from napari_atomseg.simulation import load_mix

    rng = np.random.default_rng(0)
    recipes = [random_parameters(rng, load_mix(mix)) for _ in range(200)]
    assert recipes[-1].seed == seed
    assert recipes[-1].pixel_size_nm == pytest.approx(pixel_size_nm, abs=1e-6)


# --- Z contrast --------------------------------------------------------------------------
def test_calibrated_z_exponents_and_the_sulfur_anchor():
    from napari_atomseg.simulation.potentials import (
        calibrated_z_exponent,
        effective_z_exponent,
        haadf_cross_section_A2,
        wentzel_cross_section_A2,
    )
    from napari_atomseg.simulation.stem import z_exponent

    n_w = effective_z_exponent(60.0, 60.0, 130.0)
    assert calibrated_z_exponent(60.0, 60.0, 130.0) == pytest.approx(n_w - 0.29)
    assert calibrated_z_exponent(300.0, 70.0, 200.0, "isolated") == pytest.approx(
        effective_z_exponent(300.0, 70.0, 200.0) - 0.08
    )
    with pytest.raises(InputError, match="kind"):
        calibrated_z_exponent(200.0, 70.0, 200.0, "bulk")
    # Sulfur keeps Wentzel's cross-section whatever the exponent; gold loses with it.
    for n in (1.3, 1.9):
        assert haadf_cross_section_A2(16, n, 200.0) == pytest.approx(
            wentzel_cross_section_A2(16, 200.0, 70.0, 200.0)
        )
    p = SimulationParameters(energy_keV=60.0, adf_inner_mrad=60.0, adf_outer_mrad=130.0)
    assert z_exponent(p) == pytest.approx(n_w - 0.29)
    assert z_exponent(p.replace(z_exponent=1.8)) == 1.8
    assert z_exponent(p, "isolated") == pytest.approx(n_w - 0.08)


def test_single_atoms_use_the_isolated_exponent():
    p = _atoms_in_carbon(support_thickness_nm=3.0, dose_e_per_A2=1e8)
    strong = simulate(p.replace(z_exponent_isolated=2.0))
    weak = simulate(p.replace(z_exponent_isolated=1.4))
    # Pt against carbon: the atoms stand out more with the larger exponent, and the
    # columns' exponent does not matter in a scene without columns.
    assert np.median(_peaks(strong)) / strong.image_clean.mean() > 1.5 * (
        np.median(_peaks(weak)) / weak.image_clean.mean()
    )
    np.testing.assert_array_equal(simulate(p.replace(z_exponent=1.2)).image, simulate(p).image)


def test_mix_draws_exponents_around_the_calibrated_ones():
    from napari_atomseg.simulation.potentials import calibrated_z_exponent

    mix = MixConfig(modes={"haadf": 1.0}, z_exponent_offset=(-0.1, 0.1))
    rng = np.random.default_rng(6)
    for _ in range(40):
        p = random_parameters(rng, mix)
        col = calibrated_z_exponent(p.energy_keV, 70.0, 200.0, "columns")
        iso = calibrated_z_exponent(p.energy_keV, 70.0, 200.0, "isolated")
        assert abs(p.z_exponent - col) <= 0.1 + 1e-9
        # One offset for both kinds.
        assert p.z_exponent_isolated - iso == pytest.approx(p.z_exponent - col)


# --- the support -----------------------------------------------------------------------------
def test_support_texture_adds_fluctuations_at_its_scale():
    from napari_atomseg.simulation.imagestats import texture_spectrum

    p = _atoms_in_carbon(single_atom_density_per_nm2=0.01, shape_px=(256, 256), dose_e_per_A2=1e9)
    flat = _noise_free()
    plain = texture_spectrum(simulate(p).image_clean, 0.03, flat).band_rms
    textured = texture_spectrum(
        simulate(p.replace(support_texture_rms=0.2, support_texture_nm=0.7)).image_clean,
        0.03,
        flat,
    ).band_rms
    # Bands 0.4-1 nm and 1-2.5 nm gain; the atomic speckle (0.15-0.4 nm) barely moves.
    assert textured[1] > 1.5 * plain[1] and textured[2] > 1.5 * plain[2]
    assert textured[0] < 1.5 * plain[0]


def _noise_free():
    """A noise model without noise: zero level 0, no floor to subtract."""
    from napari_atomseg.simulation.imagestats import NoiseFit

    return NoiseFit(1.0, 0.0, 0.0, 1.0, 0.0, 1.0, 0.0, 0.0, 1.0, 1.0)


def test_mix_puts_atoms_inside_the_support_and_focuses_into_it():
    mix = MixConfig(
        modes={"haadf": 1.0},
        scenes={"single_atoms": 1.0},
        p_depth_of_field=1.0,
        single_atom_depth_fraction=(0.5, 1.0),
        p_uncorrected=0.0,  # (an uncorrected probe sits at its Scherzer defocus instead)
    )
    rng = np.random.default_rng(8)
    for _ in range(30):
        p = random_parameters(rng, mix)
        assert p.depth_of_field and 0.5 <= p.single_atom_depth_fraction <= 1.0
        # The focus lies within the film's upper 70 % (plus the optics' own defocus).
        assert -6.0 < p.defocus_nm < 0.7 * p.support_thickness_nm + 6.0
