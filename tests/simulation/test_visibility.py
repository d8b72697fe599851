"""Why a simulated micrograph shows no columns (simulation.visibility)."""

from __future__ import annotations

import pytest

from napari_atomseg.simulation import SimulationParameters, simulate
from napari_atomseg.simulation.visibility import (
    invisible_columns_reason,
    optimum_defocus_nm,
    phase_transfer,
)


def test_reasons_for_invisible_columns() -> None:
    base = dict(material="MoS2", shape_px=(64, 64))
    focus = SimulationParameters(mode="hrtem", **base)
    result = simulate(focus)
    assert phase_transfer(focus, 0.18) == pytest.approx(0.0, abs=1e-12)
    assert "phase contrast" in invisible_columns_reason(focus, result.columns)
    cs = -20.0
    good = focus.replace(cs_um=cs, defocus_nm=optimum_defocus_nm(cs, focus.energy_keV))
    assert phase_transfer(good, 0.18) > 0.5
    assert invisible_columns_reason(good, simulate(good).columns) == ""
    coarse = SimulationParameters(mode="haadf", pixel_size_nm=0.15, **base)
    assert "larger than half the column spacing" in invisible_columns_reason(
        coarse, result.columns.assign(visible=False)
    )
    dim = SimulationParameters(mode="haadf", dose_e_per_A2=1.0, **base)
    assert "electrons per pixel" in invisible_columns_reason(
        dim, result.columns.assign(visible=False)
    )
