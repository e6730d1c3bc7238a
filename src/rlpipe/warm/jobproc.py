"""Run one job in this process: what the warm worker's forked children and its spawned GPU
processes (``rlpipe.warm.spares``) share.

A job is a request: an rlpipe ``*_job`` function named ``module:function`` with plain-data
arguments, plus the working directory, environment and log file of the job process that
asked, whose identity (``client``) the job watches: it ends at once when that process is gone.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import signal
import sys
import threading
import time
import traceback

from rlpipe.algos import ALGOS

EXIT_ORPHANED = 75

# What a warm process loads before it takes a job: by name, so that no rule's code version
# (which follows imports, rlpipe.smk.provenance) depends on every algorithm through the worker.
# Every registered algorithm's trainer is among them.
WARM_MODULES = (
    "envpool",  # registers its tasks; an environment would start threads: none is made
    "numba",
    "torch",
    *(spec.job_module for spec in ALGOS.values()),
    "rlpipe.rollouts.evaluate",
    "rlpipe.rollouts.record",
)


def check_target(target: str) -> None:
    module, _, name = target.partition(":")
    if not (module.startswith("rlpipe.") and name.endswith("_job")):
        raise ValueError(f"{target!r} is not an rlpipe job function (rlpipe.MODULE:NAME_job)")


def job_function(target: str):
    """The job function ``module:function`` names: an rlpipe ``*_job`` function only."""
    check_target(target)
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


def uses_cuda(env: dict) -> bool:
    """Whether a job with environment ``env`` may start CUDA: it was given GPUs, or none were
    hidden from it. The job preamble hides every GPU from jobs that asked for none
    (``CUDA_VISIBLE_DEVICES=""``), so only GPU jobs answer yes."""
    visible = env.get("CUDA_VISIBLE_DEVICES")
    return visible is None or visible.strip() not in ("", "-1")


def warm_imports() -> None:
    """Import the libraries jobs use, on one thread, touching no CUDA: a process that
    touched CUDA must not fork.

    Imports only, no computation. The first optimiser step imports ``torch._dynamo``
    (seconds), so it is imported here directly: an optimiser's ``step()`` probes the
    accelerator (CUDA on a CUDA build of torch, even for CPU parameters). No ``backward()``
    either: on a CUDA build the autograd engine starts a thread per GPU and initialises CUDA
    (seen on an H200: threads ``pt_autograd_0`` and ``cuda0000...`` after a CPU backward).
    """
    for name in WARM_MODULES:
        importlib.import_module(name)
    import torch
    import torch._dynamo  # noqa: F401

    torch.set_num_threads(1)


def become(request: dict) -> None:
    """Become the job ``request`` describes, run it and exit with its status (never returns)."""
    status = 1
    try:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        if request.get("log"):
            fd = os.open(request["log"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            os.dup2(fd, 1)
            os.dup2(fd, 2)
            os.close(fd)
            sys.stdout = sys.stderr = open(1, "w", buffering=1, closefd=False)
        _watch(request["client"])
        job_function(request["target"])(**request["kwargs"])
        status = 0
    except SystemExit as exc:
        status = exc.code if isinstance(exc.code, int) else 1
    except BaseException:
        traceback.print_exc()
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
        os._exit(status)


def _watch(client: str) -> None:
    """End this process as soon as the job process that asked for it is gone."""
    from rlpipe.smk.jobguard import alive

    def watch() -> None:
        while alive(client):
            time.sleep(0.5)
        os._exit(EXIT_ORPHANED)

    threading.Thread(target=watch, name="rlpipe-job-client", daemon=True).start()
