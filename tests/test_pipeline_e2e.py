"""The whole workflow on a tiny config: determinism, staleness, resume after SIGKILL."""

from __future__ import annotations

import copy
import os
import signal
import subprocess
import time

import pandas as pd
import pytest

from conftest import tiny_config
from pipeline import Workdir, live_lines, subprocess_env

pytestmark = pytest.mark.slow


def _rules(jobs):
    return sorted(rule for rule, _ in jobs)


def test_full_run_outputs_and_staleness(tiny):
    tiny.run()
    summary = pd.read_csv(tiny.path / "results/summary.csv")
    assert set(summary["exp"]) == {"cp", "pong"}
    assert (summary["env_steps"] == [1536, 256]).all()
    assert (tiny.path / "results/curves.png").stat().st_size > 1000
    assert "CartPole-v1" in (tiny.path / "results/summary.md").read_text()
    for rule in ("ppo_segment", "evaluate", "summarize"):
        assert list((tiny.path / "logs" / rule).rglob("*.log")), f"no log for {rule}"
    assert list((tiny.path / "runs").rglob("benchmark/train_step_*.tsv"))

    for name in ("aggregate.csv", "performance_profile.png", "job_benchmarks.csv"):
        assert (tiny.path / "results" / name).stat().st_size > 0, name
    aggregate = pd.read_csv(tiny.path / "results/aggregate.csv")
    pong_iqm = aggregate.query("exp == 'pong' and metric == 'iqm'").iloc[0]
    assert pong_iqm["score"] == "human-normalised"  # Atari: (score - random) / (human - random)

    # The offline HTML report embeds the tables, curves, statistics and job benchmarks.
    tiny.run("--report", "report.html")
    html = (tiny.path / "report.html").read_text()
    for name in ("summary.csv", "curves.png", "aggregate.csv", "job_benchmarks.png"):
        assert name in html, name
    assert "System Message" not in html and "Duplicate explicit target" not in html

    # Up to date: nothing to do.
    assert "Nothing to be done" in tiny.run("-n").stdout

    # Tables regenerate from telemetry and evals alone, without training.
    (tiny.path / "results/summary.md").unlink()
    assert _rules(tiny.planned_jobs("results/summary.md")) == ["summarize"]

    # One run's hyper-parameter: only that run's segments, evals and the summary.
    config = tiny_config()
    config["experiments"]["pong"]["hparams"]["ent_coef"] = 0.02
    tiny.write_config(config)
    jobs = tiny.planned_jobs()
    assert {w.get("exp") for r, w in jobs if r != "summarize"} == {"pong"}
    assert _rules(jobs) == ["evaluate", "ppo_segment", "summarize"]

    # Evaluation settings: only evaluations and the summary.
    config = tiny_config()
    config["evaluation"]["episodes"] = 3
    tiny.write_config(config)
    jobs = tiny.planned_jobs()
    assert set(_rules(jobs)) == {"evaluate", "summarize"}
    assert len(jobs) == 2 * 3 + 1 + 1

    # More total steps: only the new segments (and their evals) train.
    config = tiny_config()
    config["experiments"]["cp"]["total_steps"] = 2048
    tiny.write_config(config)
    jobs = tiny.planned_jobs()
    trained = sorted((w["seed"], w["step"]) for r, w in jobs if r == "ppo_segment")
    assert trained == [("1", "0000002048"), ("2", "0000002048")]


def test_same_config_twice_is_bit_identical(tmp_path):
    a = Workdir(tmp_path / "a", tiny_config())
    b = Workdir(tmp_path / "b", tiny_config())
    a.run()
    b.run()
    assert a.checkpoints() and a.checkpoints() == b.checkpoints()


def test_sigkill_mid_segment_then_same_command_resumes(tmp_path):
    config = tiny_config()
    del config["experiments"]["pong"]
    cp = config["experiments"]["cp"]
    cp.update(seeds=[1], total_steps=3 * 8192, checkpoint_every=8192)
    reference = Workdir(tmp_path / "reference", config)
    reference.run()

    work = Workdir(tmp_path / "killed", copy.deepcopy(config))
    first = work.path / "runs/cp/CartPole-v1/seed1/ckpt/step_0000008192.pt"
    run_dir = work.path / "runs/cp/CartPole-v1/seed1"
    proc = subprocess.Popen(
        work.command("--cores", "1"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=subprocess_env(),
        start_new_session=True,
    )
    deadline = time.time() + 120
    while live_lines(run_dir, 16384) < 2:
        assert proc.poll() is None, "workflow ended before it could be killed"
        assert time.time() < deadline, "second segment never started"
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (work.path / "runs/cp/CartPole-v1/seed1/ckpt/step_0000016384.pt").exists()
    before = first.stat()

    done = work.run("--cores", "1")  # the same command, no --unlock or other flags
    assert "Finished" in done.stdout + done.stderr
    after = first.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert work.checkpoints() == reference.checkpoints()
    assert not list(work.path.rglob("*.tmp-*")), "temp files left behind"
