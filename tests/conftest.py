"""Fixtures shared by the plugin tests (pytest finds them here; tests/ is on sys.path)."""

from __future__ import annotations

import pytest

#: the plugin's settings-file variable (napari_sbtt.plugin._settings.ENV_VAR, not imported
#: here so that the core tests never import Qt)
SETTINGS_ENV_VAR = "NAPARI_SBTT_SETTINGS"


@pytest.fixture
def isolated_settings(tmp_path, monkeypatch):
    """Each test keeps remembered widget values in its own file, never the developer's store."""
    path = tmp_path / "napari-sbtt-settings.ini"
    monkeypatch.setenv(SETTINGS_ENV_VAR, str(path))
    return path


@pytest.fixture
def viewer(make_napari_viewer):
    return make_napari_viewer()
