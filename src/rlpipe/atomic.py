"""Atomic file writes: write a temp file in the target's directory, fsync, rename.

A reader (or Snakemake after a SIGKILL) sees either the old file, no file, or the
complete new file, never a partial one.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

TEMP_MARK = ".tmp-"


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temp path next to ``path``; on success it replaces ``path`` atomically."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}{TEMP_MARK}{os.getpid()}")
    try:
        yield tmp
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text(path: str | os.PathLike, text: str) -> None:
    write_bytes(path, text.encode())


def write_json(path: str | os.PathLike, obj) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def _writer_alive(temp: Path) -> bool:
    pid = temp.name.rsplit(TEMP_MARK, 1)[1]
    if not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_temps(path: str | os.PathLike) -> int:
    """Delete temp files that dead writers of ``path`` left behind; return how many.

    A temp file whose writer (the PID in its name) still runs is left alone: two attempts at
    the same output never delete each other's work in progress.
    """
    target = Path(path)
    if not target.parent.is_dir():
        return 0
    stale = [p for p in target.parent.glob(f".{target.name}{TEMP_MARK}*") if not _writer_alive(p)]
    for p in stale:
        p.unlink(missing_ok=True)
    return len(stale)
