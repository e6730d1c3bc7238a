"""SLURM jobs that a killed Snakemake left running: found, cancelled and waited for.

``kill -9`` of the Snakemake process does not reach its sbatch jobs. A rerun would submit the
same segments again while the old jobs still train them, and the old job's step would then
delete the new job's outputs when it fails. So the main process of a run that owns its
directory (``rlpipe.smk.locks``) first asks ``squeue`` for this user's jobs whose working
directory is this one. No other rlpipe run holds the directory, so those jobs belong to an
earlier run: they are cancelled (their segments are redone from their last checkpoint), and
the run waits until SLURM reports them gone before it submits anything.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

LIVE_STATES = {"PENDING", "RUNNING", "CONFIGURING", "COMPLETING", "SUSPENDED", "REQUEUED"}
LIVE_STATES |= {"RESIZING", "SIGNALING", "STAGE_OUT", "STOPPED", "REQUEUE_HOLD", "REQUEUE_FED"}


def jobs_in(workdir: str | Path) -> dict[str, str]:
    """This user's live SLURM jobs whose working directory is ``workdir``: {id: state}."""
    out = subprocess.run(
        ["squeue", "--me", "--noheader", "--states=all", "--format=%i|%T|%Z"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    if out.returncode != 0:
        raise RuntimeError(f"squeue failed: {out.stderr.strip()}")
    here = os.path.realpath(workdir)
    jobs = {}
    for line in out.stdout.splitlines():
        job, state, cwd = (line.split("|", 2) + ["", ""])[:3]
        if state in LIVE_STATES and os.path.realpath(cwd) == here:
            jobs[job] = state
    return jobs


def cancel_orphans(workdir: str | Path, timeout_s: float = 300, poll_s: float = 2) -> list[str]:
    """Cancel the jobs an earlier run left in ``workdir`` and wait until they are gone."""
    orphans = jobs_in(workdir)
    if not orphans:
        return []
    ids = sorted(orphans, key=int)
    print(
        f"rlpipe: {len(ids)} SLURM job(s) of an earlier, killed run of this directory are "
        f"still {', '.join(sorted(set(orphans.values()))).lower()} ({', '.join(ids)}); "
        "cancelling them before resubmitting their work",
        file=sys.stderr,
    )
    subprocess.run(["scancel", *ids], check=True, timeout=60)
    deadline = time.monotonic() + timeout_s
    while left := sorted(set(ids) & set(jobs_in(workdir))):
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"SLURM jobs {', '.join(left)} of an earlier run did not end within "
                f"{timeout_s:.0f}s of scancel; end them (scancel -f) and rerun"
            )
        time.sleep(poll_s)
    print(f"rlpipe: SLURM jobs {', '.join(ids)} have ended", file=sys.stderr)
    return ids


def available() -> bool:
    return shutil.which("squeue") is not None and shutil.which("scancel") is not None
