"""Small pieces the widgets share: layer pickers, model pickers, scrolling docks and
foldable sections.

Docks must fit a 1000 px screen two at a time: every dock widget is a
:class:`DockContainer` (it scrolls when the dock is shorter than its content) and keeps
its rarely changed options in a :class:`Fold` section, closed by default.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from magicgui.widgets import ComboBox, Container, PushButton
from napari.layers import Image, Labels, Points
from qtpy.QtCore import QEvent, QSize, Qt, QTimer
from qtpy.QtWidgets import QDockWidget, QFrame, QMainWindow, QScrollArea, QSizePolicy

_TYPES = {"image": Image, "labels": Labels, "points": Points}


def layer_combo(viewer: Any, layer_type: str, label: str, optional: bool = False) -> ComboBox:
    """A ComboBox of the viewer's layers of one type, kept in sync with the layer list."""
    cls = _TYPES[layer_type]

    def choices(_widget: Any = None) -> list[Any]:
        """(name, layer) of every layer of the type; "(none)" first when optional."""
        found = [(layer.name, layer) for layer in viewer.layers if isinstance(layer, cls)]
        return ([("(none)", None)] if optional else []) + found

    combo = ComboBox(choices=choices, label=label, nullable=optional)

    def refresh(_event: Any = None) -> None:
        """Re-read the layer list (a layer was added or removed)."""
        combo.reset_choices()

    viewer.layers.events.inserted.connect(refresh)
    viewer.layers.events.removed.connect(refresh)
    return combo


def model_names(task: str) -> list[str]:
    """Shipped models of ``task`` (default first); empty when none is installed."""
    from napari_atomseg.backend import list_models

    return [card.name for card in list_models(task)]


class DockContainer(Container):
    """A vertical Container that scrolls when its dock is shorter than its rows.

    napari docks a magicgui widget's ``.native``; magicgui's own ``scrollable=True`` keeps
    ``.native`` outside its scroll area (so napari docks it without one) and caps the
    area's size hint at 24 text lines. Here ``native`` is a scroll area around the rows
    that asks for their full height when there is room and can shrink to a few rows
    when there is not; the rows stay at the top of a taller dock.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        rows = Container.native.fget(self)  # the widget holding the layout
        rows.layout().addStretch(1)
        self._scroll = _RowsScrollArea(rows)
        self._scroll._magic_widget = self  # as magicgui marks its own native widgets

    @property
    def native(self) -> Any:
        """The scroll area around the rows: what napari docks."""
        # (magicgui's own __init__ asks for it before the scroll area exists)
        return self.__dict__.get("_scroll") or Container.native.fget(self)


class _RowsScrollArea(QScrollArea):
    """Size hint = the rows' own; minimum = a few rows (then it scrolls).

    When first shown in a dock it shares the dock area's height between the docks
    there in proportion to what each asks for (Qt's ``QMainWindow.resizeDocks``):
    napari sizes a newly added dock with fixed small numbers, which leaves the first dock
    most of the height and the next one a few rows.
    """

    MIN_HEIGHT_PX = 120

    def __init__(self, rows: Any) -> None:
        super().__init__()
        self._shared = False
        self.setWidgetResizable(True)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        # Preferred, not Expanding: docks share the height by their rows, rather than
        # the first one taking all the room and the next ones scrolling.
        preferred = QSizePolicy.Policy.Preferred
        self.setSizePolicy(preferred, preferred)
        self.setWidget(rows)
        # A fold opening changes what the rows need; tell the dock (a scroll area does not).
        rows.installEventFilter(self)

    def eventFilter(self, watched: Any, event: Any) -> bool:
        """Pass the rows' layout changes on as a new size hint (Qt override)."""
        if watched is self.widget() and event.type() == QEvent.Type.LayoutRequest:
            self.updateGeometry()
        return super().eventFilter(watched, event)

    def sizeHint(self) -> QSize:
        """The rows' full size plus a scroll bar's width (Qt override)."""
        rows = self.widget().sizeHint()
        bar = self.verticalScrollBar().sizeHint().width()
        return QSize(rows.width() + bar, rows.height() + 2 * self.frameWidth())

    def minimumSizeHint(self) -> QSize:
        """At most :attr:`MIN_HEIGHT_PX` tall; below the rows' height it scrolls (Qt
        override)."""
        rows = self.widget().minimumSizeHint()
        bar = self.verticalScrollBar().sizeHint().width()
        return QSize(rows.width() + bar, min(rows.height(), self.MIN_HEIGHT_PX))

    def showEvent(self, event: Any) -> None:
        """On the first show, share the dock area's height (Qt override)."""
        super().showEvent(event)
        if not self._shared:  # once: after that the user's splitter positions stand
            self._shared = True
            QTimer.singleShot(0, self._share_dock_area)

    def _share_dock_area(self) -> None:
        dock, main = self.parent(), None
        while dock is not None and not isinstance(dock, QDockWidget):
            dock = dock.parent()
        main = dock.parent() if dock is not None else None
        while main is not None and not isinstance(main, QMainWindow):
            main = main.parent()
        if dock is None or main is None or dock.isFloating():
            return
        area = main.dockWidgetArea(dock)
        docks = [
            d
            for d in main.findChildren(QDockWidget)
            if d.isVisible()
            and not d.isFloating()
            and main.dockWidgetArea(d) == area
            and not main.tabifiedDockWidgets(d)
        ]
        if len(docks) > 1:
            heights = [d.sizeHint().height() for d in docks]
            main.resizeDocks(docks, heights, Qt.Orientation.Vertical)


class Fold(PushButton):
    """A foldable section: a button that shows or hides a group of widgets.

    ``on_toggle`` runs after each click, for widgets whose visibility also depends on
    other choices (they should be shown only when :attr:`expanded` as well).
    """

    def __init__(
        self,
        title: str,
        section: Sequence[Any],
        expanded: bool = False,
        on_toggle: Callable[[], None] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(text=title, **kwargs)
        self.title = title
        self.section = list(section)
        self.expanded = expanded
        self._on_toggle = on_toggle
        self.changed.connect(self.toggle)
        self._apply()

    def toggle(self, _value: Any = None) -> None:
        """Open or close the section, then run ``on_toggle``."""
        self.expanded = not self.expanded
        self._apply()
        if self._on_toggle is not None:
            self._on_toggle()

    def _apply(self) -> None:
        self.text = ("\u25be " if self.expanded else "\u25b8 ") + self.title
        for widget in self.section:
            widget.visible = self.expanded
