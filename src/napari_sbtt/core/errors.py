"""Errors about a setting the user gives, worded for the interface the user used.

A message such as "pass frame_period=<seconds per frame>" is right for a Python caller and
wrong on the command line, where the same setting is ``--frame-period SECONDS``. An
:class:`OptionError` is raised with a template that names each setting once, ``{name}``, and the
Python spelling of each; ``str(error)`` is the Python message, and an interface with its own
words (the CLI) calls :meth:`OptionError.render` with its spellings.
"""

from __future__ import annotations

import re
from typing import Mapping

__all__ = ["OptionError", "MissingOptionError", "MissingTimingError"]

_FIELD = re.compile(r"\{(\w+)\}")


class OptionError(ValueError):
    """A bad or missing setting; the message names it in the words of the caller's interface.

    Parameters
    ----------
    template
        The message, with ``{name}`` where setting ``name`` is to be named (other braces are
        left alone).
    **spellings
        How a Python caller writes each named setting, e.g.
        ``frame_period="frame_period=<seconds per frame>"``.

    Attributes
    ----------
    options : tuple[str, ...]
        The settings the message names (``"frame_period"``, ``"scan"``...), so that a caller can
        tell what is missing without parsing the text.
    """

    def __init__(self, template: str, **spellings: str) -> None:
        self.template = template
        self.spellings = dict(spellings)
        super().__init__(self.render({}))

    @property
    def options(self) -> tuple[str, ...]:
        return tuple(self.spellings)

    def render(self, words: Mapping[str, str]) -> str:
        """The message with each setting spelled as ``words[name]`` (Python spelling if absent)."""

        def spell(m: re.Match[str]) -> str:
            name = m.group(1)
            if name not in self.spellings:
                return m.group(0)
            return words.get(name, self.spellings[name])

        return _FIELD.sub(spell, self.template)


class MissingOptionError(OptionError):
    """A setting the input needs was not given (a TIFF's ROI labels, a traces file's image height);
    ``options`` lists what to give. A front end can ask for exactly those and try again."""


class MissingTimingError(MissingOptionError):
    """The recording does not say when its frames were acquired; ``options`` lists what to give."""
