"""A warm worker: jobs hand their work to a process that has torch, EnvPool and numba loaded.

A fresh job process pays seconds before its first step: Python, ``import torch``, EnvPool,
and the first optimiser step, which imports ``torch._dynamo``; on a GPU also CUDA's start
and its first kernels (about 10 s on an H200). A segment's training may take no longer. So
each machine keeps one worker per working directory:

- The first job that finds none starts it, detached (its own session). It exits once its
  jobs are done and the Snakemake run that started it has ended, or after ``IDLE_S`` without
  jobs (``$RLPIPE_WORKER_IDLE_S``; under SLURM that run is on another machine: idle only).
  A worker that dies while starting is noticed at once: the job runs in its own process.
- A job (``run``) sends one JSON request over a UNIX socket in a private directory: the job
  function it names (an rlpipe ``*_job`` function of plain-data arguments, e.g.
  ``rlpipe.algos.ppo.train:segment_job``), its working directory, environment (its GPU slot's
  ``CUDA_VISIBLE_DEVICES`` included) and log file. The worker runs it in a process of its
  own, which exits with the job's status, which the job process exits with.
- **CPU jobs are forked.** The worker imports and warms the libraries on one thread
  (``rlpipe.warm.jobproc.warm_imports``), touches no CUDA and creates no environment, so it has
  no threads and may fork: a CPU job starts in milliseconds.
- **GPU jobs are never forked** (``rlpipe.warm.jobproc.uses_cuda``: a job given GPUs, or from
  which none were hidden). CUDA does not work in a child forked from a process that started
  it, and torch starts it from places that change between versions (an optimiser's step
  probes the accelerator). They run in spares (``rlpipe.warm.spares``): fresh processes started
  ahead of time with the job's CUDA settings, warmed up on their GPU, waiting for one job
  each. Why not the alternatives: a cold process per GPU job paid about 10 s on an H200
  (20 s for a segment of 10 s of training); forking after the parent touched CUDA hangs or
  fails; a worker per GPU that *runs* jobs itself would give up a killed job's process
  isolation. A spare keeps the cold process's isolation and bytes and starts warm.
- Crash semantics stay those of a job process: if the job process dies (killed, or its
  Snakemake died, see ``rlpipe.smk.jobguard``), its connection closes and the worker kills
  the job's process at once; that process also watches the job process itself.
- Stale code: a job sends the code versions of its rule (``rlpipe.smk.provenance``). If the worker
  loaded other versions of those modules, it refuses, exits, and the job runs in its own
  process, so an edit to ``src/`` never runs old code.

``RLPIPE_WORKER=0`` turns the worker off (each job runs in its own process, as before).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import selectors
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rlpipe.runtime.gpu_slots import jobs_per_gpu
from rlpipe.warm.jobproc import become, check_target, job_function, uses_cuda, warm_imports
from rlpipe.warm.spares import SparePool

ENV_OFF = "RLPIPE_WORKER"
ENV_IDLE = "RLPIPE_WORKER_IDLE_S"
IDLE_S = 120.0
START_TIMEOUT_S = 120.0


def socket_path(workdir: str | os.PathLike) -> Path:
    """This machine's worker socket for ``workdir`` (node-local, in a private directory)."""
    base = Path(tempfile.gettempdir(), f"rlpipe-{os.getuid()}")
    base.mkdir(mode=0o700, exist_ok=True)
    key = f"{socket.gethostname()}:{os.path.realpath(workdir)}"
    return base / f"{hashlib.sha1(key.encode()).hexdigest()[:16]}.sock"


# --- the job's side -------------------------------------------------------------------------


def run(target: str, kwargs: dict, code: dict | None = None, log: str | None = None) -> int:
    """Run the job function ``target`` with ``kwargs`` in the worker (started if needed) or,
    failing that, here; returns the exit status the job process should end with.

    ``code`` is the rule's code-version param: a worker that loaded other versions refuses.
    """
    check_target(target)
    if os.environ.get(ENV_OFF) != "0":
        try:
            status = _run_in_worker(target, kwargs, code or {}, log)
        except OSError as exc:
            print(f"rlpipe worker: unavailable ({exc}); running the job here", file=sys.stderr)
            status = None
        if status is not None:
            return status
    job_function(target)(**kwargs)
    return 0


def _run_in_worker(target: str, kwargs: dict, code: dict, log: str | None) -> int | None:
    path = socket_path(os.getcwd())
    conn = _connect(path) or _start(path)
    if conn is None:
        return None
    request = {
        "target": target,
        "kwargs": kwargs,
        "code": code,
        "cwd": os.getcwd(),
        "env": dict(os.environ),
        "log": os.path.abspath(log) if log else None,
        "client": _identity(),
    }
    with conn, conn.makefile("rw") as stream:
        stream.write(json.dumps(request) + "\n")
        stream.flush()
        first = json.loads(stream.readline() or "{}")
        reply = json.loads(stream.readline() or "{}") if "started" in first else first
    if "exit" in reply:
        return int(reply["exit"])
    if "started" not in first:  # refused, or the worker was ending: nothing ran
        print(f"rlpipe worker: {reply.get('refused', 'not available')}; running the job here")
        return None
    # The worker died under the job: its child ends once this process is gone, and a retry
    # starts a fresh worker. Running the job here now could race that child.
    print("rlpipe worker: lost the worker mid-job; failing so that Snakemake retries it")
    return 1


def _connect(path: Path) -> socket.socket | None:
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        conn.connect(str(path))
    except OSError:
        conn.close()
        return None
    return conn


def _start(path: Path) -> socket.socket | None:
    """Start the worker (one starter at a time) and connect to it; a worker that exits
    before it serves is an error at once, not after ``START_TIMEOUT_S``. After such a
    failure no job tries again for ``IDLE_S`` (each would pay the worker's imports): they
    return None and run in their own process."""
    failed = path.with_suffix(".failed")
    with open(path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        conn = _connect(path)
        if conn is not None:
            return conn
        with contextlib.suppress(FileNotFoundError):
            if time.time() - failed.stat().st_mtime < IDLE_S:
                print(f"rlpipe worker: failed to start lately ({failed.read_text().strip()});"
                      " running the job here", file=sys.stderr)  # fmt: skip
                return None
        path.unlink(missing_ok=True)  # a dead worker's socket
        log = path.with_suffix(".log")
        with open(log, "a") as out:
            server = subprocess.Popen(
                [sys.executable, "-m", "rlpipe.warm.worker", str(path)],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + START_TIMEOUT_S
        while (conn := _connect(path)) is None:
            if server.poll() is not None:
                why = f"the worker exited with {server.returncode} while starting: {log}"
                failed.write_text(why + "\n")
                raise OSError(why)
            if time.monotonic() > deadline:
                raise OSError(f"the worker did not start within {START_TIMEOUT_S:.0f}s")
            time.sleep(0.05)
        return conn


def _identity() -> str:
    from rlpipe.smk.jobguard import identity

    return identity()


# --- the worker's side ----------------------------------------------------------------------


def loaded_versions() -> dict[str, str]:
    """Code versions of the rlpipe modules this process has loaded, keyed like the rules'
    ``code`` params (``rlpipe/algos/ppo/train.py``)."""
    from rlpipe.smk.provenance import source_hash

    out = {}
    for name, module in list(sys.modules.items()):
        file = getattr(module, "__file__", None)
        if (name == "rlpipe" or name.startswith("rlpipe.")) and file:
            root = Path(file).parents[name.count(".") + (file.endswith("__init__.py"))]
            out[str(Path(file).relative_to(root))] = source_hash(file)
    return out


def _stale(code: dict, loaded: dict) -> list[str]:
    return sorted(f for f, h in code.items() if f in loaded and loaded[f] != h)


def serve(path: Path, idle_s: float | None = None) -> None:
    """Accept jobs on ``path`` until idle for ``idle_s`` or the run that started it is over
    (or until handed code it did not load)."""
    from rlpipe.smk.jobguard import ENV_MAIN, alive

    idle_s = float(os.environ.get(ENV_IDLE, IDLE_S)) if idle_s is None else idle_s
    main = None if os.environ.get("SLURM_JOB_ID") else os.environ.get(ENV_MAIN)
    spares = SparePool(sys.stdout)
    if uses_cuda(os.environ):  # a GPU job started this worker: its GPU's jobs come at once
        spares.prestart(os.environ, jobs_per_gpu())
    warm_imports()
    threads = len(os.listdir("/proc/self/task"))
    if threads != 1:
        raise SystemExit(f"rlpipe worker: {threads} threads after warm-up; cannot fork safely")
    loaded = loaded_versions()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    os.chmod(path, 0o600)
    bound = path.stat().st_ino
    listener.listen(64)
    print(f"rlpipe worker {os.getpid()}: serving {path}", flush=True)
    sel = selectors.DefaultSelector()
    sel.register(listener, selectors.EVENT_READ, None)
    children: dict[int, socket.socket] = {}  # job process -> the connection of its job
    idle_since = time.monotonic()
    try:
        while children or (
            time.monotonic() - idle_since < idle_s and (main is None or alive(main))
        ):
            for key, _ in sel.select(timeout=0.05):
                if key.data is None:
                    conn, _ = listener.accept()
                    request = _read_request(conn)
                    stale = _stale(request.get("code", {}), loaded) if request else []
                    if request is None or stale:
                        why = f"it loaded other versions of {stale}" if stale else "bad request"
                        _reply(conn, {"refused": why})
                        if stale:
                            return  # let a fresh worker load the new code
                        continue
                    if main is not None:  # live as long as the latest run using it
                        main = request["env"].get(ENV_MAIN, main)
                    if uses_cuda(request["env"]):
                        pid = spares.run(request)
                        if pid is None:
                            _reply(conn, {"refused": "no warm GPU process ready yet"})
                            continue
                        print(f"rlpipe worker: job {request['target']} in spare {pid}", flush=True)
                    else:
                        pid = os.fork()
                        if pid == 0:
                            for sock in [listener, conn, *children.values()]:
                                sock.close()
                            spares.release()
                            become(request)
                    with contextlib.suppress(OSError):
                        conn.sendall((json.dumps({"started": pid}) + "\n").encode())
                    children[pid] = conn
                    sel.register(conn, selectors.EVENT_READ, pid)
                else:  # the job process closed its end: it is gone; so goes its child
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(key.data, signal.SIGKILL)
                    sel.unregister(key.fileobj)
            for pid, conn in list(children.items()):
                code = _exit_code(pid, spares)
                if code is not None:
                    with contextlib.suppress(KeyError, ValueError):
                        sel.unregister(conn)
                    _reply(conn, {"exit": code})
                    del children[pid]
                    idle_since = time.monotonic()
    finally:
        spares.close()
        listener.close()  # pending connections are refused from here on
        with contextlib.suppress(FileNotFoundError):
            if path.stat().st_ino == bound:  # not a newer worker's socket
                path.unlink()


def _exit_code(pid: int, spares: SparePool) -> int | None:
    """The exit status of the job in process ``pid`` (forked, or a spare), None if running."""
    if pid in spares.busy:
        return spares.reap(pid)
    done, status = os.waitpid(pid, os.WNOHANG)
    return os.waitstatus_to_exitcode(status) if done else None


def _read_request(conn: socket.socket) -> dict | None:
    conn.settimeout(10)
    try:
        with conn.makefile("r") as stream:
            return json.loads(stream.readline())
    except (OSError, ValueError):
        return None
    finally:
        conn.settimeout(None)


def _reply(conn: socket.socket, message: dict) -> None:
    with contextlib.suppress(OSError):
        conn.sendall((json.dumps(message) + "\n").encode())
    conn.close()


if __name__ == "__main__":
    # Thread pools start when their library is imported; the worker needs none (a job sets
    # torch's threads itself), and a process with threads must not fork.
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = "1"
    serve(Path(sys.argv[1]))
