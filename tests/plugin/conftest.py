"""Fixtures of the plugin tests."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _own_settings(isolated_settings):
    """Every plugin test keeps remembered widget values in its own file (tests/conftest.py)."""
    return isolated_settings
