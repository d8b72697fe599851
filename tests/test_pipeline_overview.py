"""The main job on a lower-magnification image: atoms skipped with the reason, particles
segmented (pipeline.atoms_skip_reason / particle_segmentation, `napari-atomseg demo`)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from napari_atomseg.cli import main
from napari_atomseg.io import Calibration, read_image, write_image_tiff
from napari_atomseg.pipeline import atoms_skip_reason, process_image
from tests._synth import OVERVIEW_PIXEL_SIZE_NM as PS_NM
from tests._synth import nanoparticle_overview


def test_skip_reason_follows_the_models_range() -> None:
    assert atoms_skip_reason(0.03) == ""
    assert atoms_skip_reason(None) == ""  # unknown: the model estimates it
    coarse = atoms_skip_reason(1.25)
    assert "coarser than the 0.12 nm/px" in coarse and "atoms_default" in coarse
    assert "finer" in atoms_skip_reason(0.0005)


def test_overview_image_gives_particles_not_an_error(tmp_path) -> None:
    image, mask, diameters = nanoparticle_overview(seed=4)
    cal = Calibration.from_pixel_size_nm(PS_NM, acquisition_mode="STEM")
    # Before: InputError "pixel size 1.25 nm/px is outside the range model
    # 'atoms_default' supports".
    result = process_image(image, cal, tmp_path, "overview")
    assert "coarser" in result.atoms_skipped and len(result.atoms) == 0
    assert result.class_names == ("background", "particle")
    assert len(result.particles) == len(diameters)
    summary = json.loads((tmp_path / "overview_summary.json").read_text())
    assert summary["atoms_skipped"] == result.atoms_skipped
    assert summary["particles"]["count"] == len(diameters)
    assert summary["particles"]["method"] == "intensity"
    assert not (tmp_path / "overview_atoms.csv").exists()
    table = pd.read_csv(tmp_path / "overview_particles.csv")
    assert {"y_nm", "x_nm", "equivalent_diameter_nm", "touches_border"} <= set(table.columns)
    labels, lab_cal = read_image(tmp_path / "overview_regions.tif")
    assert lab_cal.pixel_size_nm == pytest.approx(PS_NM)
    assert 2 * np.logical_and(labels == 1, mask).sum() / ((labels == 1).sum() + mask.sum()) > 0.9


def test_demo_command_on_an_overview_file(tmp_path, capsys) -> None:
    image, _, diameters = nanoparticle_overview(seed=5)
    path = write_image_tiff(
        tmp_path / "np_overview.tif", image, Calibration.from_pixel_size_nm(1.25)
    )
    out = tmp_path / "out"
    assert main(["demo", str(path), "--out", str(out), "--no-viewer"]) == 0
    text = capsys.readouterr().out
    assert "atoms skipped: pixel size 1.25 nm/px is coarser" in text
    assert f"{len(diameters)} particles" in text
    assert (out / "np_overview_particles.csv").exists()
