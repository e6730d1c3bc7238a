"""Jobs die with the Snakemake that started them; a new run waits for the jobs of a killed one.

Local jobs are child processes of the Snakemake main process. ``kill -9`` of that PID alone
leaves them running as orphans. The next run would then train the same segment a second time
while the orphan still writes to it. So:

- the main process puts its identity (PID and start time) in ``$RLPIPE_MAIN`` while the
  Snakefile is parsed; jobs inherit it;
- every job (:func:`guard_job`, called first thing by each rule script) holds a shared
  ``flock`` on ``.snakemake/rlpipe-jobs.lock`` and runs a thread that ends the job at once
  (before it writes another byte) when that main process is gone;
- a new main process (:func:`wait_for_orphans`) takes that lock exclusively before it
  schedules anything, so it waits, with a message, until every job of a killed run has ended.

Jobs under SLURM run on other machines and are SLURM's to track: they are not guarded here.
"""

from __future__ import annotations

import fcntl
import os
import sys
import threading
import time
from pathlib import Path

ENV_MAIN = "RLPIPE_MAIN"
JOBS_LOCK = ".snakemake/rlpipe-jobs.lock"
EXIT_ORPHANED = 75  # EX_TEMPFAIL
POLL_S = 0.5
_held: list[int] = []


def _start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (/proc), None if it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def identity(pid: int | None = None) -> str:
    pid = os.getpid() if pid is None else pid
    return f"{pid}:{_start_time(pid)}"


def mark_main() -> None:
    """In the Snakemake main process: let jobs know whose jobs they are."""
    os.environ[ENV_MAIN] = identity()


def alive(ident: str) -> bool:
    """True while the process ``pid:start`` runs (a reused PID has another start time)."""
    pid, start = ident.split(":", 1)
    return _start_time(int(pid)) == start


def _lock(path: Path, mode: int) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, mode)
    except BlockingIOError:
        os.close(fd)
        raise
    return fd


def guard_job(workdir: str | Path = ".") -> None:
    """In a job: register with the job lock and end the job when its main process dies."""
    main = os.environ.get(ENV_MAIN)
    if not main or os.environ.get("SLURM_JOB_ID") or _held:
        return
    _held.append(_lock(Path(workdir, JOBS_LOCK), fcntl.LOCK_SH))
    if not alive(main):
        _orphaned(main)

    def watch() -> None:
        while alive(main):
            time.sleep(POLL_S)
        _orphaned(main)

    threading.Thread(target=watch, name="rlpipe-jobguard", daemon=True).start()


def _orphaned(main: str) -> None:
    sys.__stderr__.write(
        f"rlpipe: the Snakemake process that started this job ({main.split(':')[0]}) is gone; "
        "ending the job so that the next run redoes it alone\n"
    )
    sys.__stderr__.flush()
    os._exit(EXIT_ORPHANED)


def wait_for_orphans(workdir: str | Path = ".", poll_s: float = 0.2) -> float:
    """In a new main process: wait until no job of an earlier run holds the job lock.

    Returns the seconds waited. Orphans end themselves within ``POLL_S`` of their main
    process's death, so the wait is short; it is printed so that nobody wonders.
    """
    path = Path(workdir, JOBS_LOCK)
    t0 = time.monotonic()
    announced = False
    while True:
        try:
            fd = _lock(path, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if not announced:
                print(
                    "rlpipe: jobs of a killed run in this directory are still running; "
                    "waiting for them to end before scheduling",
                    file=sys.stderr,
                )
                announced = True
            time.sleep(poll_s)
            continue
        os.close(fd)  # released at once: this run's own jobs take it shared
        waited = time.monotonic() - t0
        if announced:
            print(f"rlpipe: they ended after {waited:.1f}s", file=sys.stderr)
        return waited
