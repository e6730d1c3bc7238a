"""Damaged run artifacts: errors that name the file, what is wrong and what to do.

Every artifact rlpipe writes is a Snakemake output that can be recomputed, so the advice is
always the same single step: delete the file and rerun the same command. What Snakemake then
recomputes depends on the kind of file (``RECOVERY``).
"""

from __future__ import annotations

import zipfile
from pathlib import Path

RECOVERY = {
    "checkpoint": "Snakemake retrains that segment (bit-identical) and reruns the jobs that "
    "depend on it",
    "telemetry": "Snakemake retrains that segment (its checkpoint comes out bit-identical) "
    "and reruns the jobs that depend on it",
    "evaluation": "Snakemake evaluates that checkpoint again and rewrites the summary",
    "dataset": "Snakemake fetches the dataset again, verified, and retrains the runs that clone it",
}


class DamagedFile(ValueError):
    """An artifact that is truncated, altered or not what its name says."""


def damaged(path: str | Path, problem: str, kind: str) -> DamagedFile:
    """The error for a damaged ``kind`` artifact at ``path``."""
    return DamagedFile(
        f"{path}: {problem}. Delete it and rerun the same command: {RECOVERY[kind]}."
    )


def read_zip(path: str | Path) -> dict[str, bytes]:
    """Every member of a zip archive, read whole so that each CRC-32 is checked.

    Readers that stop at the end of the data they need (torch.load, np.load) never check the
    CRC: a flipped bit inside a tensor or array would load silently.
    """
    with zipfile.ZipFile(path) as zf:
        return {info.filename: zf.read(info) for info in zf.infolist()}


def verify_zip(path: str | Path) -> None:
    """Check every member's CRC-32 without keeping the data (BadZipFile if one differs)."""
    with zipfile.ZipFile(path) as zf:
        bad = zf.testzip()
    if bad is not None:
        raise zipfile.BadZipFile(f"member {bad} fails its CRC-32 check")
