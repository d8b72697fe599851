"""The optics and potentials agree with abTEM's (same conventions, same numbers)."""

from __future__ import annotations

import numpy as np
import pytest

abtem = pytest.importorskip("abtem")

from napari_atomseg.simulation import optics  # noqa: E402
from napari_atomseg.simulation.potentials import projected_potential_ft  # noqa: E402


@pytest.mark.parametrize("energy_keV", [60, 80, 200, 300])
def test_wavelength_and_interaction_constant_match_abtem(energy_keV):
    from abtem.core.energy import energy2sigma, energy2wavelength

    assert optics.wavelength_A(energy_keV) == pytest.approx(
        energy2wavelength(energy_keV * 1e3), rel=1e-7
    )
    assert optics.interaction_sigma_per_V_A(energy_keV) == pytest.approx(
        energy2sigma(energy_keV * 1e3), rel=1e-6
    )


@pytest.mark.parametrize("symbol", ["H", "C", "S", "Mo", "Pt", "Au"])
def test_form_factor_matches_abtem_lobato(symbol):
    from abtem.parametrizations import LobatoParametrization

    k2 = np.linspace(0.0, 16.0, 50).astype(np.float32)
    ours = projected_potential_ft(symbol, k2)
    theirs = LobatoParametrization().projected_scattering_factor(symbol)(k2)
    np.testing.assert_allclose(ours, theirs, rtol=2e-4)


def _abtem_axes(my_angle_rad: float) -> float:
    # abTEM's first array axis is x; we hand it our rows, so its azimuth is ours mirrored.
    return np.pi / 2 - my_angle_rad


def test_probe_intensity_matches_abtem_probe():
    shape, sampling = (96, 128), 0.1
    kw = dict(defocus_A=40.0, cs_A=-3e4, astigmatism_A=15.0, astigmatism_angle_rad=0.4)
    ours = optics.probe_intensity(shape, sampling, 200.0, 24.0, **kw)
    probe = abtem.Probe(
        energy=200e3,
        semiangle_cutoff=24.0,
        gpts=shape,
        sampling=sampling,
        defocus=kw["defocus_A"],
        Cs=kw["cs_A"],
        astigmatism=kw["astigmatism_A"],
        astigmatism_angle=_abtem_axes(kw["astigmatism_angle_rad"]),
    )
    theirs = np.asarray(probe.build().intensity().compute().array)
    theirs = theirs / (theirs.sum() * sampling**2)
    # The two are centred differently; their spectra (shift-invariant) must agree.
    a = np.abs(np.fft.fft2(ours))
    b = np.abs(np.fft.fft2(theirs))
    assert np.abs(a - b).max() < 2e-3 * a.max()
    assert ours.max() == pytest.approx(theirs.max(), rel=2e-3)


def test_hrtem_transfer_matches_abtem_ctf():
    shape, sampling, energy = (64, 80), 0.2, 80.0
    kw = dict(
        defocus_A=-60.0,
        cs_A=-1.5e5,
        astigmatism_A=8.0,
        astigmatism_angle_rad=1.1,
        focal_spread_A=30.0,
        angular_spread_mrad=0.2,
    )
    ky, kx = optics.frequency_grid(shape, sampling)
    ours = optics.hrtem_wave_transfer(ky, kx, energy, **kw)
    ctf = abtem.CTF(
        energy=energy * 1e3,
        defocus=kw["defocus_A"],
        Cs=kw["cs_A"],
        astigmatism=kw["astigmatism_A"],
        astigmatism_angle=_abtem_axes(kw["astigmatism_angle_rad"]),
        focal_spread=kw["focal_spread_A"],
        angular_spread=kw["angular_spread_mrad"],
    )
    delta = np.zeros(shape, dtype=np.complex64)
    delta[0, 0] = 1.0
    waves = abtem.Waves(delta, energy=energy * 1e3, sampling=sampling)
    theirs = np.fft.fft2(np.asarray(waves.apply_ctf(ctf).compute().array))
    assert np.abs(ours - theirs).max() < 1e-4


def test_fast_lens_transfer_equals_exact_without_astigmatism():
    from napari_atomseg.simulation import SimulationParameters
    from napari_atomseg.simulation.hrtem import hrtem_grid, lens_transfer

    p = SimulationParameters(
        mode="hrtem",
        material="graphene",
        energy_keV=80,
        defocus_nm=-6,
        cs_um=-15,
        focal_spread_nm=3,
        angular_spread_mrad=0.15,
        objective_aperture_mrad=30,
    )
    grid = hrtem_grid(p, 20.0)
    ky, kx = optics.frequency_grid(grid.shape, grid.sampling_A)
    lam = optics.wavelength_A(80)
    exact = optics.hrtem_wave_transfer(
        ky,
        kx,
        80,
        defocus_A=-60,
        cs_A=-1.5e5,
        focal_spread_A=30,
        angular_spread_mrad=0.15,
        aperture_mrad=30,
        angular_step_mrad=1e3 * lam / (max(grid.shape) * grid.sampling_A),
    )
    assert np.abs(lens_transfer(p, grid) - exact).max() < 5e-3
    # With astigmatism only the spatial envelope is approximated: phases stay exact.
    q = p.replace(astigmatism_nm=1.5, astigmatism_angle_deg=25)
    exact = optics.hrtem_wave_transfer(
        ky,
        kx,
        80,
        defocus_A=-60,
        cs_A=-1.5e5,
        astigmatism_A=15,
        astigmatism_angle_rad=np.deg2rad(25),
        focal_spread_A=30,
        angular_spread_mrad=0.15,
        aperture_mrad=30,
        angular_step_mrad=1e3 * lam / (max(grid.shape) * grid.sampling_A),
    )
    assert np.abs(lens_transfer(q, grid) - exact).max() < 2e-2


def test_scherzer_defocus_sign_matches_abtem():
    ctf = abtem.CTF(energy=200e3, Cs=1.2e7)
    assert optics.scherzer_defocus_A(1.2e7, 200.0) == pytest.approx(ctf.scherzer_defocus, rel=1e-6)
