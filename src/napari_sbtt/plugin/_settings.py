"""Widget values remembered across napari sessions (the stardist-napari habit), in QSettings.

The store is an INI file kept by Qt for organisation and application "napari-sbtt" (on Linux
``~/.config/napari-sbtt/napari-sbtt.ini``). Setting ``NAPARI_SBTT_SETTINGS=/some/file.ini``
points the store at that file instead: the tests and benchmarks do so, so they never read a
user's saved values and never change them.

Each widget keeps its values in its own group ("train", "scan", "data"). A value is saved
when the user (or a script) changes it; values set by the widget itself with the ``changed``
signal blocked (e.g. timing filled from a movie's metadata) are not saved. A stored value that
no longer fits its widget (a device that is gone, a number out of range) is ignored.
"""

from __future__ import annotations

import os
from functools import partial
from typing import Any, Mapping

from qtpy.QtCore import QSettings

__all__ = ["ORGANISATION", "APPLICATION", "ENV_VAR", "settings_store", "PersistedValues"]

ORGANISATION = "napari-sbtt"
APPLICATION = "napari-sbtt"
#: environment variable naming an INI file to use instead of the user's store
ENV_VAR = "NAPARI_SBTT_SETTINGS"


def settings_store() -> QSettings:
    """The QSettings holding the remembered widget values (see the module docstring)."""
    path = os.environ.get(ENV_VAR, "").strip()
    if path:
        return QSettings(path, QSettings.IniFormat)
    return QSettings(QSettings.IniFormat, QSettings.UserScope, ORGANISATION, APPLICATION)


def _coerce(raw: Any, like: Any) -> Any:
    """``raw`` as read back from the store (INI text) in the type of ``like``; None if it fails."""
    try:
        if isinstance(like, bool):
            if isinstance(raw, str):
                text = raw.strip().lower()
                if text in ("true", "1", "yes"):
                    return True
                if text in ("false", "0", "no"):
                    return False
                return None
            return bool(raw)
        if isinstance(like, int):
            value = float(raw)
            return int(value) if value.is_integer() else None
        if isinstance(like, float):
            return float(raw)
        if isinstance(like, str):
            return str(raw)
    except (TypeError, ValueError):
        return None
    return None


def _fits(widget: Any, value: Any) -> bool:
    """True when ``widget`` can show ``value``: one of its choices, or within its range."""
    choices = getattr(widget, "choices", None)
    if choices is not None:
        return value in tuple(choices)
    lo, hi = getattr(widget, "min", None), getattr(widget, "max", None)
    return (lo is None or value >= lo) and (hi is None or value <= hi)


class PersistedValues:
    """Remember the values of some magicgui value widgets in one group of :func:`settings_store`.

    Parameters
    ----------
    group : the settings group ("train", "scan", ...).
    widgets : key -> value widget. The values the widgets hold when this object is made are the
        defaults that :meth:`reset` returns to; saved values are then restored.
    """

    def __init__(self, group: str, widgets: Mapping[str, Any]) -> None:
        self.group = group
        self.widgets = dict(widgets)
        self.defaults: dict[str, Any] = {key: w.value for key, w in self.widgets.items()}
        #: keys whose saved value was restored when the widget was made
        self.restored: list[str] = self.restore()
        for key, widget in self.widgets.items():
            widget.changed.connect(partial(self._save, key))

    def restore(self) -> list[str]:
        """Set the widgets to their saved values (ignoring unusable ones); return the keys set."""
        store = settings_store()
        done: list[str] = []
        for key, widget in self.widgets.items():
            name = f"{self.group}/{key}"
            if not store.contains(name):
                continue
            value = _coerce(store.value(name), self.defaults[key])
            if value is None or not _fits(widget, value):
                continue
            try:
                widget.value = value
            except (TypeError, ValueError):
                continue
            done.append(key)
        return done

    def saved(self) -> dict[str, Any]:
        """The values stored for this group (raw, as the store returns them)."""
        store = settings_store()
        store.beginGroup(self.group)
        try:
            return {key: store.value(key) for key in store.childKeys()}
        finally:
            store.endGroup()

    def _save(self, key: str, value: Any = None) -> None:
        value = self.widgets[key].value
        if isinstance(value, (bool, int, float, str)):
            store = settings_store()
            store.setValue(f"{self.group}/{key}", value)
            store.sync()

    def reset(self) -> None:
        """Put every widget back to its default and forget this group's saved values."""
        for key, widget in self.widgets.items():
            widget.value = self.defaults[key]
        store = settings_store()
        store.remove(self.group)
        store.sync()
