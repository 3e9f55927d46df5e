"""heldout: the sample and gap tests of the network, the deconvolution and OASIS."""

from __future__ import annotations

import numpy as np
import pytest

from napari_sbtt.core.baselines import oasis_available
from napari_sbtt.heldout import (
    COMBINED_NETWORK_WEIGHT,
    EVENTS_COMBINED_NETWORK_WEIGHT,
    MIN_POPULATION_ROIS,
    VERDICTS,
    HeldoutTest,
    auto_estimate,
    combine_estimates,
    compare_heldout,
    deconvolve_with_model,
    heldout_blocks,
    select_estimate,
    verdict_against_oasis,
    verdict_test,
)

DT = 0.01


def _kernel(length: int = 120, tau_d: float = 15.0, tau_r: float = 1.5) -> np.ndarray:
    t = np.arange(length, dtype=float)
    k = np.exp(-t / tau_d) - np.exp(-(t + 1.0) / tau_r)
    return k / k.max()


class _KnownModel:
    """Stands in for a fitted calcium model: only its observation model is used."""

    def __init__(self, n: int, sd: float) -> None:
        self.n, self.sd = n, sd

    def observation_model(self) -> dict[str, np.ndarray]:
        return {"kernel": np.tile(_kernel(), (self.n, 1)), "baseline": np.zeros(self.n),
                "noise_sd": np.full(self.n, self.sd)}


def _recording(T: int = 4000, n: int = 4, sd: float = 0.05, seed: int = 0, shared: bool = False):
    """dF/F of n ROIs; with ``shared`` every ROI fires together (a population that informs)."""
    rng = np.random.default_rng(seed)
    spikes = (rng.random((T, n)) < 0.02) * rng.uniform(0.5, 1.5, (T, n))
    if shared:
        spikes = np.repeat(spikes[:, :1], n, axis=1)
    clean = np.stack([np.convolve(spikes[:, i], _kernel())[:T] for i in range(n)], axis=1)
    return clean + sd * rng.standard_normal((T, n)), clean


def test_the_events_are_the_solvers_jumps_spread_over_each_gap() -> None:
    from napari_sbtt.core.deconvolution import spread_over_gaps

    y, _ = _recording()
    y[np.arange(y.shape[0]) % 6 != 0] = np.nan  # every 6th bin sampled
    model = _KnownModel(y.shape[1], 0.05)
    raw, fitted_raw = deconvolve_with_model(model, y, spread=False)
    events, fitted = deconvolve_with_model(model, y)
    np.testing.assert_array_equal(fitted, fitted_raw)  # the fluorescence is the solver's
    np.testing.assert_array_equal(events, spread_over_gaps(raw, np.isfinite(y), _kernel()))
    assert not np.array_equal(events, raw)
    np.testing.assert_allclose(events.sum(axis=0), raw.sum(axis=0))


def test_heldout_blocks_hold_out_a_seeded_share_in_runs() -> None:
    obs = np.ones((2000, 3), bool)
    obs[:, 2] = False
    obs[:6, 2] = True  # too few samples: nothing held out
    times = np.arange(2000) * DT
    single = heldout_blocks(obs, times, 0.1, seed=3)
    np.testing.assert_array_equal(single, heldout_blocks(obs, times, 0.1, seed=3))
    assert not ((single > 0) & ~obs).any() and not (single[:, 2] > 0).any()
    assert 0.07 < (single[:, :2] > 0).mean() < 0.13
    assert np.unique(single[single > 0]).size == (single > 0).sum()  # one sample per block
    gaps = heldout_blocks(obs, times, 0.1, seed=3, gap_s=0.2)
    ids, counts = np.unique(gaps[gaps > 0], return_counts=True)
    assert (counts == 20).all() and 0.07 < (gaps[:, :2] > 0).mean() < 0.13
    for k in ids[:5]:  # a block is consecutive samples of one ROI
        t, n = np.nonzero(gaps == k)
        assert np.unique(n).size == 1 and np.all(np.diff(t) == 1)


def test_a_network_that_knows_the_population_fills_gaps_and_is_kept() -> None:
    values, clean = _recording(shared=True)
    res = compare_heldout(_KnownModel(4, 0.05), values, np.arange(values.shape[0]) * DT,
                          network_signal=lambda kept: clean, estimate="auto", oasis=False,
                          gap_s=0.3)
    assert res.estimate == "combined" and res.verdict == "not compared"
    assert res.gaps.r2["network"] > res.gaps.r2["combined"] > res.gaps.r2["deconvolution"]
    assert res.gaps.lead("network", "deconvolution") > 2.0
    assert res.samples.n_samples > 1000 and res.sbtt_beats_oasis is None


def test_a_network_that_knows_nothing_gives_way_to_the_deconvolution() -> None:
    values, _ = _recording(seed=1)
    blind = compare_heldout(_KnownModel(4, 0.05), values, np.arange(values.shape[0]) * DT,
                            network_signal=lambda kept: np.zeros_like(kept), estimate="auto",
                            oasis=False)
    assert blind.estimate == "deconvolution"
    assert blind.samples.r2["deconvolution"] > blind.samples.r2["network"]
    fixed = compare_heldout(_KnownModel(4, 0.05), values, np.arange(values.shape[0]) * DT,
                            network_signal=lambda kept: np.zeros_like(kept), oasis=False)
    assert fixed.estimate == "network"  # no switching unless asked


def test_auto_compares_the_two_sbtt_estimates_only() -> None:
    # the gap test of benchmark family cell 1 (25 ROIs seen every 160 ms, nothing named): the
    # network fills the gaps 5.6 standard errors better than the deconvolution but only 1.6
    # better than OASIS; the truth: network r 0.797, deconvolution 0.223
    gaps = HeldoutTest("gaps", 4668, {"network": 0.191, "deconvolution": 0.065, "oasis": 0.146},
                       {"network - deconvolution": 0.0224, "network - oasis": 0.0278,
                        "deconvolution - oasis": 0.0166})
    assert auto_estimate(gaps, 25) == "combined"  # the network's lead: 3/4 network, 1/4 events
    assert auto_estimate(gaps, 5) == "combined"  # a clear lead wins whatever the population
    gaps.r2["network"] = 0.100  # 1.6 standard errors ahead: the test cannot tell them apart,
    assert auto_estimate(gaps, 25) == "combined"  # so a population keeps the network's share
    # and a handful the events, with a quarter of the network's rates
    assert auto_estimate(gaps, MIN_POPULATION_ROIS - 1) == "events_combined"
    assert auto_estimate(gaps, 2) == "events_combined"
    assert auto_estimate(gaps, 1) == "deconvolution"  # one trace on its own: no population at all
    gaps.r2["network"] = 0.030  # 1.6 standard errors behind: still undecided
    assert auto_estimate(gaps, MIN_POPULATION_ROIS) == "combined"
    gaps.r2["network"] = 0.010  # 2.5 behind: the events, whatever the population
    assert auto_estimate(gaps, 200) == "deconvolution"
    # a gap test that scored nothing decides nothing: the events, whatever the population
    assert auto_estimate(HeldoutTest("gaps", 0, {}, {}), 200) == "deconvolution"
    assert auto_estimate(HeldoutTest("gaps", 10, {"network": 0.2, "deconvolution": 0.1},
                                     {"network - deconvolution": float("inf")}), 200) == "deconvolution"


def test_the_combined_estimate_mixes_the_network_and_the_events() -> None:
    net = np.array([[1.0, np.nan], [2.0, 4.0]])
    ev = np.array([[0.0, 1.0], [6.0, 0.0]])
    w = COMBINED_NETWORK_WEIGHT
    out = combine_estimates(net, ev)
    np.testing.assert_allclose(out, [[w, np.nan], [2 * w + 6 * (1 - w), 4 * w]])
    mirror = select_estimate("events_combined", net, ev)  # the events-led mixture
    v = EVENTS_COMBINED_NETWORK_WEIGHT
    assert v < 0.5 < w
    np.testing.assert_allclose(mirror, [[v, np.nan], [2 * v + 6 * (1 - v), 4 * v]])
    with pytest.raises(ValueError, match="needs arrays"):
        select_estimate("events_combined", None, ev)
    np.testing.assert_array_equal(combine_estimates(net, ev, 1.0), net)
    with pytest.raises(ValueError, match="weight"):
        combine_estimates(net, ev, 1.5)
    with pytest.raises(ValueError, match="one shape"):
        combine_estimates(net, ev[:1])
    assert verdict_test("combined") == verdict_test("network") == verdict_test("events_combined") == "gaps"
    assert verdict_test("deconvolution") == "samples"
    assert select_estimate("network", net, None) is net and select_estimate("deconvolution", None, ev) is ev
    np.testing.assert_array_equal(select_estimate("combined", net, ev), out)
    with pytest.raises(ValueError, match="'combined' estimate needs"):
        select_estimate("combined", net, None)
    with pytest.raises(ValueError, match="'best' estimate"):
        select_estimate("best", net, ev)


def test_a_combined_result_is_judged_on_the_gaps_against_the_combined_prediction() -> None:
    values, clean = _recording(seed=4, shared=True)
    res = compare_heldout(_KnownModel(4, 0.05), values, np.arange(values.shape[0]) * DT,
                          network_signal=lambda kept: clean, estimate="combined", oasis=False)
    assert res.estimate == "combined"
    for test in (res.samples, res.gaps):  # scored beside the two it mixes
        assert {"network", "deconvolution", "combined"} <= set(test.r2)
        assert np.isfinite(test.se_between("combined", "network"))
    assert "(combined)" in res.summary() and f"{res.gaps.r2['combined']:.3f}" in res.summary()


@pytest.mark.skipif(not oasis_available(), reason="oasis-deconv is not installed")
def test_oasis_is_scored_on_the_same_held_out_samples() -> None:
    values, clean = _recording(seed=2, shared=True)
    res = compare_heldout(_KnownModel(4, 0.05), values, np.arange(values.shape[0]) * DT,
                          network_signal=lambda kept: clean)
    for test in (res.samples, res.gaps):
        assert set(test.r2) == {"network", "deconvolution", "combined", "events_combined", "oasis"}
    assert res.verdict == "SBTT better" and res.sbtt_beats_oasis is True
    assert "OASIS" in res.summary() and res.to_dict()["sbtt_beats_oasis"] is True
    both = compare_heldout(_KnownModel(4, 0.05), values, np.arange(values.shape[0]) * DT,
                           network_signal=lambda kept: clean, estimate="combined")
    assert both.gaps.lead("combined", "oasis") > 2.0 and both.verdict == "SBTT better"  # judged on the gaps
    worse = compare_heldout(_KnownModel(4, 0.05), values, np.arange(values.shape[0]) * DT,
                            network_signal=lambda kept: np.zeros_like(kept))
    assert worse.verdict == "OASIS better" and "OASIS's estimate" in worse.summary()
    assert worse.verdict in VERDICTS


def test_share_and_estimate_are_checked() -> None:
    values, clean = _recording(T=200)
    with pytest.raises(ValueError, match="share"):
        compare_heldout(_KnownModel(4, 0.05), values, np.arange(200) * DT,
                        network_signal=lambda kept: clean, share=1.5)
    with pytest.raises(ValueError, match="estimate"):
        compare_heldout(_KnownModel(4, 0.05), values, np.arange(200) * DT,
                        network_signal=lambda kept: clean, estimate="best")


def test_a_long_recording_is_tested_on_its_middle_excerpt() -> None:
    from napari_sbtt.heldout import MAX_EXCERPT_S, compare_heldout

    class Flat:  # a calcium model stand-in: a one-bin kernel, zero baseline
        def observation_model(self):
            n = 3
            return {"kernel": np.ones((n, 1)), "baseline": np.zeros(n), "noise_sd": np.full(n, 0.1),
                    "tau_decay_bins": np.ones(n), "tau_rise_bins": np.zeros(n)}

    rng = np.random.default_rng(0)
    bin_s = 0.5
    times = np.arange(int(2 * MAX_EXCERPT_S / bin_s)) * bin_s
    values = rng.normal(1.0, 0.1, (times.size, 3))
    seen: list[int] = []

    def network(kept: np.ndarray) -> np.ndarray:
        seen.append(kept.shape[0])
        return np.ones_like(kept)

    cmp = compare_heldout(Flat(), values, times, network_signal=network, oasis=False)
    assert cmp.excerpt_s is not None
    start, end = cmp.excerpt_s
    assert end - start == pytest.approx(MAX_EXCERPT_S, abs=2 * bin_s)
    assert start == pytest.approx((times[-1] - MAX_EXCERPT_S) / 2, abs=2 * bin_s)  # the middle
    assert set(seen) == {int(MAX_EXCERPT_S / bin_s)}
    whole = compare_heldout(Flat(), values, times, network_signal=network, oasis=False, max_seconds=None)
    assert whole.excerpt_s is None and seen[-1] == times.size


def _test(kind: str, r2: dict[str, float], se: float = 0.01) -> HeldoutTest:
    """A held-out test whose differences all have standard error ``se``."""
    names = list(r2)
    return HeldoutTest(kind, 100, r2, {f"{a} - {b}": se for i, a in enumerate(names) for b in names[i + 1:]})


def _verdict(estimate: str, own: str, own_r2: float, other_r2: float) -> str:
    """The verdict when ``estimate`` scores ``own_r2`` on its own test ``own`` and ``other_r2`` on
    the other, OASIS 0.45 on both, every difference 0.01 standard error."""
    other = "gaps" if own == "samples" else "samples"
    tests = {own: _test(own, {estimate: own_r2, "oasis": 0.45}),
             other: _test(other, {estimate: other_r2, "oasis": 0.45})}
    return verdict_against_oasis(tests["samples"], tests["gaps"], estimate)


@pytest.mark.parametrize(("estimate", "own"), [("deconvolution", "samples"), ("combined", "gaps"),
                                               ("network", "gaps")])
def test_oasis_is_better_only_when_it_wins_both_tests(estimate: str, own: str) -> None:
    win, lose, level = 0.50, 0.40, 0.455  # against OASIS at 0.45: +5, -5 and +0.5 standard errors
    assert _verdict(estimate, own, win, lose) == "SBTT better"  # its own test decides a win
    assert _verdict(estimate, own, lose, lose) == "OASIS better"  # OASIS must win both
    assert _verdict(estimate, own, lose, win) == "no clear difference"
    assert _verdict(estimate, own, lose, level) == "no clear difference"
    assert _verdict(estimate, own, level, lose) == "no clear difference"  # the other test alone decides nothing


def test_no_oasis_no_verdict() -> None:
    no_oasis = _test("samples", {"deconvolution": 0.5})
    assert verdict_against_oasis(no_oasis, _test("gaps", {"deconvolution": 0.4}), "deconvolution") == "not compared"
