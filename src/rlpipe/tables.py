"""Summary tables and learning curves from eval JSONs and telemetry (pandas; no torch)."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd

from rlpipe import atomic
from rlpipe.stats import (
    bootstrap_ci,
    human_normalized,
    interval_estimates,
    iqm,
    load_baselines,
    performance_profile,
)
from rlpipe.telemetry import read_jsonl

RUN_PATH = re.compile(
    r"runs/(?P<exp>[^/]+)/(?P<env>[^/]+)/seed(?P<seed>\d+)/[^/]+/(?:\w+_)?step_(?P<step>\d+)"
)


def _run_key(path: str) -> dict:
    match = RUN_PATH.search(Path(path).as_posix())
    if not match:
        raise ValueError(f"{path}: not a run artifact path (runs/EXP/ENV/seedN/.../step_N)")
    key = match.groupdict()
    return {
        "exp": key["exp"],
        "env": key["env"],
        "seed": int(key["seed"]),
        "step": int(key["step"]),
    }


def load_evals(paths) -> pd.DataFrame:
    rows = []
    for path in paths:
        try:
            record = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError) as err:
            raise ValueError(f"{path}: unreadable evaluation record ({err})") from err
        rows.append(
            {**_run_key(path), "algo": record["algo"], "mean_return": record["mean_return"]}
        )
    return pd.DataFrame(rows).sort_values(["exp", "env", "seed", "step"], ignore_index=True)


def load_telemetry(paths) -> pd.DataFrame:
    """One row per segment: wall time and env steps it trained."""
    rows = []
    for path in paths:
        records = read_jsonl(path)
        key = _run_key(path)
        last = records[-1] if records else {}
        rows.append({**key, "wall_time_s": last.get("elapsed_s", np.nan)})
    return pd.DataFrame(rows).sort_values(["exp", "env", "seed", "step"], ignore_index=True)


def summarize(evals: pd.DataFrame, telemetry: pd.DataFrame, n_boot: int, seed: int):
    """Return (per_run, per_experiment_env) tables."""
    final = evals.loc[evals.groupby(["exp", "env", "seed"])["step"].idxmax()]
    wall = telemetry.groupby(["exp", "env", "seed"])["wall_time_s"].sum().rename("wall_time_s")
    per_run = final.rename(columns={"step": "env_steps", "mean_return": "final_return"})
    per_run = per_run.merge(wall, on=["exp", "env", "seed"], how="left")
    per_run["sps"] = per_run["env_steps"] / per_run["wall_time_s"]
    per_run = per_run[
        ["exp", "env", "seed", "algo", "env_steps", "final_return", "wall_time_s", "sps"]
    ]

    rows = []
    for (exp, env), group in per_run.groupby(["exp", "env"], sort=True):
        scores = group["final_return"].to_numpy()
        lo, hi = bootstrap_ci(scores, n_boot, seed)
        rows.append(
            {
                "exp": exp,
                "env": env,
                "algo": group["algo"].iloc[0],
                "seeds": len(group),
                "final_return_mean": float(scores.mean()),
                "ci95_low": lo,
                "ci95_high": hi,
                "iqm": iqm(scores),
                "env_steps": int(group["env_steps"].max()),
                "wall_time_s": float(group["wall_time_s"].mean()),
                "sps": float(group["sps"].mean()),
            }
        )
    return per_run.reset_index(drop=True), pd.DataFrame(rows)


def write_tables(per_run, per_exp, csv_path, runs_csv_path, md_path) -> None:
    atomic.write_text(csv_path, per_exp.to_csv(index=False, float_format="%.4g"))
    atomic.write_text(runs_csv_path, per_run.to_csv(index=False, float_format="%.4g"))
    md = [
        "# rlpipe summary",
        "",
        "## Per experiment and environment (final greedy evaluation, over seeds)",
        "",
        per_exp.to_markdown(index=False, floatfmt=".4g"),
        "",
        "## Per run",
        "",
        per_run.to_markdown(index=False, floatfmt=".4g"),
        "",
    ]
    atomic.write_text(md_path, "\n".join(md))


def plot_curves(evals: pd.DataFrame, png_path) -> None:
    """Mean eval return over seeds vs env steps, a min-max band, one panel per env."""
    plt = _pyplot()
    envs = sorted(evals["env"].unique())
    fig, axes = plt.subplots(1, len(envs), figsize=(5 * len(envs), 3.6), squeeze=False)
    for ax, env in zip(axes[0], envs, strict=True):
        for exp, group in evals[evals["env"] == env].groupby("exp"):
            curve = group.groupby("step")["mean_return"].agg(["mean", "min", "max"])
            ax.plot(curve.index, curve["mean"], marker="o", label=exp)
            ax.fill_between(curve.index, curve["min"], curve["max"], alpha=0.2)
        ax.set_title(env)
        ax.set_xlabel("steps (env steps; BC: gradient steps)")
        ax.set_ylabel("greedy eval return")
        ax.legend(fontsize=8)
    _save(fig, plt, png_path)


def task_scores(per_run: pd.DataFrame, exp: str) -> tuple[list[np.ndarray], str]:
    """Final returns of one experiment per task (env); human-normalised if all are Atari."""
    group = per_run[per_run["exp"] == exp]
    envs = sorted(group["env"].unique())
    baselines = load_baselines()
    human = all(env in baselines for env in envs)
    scores = []
    for env in envs:
        raw = group.loc[group["env"] == env, "final_return"].to_numpy(dtype=float)
        scores.append(human_normalized(env, raw, baselines) if human else raw)
    return scores, "human-normalised" if human else "raw return"


def aggregate(per_run: pd.DataFrame, n_boot: int, seed: int) -> pd.DataFrame:
    """rliable-style IQM / median / mean across each experiment's tasks, stratified CIs."""
    rows = []
    for exp in sorted(per_run["exp"].unique()):
        scores, scale = task_scores(per_run, exp)
        for metric, est in interval_estimates(scores, n_boot=n_boot, seed=seed).items():
            rows.append(
                {
                    "exp": exp,
                    "score": scale,
                    "tasks": len(scores),
                    "runs": sum(len(s) for s in scores),
                    "metric": metric,
                    "estimate": est.point,
                    "ci95_low": est.low,
                    "ci95_high": est.high,
                }
            )
    return pd.DataFrame(rows)


def plot_performance_profiles(per_run: pd.DataFrame, png_path, n_boot: int, seed: int) -> None:
    """Fraction of runs scoring above tau (with bootstrap band), one panel per experiment."""
    plt = _pyplot()
    exps = sorted(per_run["exp"].unique())
    fig, axes = plt.subplots(1, len(exps), figsize=(4 * len(exps), 3.2), squeeze=False)
    for ax, exp in zip(axes[0], exps, strict=True):
        scores, scale = task_scores(per_run, exp)
        flat = np.concatenate(scores)
        span = max(float(flat.max() - flat.min()), 1e-6)
        taus = np.linspace(flat.min() - 0.05 * span, flat.max() + 0.05 * span, 60)
        profile = performance_profile(scores, taus, n_boot=n_boot, seed=seed)
        ax.plot(profile.taus, profile.fraction)
        ax.fill_between(profile.taus, profile.low, profile.high, alpha=0.25)
        ax.set_title(exp)
        ax.set_xlabel(f"{scale} tau")
        ax.set_ylabel("fraction of runs > tau")
    _save(fig, plt, png_path)


def load_job_benchmarks(paths) -> pd.DataFrame:
    """Snakemake ``benchmark:`` TSVs of training jobs: seconds, max RSS, CPU time per job."""
    rows = []
    for path in paths:
        bench = pd.read_csv(path, sep="\t")
        rows.append({**_run_key(path), **bench.iloc[-1][["s", "max_rss", "cpu_time"]].to_dict()})
    return pd.DataFrame(rows).sort_values(["exp", "env", "seed", "step"], ignore_index=True)


def plot_job_benchmarks(bench: pd.DataFrame, png_path) -> None:
    """Per experiment: wall seconds and peak memory of its training jobs."""
    plt = _pyplot()
    per_exp = bench.groupby("exp").agg(s=("s", "mean"), max_rss=("max_rss", "max"))
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.2))
    left.bar(per_exp.index, per_exp["s"])
    left.set_ylabel("mean wall seconds per segment job")
    right.bar(per_exp.index, per_exp["max_rss"])
    right.set_ylabel("peak RSS (MB)")
    for ax in (left, right):
        ax.tick_params(axis="x", rotation=30)
    _save(fig, plt, png_path)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, plt, png_path) -> None:
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    atomic.write_bytes(png_path, buf.getvalue())
