"""A small histogram of particle sizes (equivalent diameters) inside a widget."""

from __future__ import annotations

from typing import Any

import numpy as np
from magicgui.widgets import Container, Label


class SizeHistogram(Container):
    """Equivalent-diameter histogram of the last particle segmentation (hidden until one).

    In nm when the table has ``equivalent_diameter_nm``, else in px; the title gives the
    count, median and interquartile range.
    """

    def __init__(self) -> None:
        from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
        from matplotlib.figure import Figure

        self.summary = Label(value="")
        super().__init__(widgets=[self.summary], labels=False)
        self.figure = Figure(figsize=(3.2, 1.9), dpi=100, tight_layout=True)
        self.canvas = FigureCanvasQTAgg(self.figure)
        self.canvas.setMinimumHeight(150)
        self.native.layout().addWidget(self.canvas)
        self.visible = False

    def show(self, table: Any) -> None:
        """Plot the sizes of ``table`` (a particle table of
        :mod:`napari_atomseg.segmentation.instances`)."""
        unit = "nm" if "equivalent_diameter_nm" in table else "px"
        sizes = np.asarray(table[f"equivalent_diameter_{unit}"], dtype=float)
        self.figure.clear()
        ax = self.figure.add_subplot(111)
        if sizes.size:
            ax.hist(sizes, bins=min(40, max(5, int(np.sqrt(sizes.size)) + 1)), color="#4a90d9")
            q1, med, q3 = np.percentile(sizes, [25, 50, 75])
            self.summary.value = (
                f"{sizes.size} particles; diameter median {med:.3g} {unit} (IQR {q1:.3g}-{q3:.3g})"
            )
        else:
            self.summary.value = "no particles"
        ax.set_xlabel(f"equivalent diameter ({unit})")
        ax.set_ylabel("count")
        self.canvas.draw_idle()
        self.visible = True
