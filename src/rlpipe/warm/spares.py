"""Spawned, pre-warmed processes for GPU jobs: the warm worker never forks a job that may use
CUDA.

CUDA cannot be used in a process forked from one that started it, and torch starts it from
places that change between versions (an optimiser's ``step()`` probes the accelerator, a
``backward()`` starts the autograd engine's GPU threads). So a GPU job runs in a *spare*: a
fresh Python (``python -m rlpipe.warm.spares``) that the worker started ahead of time with the
job's CUDA settings, that imported what jobs use, started CUDA on its GPU and ran a training
step there, said so on a pipe, and now waits on its stdin for one job. It runs that job
(``rlpipe.warm.jobproc.become``) and exits.

A job is only ever given a spare that is ready. When none is, the job runs in its own process
at once (it would otherwise wait out a warm-up that costs what a cold start costs) and a spare
starts warming for the next. Each time a spare takes a job, spares start until as many wait as
that GPU's jobs run, so the next wave of segments starts warm; a worker started by a GPU job
starts one spare per job sharing that GPU before its own imports. Waiting spares are capped
at one per 2 cores: a warm-up costs a cold start's CPU, and a small machine's cores should
train. An idle spare exits when the worker does (its stdin closes).
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import time
from dataclasses import dataclass

# What a CUDA context depends on: set before CUDA starts, so a spare is only ever given jobs
# whose values equal the ones it started with.
CUDA_KEYS = (
    "CUDA_VISIBLE_DEVICES",
    "CUDA_DEVICE_ORDER",
    "CUBLAS_WORKSPACE_CONFIG",
    "PYTORCH_CUDA_ALLOC_CONF",
    "PYTORCH_ALLOC_CONF",
)
ENV_READY_FD = "RLPIPE_SPARE_READY_FD"


def cuda_key(env: dict) -> tuple:
    return tuple(env.get(k) for k in CUDA_KEYS)


@dataclass
class Spare:
    proc: subprocess.Popen
    key: tuple
    ready_fd: int  # readable once the spare is warm (a line) or dead (end of file)
    ready: bool = False

    def poll_ready(self) -> bool:
        """True once warm; a spare that died while warming never becomes ready."""
        if not self.ready and self.proc.poll() is None:
            if select.select([self.ready_fd], [], [], 0)[0]:
                self.ready = os.read(self.ready_fd, 64) != b""
        return self.ready and self.proc.poll() is None

    def close(self) -> None:
        os.close(self.ready_fd)


class SparePool:
    """The worker's spares, by CUDA settings; ``out`` receives their warm-up messages."""

    def __init__(self, out=None, max_idle: int | None = None):
        self.out = out
        self.max_idle = max_idle or max(1, (os.cpu_count() or 2) // 2)
        self.idle: list[Spare] = []
        self.busy: dict[int, Spare] = {}

    def _spawn(self, key: tuple) -> None:
        env = {k: v for k, v in os.environ.items() if k not in CUDA_KEYS}
        env.update({k: v for k, v in zip(CUDA_KEYS, key, strict=True) if v is not None})
        read, write = os.pipe()
        env[ENV_READY_FD] = str(write)
        proc = subprocess.Popen(
            [sys.executable, "-m", "rlpipe.warm.spares"],
            stdin=subprocess.PIPE,
            stdout=self.out,
            stderr=self.out,
            env=env,
            pass_fds=(write,),
        )
        os.close(write)
        self.idle.append(Spare(proc, key, read))

    def _top_up(self, key: tuple, want: int) -> None:
        """Start spares for ``key`` until ``want`` wait (within the cap on waiting spares)."""
        have = sum(s.key == key for s in self.idle)
        for _ in range(min(want - have, self.max_idle - len(self.idle))):
            self._spawn(key)

    def prestart(self, env: dict, count: int) -> None:
        """Start ``count`` spares for the CUDA settings of ``env`` (a GPU job's)."""
        self._top_up(cuda_key(env), count)

    def run(self, request: dict) -> int | None:
        """Hand ``request`` to a ready spare of its CUDA settings and return the PID that runs
        it, or None when no spare is ready (the job then runs in its own process); either
        way, start the spares the next jobs will want."""
        for spare in [s for s in self.idle if s.proc.poll() is not None]:  # failed warm-ups
            self.idle.remove(spare)
            spare.close()
        key = cuda_key(request["env"])
        spare = next((s for s in self.idle if s.key == key and s.poll_ready()), None)
        running = sum(s.key == key for s in self.busy.values())
        if spare is None:
            self._top_up(key, running + 1)
            return None
        self.idle.remove(spare)
        self.busy[spare.proc.pid] = spare
        self._top_up(key, running + 1)
        try:
            spare.proc.stdin.write((json.dumps(request) + "\n").encode())
            spare.proc.stdin.close()
        except OSError:  # it died after the check above: the job's exit status says so
            pass
        return spare.proc.pid

    def reap(self, pid: int) -> int | None:
        """The exit status of the job in spare ``pid`` once it has ended, else None."""
        code = self.busy[pid].proc.poll()
        if code is not None:
            self.busy.pop(pid).close()
        return code

    def release(self) -> None:
        """In a forked child: let go of the spares' pipes (they see their worker's end)."""
        for spare in [*self.idle, *self.busy.values()]:
            spare.close()
            if not spare.proc.stdin.closed:
                spare.proc.stdin.close()

    def close(self) -> None:
        """End the idle spares (busy ones end with their jobs)."""
        for spare in self.idle:
            spare.proc.kill()
            spare.proc.wait()
            spare.close()
        self.idle.clear()


def warm_cuda() -> str:
    """Import what jobs use, start CUDA and run one training step of the Nature CNN there (the
    job's first step then loads no kernels); returns the device type."""
    from rlpipe.warm.jobproc import warm_imports

    warm_imports()
    import torch

    from rlpipe.algos.nets import ActorCritic
    from rlpipe.runtime.device import torch_device

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
    """A spare: warm up, say so, wait for one job on stdin, become it (exit when stdin
    closes first)."""
    from rlpipe.warm.jobproc import become

    ready_fd = int(os.environ.pop(ENV_READY_FD))
    started = time.monotonic()
    device = warm_cuda()
    print(
        f"rlpipe spare {os.getpid()}: warm on {device} in {time.monotonic() - started:.1f} s",
        file=sys.stderr,
        flush=True,
    )
    os.write(ready_fd, b"ready\n")
    os.close(ready_fd)
    line = sys.stdin.readline()
    if not line:
        return  # the worker is gone
    become(json.loads(line))


if __name__ == "__main__":
    main()
