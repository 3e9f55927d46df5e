"""What a fit will cost: seconds against the cap and an honest upper bound on the time left."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from napari_sbtt.core.progress import fit_limits_text, fit_progress, format_duration


@dataclass
class Report:  # the fields of model.config.EpochReport that fit_progress reads
    epoch: int
    total_epochs: int
    seconds: float
    max_seconds: float | None = 600.0


def test_the_cap_bounds_the_time_left_when_it_comes_before_max_epochs() -> None:
    fp = fit_progress(Report(epoch=9, total_epochs=400, seconds=20.0))  # 10 epochs, 2 s each
    assert fp.ends_by == "cap" and fp.seconds_per_epoch == pytest.approx(2.0)
    # the cap is checked after each epoch: 290 more epochs of 2 s reach 600 s
    assert fp.remaining_at_most_s == pytest.approx(580.0)
    assert fp.fraction == pytest.approx(20 / 600)
    assert fp.text() == "epoch 10/400, 20 s of the 600 s cap, at most 9:40 left (cap)"
    # tqdm's count to max_epochs would have said 390 epochs x 2 s = 13:00
    uneven = fit_progress(Report(epoch=2, total_epochs=400, seconds=10.0, max_seconds=20.0))
    assert uneven.remaining_at_most_s == pytest.approx(10.0)  # 3 more epochs of 3.33 s, not 10 s flat
    uneven = fit_progress(Report(epoch=2, total_epochs=400, seconds=10.0, max_seconds=21.0))
    assert uneven.remaining_at_most_s == pytest.approx(4 * 10 / 3)  # the epoch that crosses the cap counts


def test_max_epochs_bounds_it_when_they_come_first_and_a_reached_limit_leaves_nothing() -> None:
    fp = fit_progress(Report(epoch=9, total_epochs=50, seconds=20.0))
    assert fp.ends_by == "epochs" and fp.remaining_at_most_s == pytest.approx(80.0)
    assert fp.remaining_text() == "at most 1:20 left (50 epochs)"
    over = fit_progress(Report(epoch=99, total_epochs=400, seconds=601.0))
    assert over.remaining_at_most_s == 0 and over.fraction == 1.0
    free = fit_progress(Report(epoch=0, total_epochs=4, seconds=3.0, max_seconds=None))
    assert free.cap_s is None and free.remaining_at_most_s == pytest.approx(9.0)
    assert "no time cap" in free.text()
    # a report without its cap takes the caller's
    assert fit_progress(Report(epoch=0, total_epochs=4, seconds=3.0, max_seconds=None), cap_s=5.0).ends_by == "cap"


def test_limits_and_durations_read_as_sentences() -> None:
    text = fit_limits_text(400, 600.0, 60)
    assert "not improved for 60 epochs" in text and "600 s (time cap) or 400 epochs" in text
    assert "no time cap" in fit_limits_text(400, None, 60)
    assert [format_duration(s) for s in (0, 42.2, 125, 3725)] == ["0 s", "43 s", "2:05", "1:02:05"]
