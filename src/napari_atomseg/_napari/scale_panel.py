"""The pixel-size estimate of an uncalibrated image layer: computed once, kept with the
layer, shown and editable in every widget.

An uncalibrated layer (in pixels) gets one physical estimate
(:func:`napari_atomseg.scale.estimate_image_scale`), stored as a plain dict in
``layer.metadata["atomseg_scale"]`` -- not in ``layer.scale``, so it is never mistaken for
a calibration (and not written into saved files as one). Every widget reads it from
there, so Find atoms and Segment regions work at the same pixel size. The panel shows the
value, where it came from (which material's spacing, or the feature width), the
confidence and the spectrum peaks; the user can name the material (re-estimates with its
spacings pinned), estimate again, or type a value (kept as ``source="user"``).
"""

from __future__ import annotations

from typing import Any

from magicgui.widgets import ComboBox, Container, FloatSpinBox, Label, PushButton

from napari_atomseg.scale import SCALE_METADATA_KEY, ImageScale, scale_from_metadata

from .image_source import image_frames, layer_pixel_size_nm

ANY_MATERIAL = "(any)"


def _materials() -> list[str]:
    from napari_atomseg.scale import material_names

    return [ANY_MATERIAL, *material_names()]


def stored_scale(layer: Any) -> ImageScale | None:
    """The estimate kept with ``layer``, or None."""
    try:
        return scale_from_metadata(layer.metadata)
    except Exception:
        return None


def layer_scale(layer: Any, material: str | None = None, recompute: bool = False) -> ImageScale:
    """The layer's estimate: the stored one, else computed once (on its first frame) and
    stored. ``recompute`` (or a different ``material``) estimates again."""
    from napari_atomseg.scale import estimate_image_scale

    found = stored_scale(layer)
    same_material = found is not None and (material is None or found.material == material)
    if found is not None and not recompute and (found.source == "user" or same_material):
        return found
    frame = image_frames(layer, 0 if layer.ndim == 3 else None)[0].data
    scale = estimate_image_scale(frame, material)
    layer.metadata[SCALE_METADATA_KEY] = scale.to_metadata()
    return scale


class ScalePanel(Container):
    """Shows the chosen image layer's pixel size: its calibration, or the shared estimate."""

    def __init__(self, image_combo: ComboBox) -> None:
        self._image = image_combo
        self.material = ComboBox(
            choices=_materials(), value=ANY_MATERIAL, label="material",
            tooltip="pin the lattice spacing of the pixel-size estimate (uncalibrated images)",
        )  # fmt: skip
        self.value = FloatSpinBox(
            value=0.0, min=0.0, max=100.0, step=0.00001, label="estimated (nm/px)",
            tooltip="the shared estimate for this layer; type a value to replace it",
        )  # fmt: skip
        self.info = Label(value="")
        self.estimate_button = PushButton(text="Estimate pixel size")
        super().__init__(
            widgets=[self.material, self.value, self.estimate_button, self.info], labels=True
        )
        self._updating = False
        self._image.changed.connect(self.refresh)
        self.estimate_button.changed.connect(lambda _=None: self.estimate(recompute=True))
        self.material.changed.connect(lambda _=None: self.estimate(recompute=True))
        self.value.changed.connect(self._typed)
        self.refresh()

    def chosen_material(self) -> str | None:
        """The material that pins the estimate's spacing; None for any material."""
        value = self.material.value
        return None if value in (None, ANY_MATERIAL) else str(value)

    def refresh(self, _event: Any = None) -> None:
        """Show what the layer has (never computes)."""
        layer = self._image.value
        calibrated = layer is not None and layer_pixel_size_nm(layer) is not None
        self.value.enabled = layer is not None and not calibrated
        self.estimate_button.enabled = self.value.enabled
        if layer is None:
            self._show(None, "")
        elif calibrated:
            self._show(None, f"calibrated: {layer_pixel_size_nm(layer):.5g} nm/px (from the file)")
        else:
            scale = stored_scale(layer)
            self._show(scale, "not estimated yet" if scale is None else "")

    def _show(self, scale: ImageScale | None, text: str) -> None:
        self._updating = True
        try:
            self.value.value = float(scale.pixel_size_nm or 0.0) if scale is not None else 0.0
        finally:
            self._updating = False
        if scale is not None:
            peaks = sum(1 for p in scale.peaks if p.spacing_nm is not None)
            text = f"{scale.describe()}; {peaks}/{len(scale.peaks)} spectrum peaks explained"
            if scale.warnings:
                text += "<br>" + "<br>".join(scale.warnings)
        self.info.value = text

    def estimate(self, recompute: bool = False) -> ImageScale | None:
        """Estimate (or re-estimate) the chosen layer's pixel size; None when calibrated."""
        layer = self._image.value
        if layer is None or layer_pixel_size_nm(layer) is not None:
            self.refresh()
            return None
        scale = layer_scale(layer, self.chosen_material(), recompute=recompute)
        self._show(scale, "")
        return scale

    def _typed(self, value: float) -> None:
        layer = self._image.value
        if self._updating or layer is None or layer_pixel_size_nm(layer) is not None:
            return
        if value <= 0:
            return
        base = stored_scale(layer) or ImageScale(None)
        scale = base.with_user_value(float(value))
        layer.metadata[SCALE_METADATA_KEY] = scale.to_metadata()
        self._show(scale, "")

    def pixel_size_for(self, layer: Any) -> tuple[float | None, ImageScale | None]:
        """``(pixel size, estimate or None)`` a widget should use for ``layer``: its
        calibration, else the shared estimate (computed now if the layer has none)."""
        calibrated = layer_pixel_size_nm(layer)
        if calibrated is not None:
            return calibrated, None
        scale = layer_scale(layer, self.chosen_material())
        if self._image.value is layer:
            self._show(scale, "")
        return scale.pixel_size_nm, scale
