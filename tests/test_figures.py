"""Figures a reader can use: readable step units, CIs over seeds, rliable performance profiles
with one curve per experiment on a shared axis per score scale."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from rlpipe.results import figures

SHORT_STEPS = re.compile(r"^−?\d+(\.\d+)?[kMG]?$")  # 0, 512, 25.6k, 100k, 1.5M


def _evals() -> pd.DataFrame:
    """Synthetic eval table shaped like the demo's: CartPole PPO / Q-learning / BC, Pong."""
    rng = np.random.default_rng(0)
    rows = []

    def add(exp, algo, env, seeds, steps, level):
        for seed in seeds:
            for step in steps:
                value = level(step) + rng.normal(0, 5)
                rows.append(
                    dict(exp=exp, env=env, seed=seed, step=step, algo=algo, mean_return=value)
                )

    add(
        "ppo-cartpole",
        "ppo",
        "CartPole-v1",
        [1, 2, 3],
        range(25600, 102401, 25600),
        lambda s: s / 250,
    )
    add(
        "qlearn-cartpole",
        "qlearn",
        "CartPole-v1",
        [1, 2, 3],
        range(100_000, 1_600_001, 100_000),
        lambda s: 50 + s / 5000,
    )
    add("bc-cartpole", "bc", "CartPole-v1", [1, 2, 3], [1000, 2000], lambda s: 300 + s / 20)
    add("ppo-pong", "ppo", "Pong-v5", [1], [2048, 4096], lambda s: -21.0)
    add("ppo-breakout", "ppo", "Breakout-v5", [1, 2], [4096], lambda s: 5.0)
    return pd.DataFrame(rows)  # fmt: skip


def _final(evals: pd.DataFrame) -> pd.DataFrame:
    last = evals.loc[evals.groupby(["exp", "env", "seed"])["step"].idxmax()]
    return last.rename(columns={"step": "env_steps", "mean_return": "final_return"})


@pytest.mark.parametrize(
    "steps, label",
    [(0, "0"), (512, "512"), (25600, "25.6k"), (100_000, "100k"), (1_500_000, "1.5M")]
    + [(20_971_520, "21M"), (10**10, "10G")],
)
def test_steps_label(steps, label):
    assert figures.steps_label(steps) == label


def test_curve_table_is_mean_and_ci_over_seeds():
    evals = _evals()
    table = figures.curve_table(evals, n_boot=500, seed=0)
    row = table.query("exp == 'ppo-cartpole' and step == 51200").iloc[0]
    seeds = evals.query("exp == 'ppo-cartpole' and step == 51200")["mean_return"]
    assert row["mean"] == pytest.approx(seeds.mean()) and row["seeds"] == 3
    assert seeds.min() <= row["low"] < row["mean"] < row["high"] <= seeds.max()
    single = table.query("exp == 'ppo-pong'")
    assert (single["low"] == single["mean"]).all() and (single["high"] == single["mean"]).all()


def _tick_labels(ax, axis):
    ax.figure.canvas.draw()
    ticks = ax.get_xticklabels() if axis == "x" else ax.get_yticklabels()
    return [t for t in ticks if t.get_text() and t.get_visible()]


def _assert_readable_x_axis(ax):
    renderer = ax.figure.canvas.get_renderer()
    labels = _tick_labels(ax, "x")
    assert len(labels) >= 2, ax.get_title()
    assert all(SHORT_STEPS.match(t.get_text()) for t in labels), [t.get_text() for t in labels]
    boxes = sorted((t.get_window_extent(renderer) for t in labels), key=lambda b: b.x0)
    gaps = [b.x0 - a.x1 for a, b in zip(boxes, boxes[1:], strict=False)]
    assert min(gaps) > 0, f"{ax.get_title()}: tick labels overlap"
    assert ax.xaxis.get_offset_text().get_text() == "", "no 1e6 offset text"


def test_curves_have_readable_step_ticks_and_a_band_per_experiment():
    fig = figures.draw_curves(_evals(), n_boot=200, seed=0)
    axes = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in axes] == [
        "Breakout-v5",
        "CartPole-v1",
        "CartPole-v1: behaviour cloning",
        "Pong-v5",
    ]
    cartpole = axes[1]
    assert [t.get_text() for t in cartpole.get_legend().get_texts()] == [
        "ppo-cartpole (ppo, 3 seeds)",
        "qlearn-cartpole (qlearn, 3 seeds)",
    ]
    assert len(cartpole.collections) == 2  # one CI band per experiment
    assert axes[2].get_xlabel() == "gradient steps" and cartpole.get_xlabel() == "env steps"
    for ax in axes:
        _assert_readable_x_axis(ax)


def test_profile_groups_share_an_axis_per_score_scale():
    final = _final(_evals())
    acrobot = final.query("exp == 'ppo-cartpole'").assign(exp="ppo-acrobot", env="Acrobot-v1")
    groups = figures.profile_groups(pd.concat([final, acrobot]))
    by_title = {g.title: sorted(g.scores) for g in groups}
    assert by_title == {
        "raw return: Acrobot-v1": ["ppo-acrobot"],
        "raw return: CartPole-v1": ["bc-cartpole", "ppo-cartpole", "qlearn-cartpole"],
        "Atari, human-normalised: Breakout-v5, Pong-v5": ["ppo-breakout", "ppo-pong"],
    }
    atari = next(g for g in groups if g.scale == "human-normalised")
    assert atari.scores["ppo-pong"][0] == pytest.approx([(-21.0 + 20.7) / (14.6 + 20.7)], abs=0.2)


def test_tau_grid_is_never_degenerate():
    taus = figures.tau_grid([np.full(3, 500.0)])
    assert taus[0] < 500 < taus[-1] and taus[-1] - taus[0] >= 2
    taus = figures.tau_grid([np.array([0.0, 10.0]), np.array([5.0])])
    assert taus[0] == pytest.approx(-0.5) and taus[-1] == pytest.approx(10.5)


def test_performance_profile_figure_has_one_curve_per_experiment():
    final = _final(_evals())
    fig = figures.draw_performance_profiles(final, n_boot=200, seed=0)
    axes = [ax for ax in fig.axes if ax.get_visible()]
    assert len(axes) == 2
    for ax in axes:
        names = [t.get_text().split(" (")[0] for t in ax.get_legend().get_texts()]
        assert len(ax.get_lines()) == len(names) == len(ax.collections)  # curve + band each
        assert ax.get_ylim() == pytest.approx((-0.02, 1.02))
        assert "threshold τ" in ax.get_xlabel()
        labels = [t.get_text() for t in _tick_labels(ax, "x")]
        assert labels and all(len(label) <= 6 for label in labels), labels  # no 1e-7+5e2
        assert ax.xaxis.get_offset_text().get_text() == ""
    raw = next(ax for ax in axes if "raw return" in ax.get_title())
    for line in raw.get_lines():  # a step function from 1 down to 0 across the grid
        fractions = line.get_ydata()
        assert fractions[0] == 1.0 and fractions[-1] == 0.0 and np.all(np.diff(fractions) <= 0)
