"""Spawned, pre-warmed processes for GPU jobs: the warm worker never forks a job that may use
CUDA.

CUDA cannot be used in a process forked from one that started it, and torch starts it from
places that change between versions (an optimiser's ``step()`` probes the accelerator). So a
GPU job runs in a *spare*: a fresh Python (``python -m rlpipe.spares``) that the worker
started ahead of time with the job's CUDA settings, that imported what jobs use, started
CUDA on its GPU and ran a training step there, and now waits on its stdin for one job. It
runs that job (``rlpipe.jobproc.become``) and exits. Each time the worker hands a spare a
job it starts spares for the same GPU until as many wait as that GPU's jobs run, so the next
wave of segments starts warm; a worker started by a GPU job starts one spare per job that
shares that GPU before its own imports. A job that finds no spare gets a new one at once and
waits for its warm-up (a cold start). An idle spare exits when the worker does (its stdin
closes).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

# What a CUDA context depends on: set before CUDA starts, so a spare is only ever given jobs
# whose values equal the ones it started with.
CUDA_KEYS = (
    "CUDA_VISIBLE_DEVICES",
    "CUDA_DEVICE_ORDER",
    "CUBLAS_WORKSPACE_CONFIG",
    "PYTORCH_CUDA_ALLOC_CONF",
    "PYTORCH_ALLOC_CONF",
)


def cuda_key(env: dict) -> tuple:
    return tuple(env.get(k) for k in CUDA_KEYS)


class SparePool:
    """The worker's spares, by CUDA settings; ``out`` receives their warm-up messages."""

    def __init__(self, out=None, max_idle: int | None = None):
        self.out = out
        # A spare's warm-up costs a cold start's CPU: at most one waiting per 2 cores, so a
        # small machine's cores train rather than warm spares (an idle one costs memory only).
        self.max_idle = max_idle or max(1, (os.cpu_count() or 2) // 2)
        self.idle: dict[tuple, list[subprocess.Popen]] = {}
        self.busy: dict[int, subprocess.Popen] = {}
        self.keys: dict[int, tuple] = {}  # PID -> the CUDA settings it started with

    def _spawn(self, key: tuple) -> subprocess.Popen:
        env = {k: v for k, v in os.environ.items() if k not in CUDA_KEYS}
        env.update({k: v for k, v in zip(CUDA_KEYS, key, strict=True) if v is not None})
        proc = subprocess.Popen(
            [sys.executable, "-m", "rlpipe.spares"],
            stdin=subprocess.PIPE,
            stdout=self.out,
            stderr=self.out,
            env=env,
        )
        self.keys[proc.pid] = key
        return proc

    def prestart(self, env: dict, count: int) -> None:
        """Start ``count`` spares for the CUDA settings of ``env`` (a GPU job's): the worker
        does this first thing when a GPU job starts it, so the first wave of jobs waits for
        spares warming beside the worker's own imports, not after them."""
        self.idle.setdefault(cuda_key(env), []).extend(
            self._spawn(cuda_key(env)) for _ in range(min(count, self.max_idle))
        )

    def run(self, request: dict) -> int:
        """Hand ``request`` to a spare of its CUDA settings (a new one if none waits), start
        spares until as many wait as such jobs run, and return the PID that runs the job."""
        key = cuda_key(request["env"])
        waiting = []
        for spare in self.idle.pop(key, []):
            if spare.poll() is None:
                waiting.append(spare)
            else:  # its warm-up failed (the worker's log says why)
                del self.keys[spare.pid]
        proc = waiting.pop(0) if waiting else self._spawn(key)  # the oldest: warm the soonest
        self.busy[proc.pid] = proc
        running = sum(self.keys[pid] == key for pid in self.busy)
        room = self.max_idle - len(waiting) - sum(len(v) for v in self.idle.values())
        waiting += [self._spawn(key) for _ in range(min(running - len(waiting), room))]
        self.idle[key] = waiting
        try:
            proc.stdin.write((json.dumps(request) + "\n").encode())
            proc.stdin.close()
        except OSError:  # it died after the check above: the job's exit status says so
            pass
        return proc.pid

    def reap(self, pid: int) -> int | None:
        """The exit status of the job in spare ``pid`` once it has ended, else None."""
        code = self.busy[pid].poll()
        if code is not None:
            del self.busy[pid], self.keys[pid]
        return code

    def close(self) -> None:
        """End the idle spares (busy ones end with their jobs)."""
        for procs in self.idle.values():
            for proc in procs:
                proc.kill()
                proc.wait()
                del self.keys[proc.pid]
        self.idle.clear()


def warm_cuda() -> str:
    """Import what jobs use, start CUDA and run one training step of the Nature CNN there (the
    job's first step then loads no kernels); returns the device type."""
    from rlpipe.jobproc import warm_imports

    warm_imports()
    import torch

    from rlpipe.agents import ActorCritic
    from rlpipe.device import torch_device

    device = torch_device()
    if device.type != "cuda":
        return device.type
    agent = ActorCritic((4, 84, 84), 6, "cnn").to(device)
    optimizer = torch.optim.Adam(agent.parameters(), lr=1e-4, eps=1e-5, fused=True)
    obs = torch.zeros((8, 4, 84, 84), dtype=torch.uint8, device=device)
    _, logprob, entropy, value = agent.get_action_and_value(obs)
    (logprob.sum() + entropy.sum() + value.sum()).backward()
    optimizer.step()
    torch.cuda.synchronize()
    del agent, optimizer, obs
    torch.cuda.empty_cache()
    return device.type


def main() -> None:
    """A spare: warm up, wait for one job on stdin, become it (exit when stdin closes)."""
    from rlpipe.jobproc import become

    started = time.monotonic()
    device = warm_cuda()
    print(
        f"rlpipe spare {os.getpid()}: warm on {device} in {time.monotonic() - started:.1f} s",
        file=sys.stderr,
        flush=True,
    )
    line = sys.stdin.readline()
    if not line:
        return  # the worker is gone
    become(json.loads(line))


if __name__ == "__main__":
    main()
