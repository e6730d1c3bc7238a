"""rliable-style aggregates, stratified bootstrap CIs, performance profiles, Atari baselines."""

import re

import numpy as np
import pytest
import yaml

from rlpipe.results import stats

# (runs x tasks): task means [2, 20, 1]
SCORES = np.array([[1.0, 10.0, 0.0], [2.0, 20.0, 0.0], [3.0, 30.0, 3.0]])


def test_iqm_of_1d_arrays_by_hand():
    assert stats.iqm([1, 2, 3, 4, 5, 6, 7, 8]) == 4.5  # drops 2 from each end
    assert stats.iqm(range(1, 11)) == 5.5  # int(2.5) = 2 cut: mean of 3..8
    assert stats.iqm([0, 0, 1, 1, 1, 1, 100, 100]) == 1.0  # outliers gone
    assert stats.iqm([7.0]) == 7.0
    with pytest.raises(ValueError, match="empty"):
        stats.iqm([])


def test_aggregates_by_hand():
    # IQM over all 9 runs x tasks: sorted [0,0,1,2,3,3,10,20,30], cut 2 -> mean(1,2,3,3,10)
    assert stats.aggregate(SCORES, "iqm") == pytest.approx(19 / 5)
    assert stats.aggregate(SCORES, "mean") == pytest.approx(23 / 3)  # mean of task means
    assert stats.aggregate(SCORES, "median") == pytest.approx(2.0)  # median of task means
    # min(x, 1) = [1,1,1,1,1,1,0,0,1] -> mean 7/9
    assert stats.aggregate(SCORES, "optimality_gap") == pytest.approx(2 / 9)
    with pytest.raises(ValueError, match="unknown metric"):
        stats.aggregate(SCORES, "max")


def test_ragged_tasks_match_matrix_and_by_hand():
    as_list = [SCORES[:, j] for j in range(3)]
    for metric in stats.AGGREGATES:
        assert stats.aggregate(as_list, metric) == stats.aggregate(SCORES, metric)
    ragged = [[1.0, 3.0], [10.0, 20.0, 30.0]]  # task means 2 and 20
    assert stats.aggregate(ragged, "mean") == pytest.approx(11.0)
    assert stats.aggregate(ragged, "iqm") == pytest.approx(np.mean([3.0, 10.0, 20.0]))


def test_bad_scores_are_rejected():
    with pytest.raises(ValueError, match="NaN"):
        stats.aggregate(np.array([[1.0, np.nan]]), "mean")
    with pytest.raises(ValueError, match="runs x tasks"):
        stats.aggregate(np.ones(3), "mean")
    with pytest.raises(ValueError, match="at least one"):
        stats.aggregate([[1.0], []], "mean")


def test_interval_estimates_deterministic_per_seed():
    rng = np.random.default_rng(1)
    scores = rng.normal(size=(5, 4))
    a = stats.interval_estimates(scores, n_boot=500, seed=3)
    b = stats.interval_estimates(scores, n_boot=500, seed=3)
    c = stats.interval_estimates(scores, n_boot=500, seed=4)
    assert a == b
    assert a["iqm"] != c["iqm"]
    for est in a.values():
        assert est.low <= est.point <= est.high


def test_bootstrap_is_stratified_within_tasks():
    # One run per task: resampling runs within a task can only pick that run -> zero width.
    one_run = np.array([[1.0, 5.0, 9.0, 2.0]])
    for m, est in stats.interval_estimates(one_run, stats.AGGREGATES, n_boot=300).items():
        assert est.low == est.high == est.point, m
    # Task A scores in {0, 1}, task B in {100, 101}: every replicate's mean of task means is
    # in [50, 51]. Pooling the runs of both tasks would leave that range.
    two_tasks = [[0.0, 1.0, 0.0, 1.0], [100.0, 101.0, 101.0, 100.0]]
    est = stats.interval_estimates(two_tasks, ["mean"], n_boot=2000, seed=0)["mean"]
    assert 50.0 <= est.low < est.point < est.high <= 51.0


def test_mean_ci_width_matches_normal_theory():
    rng = np.random.default_rng(0)
    x = rng.normal(scale=2.0, size=(400, 1))
    est = stats.interval_estimates(x, ["mean"], n_boot=4000, seed=1)["mean"]
    expected = 2 * 1.96 * x.std() / np.sqrt(len(x))
    assert est.high - est.low == pytest.approx(expected, rel=0.1)
    lo, hi = stats.bootstrap_ci(x[:, 0], n_boot=4000, seed=1)
    assert hi - lo == pytest.approx(expected, rel=0.1)


def test_bootstrap_ci_of_mean():
    assert stats.bootstrap_ci([3.0, 3.0, 3.0], n_boot=200, seed=0) == (3.0, 3.0)
    x = [1.0, 2.0, 4.0, 8.0, 16.0]
    lo, hi = stats.bootstrap_ci(x, n_boot=1000, seed=5)
    assert (lo, hi) == stats.bootstrap_ci(x, n_boot=1000, seed=5)
    assert min(x) <= lo < np.mean(x) < hi <= max(x)


def test_performance_profile_by_hand():
    taus = [-1.0, 0.0, 1.5, 25.0, 100.0]
    prof = stats.performance_profile(SCORES, taus, n_boot=500, seed=0)
    # 9 runs x tasks; counts of scores > tau: 9, 7, 6, 1, 0
    np.testing.assert_allclose(prof.fraction, np.array([9, 7, 6, 1, 0]) / 9)
    assert np.all(prof.low <= prof.fraction) and np.all(prof.fraction <= prof.high)
    assert prof.low[0] == prof.high[0] == 1.0 and prof.low[-1] == prof.high[-1] == 0.0
    assert np.all(np.diff(prof.fraction) <= 0)
    again = stats.performance_profile(SCORES, taus, n_boot=500, seed=0)
    np.testing.assert_array_equal(prof.low, again.low)


def test_matches_rliable_when_installed():
    """rliable (if importable) gives the same point estimates and CIs within MC error."""
    rly = pytest.importorskip("rliable.library", reason="rliable not installed")
    metrics = pytest.importorskip("rliable.metrics")
    rng = np.random.default_rng(7)
    scores = rng.gamma(2.0, size=(10, 6)) * rng.uniform(0.5, 3.0, size=6)
    funcs = {
        "iqm": metrics.aggregate_iqm,
        "median": metrics.aggregate_median,
        "mean": metrics.aggregate_mean,
        "optimality_gap": metrics.aggregate_optimality_gap,
    }
    ours = stats.interval_estimates(scores, list(funcs), n_boot=20000, seed=0)
    np.random.seed(0)  # rliable draws from numpy's global RandomState
    points, cis = rly.get_interval_estimates(
        {"x": scores}, lambda s: np.array([f(s) for f in funcs.values()]), reps=20000
    )
    for i, m in enumerate(funcs):
        assert ours[m].point == pytest.approx(points["x"][i], rel=1e-12)
        width = cis["x"][1, i] - cis["x"][0, i]
        assert ours[m].low == pytest.approx(cis["x"][0, i], abs=0.05 * width)
        assert ours[m].high == pytest.approx(cis["x"][1, i], abs=0.05 * width)
    taus = np.linspace(0, 8, 9)
    prof, prof_ci = rly.create_performance_profile({"x": scores}, taus, reps=5000)
    mine = stats.performance_profile(scores, taus, n_boot=5000, seed=0)
    np.testing.assert_allclose(mine.fraction, prof["x"], atol=1e-12)
    np.testing.assert_allclose(mine.low, prof_ci["x"][0], atol=0.03)
    np.testing.assert_allclose(mine.high, prof_ci["x"][1], atol=0.03)


def test_human_normalized_scores():
    assert stats.human_normalized("Pong-v5", 14.6) == pytest.approx(1.0)
    assert stats.human_normalized("Pong-v5", -20.7) == pytest.approx(0.0)
    assert stats.human_normalized("Breakout-v5", 1.7 + 28.8 / 2) == pytest.approx(0.5)
    np.testing.assert_allclose(stats.human_normalized("Boxing-v5", [0.1, 12.1]), [0.0, 1.0])
    with pytest.raises(KeyError, match="CartPole-v1"):
        stats.human_normalized("CartPole-v1", 500.0)


def test_baselines_file_covers_atari10_with_envpool_ids():
    table = stats.load_baselines()
    atari10 = "MsPacman Asteroids Seaquest BeamRider SpaceInvaders Enduro Breakout Boxing"
    for game in atari10.split() + ["Freeway", "Pong"]:
        assert f"{game}-v5" in table
    assert len(table) == 57
    assert all(re.fullmatch(r"[A-Za-z0-9]+-v5", env) for env in table)


def test_bad_baselines_file_names_the_key(tmp_path):
    bad = tmp_path / "b.yaml"
    bad.write_text(yaml.safe_dump({"games": {"Pong-v5": {"random": 1.0}}}))
    with pytest.raises(ValueError, match=r"b.yaml: games.Pong-v5: needs numeric"):
        stats.load_baselines(bad)
    bad.write_text(yaml.safe_dump({"games": {"Pong-v5": {"random": 5, "human": 1}}}))
    with pytest.raises(ValueError, match="must exceed"):
        stats.load_baselines(bad)
