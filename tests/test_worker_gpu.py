"""Guards for the GPU path of the warm worker, runnable without a GPU.

On a real GPU the worker hung (issue 24): its warm-up touched CUDA (an optimiser step probes
the accelerator), so it refused to serve with threads running, while every job waited out the
start timeout in turn; and a forked child of a process that started CUDA cannot use it. These
tests fail if the warm-up touches CUDA, if a job that may use CUDA is forked from the worker,
if a worker that dies while starting is not noticed at once, or if evaluation and recording
run without the stall watchdog.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from rlpipe.runtime.watchdog import EXIT_CODE
from rlpipe.smk.jobguard import identity
from rlpipe.warm import worker
from rlpipe.warm.jobproc import uses_cuda

from conftest import TINY_PPO, tiny_qtable
from pipeline import REPO, Workdir

SRC = str(REPO / "src")

# torch made to believe it is a CUDA build on a machine with a GPU; every entry point into
# CUDA records its name and raises.
FAKE_CUDA = """
import torch
touched = []

def recorder(name):
    def record(*args, **kwargs):
        touched.append(name)
        raise RuntimeError(f"CUDA touched: {name}")
    return record

torch._C._accelerator_getAccelerator = lambda: torch.device("cuda")
for mod, names in [
    (torch.cuda, ["is_available", "device_count", "_lazy_init", "init", "current_stream",
                  "current_device", "synchronize"]),
    (torch.accelerator, ["is_available", "current_stream", "device_count",
                         "current_device_index", "synchronize"]),
    (torch._C, ["_cuda_getDeviceCount", "_cuda_init", "_accelerator_isAvailable"]),
    # the autograd engine: on a CUDA build it starts a thread per GPU and initialises CUDA
    # from C++, where no Python patch reaches (seen on an H200)
    (torch.autograd, ["backward", "grad"]),
    (torch.Tensor, ["backward"]),
]:
    for name in names:
        if hasattr(mod, name):
            setattr(mod, name, recorder(f"{getattr(mod, '__name__', mod)}.{name}"))
"""


def test_the_warm_up_of_a_forking_worker_touches_no_cuda():
    """The worker warms up in the process it forks CPU jobs from: not one call into CUDA,
    even where torch is a CUDA build that sees a GPU."""
    code = FAKE_CUDA + textwrap.dedent(
        """
        from rlpipe.warm.jobproc import warm_imports
        try:
            warm_imports()
        except RuntimeError:
            pass
        print("TOUCHED", touched)
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "PYTHONPATH": SRC},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert "TOUCHED []" in proc.stdout, proc.stdout


def test_which_jobs_may_use_cuda():
    assert uses_cuda({"CUDA_VISIBLE_DEVICES": "0"})
    assert uses_cuda({"CUDA_VISIBLE_DEVICES": "GPU-5d3a,1"})
    assert uses_cuda({})  # nothing hidden: torch would see every GPU
    assert not uses_cuda({"CUDA_VISIBLE_DEVICES": ""})  # the preamble's no-GPU job
    assert not uses_cuda({"CUDA_VISIBLE_DEVICES": "-1"})


def _serve(sock_path: Path) -> subprocess.Popen:
    """A worker as a GPU job starts it (it starts a spare for that GPU's jobs at once)."""
    server = subprocess.Popen(
        [sys.executable, "-m", "rlpipe.warm.worker", str(sock_path)],
        env={**os.environ, "PYTHONPATH": SRC, worker.ENV_IDLE: "600", "CUDA_VISIBLE_DEVICES": "0"},
    )
    deadline = time.monotonic() + 300
    while not sock_path.exists():
        assert server.poll() is None and time.monotonic() < deadline, "the worker never served"
        time.sleep(0.05)
    return server


def _cmdline(pid: int) -> str:
    return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return True
    return state == "Z"


def _blocked_job(sock_path: Path, fifo: Path, visible: str) -> tuple[socket.socket, int]:
    """Ask the worker for an evaluation of ``fifo`` (its read blocks: the job stays alive)
    with ``CUDA_VISIBLE_DEVICES=visible``, again while no warm spare is ready for it (the job
    process would run it itself then); returns the open connection and the job's PID."""
    deadline = time.monotonic() + 600
    while "started" not in (reply := _ask(sock_path, fifo, visible))[1]:
        reply[0].close()
        assert reply[1]["refused"] == "no warm GPU process ready yet", reply[1]
        assert time.monotonic() < deadline, "no spare became ready"
        time.sleep(0.2)
    return reply[0], reply[1]["started"]


def _ask(sock_path: Path, fifo: Path, visible: str) -> tuple[socket.socket, dict]:
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    conn.connect(str(sock_path))
    request = {
        "target": "rlpipe.rollouts.evaluate:evaluate_job",
        "kwargs": {"ckpt": str(fifo), "out": str(fifo) + ".json", "episodes": 1, "seed": 1,
                   "max_steps": 1},
        "code": {},
        "cwd": str(fifo.parent),
        "env": {**os.environ, "PYTHONPATH": SRC, "CUDA_VISIBLE_DEVICES": visible},
        "log": None,
        "client": identity(),
    }  # fmt: skip
    conn.sendall((json.dumps(request) + "\n").encode())
    return conn, json.loads(conn.makefile().readline())


def test_gpu_jobs_run_in_spawned_processes_and_cpu_jobs_are_forked(tmp_path):
    """A job given a GPU runs in a fresh interpreter (``rlpipe.warm.spares``), never in a fork of
    the worker; a job that asked for no GPU is forked. Closing a job's connection (its job
    process died) ends the process that runs it, spawned or forked."""
    sock_path = tmp_path / "w.sock"
    fifo = tmp_path / "ckpt.pt"
    os.mkfifo(fifo)
    server = _serve(sock_path)
    try:
        server_cmd = _cmdline(server.pid)
        gpu_conn, gpu_pid = _blocked_job(sock_path, fifo, "0")
        cpu_conn, cpu_pid = _blocked_job(sock_path, fifo, "")
        assert "rlpipe.warm.spares" in _cmdline(gpu_pid), "a GPU job was forked from the worker"
        assert _cmdline(cpu_pid) == server_cmd, "a CPU job should be forked (fast start)"
        for conn, pid in [(gpu_conn, gpu_pid), (cpu_conn, cpu_pid)]:
            conn.close()
            deadline = time.monotonic() + 60
            while not _gone(pid):
                assert time.monotonic() < deadline, f"job process {pid} outlived its job"
                time.sleep(0.05)
    finally:
        server.kill()
        server.wait()


def test_a_worker_that_dies_while_starting_is_noticed_at_once(tmp_path, monkeypatch):
    """The starter watches the process it launched: no wait for the start timeout, which
    every queued job used to wait out in turn while holding the start lock."""
    monkeypatch.setattr(worker, "START_TIMEOUT_S", 3600.0)
    monkeypatch.setenv(worker.ENV_IDLE, "not-a-number")  # the worker exits at start
    monkeypatch.setenv("PYTHONPATH", SRC)
    with pytest.raises(OSError, match="exited with 1 while starting"):
        worker._start(tmp_path / "w.sock")
    assert worker._start(tmp_path / "w.sock") is None  # the next jobs don't try again


HUNG_ENVS = """
import time
import rlpipe.rollouts.evaluate, rlpipe.rollouts.record

class Hung:
    def reset(self):
        import numpy as np
        return np.zeros((1, 2), np.float32), {}
    def step(self, actions):
        time.sleep(3600)  # a hung device or emulator

rlpipe.rollouts.evaluate.make_vec_env = rlpipe.rollouts.record.make_vec_env = lambda *a, **k: Hung()
"""


@pytest.mark.parametrize("job", ["evaluate", "record"])
def test_evaluation_and_recording_run_under_the_stall_watchdog(tmp_path, job):
    """A hung evaluation or recording exits with the watchdog's status and message, so
    Snakemake retries it, instead of waiting forever."""
    from rlpipe.algos.qlearn import qtable

    ckpt = tmp_path / "q.npz"
    qtable.save(ckpt, tiny_qtable())
    call = {
        "evaluate": "rlpipe.rollouts.evaluate.evaluate_job("
        f"{str(ckpt)!r}, {str(tmp_path / 'e.json')!r},"
        " 1, 1, 10, stall_timeout=2)",
        "record": f"rlpipe.rollouts.record.record_job({str(ckpt)!r},"
        f" {str(tmp_path / 'd/MANIFEST.json')!r}, 'd', 1, 1, 10, 1, stall_timeout=2)",
    }[job]
    proc = subprocess.run(
        [sys.executable, "-c", HUNG_ENVS + call],
        env={**os.environ, "PYTHONPATH": SRC},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == EXIT_CODE, proc.stderr
    assert "no progress for" in proc.stderr


@pytest.mark.slow
def test_gpu_jobs_through_spares_give_the_bytes_of_cold_processes(tmp_path):
    """The demo-shaped PPO run with a GPU slot per job (on a machine without a GPU the slot
    still routes its jobs to spares): the same checkpoints and evaluations as cold processes."""
    cfg = {
        "experiments": {
            "cp": {
                "algo": "ppo",
                "envs": ["CartPole-v1"],
                "seeds": [1, 2],
                "total_steps": 2 * 2048,
                "checkpoint_every": 2048,
                "hparams": dict(TINY_PPO),
                "resources": {"gpu": 1},
            }
        },
        "evaluation": {"episodes": 2, "max_episode_steps": 200},
        "summary": {"bootstrap_samples": 200},
        "gpus": {"count": 1, "jobs_per_gpu": 2},
    }
    warm = Workdir(tmp_path / "warm", cfg)
    cold = Workdir(tmp_path / "cold", cfg)
    warm.run()
    log = worker.socket_path(warm.path).with_suffix(".log").read_text()
    assert "in spare" in log, log  # GPU jobs ran in spares (those that found none: cold)
    logs = "".join(p.read_text() for p in (warm.path / "logs").rglob("*.log"))
    assert "GPU slot" in logs and "worker: unavailable" not in logs
    cold.run(env={worker.ENV_OFF: "0"})
    assert warm.checkpoints() and warm.checkpoints() == cold.checkpoints()
    for rel in sorted(p.relative_to(warm.path) for p in warm.path.rglob("eval/*.json")):
        a, b = (json.loads((d / rel).read_text()) for d in (warm.path, cold.path))
        for record in (a, b):  # which slot a job got depends on timing
            del record["gpu_slot"]
        assert a == b
