"""The "Track atoms" widget: a 3-D Image layer (a movie) -> Tracks + Points layers.

Run: :func:`napari_atomseg.track.iter_track_stack` in a worker (drift registration, the
atom finder on every frame, linking, dynamics) with a progress bar per frame and Cancel.
The results go into layers, not onto the widget: a **Tracks** layer (``track_id, t, y,
x`` in the movie's raw frame coordinates, so the tracks overlay the stack; per-detection
and per-track features), a **Points** layer with every frame's columns on the time axis,
and the registered average as an Image layer. The drift table, jumps and per-track
table live in the Tracks layer's ``metadata``. The widget shows the drift, the
mean-squared displacement and the residence times of the last run as plots, and a
summary line.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from magicgui.widgets import (
    CheckBox,
    ComboBox,
    Container,
    FloatSpinBox,
    LineEdit,
    PushButton,
    SpinBox,
)

if TYPE_CHECKING:
    import napari.viewer

from napari_atomseg.errors import InputError

from ..image_source import layer_pixel_size_nm
from ..scale_panel import ScalePanel
from ._common import Fold, layer_combo
from ._runner import RunPanel
from ._viewer import add_or_update


class TrackAtomsWidget(Container):
    """Dock widget: track every atom of a movie; drift, MSD and residence-time plots."""

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        self._viewer = viewer
        self.image = layer_combo(viewer, "image", "movie")
        self.pixel_size_nm = FloatSpinBox(
            value=0.0, min=0.0, max=100.0, step=0.001, label="pixel size (nm)",
            tooltip="0 = the layer's calibration, or the shared estimate (below) of an "
            "uncalibrated movie, made on its first frame",
        )  # fmt: skip
        # The same estimate, kept with the layer, as Find atoms and Segment regions use.
        self.scale = ScalePanel(self.image)
        self.scale_fold = Fold("pixel-size estimate", [self.scale])
        self.frame_range = LineEdit(
            value="", label="frames", tooltip="A:B (frame numbers of the layer); empty = all"
        )
        self.max_jump_nm = FloatSpinBox(
            value=0.4, min=0.02, max=5.0, step=0.05, label="longest step (nm)",
            tooltip="the farthest an atom may move between two frames",
        )  # fmt: skip
        self.gap_frames = SpinBox(value=5, min=0, max=100, label="gap frames",
                                  tooltip="frames a column may vanish for and be picked up again")  # fmt: skip
        self.tiles = SpinBox(
            value=0, min=0, max=16, label="non-rigid tiles",
            tooltip="0 = rigid drift; N = also an N x N tile-wise correction",
        )  # fmt: skip
        self.support = ComboBox(
            choices=["auto", "crystal", "amorphous"], value="auto", label="support"
        )
        self.average = CheckBox(value=True, text="add the registered average")
        self.run_button = PushButton(text="Track atoms")
        self.panel = RunPanel()
        self.plots = _Plots()
        super().__init__(
            widgets=[
                self.image,
                self.pixel_size_nm,
                self.scale_fold,
                self.scale,
                self.frame_range,
                self.max_jump_nm,
                self.gap_frames,
                self.tiles,
                self.support,
                self.average,
                self.run_button,
                self.panel,
            ]
        )
        self.native.layout().addWidget(self.plots.canvas)
        self.run_button.changed.connect(self.run)

    # --- running ------------------------------------------------------------------------
    def options(self) -> dict[str, Any]:
        """The tracking options the controls say."""
        options: dict[str, Any] = {
            "max_jump_nm": float(self.max_jump_nm.value),
            "gap_frames": int(self.gap_frames.value),
            "tiles": int(self.tiles.value),
            "support": self.support.value,
        }
        text = self.frame_range.value.strip()
        if text:
            options["frame_range"] = text
        return options

    def run(self, _value: Any = None) -> None:
        """Track the chosen movie in a worker."""
        from napari_atomseg.io import Calibration
        from napari_atomseg.io.stack import as_stack

        layer = self.image.value
        if layer is None:
            self.panel.status.value = "choose a movie (a 3-D Image layer)"
            return
        if layer.ndim != 3 or getattr(layer, "rgb", False) or getattr(layer, "multiscale", False):
            self.panel._on_error(
                InputError(f"{layer.name}: tracking needs a 3-D stack (frames, rows, cols)")
            )
            return
        px = float(self.pixel_size_nm.value) or layer_pixel_size_nm(layer)
        if not px:
            px = self.scale.pixel_size_for(layer)[0]
        cal = Calibration.from_pixel_size_nm(px, ndim=3) if px else None
        stack = as_stack(layer.data, cal, name=layer.name)
        self.panel.start(
            _track_job,
            stack,
            bool(self.average.value),
            on_result=lambda job: self._show(job, layer),
            **self.options(),
        )

    # --- results --------------------------------------------------------------------------
    def _show(self, job: tuple[Any, Any], layer: Any) -> str:
        result, average = job
        tracks = result.tracks
        where = {
            "scale": tuple(layer.scale),
            "translate": tuple(layer.translate),
            "units": tuple(str(u) for u in layer.units),
        }
        _replace(self._viewer, _tracks_layer(result, layer.name, where))
        add_or_update(self._viewer, _points_layer(result, layer.name, where))
        if average is not None:
            add_or_update(
                self._viewer,
                (
                    average,
                    {"name": f"{layer.name} registered average", "visible": False,
                     "scale": where["scale"][1:], "translate": where["translate"][1:],
                     "units": where["units"][1:]},
                    "image",
                ),
            )  # fmt: skip
        self.plots.show(result)
        n_tracks = tracks["track_id"].nunique() if len(tracks) else 0
        text = (
            f"{n_tracks} tracks, {len(result.jumps)} jumps over "
            f"{len(result.registration.frames)} frames; drift up to "
            f"{np.hypot(*result.registration.drift_px.T).max():.1f} px"
        )
        feats = result.features
        if len(result.jumps) and "mean_residence_frames" in feats:
            stay = feats["mean_residence_frames"].dropna()
            if len(stay):
                text += f"; mean residence {stay.mean():.1f} frames"
        if result.warnings:
            text += " -- " + result.warnings[0]
        return text


def _track_job(stack: Any, with_average: bool, **options: Any):
    """The worker's job: track, then (optionally) the registered average -- both off the
    GUI thread. Returns ``(TrackingResult, average or None)``."""
    from napari_atomseg._progress import Progress
    from napari_atomseg.track.api import iter_track_stack
    from napari_atomseg.track.registration import iter_registered_average

    result = yield from iter_track_stack(stack, None, **options)
    if not with_average:
        return result, None
    yield Progress(0, 1, "registered average")
    selected = stack.select(options.get("frame_range"))
    average, _count = yield from iter_registered_average(selected, result.registration)
    return result, average


def _replace(viewer: Any, layer_data: tuple) -> None:
    """Tracks layers are replaced, not updated (add_or_update knows Points/Labels/Image)."""
    data, kwargs, _ = layer_data
    if kwargs["name"] in viewer.layers:
        viewer.layers.remove(kwargs["name"])
    viewer.add_tracks(data, **kwargs)


def _tracks_layer(result: Any, name: str, where: dict[str, Any]) -> tuple:
    tracks = result.tracks
    data = tracks[["track_id", "frame", "y_px", "x_px"]].to_numpy(np.float64)
    per_track = result.features.set_index("track_id")
    features = pd.DataFrame(
        {
            "confidence": tracks["confidence"].to_numpy(),
            "lifetime_frames": per_track["lifetime_frames"].reindex(tracks["track_id"]).to_numpy(),
            "n_jumps": per_track["n_jumps"].reindex(tracks["track_id"]).to_numpy(),
        }
    )
    metadata = {
        "drift": result.registration.table(result.pixel_size_nm, result.frame_time_s),
        "track_features": result.features,
        "jumps": result.jumps,
        "settings": dict(result.settings),
        "warnings": list(result.warnings),
        "pixel_size_nm": result.pixel_size_nm,
    }
    kwargs = {
        "name": f"{name} tracks",
        **where,
        "features": features,
        "metadata": metadata,
        "tail_length": 8,
        # Columns that sit still share one colour; atoms that jumped stand out.
        "color_by": "n_jumps",
        "colormap": "turbo",
    }
    return data, kwargs, "tracks"


def _points_layer(result: Any, name: str, where: dict[str, Any]) -> tuple:
    tracks = result.tracks
    data = tracks[["frame", "y_px", "x_px"]].to_numpy(np.float64)
    features = tracks[["track_id", "confidence"]].reset_index(drop=True)
    px = result.pixel_size_nm
    size = max(2.0, 0.06 / px) if px else 4.0
    kwargs = {
        "name": f"{name} atoms",
        **where,
        "features": features,
        "size": size,
        "face_color": "transparent",
        "border_color": "yellow",
        "border_width": 0.15,
        "metadata": {"pixel_size_nm": px},
    }
    return data, kwargs, "points"


class _Plots:
    """Drift against frame, ensemble MSD against lag, residence-time histogram."""

    def __init__(self) -> None:
        from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
        from matplotlib.figure import Figure

        self.figure = Figure(figsize=(4.0, 5.4), layout="constrained")
        self.canvas = FigureCanvasQTAgg(self.figure)
        self.canvas.setMinimumHeight(360)
        self.axes = self.figure.subplots(3, 1)
        self._label_axes()

    def _label_axes(self) -> None:
        a, b, c = self.axes
        a.set_xlabel("frame")
        a.set_ylabel("drift (px)")
        b.set_xlabel("lag (frames)")
        b.set_ylabel("MSD (px$^2$)")
        c.set_xlabel("residence (frames)")
        c.set_ylabel("stays")

    def show(self, result: Any) -> None:
        """Draw a :class:`~napari_atomseg.track.api.TrackingResult`'s drift, MSD and stays."""
        from napari_atomseg.track.dynamics import msd, residence_times

        for ax in self.axes:
            ax.clear()
        reg = result.registration
        a, b, c = self.axes
        a.plot(reg.frames, reg.drift_px[:, 0], label="y")
        a.plot(reg.frames, reg.drift_px[:, 1], label="x")
        bad = ~reg.reliable
        if bad.any():
            a.plot(reg.frames[bad], reg.drift_px[bad, 0], "rx", label="interpolated")
        a.legend(fontsize=7)
        moved = result.jumps["track_id"].unique() if len(result.jumps) else []
        tracks = result.tracks
        if len(moved):
            m = msd(tracks[tracks["track_id"].isin(moved)], max_lag=10)
            b.plot(m["lag_frames"], m["msd_px2"], "o-", label="tracks that jumped")
        m_all = msd(tracks, max_lag=10)
        if len(m_all):
            b.plot(m_all["lag_frames"], m_all["msd_px2"], ".-", label="all tracks")
        b.legend(fontsize=7)
        stays = residence_times(tracks, result.jumps)
        full = stays[~stays["censored"]]["frames"]
        if len(full):
            c.hist(full, bins=min(20, max(3, len(full) // 3)))
        self._label_axes()
        self.canvas.draw_idle()
