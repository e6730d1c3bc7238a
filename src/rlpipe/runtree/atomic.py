"""Atomic file writes: write a temp file in the target's directory, fsync, rename.

A reader (or Snakemake after a SIGKILL) sees either the old file, no file, or the
complete new file, never a partial one. Temp names carry the writing attempt (host and PID),
so two attempts at one output (a retry beside an orphan, two SLURM nodes) never share one.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

TEMP_MARK = ".tmp-"


def attempt_id() -> str:
    """This process's attempt at writing something: ``<host>-<pid>``."""
    return f"{socket.gethostname()}-{os.getpid()}"


def attempt_alive(attempt: str) -> bool:
    """False only for an attempt of this host whose process is gone (another host's may be
    alive there: it is never judged dead from here)."""
    host, sep, pid = attempt.rpartition("-")
    host = host if sep else socket.gethostname()  # a bare PID: an older temp name, this host's
    if host != socket.gethostname() or not pid.isdigit():
        return host != socket.gethostname()
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextmanager
def atomic_path(path: str | os.PathLike, temp_name: str | None = None) -> Iterator[Path]:
    """Yield a temp path next to ``path``; on success it replaces ``path`` atomically.

    ``temp_name`` replaces the target's name in the temp's (for readers that pick files up
    by name, e.g. TensorBoard reads every file whose name contains "tfevents").
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(target, temp_name)
    try:
        yield tmp
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def temp_path(path: str | os.PathLike, temp_name: str | None = None) -> Path:
    """This process's temp path for ``path`` (see :func:`remove_stale_temps`)."""
    target = Path(path)
    return target.with_name(f".{temp_name or target.name}{TEMP_MARK}{attempt_id()}")


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text(path: str | os.PathLike, text: str) -> None:
    write_bytes(path, text.encode())


def write_json(path: str | os.PathLike, obj) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def remove_stale_temps(path: str | os.PathLike, temp_name: str | None = None) -> int:
    """Delete temps (files or dirs) that dead writers of ``path`` left behind; return how many.

    A temp whose writer may still run (its attempt, see :func:`attempt_alive`) is left
    alone: two attempts at the same output never delete each other's work in progress.
    """
    target = Path(path)
    if not target.parent.is_dir():
        return 0
    stale = [
        p
        for p in target.parent.glob(f".{temp_name or target.name}{TEMP_MARK}*")
        if not attempt_alive(p.name.rsplit(TEMP_MARK, 1)[1])
    ]
    for p in stale:
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)
    return len(stale)
