"""Set-up shared by the rule scripts: send their output to the rule's log file."""

import os
import sys
from contextlib import contextmanager


def redirect_to_log(snakemake) -> None:
    """Point stdout and stderr (Python and C level) at ``snakemake.log[0]``."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    if not snakemake.log:
        return
    fh = open(snakemake.log[0], "w", buffering=1)
    os.dup2(fh.fileno(), 1)
    os.dup2(fh.fileno(), 2)
    sys.stdout = sys.stderr = fh


@contextmanager
def segment_job(snakemake):
    """Set-up every training job shares; yields the watchdog's ``beat`` for the loop.

    Refuses to start without enough free disk (retried later), removes temp files a killed
    attempt left, and ends the job if its loop stops making progress for ``stall_timeout``.
    """
    from rlpipe.atomic import remove_stale_temps
    from rlpipe.durable import guard_disk
    from rlpipe.watchdog import Watchdog

    guard_disk(snakemake)
    remove_stale_temps(snakemake.output[0])
    stall_timeout = snakemake.config["experiments"][snakemake.wildcards.exp]["stall_timeout"]
    with Watchdog(stall_timeout, snakemake.output[0]) as watchdog:
        yield watchdog.beat
