"""Voronoi intensities, Gaussian features, maps and region means."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from napari_atomseg import analyse_lattice
from napari_atomseg.lattice import lattice_maps, region_means
from napari_atomseg.lattice.intensity import voronoi_intensity
from napari_atomseg.lattice.maps import symmetric_limits
from napari_atomseg.simulation.deformation import Deformation, perovskite_columns

PS = 0.02


def _image(cols: pd.DataFrame, shape, sigma=2.0, background=10.0):
    yy, xx = np.indices(shape, dtype=np.float64)
    img = np.full(shape, background)
    amp = cols["element"].map({"Sr": 100.0, "Ti": 50.0, "O": 10.0}).to_numpy()
    for (y, x), a in zip(cols[["y_px", "x_px"]].to_numpy(), amp):
        sl = (slice(max(0, int(y) - 8), int(y) + 9), slice(max(0, int(x) - 8), int(x) + 9))
        img[sl] += a * np.exp(-((yy[sl] - y) ** 2 + (xx[sl] - x) ** 2) / (2 * sigma**2))
    return img.astype(np.float32), amp


def test_voronoi_integral_of_separated_gaussians():
    shape = (200, 200)
    g = np.arange(20, 181, 20, dtype=float)
    yx = np.array([(y, x) for y in g for x in g])
    cols = pd.DataFrame({"y_px": yx[:, 0], "x_px": yx[:, 1], "element": "Sr"})
    img, _ = _image(cols, shape)
    nn = np.full(len(yx), 20.0)
    out = voronoi_intensity(img, yx, nn, 15.0)
    expected = 2 * np.pi * 2.0**2 * 100.0
    np.testing.assert_allclose(out["intensity_integrated"], expected, rtol=0.03)
    np.testing.assert_allclose(out["intensity_background"], 10.0, rtol=0.05)


def test_image_gives_sublattices_intensities_and_gaussian_features():
    shape = (240, 240)
    cols = perovskite_columns(shape, PS, Deformation(), oxygen=False)
    img, _ = _image(cols, shape)
    res = analyse_lattice(cols[["y_px", "x_px", "element"]], image=img, pixel_size_nm=PS)
    assert set(res.groupby("sublattice")["element"].agg(lambda e: "".join(set(e)))) == {"Sr", "Ti"}
    inner = np.isfinite(res["intensity_integrated"])
    sr = inner & (res["element"] == "Sr")
    ti = inner & (res["element"] == "Ti")
    assert res["intensity_integrated"][sr].median() > 1.5 * res["intensity_integrated"][ti].median()
    assert res["gaussian_sigma_major_px"][sr].median() == pytest.approx(2.0, rel=0.1)
    # Columns whose Voronoi cell the image border cuts have no integral.
    edge = res["x_px"] < 2
    assert res["intensity_integrated"][edge].isna().all()


def test_maps_follow_the_field_and_region_means():
    d = Deformation(strain_xx_gradient_per_nm=0.004, shifts_pm=(("Ti", 0.0, 15.0),))
    shape = (300, 300)
    cols = perovskite_columns(shape, PS, d)
    cols["intensity"] = cols["element"].map({"Sr": 3.0, "Ti": 2.0, "O": 0.5})
    res = analyse_lattice(cols, pixel_size_nm=PS, cell_nm=((0, 0.3905), (0.3905, 0)))
    maps = lattice_maps(res, shape, pixel_size_nm=PS)
    assert maps.step_px == 1 and maps.pixel_size_nm == PS
    sxx = maps.maps["strain_xx"]
    assert sxx.shape == shape
    x_nm = np.arange(shape[1]) * PS - (shape[1] - 1) / 2 * PS
    rows = sxx[100:200]
    ok = np.isfinite(rows).any(axis=0)
    profile = np.full(shape[1], np.nan)
    profile[ok] = np.nanmedian(rows[:, ok], axis=0)
    inner = ok & (np.abs(x_nm) < 2.0)
    np.testing.assert_allclose(profile[inner], 0.004 * x_nm[inner], atol=2e-4)
    assert np.nanmedian(maps.maps["displacement_x_pm"]) == pytest.approx(15.0, abs=0.5)
    lo, hi = symmetric_limits(sxx)
    assert lo == -hi and hi > 0
    coarse = lattice_maps(res, shape, max_side=100)
    assert coarse.step_px == 3 and coarse.maps["strain_xx"].shape == (100, 100)
    means = region_means(res, (0, 300, 0, 300)).set_index("sublattice")
    assert means.loc[1, "displacement_x_pm_mean"] == pytest.approx(15.0, abs=0.5)
    assert np.isnan(means.loc[0, "displacement_x_pm_mean"])
