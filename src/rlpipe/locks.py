"""Recover from Snakemake's stale locks after a SIGKILL, so rerunning is the whole recovery.

Snakemake's directory locks (``.snakemake/locks``) carry no owner: a killed run leaves them
behind and the next run refuses to start. rlpipe's Snakefile calls ``clear_stale_locks``
while it is parsed: it takes an exclusive ``flock`` on ``.snakemake/rlpipe-session.lock``
and keeps it for the life of the process. If the flock is free, no other rlpipe Snakemake
process is alive in this directory, so any leftover lock is stale and is removed. Jobs that
re-parse the Snakefile (cluster executors) find the flock held and leave locks alone. The
kernel frees a flock when its holder dies, even on SIGKILL.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import sys
from pathlib import Path

_held: list[int] = []


def clear_stale_locks(snakemake_dir: str | os.PathLike = ".snakemake") -> bool:
    """Remove stale Snakemake locks if no other rlpipe run holds this directory."""
    if _held:
        return False
    root = Path(snakemake_dir)
    root.mkdir(parents=True, exist_ok=True)
    fd = os.open(root / "rlpipe-session.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return False
    _held.append(fd)
    locks = root / "locks"
    if locks.is_dir() and any(locks.iterdir()):
        shutil.rmtree(locks)
        print("rlpipe: removed stale Snakemake locks left by a killed run", file=sys.stderr)
        return True
    return False
