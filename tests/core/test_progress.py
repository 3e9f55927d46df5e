"""RunControl: the one way to stop a run; progress callbacks keep working through it."""

from __future__ import annotations

import pytest

from napari_sbtt.core.progress import RunControl, RunStopped, StageReport, StopTraining


def test_callback_answers_stop_the_run() -> None:
    for answer in (True, "stop", "STOP"):
        control = RunControl(lambda r, a=answer: a)
        assert control(StageReport("infer", 0, 1)) is True and control.stop_requested
    for answer in (None, False, 1, "go"):
        control = RunControl(lambda r, a=answer: a)
        assert control(StageReport("infer", 0, 1)) is False and not control.stop_requested

    def raises(_r):
        raise StopTraining

    control = RunControl(raises)
    control.report("epoch")
    assert control.stop_requested and not control.aborted


def test_stop_and_abort_from_another_thread_and_extraction() -> None:
    seen = []
    control = RunControl(seen.append)
    progress = control.extraction_progress("extract")
    progress(1, 10)
    assert seen == [StageReport("extract", 1, 10, "reading the recording")]
    control.stop()
    with pytest.raises(RunStopped, match="stopped during extract"):
        progress(2, 10)
    aborted = RunControl()
    aborted.abort()
    assert aborted.stop_requested and aborted.aborted


def test_of_combines_a_callback_and_a_control() -> None:
    assert RunControl.of(None, None).callback is None
    control = RunControl()
    assert RunControl.of(control) is control  # a control passed as the progress callback
    a, b = [], []
    control = RunControl(a.append)
    same = RunControl.of(lambda r: b.append(r) or (r == "halt"), control)
    assert same is control
    same.report("x")
    assert a == ["x"] and b == ["x"] and not control.stop_requested
    same.report("halt")
    assert control.stop_requested


@pytest.mark.slow
def test_a_control_stops_a_library_fit_and_keeps_the_best_model() -> None:
    import napari_sbtt as ns

    sim = ns.simulate("tiny", seed=1)
    control = RunControl()
    epochs = []

    def stop_after_two(report):
        if hasattr(report, "epoch"):
            epochs.append(report.epoch)
            if len(epochs) == 2:
                control.stop()

    control.add_callback(stop_after_two)
    result = ns.run_on_stack(sim.movie, sim.labels, sim.pattern, control=control,
                             config={"epochs": 50, "max_seconds": None, "device": "cpu",
                                     "estimate": "network", "compare_oasis": False})
    assert result.stopped and len(result.history) == 2 and result.model is not None
