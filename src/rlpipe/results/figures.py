"""Figures of the summary: learning curves, performance profiles, job benchmarks (no torch).

Each figure is built from a table (``curve_table``, ``profile_groups``) that tests can check,
then drawn; every experiment keeps one colour across figures.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from rlpipe.results.stats import bootstrap_ci, performance_profile
from rlpipe.results.tables import task_scores
from rlpipe.runtree import atomic

LEVEL = 0.95  # confidence level of every band


def steps_label(x: float, _pos=None) -> str:
    """Step counts as people read them: 0, 512, 25.6k, 100k, 1M, 1.5M."""
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= scale:
            return f"{x / scale:.3g}{suffix}"
    return f"{x:.3g}"


def colours(exps) -> dict[str, tuple]:
    """One colour per experiment (sorted names), the same in every figure."""
    import matplotlib

    cycle = matplotlib.colormaps["tab10"].colors
    return {exp: cycle[i % len(cycle)] for i, exp in enumerate(sorted(exps))}


# --- learning curves --------------------------------------------------------------------------


def curve_table(evals: pd.DataFrame, n_boot: int, seed: int) -> pd.DataFrame:
    """Per experiment, env and step: mean eval return over seeds with a bootstrap CI."""
    rows = []
    for (exp, env, step), group in evals.groupby(["exp", "env", "step"], sort=True):
        returns = group["mean_return"].to_numpy(dtype=float)
        low, high = bootstrap_ci(returns, n_boot, seed, LEVEL)
        rows.append(
            {
                "exp": exp,
                "env": env,
                "algo": group["algo"].iloc[0],
                "step": step,
                "mean": float(returns.mean()),
                "low": low,
                "high": high,
                "seeds": len(returns),
            }
        )
    return pd.DataFrame(rows)


def draw_curves(evals: pd.DataFrame, n_boot: int, seed: int):
    """One panel per env (BC, whose steps are gradient steps, gets its own panels)."""
    plt = _pyplot()
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    table = curve_table(evals, n_boot, seed)
    table["unit"] = np.where(table["algo"] == "bc", "gradient steps", "env steps")
    panels = list(table.groupby(["env", "unit"], sort=True))
    fig, axes = _grid(plt, len(panels), width=5.0, height=3.6)
    palette = colours(table["exp"].unique())
    for ax, ((env, unit), panel) in zip(axes, panels, strict=False):
        for exp, curve in panel.groupby("exp", sort=True):
            label = f"{exp} ({curve['algo'].iloc[0]}, {_n(curve['seeds'].max(), 'seed')})"
            ax.plot(curve["step"], curve["mean"], marker="o", ms=3, color=palette[exp], label=label)
            ax.fill_between(
                curve["step"], curve["low"], curve["high"], color=palette[exp], alpha=0.2
            )
        ax.set_title(env if unit == "env steps" else f"{env}: behaviour cloning")
        ax.set_xlim(left=0)
        ax.set_xlabel(unit)
        ax.set_ylabel("greedy eval return")
        ax.xaxis.set_major_locator(MaxNLocator(nbins=5, steps=[1, 2, 2.5, 5, 10]))
        ax.xaxis.set_major_formatter(FuncFormatter(steps_label))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="best")
    fig.suptitle(f"Learning curves: mean over seeds, {LEVEL:.0%} bootstrap CI", fontsize=10)
    return fig


def plot_curves(evals: pd.DataFrame, png_path, n_boot: int, seed: int) -> None:
    _save(draw_curves(evals, n_boot, seed), png_path)


# --- performance profiles ---------------------------------------------------------------------


@dataclass(frozen=True)
class ProfileGroup:
    """Experiments whose scores share a scale, drawn on one axis."""

    title: str
    scale: str  # "human-normalised" or "raw return"
    scores: dict[str, list[np.ndarray]]  # experiment -> final scores per task
    algos: dict[str, str]


def profile_groups(per_run: pd.DataFrame) -> list[ProfileGroup]:
    """Atari experiments together (human-normalised); others by their set of envs (raw)."""
    groups: dict[tuple, dict] = {}
    for exp in sorted(per_run["exp"].unique()):
        scores, scale = task_scores(per_run, exp)
        envs = tuple(sorted(per_run.loc[per_run["exp"] == exp, "env"].unique()))
        key = (scale,) if scale == "human-normalised" else (scale, envs)
        group = groups.setdefault(key, {"scores": {}, "algos": {}, "envs": set()})
        group["scores"][exp] = scores
        group["algos"][exp] = per_run.loc[per_run["exp"] == exp, "algo"].iloc[0]
        group["envs"].update(envs)
    out = []
    for key, group in groups.items():
        envs = sorted(group["envs"])
        shown = ", ".join(envs[:4]) + (f" +{len(envs) - 4}" if len(envs) > 4 else "")
        title = f"{'Atari, human-normalised' if len(key) == 1 else 'raw return'}: {shown}"
        out.append(ProfileGroup(title, key[0], group["scores"], group["algos"]))
    return out


def tau_grid(scores: list[np.ndarray], points: int = 201) -> np.ndarray:
    """Thresholds spanning the scores with a margin; never a degenerate (zero-width) range."""
    flat = np.concatenate(scores)
    low, high = float(flat.min()), float(flat.max())
    margin = 0.05 * (high - low) if high > low else max(1.0, 0.1 * abs(high))
    return np.linspace(low - margin, high + margin, points)


def draw_performance_profiles(per_run: pd.DataFrame, n_boot: int, seed: int):
    """rliable's performance profile: fraction of runs with final score above tau, one curve
    per experiment, one panel per score scale, stratified-bootstrap bands."""
    plt = _pyplot()
    groups = profile_groups(per_run)
    fig, axes = _grid(plt, len(groups), width=5.4, height=3.8)
    palette = colours(per_run["exp"].unique())
    for ax, group in zip(axes, groups, strict=False):
        taus = tau_grid([s for scores in group.scores.values() for s in scores])
        for i, (exp, scores) in enumerate(group.scores.items()):
            prof = performance_profile(scores, taus, n_boot=n_boot, seed=seed, level=LEVEL)
            runs = _n(sum(len(s) for s in scores), "run")
            label = f"{exp} ({group.algos[exp]}, {runs}, {_n(len(scores), 'task')})"
            ax.step(
                taus,
                prof.fraction,
                where="post",
                color=palette[exp],
                label=label,
                **_tie(i, len(group.scores)),
            )
            ax.fill_between(taus, prof.low, prof.high, step="post", color=palette[exp], alpha=0.2)
        ax.set_title(group.title, fontsize=10)
        ax.set_xlabel(f"{group.scale} threshold τ")
        ax.set_ylabel("fraction of runs with score > τ")
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower left")
    fig.suptitle(f"Performance profiles ({LEVEL:.0%} stratified-bootstrap bands)", fontsize=10)
    return fig


def _tie(i: int, n: int) -> dict:
    """Style of the i-th of n curves on an axis: earlier curves are wider and later ones
    dashed, so curves of experiments with the same scores (CartPole's 500) all stay visible."""
    style = "-" if i == 0 else ("--", "-.")[i % 2]
    return {"linewidth": 1.6 + 0.8 * (n - 1 - i), "linestyle": style}


def plot_performance_profiles(per_run: pd.DataFrame, png_path, n_boot: int, seed: int) -> None:
    _save(draw_performance_profiles(per_run, n_boot, seed), png_path)


# --- job benchmarks ---------------------------------------------------------------------------


def plot_job_benchmarks(bench: pd.DataFrame, png_path) -> None:
    """Per experiment: wall seconds and peak memory of its training jobs."""
    plt = _pyplot()
    per_exp = bench.groupby("exp").agg(s=("s", "mean"), max_rss=("max_rss", "max"))
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6))
    palette = colours(per_exp.index)
    bar_colours = [palette[exp] for exp in per_exp.index]
    left.bar(per_exp.index, per_exp["s"], color=bar_colours)
    left.set_title("Wall time per training job (mean)", fontsize=10)
    left.set_ylabel("seconds")
    right.bar(per_exp.index, per_exp["max_rss"], color=bar_colours)
    right.set_title("Peak memory of a training job (max)", fontsize=10)
    right.set_ylabel("MB (max RSS)")
    for ax in (left, right):
        plt.setp(ax.get_xticklabels(), rotation=30, ha="right")
        ax.grid(axis="y", alpha=0.3)
    _save(fig, png_path)


def _n(count: int, word: str) -> str:
    return f"{count} {word}{'s' * (int(count) != 1)}"


def _grid(plt, n: int, width: float, height: float):
    """n panels in rows of at most three; unused panels hidden. Returns (fig, flat axes)."""
    cols = min(3, n)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols, height * rows), squeeze=False)
    flat = list(axes.flat)
    for ax in flat[n:]:
        ax.set_visible(False)
    return fig, flat[:n]


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, png_path) -> None:
    plt = _pyplot()
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    atomic.write_bytes(png_path, buf.getvalue())
