"""`napari-atomseg lattice ATOMS_CSV... --image FILE... --out DIR`."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from napari_atomseg.cli import main
from napari_atomseg.io import Calibration, read_images, write_image_tiff, write_points_csv
from napari_atomseg.lattice._cli import match_images
from napari_atomseg.simulation.deformation import Deformation, perovskite_columns

PS = 0.02


def _write_pair(folder, name, deformation):
    shape = (160, 160)
    cols = perovskite_columns(shape, PS, deformation, oxygen=False)
    yy, xx = np.indices(shape, dtype=np.float64)
    img = np.full(shape, 5.0)
    amp = cols["element"].map({"Sr": 100.0, "Ti": 50.0}).to_numpy()
    for (y, x), a in zip(cols[["y_px", "x_px"]].to_numpy(), amp):
        img += a * np.exp(-((yy - y) ** 2 + (xx - x) ** 2) / 8.0)
    cal = Calibration.from_pixel_size_nm(PS)
    write_image_tiff(folder / f"{name}.tif", img.astype(np.float32), cal)
    coords = cols[["y_px", "x_px"]].to_numpy()
    write_points_csv(folder / f"{name}_atoms.csv", coords, cal, cols[["element"]])
    return cols


def test_cli_writes_tables_maps_figures_and_summary(tmp_path, capsys):
    _write_pair(tmp_path, "one", Deformation(shifts_pm=(("Ti", 0.0, 20.0),)))
    _write_pair(tmp_path, "two", Deformation(strain_xx=0.02))
    out = tmp_path / "out"
    args = ["lattice", str(tmp_path / "one_atoms.csv"), str(tmp_path / "two_atoms.csv")]
    args += ["--image", str(tmp_path / "two.tif"), str(tmp_path / "one.tif")]
    code = main([*args, "--reference", "0:160,0:160", "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    res = pd.read_csv(out / "one_lattice.csv")
    ti = (res["element"] == "Ti") & res["displacement_x_pm"].notna()
    np.testing.assert_allclose(res["displacement_x_pm"][ti], 20.0, atol=1e-6)
    assert res["intensity_integrated"].notna().any()
    strain = read_images(out / "one_strain_xx.tif")[0]
    assert strain.calibration.pixel_size_nm == pytest.approx(PS)
    assert strain.data.shape == (160, 160)
    assert (out / "one_lattice.png").stat().st_size > 10_000
    meta = json.loads((out / "two_lattice.json").read_text())
    assert meta["cell"]["a"] == pytest.approx(0.3905 * 1.02, rel=1e-6)
    summary = pd.read_csv(out / "lattice_summary.csv")
    assert list(summary["n_sublattices"]) == [2, 2]
    assert summary["error"].isna().all()
    # Outputs are never overwritten silently.
    assert main([*args, "--out", str(out)]) == 2
    assert "already exists" in capsys.readouterr().err


def test_cli_reports_a_bad_table_and_goes_on(tmp_path, capsys):
    _write_pair(tmp_path, "good", Deformation())
    bad = tmp_path / "bad.csv"
    pd.DataFrame({"y_px": [1.0, 2.0], "x_px": [3.0, 4.0]}).to_csv(bad, index=False)
    code = main(
        ["lattice", str(tmp_path / "good_atoms.csv"), str(bad), "--out", str(tmp_path / "o")]
    )
    assert code == 1
    assert "too few" in capsys.readouterr().err
    assert (tmp_path / "o" / "good_lattice.csv").exists()
    assert main(["lattice", str(bad), "--reference", "9:1,0:2", "--out", str(tmp_path / "p")]) == 2


def test_images_match_tables_by_stem(tmp_path):
    from pathlib import Path

    pairs = match_images([Path("a_atoms.csv"), Path("b.csv")], [Path("b.dm4"), Path("a.tif")])
    assert pairs == {Path("a_atoms.csv"): Path("a.tif"), Path("b.csv"): Path("b.dm4")}
    with pytest.raises(Exception, match="no table matches"):
        match_images([Path("a.csv"), Path("b.csv")], [Path("c.tif")])
