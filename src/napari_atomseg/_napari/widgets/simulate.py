"""The "Simulate micrograph" widget: SimulationParameters from a form -> layers.

The form covers what a user changes most (material, zone axis, imaging mode, dose, pixel
size, field of view, defects, support and contamination); "random" draws a complete
recipe from the default training mixture instead. Parameters are validated on the GUI
thread (constructing :class:`~napari_atomseg.simulation.SimulationParameters` is instant and
rejects absurd values, including a memory estimate above what is free, with a message),
then :func:`~napari_atomseg.simulation.simulate_steps` runs in a worker. The result becomes
an Image (parameters in ``metadata``), a ground-truth Points layer and class Labels
(:func:`napari_atomseg._napari.layers.simulation_layers`).

Optics: HRTEM starts aberration-corrected (Cs -20 um) at the optimum (Scherzer) defocus
for its Cs, which the *optimum defocus* box keeps in step with Cs; a phase-contrast image
in focus without aberrations shows nothing. When no column is visible the status line
says why (:func:`napari_atomseg.simulation.visibility.invisible_columns_reason`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from magicgui.widgets import (
    CheckBox,
    ComboBox,
    FloatSpinBox,
    LineEdit,
    PushButton,
    SpinBox,
)
from napari.utils.notifications import show_warning

if TYPE_CHECKING:
    import napari.viewer

from napari_atomseg.errors import InputError
from napari_atomseg.simulation.visibility import (
    default_hrtem_optics,
    invisible_columns_reason,
    optimum_defocus_nm,
)

from ..layers import simulation_layers
from ._common import DockContainer, Fold
from ._runner import RunPanel, notify_error
from ._viewer import add_or_update

MODES = ("haadf", "hrtem", "haadf_multislice", "hrtem_multislice")
SCENES = ("lattice", "particles", "single_atoms", "amorphous")


class SimulateWidget(DockContainer):
    """Dock widget: simulate one micrograph with exact ground truth."""

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        from napari_atomseg.simulation import list_materials

        self._viewer = viewer
        self._materials = list_materials()
        names = list(self._materials)
        self.random = CheckBox(value=False, text="random recipe (training mixture)")
        self.seed = SpinBox(value=0, min=0, max=2**31 - 1, label="seed")
        self.mode = ComboBox(choices=MODES, value="haadf", label="mode")
        self.scene = ComboBox(choices=SCENES, value="lattice", label="scene")
        self.material = ComboBox(
            choices=names, value="MoS2" if "MoS2" in names else names[0], label="material"
        )
        self.zone_axis = ComboBox(choices=self._zones, label="zone axis")
        self.layers = SpinBox(value=1, min=1, max=20, label="layers")
        self.thickness_nm = FloatSpinBox(
            value=4.0, min=0.2, max=100.0, step=0.5, label="thickness (nm)"
        )
        self.dose = FloatSpinBox(value=1e4, min=1.0, max=1e9, step=1000.0, label="dose (e/Å²)")
        self.pixel_size_nm = FloatSpinBox(
            value=0.02, min=0.002, max=0.5, step=0.002, label="pixel size (nm)"
        )
        self.field_of_view_nm = FloatSpinBox(
            value=5.12, min=0.1, max=500.0, step=0.5, label="field of view (nm)"
        )
        self.defocus_nm = FloatSpinBox(
            value=0.0, min=-2000.0, max=2000.0, step=0.5, label="defocus (nm)",
            tooltip="positive = underfocus (abTEM's sign)",
        )  # fmt: skip
        self.cs_um = FloatSpinBox(
            value=0.0, min=-5000.0, max=5000.0, step=5.0, label="Cs (\u00b5m)",
            tooltip="spherical aberration; aberration-corrected: a few um, negative gives "
            "white atoms at overfocus; uncorrected: ~1000 um",
        )  # fmt: skip
        self.optimum_defocus = CheckBox(
            value=False, text="optimum (Scherzer) defocus for this Cs",
            tooltip="defocus follows Cs: sqrt(1.5 Cs lambda), overfocus for negative Cs; "
            "typing a defocus turns this off",
        )  # fmt: skip
        self.vacancy_fraction = FloatSpinBox(
            value=0.0, min=0.0, max=1.0, step=0.01, label="vacancy fraction"
        )
        self.particle_diameter_nm = FloatSpinBox(
            value=3.0, min=0.5, max=30.0, step=0.5, label="particle diameter (nm)"
        )
        self.single_atoms_per_nm2 = FloatSpinBox(
            value=0.0, min=0.0, max=5.0, step=0.05, label="single atoms (/nm²)"
        )
        self.support_nm = FloatSpinBox(
            value=0.0, min=0.0, max=100.0, step=0.5, label="carbon support (nm)"
        )
        self.contamination = FloatSpinBox(
            value=0.0, min=0.0, max=1.0, step=0.05, label="contamination coverage"
        )
        self.layer_name = LineEdit(value="simulated", label="layer name")
        self.run_button = PushButton(text="Simulate")
        self.panel = RunPanel()
        details = [
            self.vacancy_fraction,
            self.particle_diameter_nm,
            self.single_atoms_per_nm2,
            self.support_nm,
            self.contamination,
            self.layer_name,
        ]
        #: True while the widget sets the defocus itself (not the user).
        self._setting_defocus = False
        self.details = Fold(
            "defects, support, contamination", details, on_toggle=self._sync_visibility
        )
        optics = [self.cs_um, self.optimum_defocus, self.defocus_nm]
        self.optics = Fold("optics: Cs, defocus", optics, on_toggle=self._sync_visibility)
        super().__init__(
            widgets=[
                self.random,
                self.seed,
                self.mode,
                self.scene,
                self.material,
                self.zone_axis,
                self.layers,
                self.thickness_nm,
                self.dose,
                self.pixel_size_nm,
                self.field_of_view_nm,
                self.optics,
                *optics,
                self.details,
                *details,
                self.run_button,
                self.panel,
            ]
        )
        self.material.changed.connect(self._material_changed)
        self.scene.changed.connect(self._sync_visibility)
        self.random.changed.connect(self._sync_visibility)
        self.mode.changed.connect(self._mode_changed)
        self.cs_um.changed.connect(self._follow_cs)
        self.optimum_defocus.changed.connect(self._follow_cs)
        self.defocus_nm.changed.connect(self._defocus_typed)
        self.run_button.changed.connect(self.run)
        self._material_changed()

    # --- optics ----------------------------------------------------------------------
    def _mode_changed(self, _value: Any = None) -> None:
        """HRTEM: aberration-corrected at the optimum defocus (columns show); STEM: an
        aberration-free probe in focus."""
        energy = self._energy_keV()
        if str(self.mode.value).startswith("hrtem"):
            self.cs_um.value, _ = default_hrtem_optics(energy)
            self.optimum_defocus.value = True
        else:
            self.optimum_defocus.value = False
            self.cs_um.value = 0.0
            self._set_defocus(0.0)
        self._follow_cs()

    def _follow_cs(self, _value: Any = None) -> None:
        if self.optimum_defocus.value:
            self._set_defocus(optimum_defocus_nm(float(self.cs_um.value), self._energy_keV()))

    def _set_defocus(self, value: float) -> None:
        self._setting_defocus = True
        try:
            self.defocus_nm.value = round(value, 2)
        finally:
            self._setting_defocus = False

    def _defocus_typed(self, _value: Any = None) -> None:
        if not self._setting_defocus:
            self.optimum_defocus.value = False

    @staticmethod
    def _energy_keV() -> float:
        from napari_atomseg.simulation import SimulationParameters

        return float(SimulationParameters.__dataclass_fields__["energy_keV"].default)

    # --- form ------------------------------------------------------------------------
    def _zones(self, _widget: Any = None) -> list[str]:
        return list(self._materials[self.material.value]["zone_axes"])

    def _material_changed(self) -> None:
        self.zone_axis.reset_choices()
        self._sync_visibility()

    def _sync_visibility(self) -> None:
        manual = not self.random.value
        kind = self._materials[self.material.value]["kind"]
        scene = self.scene.value
        for w in (
            self.mode,
            self.scene,
            self.material,
            self.dose,
            self.pixel_size_nm,
            self.field_of_view_nm,
            self.optics,
            self.details,
        ):
            w.visible = manual
        for w in self.optics.section:
            w.visible = manual and self.optics.expanded
        shown = manual and self.details.expanded
        for w in (self.support_nm, self.contamination, self.layer_name):
            w.visible = shown
        self.zone_axis.visible = manual and scene == "lattice"
        self.layers.visible = manual and scene == "lattice" and kind == "layered"
        self.thickness_nm.visible = manual and scene == "lattice" and kind != "layered"
        self.vacancy_fraction.visible = shown and scene == "lattice"
        self.particle_diameter_nm.visible = shown and scene == "particles"
        self.single_atoms_per_nm2.visible = shown and scene in ("single_atoms", "particles")

    def parameters(self) -> Any:
        """The :class:`SimulationParameters` the form describes (InputError if absurd)."""
        from napari_atomseg.simulation import SimulationParameters, random_parameters

        if self.random.value:
            return random_parameters(np.random.default_rng(int(self.seed.value)))
        pixel = float(self.pixel_size_nm.value)
        side = round(float(self.field_of_view_nm.value) / pixel)
        if not 16 <= side <= 8192:
            raise InputError(
                f"field of view {self.field_of_view_nm.value} nm at {pixel} nm/px is {side} px "
                "across; it must be 16-8192 px (change the field of view or the pixel size)"
            )
        scene = self.scene.value
        kw: dict[str, Any] = {
            "material": self.material.value,
            "mode": self.mode.value,
            "scene": scene,
            "shape_px": (side, side),
            "pixel_size_nm": pixel,
            "dose_e_per_A2": float(self.dose.value),
            "seed": int(self.seed.value),
            "defocus_nm": float(self.defocus_nm.value),
            "cs_um": float(self.cs_um.value),
            "support_thickness_nm": float(self.support_nm.value),
            "contamination_coverage": float(self.contamination.value),
            "single_atom_density_per_nm2": float(self.single_atoms_per_nm2.value),
        }
        if scene == "lattice":
            kw["zone_axis"] = self.zone_axis.value
            kw["vacancy_fraction"] = float(self.vacancy_fraction.value)
            if self._materials[self.material.value]["kind"] == "layered":
                kw["layers"] = int(self.layers.value)
            else:
                kw["thickness_nm"] = float(self.thickness_nm.value)
        elif scene == "particles":
            kw["particle_diameter_nm"] = float(self.particle_diameter_nm.value)
            if kw["support_thickness_nm"] == 0:
                kw["support_thickness_nm"] = 3.0  # particles sit on a support
        return SimulationParameters(**kw)

    # --- run -------------------------------------------------------------------------
    def run(self) -> Any:
        """Validate the form and start the simulation; returns the worker (None on error)."""
        from napari_atomseg.simulation import simulate_steps

        try:
            params = self.parameters()
        except InputError as exc:
            notify_error(exc)
            self.panel.status.value = f"not started: {exc}"[:200]
            return None
        name = self.layer_name.value.strip() or "simulated"
        return self.panel.start(
            simulate_steps, params, on_result=lambda result: self._show(result, name)
        )

    def _show(self, result: Any, name: str) -> str:
        for layer_data in simulation_layers(result, name):
            add_or_update(self._viewer, layer_data)
        p = result.parameters
        n_visible = int(result.columns["visible"].sum()) if len(result.columns) else 0
        summary = (
            f"{p.material} {p.mode} {p.shape_px[0]}x{p.shape_px[1]} px at "
            f"{p.pixel_size_nm:.4f} nm/px: {n_visible} visible columns"
        )
        if n_visible == 0:
            reason = invisible_columns_reason(p, result.columns)
            show_warning(f"{summary}: {reason}")
            summary += f": {reason}"
        return summary
