"""The Train widget's run settings, generated from the RunConfig fields' metadata.

Every :class:`~napari_sbtt.config.RunConfig` field whose :class:`~napari_sbtt.config.Setting`
has a widget label becomes a magicgui field here: a combo box for choices, a spin box for
numbers (in the units the setting shows, milliseconds for the onset delay), a check box for
booleans; the initial value is the library's default, so the widget, the command line and the
library start from the same values (tests/test_config.py checks it). An optional setting's None
(``epochs``: the model's own 400, ``max_seconds``: no budget) is the spin box's lowest value,
labelled with the setting's ``none_label``; an optional choice gets that label as a choice.
"""

from __future__ import annotations

from typing import Any, Callable

from magicgui.widgets import CheckBox, ComboBox, FloatSpinBox, SpinBox

from ..config import RunConfig, Setting, settings

__all__ = ["make_run_fields", "run_config_from_fields", "field_value", "QT_INT_MAX"]

#: the largest value a Qt spin box holds
QT_INT_MAX = 2**31 - 1


def _none_text(s: Setting, default: Any) -> str:
    return f"{s.none_label} (default)" if default is None else s.none_label


def _none_value(s: Setting) -> float:
    """The spin box value that stands for None: just below the setting's lowest value."""
    low = s.to_shown(s.low)
    return low if s.low_open else low - (1 if s.kind == "int" else s.step)


def make_field(name: str, s: Setting, default: Any, *, choices: Any = None) -> Any:
    """The magicgui value widget of setting ``name`` showing ``default``."""
    common = {"label": s.widget, "tooltip": s.help}
    if s.kind == "bool":
        return CheckBox(value=bool(default), **common)
    if s.kind == "choice":
        options = choices if choices is not None else list(s.choices)
        if s.optional and not callable(options):
            options = [_none_text(s, default), *options]
        value = default if default is not None else _none_text(s, default)
        return ComboBox(choices=options, value=value, **common)
    low, high = s.to_shown(s.low), s.to_shown(s.high)
    if s.optional:
        low = _none_value(s)
    if s.kind == "int":
        widget = SpinBox(min=int(low), max=int(min(high, QT_INT_MAX)), step=int(s.step),
                         value=int(low if default is None else default), **common)
    else:
        widget = FloatSpinBox(min=float(low), max=float(high), step=float(s.step),
                              value=float(low if default is None else s.to_shown(default)), **common)
    if s.optional:  # Qt shows this text at the lowest value: None
        widget.native.setSpecialValueText(_none_text(s, default))
    return widget


def make_run_fields(*, device_choices: Callable[[Any], list[str]] | None = None) -> dict[str, Any]:
    """Field name -> magicgui widget for every RunConfig setting the widget shows, in field order."""
    fields: dict[str, Any] = {}
    for name, s, default in settings():
        if s.widget is None:
            continue
        choices = device_choices if name == "device" and device_choices is not None else None
        fields[name] = make_field(name, s, default, choices=choices)
    return fields


def field_value(name: str, widget: Any) -> Any:
    """The RunConfig value of setting ``name`` that ``widget`` shows (None for its none value)."""
    s = RunConfig.setting(name)
    value = widget.value
    if s.optional and s.kind == "choice":
        return None if value not in s.choices else value
    if s.optional and s.kind in ("int", "number") and value <= _none_value(s):
        return None
    if s.kind == "int":
        return int(value)
    if s.kind == "number":
        return s.from_shown(float(value))
    return value


def run_config_from_fields(fields: dict[str, Any], **fixed: Any) -> RunConfig:
    """The RunConfig of the fields' values, with ``fixed`` settings (e.g. ``adapt``) on top.

    Raises :class:`~napari_sbtt.config.SettingError` (a ValueError) for a value the run refuses.
    """
    values = {name: field_value(name, w) for name, w in fields.items()}
    return RunConfig.from_dict({**values, **fixed})
