"""Summary statistics and tables on synthetic evaluation records."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from rlpipe.results import figures, stats, tables


def _write_eval(root, exp, env, seed, step, mean):
    path = root / f"runs/{exp}/{env}/seed{seed}/eval/step_{step:010d}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    returns = [mean - 1.0, mean + 1.0]  # what rlpipe.rollouts.evaluate writes, two episodes
    record = {"algo": "ppo", "step": step, "episodes": 2, "returns": returns, "mean_return": mean}
    path.write_text(json.dumps(record))
    return path


def _write_tel(root, exp, env, seed, step, elapsed):
    path = root / f"runs/{exp}/{env}/seed{seed}/telemetry/step_{step:010d}.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"global_step": step, "elapsed_s": elapsed}) + "\n")
    return path


def test_iqm_and_bootstrap_known_values():
    assert stats.iqm([1, 2, 3, 4, 5, 6, 7, 100]) == pytest.approx(4.5)  # middle 4 of 8
    assert stats.iqm([3, 1, 2]) == pytest.approx(2.0)
    lo, hi = stats.bootstrap_ci([5, 5, 5], n_boot=100, seed=0)
    assert lo == hi == 5
    lo, hi = stats.bootstrap_ci(np.arange(100), n_boot=2000, seed=0)
    assert lo < 49.5 < hi and hi - lo == pytest.approx(2 * 1.96 * 28.87 / 10, rel=0.15)


def test_summarize_final_returns_over_seeds(tmp_path):
    evals, tel = [], []
    for seed, finals in ((1, 10.0), (2, 20.0), (3, 30.0)):
        evals += [_write_eval(tmp_path, "a", "CartPole-v1", seed, 100, 0.0)]
        evals += [_write_eval(tmp_path, "a", "CartPole-v1", seed, 200, finals)]
        tel += [_write_tel(tmp_path, "a", "CartPole-v1", seed, s, 5.0) for s in (100, 200)]
    per_run, per_exp = tables.summarize(
        tables.load_evals(evals), tables.load_telemetry(tel), n_boot=500, seed=0
    )
    assert per_run["final_return"].tolist() == [10.0, 20.0, 30.0]
    assert per_run["wall_time_s"].tolist() == [10.0, 10.0, 10.0]
    assert per_run["sps"].tolist() == [20.0, 20.0, 20.0]
    row = per_exp.iloc[0]
    assert row["final_return_mean"] == 20.0 and row["seeds"] == 3 and row["env_steps"] == 200
    assert 10.0 <= row["ci95_low"] <= 20.0 <= row["ci95_high"] <= 30.0

    out = tmp_path / "results"
    tables.write_tables(per_run, per_exp, out / "s.csv", out / "r.csv", out / "s.md")
    assert pd.read_csv(out / "s.csv")["final_return_mean"].tolist() == [20.0]
    assert "| a " in (out / "s.md").read_text()
    figures.plot_curves(tables.load_evals(evals), out / "c.png", n_boot=100, seed=0)
    assert (out / "c.png").read_bytes()[:4] == b"\x89PNG"


def test_bad_paths_and_records_are_named(tmp_path):
    bad = tmp_path / "runs/a/CartPole-v1/seed1/eval/step_0000000001.json"
    bad.parent.mkdir(parents=True)
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="step_0000000001.json: unreadable"):
        tables.load_evals([bad])
    elsewhere = tmp_path / "elsewhere.json"
    elsewhere.write_text('{"algo": "ppo", "mean_return": 1.0}')
    with pytest.raises(ValueError, match="not a run artifact path"):
        tables.load_evals([elsewhere])


def test_job_benchmarks_take_memory_and_cpu_from_the_training_process(tmp_path):
    """Wall time is Snakemake's; memory and CPU time are the training process's own (a job
    run by the warm worker trains outside the process tree Snakemake measures)."""
    run = tmp_path / "runs" / "e" / "CartPole-v1" / "seed1"
    (run / "benchmark").mkdir(parents=True)
    (run / "telemetry").mkdir()
    header = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"
    for step, perf in ((100, {"perf/max_rss_mb": 412.0, "perf/cpu_s": 7.5}), (200, {})):
        bench = run / "benchmark" / f"train_step_{step:010d}.tsv"
        bench.write_text(header + "9.0\t0:00:09\t61.0\t0\t0\t0\t0\t0\t10\t0.4\n")
        record = {"global_step": step, "time": 1.0, "elapsed_s": 1.0, **perf}
        (run / "telemetry" / f"step_{step:010d}.jsonl").write_text(json.dumps(record) + "\n")
    got = tables.load_job_benchmarks(sorted(map(str, run.glob("benchmark/*.tsv"))))
    assert got[["s", "max_rss", "cpu_time"]].values.tolist() == [
        [9.0, 412.0, 7.5],
        [9.0, 61.0, 0.4],
    ]
