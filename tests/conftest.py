"""Fixtures shared by the tests (the plugin tests' viewer and settings store); builders of test
data are in tests/factories.py."""

from __future__ import annotations

import os

import pytest

#: the Qt binding of the test run (pytest-qt's ``qt_api`` in pyproject.toml says the same). qtpy
#: reads QT_API when napari or our widgets first import it, which is after this conftest loads;
#: PYTEST_QT_API, when set, chooses for both.
QT_API = os.environ.get("PYTEST_QT_API", "pyqt6")
os.environ["QT_API"] = QT_API

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
