"""The warm worker (rlpipe.warm.worker): same results as a job process, same crash semantics."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rlpipe.smk.jobguard import identity
from rlpipe.warm import worker

from conftest import TINY_PPO
from pipeline import REPO, Workdir, live_lines, subprocess_env

SRC = str(REPO / "src")


def config(total=3 * 2048, every=2048, **hparams) -> dict:
    return {
        "experiments": {
            "cp": {
                "algo": "ppo",
                "envs": ["CartPole-v1"],
                "seeds": [1],
                "total_steps": total,
                "checkpoint_every": every,
                "hparams": {**TINY_PPO, **hparams},
            },
            "q": {
                "algo": "qlearn",
                "envs": ["CartPole-v1"],
                "seeds": [1],
                "total_steps": 32_000,
                "checkpoint_every": 16_000,
            },
        },
        "evaluation": {"episodes": 2, "max_episode_steps": 200},
        "summary": {"bootstrap_samples": 200},
    }


def _processes() -> dict[int, tuple[int, str]]:
    """{pid: (parent pid, command line)} of every live process."""
    out = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            cmd = (stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, IndexError):
            continue
        if fields[0] != "Z":
            out[int(stat.parent.name)] = (int(fields[1]), cmd)
    return out


def _worker_pids(workdir: Path) -> list[int]:
    """The worker of ``workdir`` (its forked children share its command line)."""
    sock = str(worker.socket_path(workdir))
    procs = _processes()
    mine = {pid for pid, (_, cmd) in procs.items() if "rlpipe.warm.worker" in cmd and sock in cmd}
    return [pid for pid in mine if procs[pid][0] not in mine]


@pytest.mark.slow
def test_worker_and_own_process_give_the_same_bytes(tmp_path):
    """PPO and Q-learning segments, evaluations: byte-identical with and without the worker."""
    warm = Workdir(tmp_path / "warm", config())
    cold = Workdir(tmp_path / "cold", config())
    warm.run()
    assert "serving" in worker.socket_path(warm.path).with_suffix(".log").read_text()
    cold.run(env={worker.ENV_OFF: "0"})
    assert warm.checkpoints() and warm.checkpoints() == cold.checkpoints()
    evals = sorted(p.relative_to(warm.path) for p in warm.path.rglob("eval/*.json"))
    for rel in evals:
        assert json.loads((warm.path / rel).read_text()) == json.loads(
            (cold.path / rel).read_text()
        )


@pytest.mark.slow
def test_a_killed_job_takes_its_worker_child_with_it(tmp_path):
    """SIGKILL of a training job's process: the worker's child stops at once (no orphan
    writer), Snakemake retries the job, and the result equals an uninterrupted run."""
    cfg = config(total=2 * 8192, every=8192, update_epochs=8)
    del cfg["experiments"]["q"]
    reference = Workdir(tmp_path / "reference", cfg)
    reference.run()
    work = Workdir(tmp_path / "work", cfg)
    proc = subprocess.Popen(
        work.command("--cores", "1"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=subprocess_env(),
        start_new_session=True,
    )
    run_dir = work.path / "runs/cp/CartPole-v1/seed1"
    deadline = time.monotonic() + 180
    while live_lines(run_dir, 16384) < 1:
        assert proc.poll() is None and time.monotonic() < deadline, "segment 2 never started"
        time.sleep(0.05)
    (server,) = _worker_pids(work.path)
    procs = _processes()
    (child,) = [pid for pid, (ppid, _) in procs.items() if ppid == server]
    (job,) = [  # the job's Python process (Snakemake starts it through a shell)
        pid
        for pid, (_, cmd) in procs.items()
        if f"{work.path}/.snakemake/scripts" in cmd
        and ".segment.py" in cmd  # Snakemake runs a copy: tmpXXXX.segment.py
        and cmd.split()[0].endswith(("python", "python3"))
    ]
    os.kill(job, signal.SIGKILL)
    deadline = time.monotonic() + 30  # it polls its job twice a second; slow CPUs lag
    while child in _processes():
        assert time.monotonic() < deadline, "the worker's child outlived its job"
        time.sleep(0.02)
    assert proc.wait(timeout=300) == 0  # the profile's retries redo the segment
    assert work.checkpoints() == reference.checkpoints()


def _request(sock_path: Path, code: dict) -> dict:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.connect(str(sock_path))
        request = {
            "target": "rlpipe.rollouts.evaluate:evaluate_job",
            "kwargs": {},
            "code": code,
            "cwd": os.getcwd(),
            "env": dict(os.environ),
            "log": None,
            "client": identity(),
        }
        conn.sendall((json.dumps(request) + "\n").encode())
        return json.loads(conn.makefile().readline() or "{}")


def _serve(sock_path: Path, env: dict) -> subprocess.Popen:
    server = subprocess.Popen(
        [sys.executable, "-m", "rlpipe.warm.worker", str(sock_path)],
        env={**os.environ, "PYTHONPATH": SRC, **env},
    )
    deadline = time.monotonic() + 120
    while not sock_path.exists():
        assert server.poll() is None and time.monotonic() < deadline, "the worker never served"
        time.sleep(0.05)
    return server


def test_a_worker_refuses_code_it_did_not_load_and_steps_aside(tmp_path):
    """A job whose rule has another version of a module the worker loaded is refused (it then
    runs in its own process) and the worker exits, so no job ever runs stale code."""
    sock_path = tmp_path / "w.sock"
    server = _serve(sock_path, {worker.ENV_IDLE: "600"})
    loaded = json.loads(
        subprocess.run(
            [sys.executable, "-c", "import json; from rlpipe.warm import worker; "
             "import rlpipe.algos.ppo.train; print(json.dumps(worker.loaded_versions()))"],
            env={**os.environ, "PYTHONPATH": SRC}, capture_output=True, text=True, check=True,
        ).stdout
    )  # fmt: skip
    reply = _request(sock_path, {"rlpipe/algos/ppo/train.py": "0" * 12, "segment.py": "x"})
    assert "rlpipe/algos/ppo/train.py" in reply["refused"]
    assert server.wait(timeout=30) == 0 and not sock_path.exists()
    ppo = "rlpipe/algos/ppo/train.py"
    assert worker._stale({ppo: loaded[ppo]}, loaded) == []


def test_a_worker_ends_with_the_snakemake_run_that_uses_it(tmp_path):
    sock_path = tmp_path / "w.sock"
    run = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        server = _serve(sock_path, {worker.ENV_IDLE: "600", "RLPIPE_MAIN": identity(run.pid)})
        time.sleep(0.5)
        assert server.poll() is None
    finally:
        run.kill()
        run.wait()
    assert server.wait(timeout=30) == 0 and not sock_path.exists()


def test_only_rlpipe_job_functions_are_run():
    with pytest.raises(ValueError, match="not an rlpipe job function"):
        worker.run("os:system", {"command": "true"})
    with pytest.raises(ValueError, match="not an rlpipe job function"):
        worker.job_function("rlpipe.runtree.atomic:write_text")
