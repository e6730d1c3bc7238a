"""Summary tables and cross-task aggregates from eval JSONs and telemetry (pandas; no torch).

Figures are drawn by rlpipe.results.figures.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from rlpipe.results.stats import (
    bootstrap_ci,
    human_normalized,
    interval_estimates,
    iqm,
    load_baselines,
)
from rlpipe.runtree import atomic, layout
from rlpipe.runtree.integrity import damaged
from rlpipe.runtree.telemetry import read_jsonl


def _run_key(path: str) -> dict:
    artifact = layout.parse(path)
    if artifact is None:
        raise ValueError(f"{path}: not a run artifact path (runs/EXP/ENV/seedN/.../step_N)")
    return {"exp": artifact.exp, "env": artifact.env, "seed": artifact.seed, "step": artifact.step}


def load_evals(paths) -> pd.DataFrame:
    rows = []
    for path in paths:
        key = _run_key(path)
        record = _eval_record(path, key["step"])
        rows.append({**key, "algo": record["algo"], "mean_return": record["mean_return"]})
    return pd.DataFrame(rows).sort_values(["exp", "env", "seed", "step"], ignore_index=True)


def _eval_record(path, step: int) -> dict:
    """An evaluation record (rlpipe.rollouts.evaluate), checked for damage: complete and
    consistent."""
    try:
        record = json.loads(Path(path).read_text())
    except ValueError as err:  # not JSON, not UTF-8
        raise damaged(path, f"unreadable evaluation record ({err})", "evaluation") from None
    fields = {"algo": str, "step": int, "episodes": int, "returns": list, "mean_return": float}
    if not isinstance(record, dict):
        raise damaged(path, "not an evaluation record (not a JSON object)", "evaluation")
    wrong = [k for k, t in fields.items() if not isinstance(record.get(k), t)]
    if wrong:
        problem = f"incomplete evaluation record (missing or mistyped: {wrong})"
        raise damaged(path, problem, "evaluation")
    returns = record["returns"]
    consistent = (
        record["step"] == step
        and record["episodes"] == len(returns) > 0
        and all(isinstance(r, int | float) for r in returns)
        and np.isclose(record["mean_return"], np.mean(returns), rtol=1e-12, atol=0)
    )
    if not consistent:
        problem = (
            "inconsistent evaluation record (step, episodes, returns and mean_return disagree)"
        )
        raise damaged(path, problem, "evaluation")
    return record


def load_telemetry(paths) -> pd.DataFrame:
    """One row per segment: wall time and env steps it trained."""
    rows = []
    for path in paths:
        key = _run_key(path)
        try:
            records = read_jsonl(path)
        except ValueError as err:  # a bad line, not UTF-8
            raise damaged(path, f"unreadable telemetry ({err})", "telemetry") from None
        last = records[-1] if records else {}
        if last.get("global_step") != key["step"]:
            problem = (
                f"telemetry ends at step {last.get('global_step')}, the segment at "
                f"{key['step']} (truncated or altered)"
            )
            raise damaged(path, problem, "telemetry")
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


def load_job_benchmarks(paths) -> pd.DataFrame:
    """Per training job: wall seconds from Snakemake's ``benchmark:`` TSV, and the peak memory
    (MB) and CPU seconds of the training process from the segment's last telemetry record
    (``perf/*``; a job run by the warm worker trains outside the process tree Snakemake
    measures), else from the TSV."""
    rows = []
    for path in paths:
        bench = pd.read_csv(path, sep="\t").iloc[-1]
        key = _run_key(path)
        row = {**key, "s": bench["s"]}
        root = Path(path).parents[4]
        telemetry = Path(layout.path("telemetry", *key.values(), root=root))
        last = read_jsonl(telemetry)[-1] if telemetry.is_file() else {}
        row["max_rss"] = last.get("perf/max_rss_mb", bench["max_rss"])
        row["cpu_time"] = last.get("perf/cpu_s", bench["cpu_time"])
        rows.append(row)
    return pd.DataFrame(rows).sort_values(["exp", "env", "seed", "step"], ignore_index=True)
