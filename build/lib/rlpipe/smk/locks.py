"""Recover from Snakemake's stale locks after a SIGKILL, so rerunning is the whole recovery.

Snakemake's directory locks (``.snakemake/locks``) carry no owner: a killed run leaves them
behind and the next run refuses to start. The main process of every user-started rlpipe run
(never a job step, never the restore probe) calls :func:`hold_directory` while the Snakefile is
parsed: it takes an exclusive ``flock`` on ``.snakemake/rlpipe-session.lock`` and keeps it for
the life of the process. The kernel frees a flock when its holder dies, even on SIGKILL. If the
flock is free, no other rlpipe run is alive in this directory: leftover Snakemake locks are
stale and :func:`clear_stale_locks` removes them, and restoring from a remote may write here.
If another run holds it, this process touches nothing (a ``-n`` beside a live run only plans).
"""

from __future__ import annotations

import fcntl
import os
import shutil
import sys
from pathlib import Path

SESSION_LOCK = "rlpipe-session.lock"
_held: list[int] = []


def hold_directory(snakemake_dir: str | os.PathLike = ".snakemake") -> bool:
    """Take this directory's rlpipe session flock for the life of the process; False if
    another live rlpipe run holds it."""
    if _held:
        return True
    root = Path(snakemake_dir)
    root.mkdir(parents=True, exist_ok=True)
    fd = os.open(root / SESSION_LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return False
    _held.append(fd)
    return True


def clear_stale_locks(snakemake_dir: str | os.PathLike = ".snakemake") -> bool:
    """Remove Snakemake's locks; call only while :func:`hold_directory` holds the flock."""
    if not _held:
        raise RuntimeError("clear_stale_locks() without the session flock (hold_directory)")
    locks = Path(snakemake_dir) / "locks"
    if locks.is_dir() and any(locks.iterdir()):
        shutil.rmtree(locks)
        print("rlpipe: removed stale Snakemake locks left by a killed run", file=sys.stderr)
        return True
    return False
