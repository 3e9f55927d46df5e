"""One default per setting: the library, the command line and the Train widget start from the same
run settings (issue 11: the GUI used to start at factor 2 and 200 epochs, the CLI at factor 1)."""

from __future__ import annotations

from napari_sbtt.config import RunConfig


def test_library_cli_and_widget_start_from_the_same_settings(qapp):
    from napari_sbtt.cli import _run_config, build_parser
    from napari_sbtt.plugin._run_fields import make_run_fields, run_config_from_fields
    from napari_sbtt.plugin._train_widget import device_choices

    library = RunConfig().to_dict()
    cli = RunConfig.from_dict(_run_config(build_parser().parse_args(["run", "x.tif", "--out", "y"]))).to_dict()
    demo = RunConfig.from_dict(_run_config(build_parser().parse_args(["demo"]))).to_dict()
    widget = run_config_from_fields(make_run_fields(device_choices=device_choices)).to_dict()
    assert cli == library
    assert demo == library
    assert widget == library
