"""``rlpipe status`` / ``rlpipe plan`` end to end, in a subprocess as a user runs them."""

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

from rlpipe import cli

SRC = str(Path(__file__).resolve().parents[1] / "src")
CONFIG = {
    "experiments": {
        "demo": {
            "algo": "ppo",
            "envs": ["CartPole-v1"],
            "seeds": [1, 2],
            "total_steps": 2048,
            "checkpoint_every": 1024,
        }
    }
}


def rlpipe(*args, cwd, **kw):
    env = {**os.environ, "PYTHONPATH": SRC}
    cmd = [sys.executable, "-m", "rlpipe.cli", *args]
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, **kw)


@pytest.fixture
def project(tmp_path):
    """A project dir with config/config.yaml; seed1 finished segment 1 and runs segment 2."""
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "config.yaml").write_text(yaml.safe_dump(CONFIG))
    tel = tmp_path / "runs" / "demo" / "CartPole-v1" / "seed1" / "telemetry"
    tel.mkdir(parents=True)
    now = time.time()
    first = {"global_step": 1024, "time": now - 60, "charts/SPS": 512.0}
    (tel / "step_0000001024.jsonl").write_text(json.dumps(first) + "\n")
    live = {"global_step": 1536, "time": now - 1, "charts/SPS": 256.0}
    (tel / "step_0000002048.jsonl.live").write_text(json.dumps(live) + "\n")
    ckpt = tel.parent / "ckpt" / "step_0000001024.pt"
    ckpt.parent.mkdir()
    ckpt.write_bytes(b"not a real checkpoint")
    return tmp_path


def test_status_table(project):
    proc = rlpipe("status", cwd=project)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    seed1 = next(line for line in lines if "seed1" in line)
    assert "RUNNING" in seed1 and "1,536 / 2,048" in seed1 and "2s" in seed1  # ETA 512/256
    assert "PENDING" in next(line for line in lines if "seed2" in line)
    assert lines[-1] == "1 PENDING, 1 RUNNING"
    stalled = rlpipe("status", "--stall-timeout", "0.5", cwd=project)
    assert "STALLED" in stalled.stdout


def test_status_from_remote_copies_only_telemetry(project, tmp_path_factory):
    dest = tmp_path_factory.mktemp("copy")
    cli.sync_telemetry(str(project / "runs"), dest)
    got = sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file())
    assert got == [
        "demo/CartPole-v1/seed1/telemetry/step_0000001024.jsonl",
        "demo/CartPole-v1/seed1/telemetry/step_0000002048.jsonl.live",
    ]
    proc = rlpipe(
        "status", "--remote", f":local:{project / 'runs'}", "--runs-dir", "x", cwd=project
    )
    assert proc.returncode == 0, proc.stderr
    assert "RUNNING" in proc.stdout and "1,536 / 2,048" in proc.stdout


def test_status_remote_failure_is_reported(project):
    proc = rlpipe("status", "--remote", "nosuchremote:runs", cwd=project)
    assert proc.returncode == 2
    assert proc.stderr.startswith("rlpipe status: error: ") and "nosuchremote" in proc.stderr


def test_status_watch_redraws_until_ctrl_c(project):
    env = {**os.environ, "PYTHONPATH": SRC}
    cmd = [sys.executable, "-m", "rlpipe.cli", "status", "--watch", "0.2"]
    proc = subprocess.Popen(
        cmd,
        cwd=project,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
        # Ctrl-C as in a terminal, also when pytest itself runs in the background (where
        # the shell leaves SIGINT ignored, and children would inherit that).
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    killer = threading.Timer(60, proc.kill)  # a hung watch fails the test, never blocks it
    killer.start()
    seen = ""
    while seen.count(cli.CLEAR) < 3 and proc.poll() is None:  # two full redraws, at least
        seen += proc.stdout.readline()
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=20)
    killer.cancel()
    out = seen + out
    assert proc.returncode == 0
    frames = out.split(cli.CLEAR)[1:-1]  # the last one may be cut off by Ctrl-C
    assert len(frames) >= 2
    assert all(frame.rstrip().endswith("1 PENDING, 1 RUNNING") for frame in frames)


def test_plan_from_runs_dir_and_from_dry_run_text(project):
    proc = rlpipe("plan", "--cores", "2", "--usd-per-gpu-hour", "3", cwd=project)
    assert proc.returncode == 0, proc.stderr
    demo = next(line for line in proc.stdout.splitlines() if line.startswith("demo"))
    # seed1: segment 2 left; seed2: both; no evaluation yet: 4. Measured 512 SPS (the
    # finished segment only).
    assert demo.split()[:6] == ["demo", "ppo", "3", "4", "2", "3,072"]
    assert "SPS measured 512" in demo
    dry_run = project / "dry.txt"
    dry_run.write_text("output: runs/demo/CartPole-v1/seed2/ckpt/step_0000002048.pt\n")
    proc = rlpipe("plan", "--jobs-from", "-", cwd=project, input=dry_run.read_text())
    demo = next(line for line in proc.stdout.splitlines() if line.startswith("demo"))
    assert demo.split()[:6] == ["demo", "ppo", "1", "0", "1", "1,024"]
    assert "no price given" in proc.stdout
    slurm = rlpipe("plan", "--slurm-jobs", "10", cwd=project)
    assert slurm.returncode == 0 and "wall time" in slurm.stdout, slurm.stderr


def test_bad_config_is_named(project):
    bad = project / "bad.yaml"
    bad.write_text(yaml.safe_dump({"experiments": {"x": {"algo": "ppo"}}}))
    proc = rlpipe("plan", "--config", str(bad), cwd=project)
    assert proc.returncode == 2
    assert "bad.yaml" in proc.stderr and "experiments.x" in proc.stderr
    proc = rlpipe("status", "--config", "missing.yaml", cwd=project)
    assert proc.returncode == 2 and "missing.yaml: config file not found" in proc.stderr


def test_library_modules_do_not_import_torch():
    code = (
        "import sys\n"
        "import rlpipe.cli, rlpipe.results.plan, rlpipe.results.stats, rlpipe.results.status\n"
        "import rlpipe.runtime.watchdog\n"
        "heavy = {'torch', 'envpool', 'numba'} & set(sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    env = {**os.environ, "PYTHONPATH": SRC}
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
