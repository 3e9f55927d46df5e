"""SBTTResult: one description (metadata) for the result folder and the exports."""

from __future__ import annotations

import json

import numpy as np

from napari_sbtt.core.scan import FineGrid
from napari_sbtt.result import RESULT_FORMAT, SBTTResult, package_version


def _result() -> SBTTResult:
    grid = FineGrid(0.0, 0.025, 6)
    rates = np.arange(12, dtype=np.float32).reshape(6, 2)
    return SBTTResult(rates=rates, times=grid.centres, observations=rates.copy(), roi_ids=np.array([3, 7]),
                      grid=grid, units="a.u.", metrics={"fit_r_median": 0.5}, config={"factor": 1},
                      history=[{"epoch": 0}], stopped=True)


def test_the_folder_and_the_npz_export_carry_the_same_metadata(tmp_path) -> None:
    import napari_sbtt

    result = _result()
    meta = result.metadata()
    assert meta["format"] == RESULT_FORMAT and meta["package_version"] == package_version() == napari_sbtt.__version__
    folder = result.save(tmp_path / "res")
    saved = json.loads((folder / "result.json").read_text())
    assert saved == {**meta, "has_model": False}
    exported = result.export(tmp_path / "res.npz")
    with np.load(exported) as z:
        assert json.loads(str(z["result_json"])) == meta


def test_one_version_source() -> None:
    import re
    from importlib.metadata import version
    from pathlib import Path

    import napari_sbtt

    text = (Path(__file__).parents[2] / "pyproject.toml").read_text()
    project = text.split("[project]", 1)[1].split("\n[", 1)[0]
    assert not re.search(r"^version\s*=", project, re.M) and re.search(r'^dynamic = \["version"\]', project, re.M)
    assert 'version = { attr = "napari_sbtt.__version__" }' in text
    assert version("napari-sbtt") == napari_sbtt.__version__ == package_version()
