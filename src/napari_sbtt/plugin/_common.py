"""Helpers shared by the widgets: layer choices, message labels, viewer event wiring."""

from __future__ import annotations

import contextlib
import html
from typing import Any, Callable

from magicgui.widgets import Label
from qtpy.QtCore import Qt

__all__ = ["layer_choices", "MessageLabel", "connect_layer_events", "resolve_inputs", "timing_for",
           "theme_colours", "follow_theme"]


def layer_choices(viewer: Any, kind: str) -> Callable[[Any], list[tuple[str, Any]]]:
    """A magicgui choices callable listing the viewer's layers of class ``kind`` ("Image", "Labels")."""

    def choices(_widget: Any = None) -> list[tuple[str, Any]]:
        return [(layer.name, layer) for layer in viewer.layers if type(layer).__name__ == kind]

    return choices


class MessageLabel(Label):
    """A word-wrapped label for status and error messages (errors in red)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(value="", **kwargs)
        self.native.setWordWrap(True)
        self.native.setTextFormat(Qt.TextFormat.RichText)
        self.text = ""
        self.is_error = False

    def show_error(self, text: str) -> None:
        self.text, self.is_error = text, True
        self.value = f'<span style="color:#ff6b6b">{html.escape(text)}</span>'

    def show_info(self, text: str) -> None:
        self.text, self.is_error = text, False
        self.value = html.escape(text)

    def clear(self) -> None:
        self.text, self.is_error = "", False
        self.value = ""


def connect_layer_events(viewer: Any, callback: Callable[..., Any]) -> Callable[[], None]:
    """Call ``callback`` when layers are added, removed or renamed; return a disconnect function."""
    events = [viewer.layers.events.inserted, viewer.layers.events.removed]

    def _cb(*_: Any) -> None:
        try:
            callback()
        except RuntimeError:  # the widget's Qt object is gone
            disconnect()

    def disconnect() -> None:
        for ev in events:
            with contextlib.suppress(Exception):
                ev.disconnect(_cb)

    for ev in events:
        ev.connect(_cb)
    return disconnect


def resolve_inputs(viewer: Any, session: Any) -> tuple[Any, Any]:
    """The movie and ROI layers to use: the Data widget's choice, else the only candidate.

    When the Data widget was never opened, the first 3-D Image layer and the first Labels layer
    are taken (the common case of one movie and its ROIs).
    """
    from ._layers import find_layer, is_generated

    movie = find_layer(viewer, session.movie_layer)
    labels = find_layer(viewer, session.labels_layer)
    if movie is None:
        images = [la for la in viewer.layers
                  if type(la).__name__ == "Image" and la.ndim == 3 and not is_generated(la)]
        movie = images[0] if images else next(
            (la for la in viewer.layers if type(la).__name__ == "Image"), None)
    if labels is None:
        labels = next((la for la in viewer.layers if type(la).__name__ == "Labels"), None)
    return movie, labels


def timing_for(movie_layer: Any, session: Any) -> tuple[float | None, float | None]:
    """(frame period, line period) in seconds for ``movie_layer``.

    The Data widget's values win when they were entered for this movie; the layer's metadata
    fills what they leave unknown.
    """
    from ._layers import timing_from_metadata

    frame, line = timing_from_metadata(movie_layer.metadata)
    if session.movie_layer == movie_layer.name:
        frame, line = session.frame_period or frame, session.line_period or line
    return frame, line


def theme_colours(viewer: Any) -> Any:
    """:class:`~._plots.PlotColours` of the viewer's current napari theme (background, text, icon)."""
    from napari.utils.theme import get_theme

    from ._plots import PlotColours

    theme = get_theme(viewer.theme)
    return PlotColours(background=theme.background.as_hex(), text=theme.text.as_hex(),
                       muted=theme.icon.as_hex())


def follow_theme(viewer: Any, native: Any, apply: Callable[[Any], None]) -> Callable[[], None]:
    """Call ``apply(theme_colours(viewer))`` now and whenever the viewer's theme changes.

    Stops when ``native`` (the widget's Qt object) is destroyed; returns a disconnect function.
    """

    def _cb(*_: Any) -> None:
        try:
            apply(theme_colours(viewer))
        except RuntimeError:  # the widget's Qt object is gone
            disconnect()

    def disconnect(*_: Any) -> None:
        with contextlib.suppress(Exception):
            viewer.events.theme.disconnect(_cb)

    viewer.events.theme.connect(_cb)
    native.destroyed.connect(disconnect)
    _cb()
    return disconnect
