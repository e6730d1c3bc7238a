"""Tracking through the real workflow: TensorBoard and W&B (offline) across segments and retries."""

from __future__ import annotations

import copy
import json
import os
import secrets
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from rlpipe.runtree.telemetry import read_jsonl

from conftest import tiny_config
from pipeline import Workdir, live_lines, subprocess_env
from tracking_fixtures import isolated_home, tb_scalars, wandb_offline_runs, wandb_records

pytestmark = pytest.mark.slow
RUN = "runs/cp/CartPole-v1/seed1"
TRACKING_RULES = {"tensorboard_segment", "wandb_segment", "wandb_summary"}


def _one_run(segment_steps: int, tracking: dict | None = None) -> dict:
    """The tiny config's CartPole experiment, one seed, three segments."""
    config = tiny_config()
    del config["experiments"]["pong"]
    cp = config["experiments"]["cp"]
    cp.update(seeds=[1], total_steps=3 * segment_steps, checkpoint_every=segment_steps)
    if tracking:
        config["tracking"] = tracking
    return config


def _telemetry(work: Workdir) -> list[dict]:
    paths = sorted((work.path / RUN / "telemetry").glob("step_*.jsonl"))
    assert len(paths) == 3
    return [r for p in paths for r in read_jsonl(p)]


def _train_job_pids(work: Workdir) -> list[int]:
    """PIDs of this workdir's running segment scripts (not Snakemake itself)."""
    pids = []
    for proc in Path("/proc").iterdir():
        try:
            cmdline = (proc / "cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if proc.name.isdigit() and ".segment.py" in cmdline and str(work.path) in cmdline:
            pids.append(int(proc.name))
    return pids


def _assert_tb_equals_telemetry(work: Workdir, records: list[dict]) -> None:
    series = tb_scalars(work.path / RUN / "tb")
    metrics = {k for r in records for k in r if "/" in k}
    assert metrics <= set(series), metrics - set(series)
    for tag in metrics:
        expected = [(r["global_step"], r[tag]) for r in records if tag in r]
        steps = [s for s, _ in series[tag]]
        assert steps == [s for s, _ in expected], tag
        assert all(b > a for a, b in zip(steps, steps[1:], strict=False)), tag
        values = np.array([v for _, v in series[tag]], dtype=np.float32)
        np.testing.assert_array_equal(values, np.float32([v for _, v in expected]), tag)


def test_sigkilled_segment_retried_gives_one_increasing_series_in_tensorboard_and_wandb(
    tmp_path,
):
    config = _one_run(8192, {"tensorboard": True, "wandb": {"project": "t", "mode": "offline"}})
    work = Workdir(tmp_path / "work", config)
    env = subprocess_env() | isolated_home(tmp_path)
    proc = subprocess.Popen(
        work.command("--cores", "1"),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        start_new_session=True,
    )
    try:
        deadline = time.time() + 120
        while live_lines(work.path / RUN, 16384) < 2:
            assert proc.poll() is None, "workflow ended before the segment could be killed"
            assert time.time() < deadline, "second segment never started"
            time.sleep(0.05)
        (pid,) = _train_job_pids(work)
        os.kill(pid, signal.SIGKILL)  # the job only: Snakemake retries it (profile: retries)
        out, _ = proc.communicate(timeout=240)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 0, out
    assert "Trying to restart job" in out
    assert not list((work.path / "runs").rglob("*.tmp-*")), "temp files left behind"

    records = _telemetry(work)
    assert [r["global_step"] for r in records] == sorted({r["global_step"] for r in records})
    _assert_tb_equals_telemetry(work, records)

    runs = wandb_offline_runs(work.path / RUN, env)
    assert len(runs) == 3 and len({run_id for run_id, _ in runs}) == 1
    steps = [row["_step"] for _, rows in runs for row in rows]
    assert steps == [r["global_step"] for r in records]
    assert steps == [row["global_step"] for _, rows in runs for row in rows]


def test_wandb_offline_one_run_with_eval_and_summary_and_the_key_is_never_written(tmp_path):
    key = secrets.token_hex(20)
    work = Workdir(tmp_path / "work", _one_run(512, {"wandb": {"project": "rlpipe-test"}}))
    env = isolated_home(tmp_path) | {"WANDB_MODE": "offline", "WANDB_API_KEY": key}
    work.run(env=env)

    runs = wandb_offline_runs(work.path / RUN, subprocess_env() | env)
    ids = {run_id for run_id, _ in runs}
    assert len(runs) == 3 and len(ids) == 1 and ids.pop().startswith("cp-CartPole-v1-seed1-")
    rows = [row for _, rs in runs for row in rs]
    steps = [row["_step"] for row in rows]
    assert steps == [r["global_step"] for r in _telemetry(work)]
    assert all(b > a for a, b in zip(steps, steps[1:], strict=False))
    evals = {row["_step"]: row["eval/mean_return"] for row in rows if "eval/mean_return" in row}
    expected = {
        int(p.stem.split("_")[1]): json.loads(p.read_text())["mean_return"]
        for p in (work.path / RUN / "eval").glob("step_*.json")
    }
    assert evals == pytest.approx(expected) and len(evals) == 3
    # every telemetry and evaluation record names its run
    records = [
        *_telemetry(work),
        *map(json.loads, map(Path.read_text, (work.path / RUN).glob("eval/*.json"))),
    ]
    assert {r["run"] for r in records} == {"cp/CartPole-v1/seed1"}

    receipt = json.loads((work.path / "results/wandb_summary.json").read_text())
    assert receipt["mode"] == "offline" and receipt["rows"] == {"summary": 1, "runs": 1}
    (summary_file,) = (work.path / "results/wandb_summary").glob("offline-run-*/run-*.wandb")
    records = wandb_records(summary_file, subprocess_env() | env)
    (row,) = [r["history"]["item"] for r in records if r["type"] == "history"]
    assert row["summary._type"] == row["runs._type"] == "table-file"
    assert (row["summary.nrows"], row["runs.nrows"]) == (1, 1)
    (table,) = (work.path / "results/wandb_summary").rglob("summary_*.table.json")
    assert json.loads(table.read_text())["data"][0][:2] == ["cp", "CartPole-v1"]

    written = [p for root in (work.path, tmp_path / "home") for p in root.rglob("*")]
    files = [p for p in written if p.is_file() and not p.is_symlink()]
    assert any(".snakemake" in p.parts for p in files) and any("logs" in p.parts for p in files)
    assert not [p for p in files if key.encode() in p.read_bytes()], "API key written"


def test_tracking_off_imports_no_tracker_and_toggling_it_trains_nothing(tmp_path):
    poison = tmp_path / "poison"
    for name in ("wandb", "tensorboard"):
        (poison / name).mkdir(parents=True)
        (poison / name / "__init__.py").write_text(
            f"open({str(tmp_path / ('imported-' + name))!r}, 'w').close()\n"
            f"raise RuntimeError('{name} imported with tracking off')\n"
        )
    config = _one_run(512)
    work = Workdir(tmp_path / "work", config)
    work.run(env={"PYTHONPATH": str(poison)})
    assert not list(tmp_path.glob("imported-*")), "a tracker was imported with tracking off"
    assert (work.path / "results/summary.csv").exists()
    probe = copy.deepcopy(config)  # the poison reaches the jobs: a TensorBoard job trips it
    probe["tracking"] = {"tensorboard": True}
    work.write_config(probe)
    failed = work.run("--retries", "0", check=False, env={"PYTHONPATH": str(poison)})
    assert failed.returncode != 0 and (tmp_path / "imported-tensorboard").exists()

    tracked = copy.deepcopy(config)
    tracked["tracking"] = {"tensorboard": True, "wandb": {"project": "p", "mode": "offline"}}
    work.write_config(tracked)
    jobs = work.planned_jobs()
    counts = {r: sum(1 for rule, _ in jobs if rule == r) for r in TRACKING_RULES}
    assert {rule for rule, _ in jobs} == TRACKING_RULES, jobs
    assert counts == {"tensorboard_segment": 3, "wandb_segment": 3, "wandb_summary": 1}
    work.run(env=isolated_home(tmp_path))
    assert "Nothing to be done" in work.run("-n").stdout

    work.write_config(config)  # off again: nothing reruns, nothing is removed
    assert "Nothing to be done" in work.run("-n").stdout

    renamed = copy.deepcopy(tracked)
    renamed["tracking"]["wandb"]["project"] = "q"
    work.write_config(renamed)
    assert {rule for rule, _ in work.planned_jobs()} == {"wandb_segment", "wandb_summary"}

    extended = copy.deepcopy(tracked)
    extended["experiments"]["cp"]["total_steps"] = 4 * 512
    work.write_config(extended)
    jobs = work.planned_jobs()
    steps = {
        r: [w["step"] for rule, w in jobs if rule == r] for r in TRACKING_RULES - {"wandb_summary"}
    }
    assert steps == {"tensorboard_segment": ["0000002048"], "wandb_segment": ["0000002048"]}
    assert sorted(rule for rule, _ in jobs if rule not in TRACKING_RULES) == [
        "evaluate",
        "ppo_segment",
        "summarize",
    ]
