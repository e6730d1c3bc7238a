"""Set-up shared by the rule scripts: send their output to the rule's log file."""

import os
import sys


def redirect_to_log(snakemake) -> None:
    """Point stdout and stderr (Python and C level) at ``snakemake.log[0]``."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    if not snakemake.log:
        return
    fh = open(snakemake.log[0], "w", buffering=1)
    os.dup2(fh.fileno(), 1)
    os.dup2(fh.fileno(), 2)
    sys.stdout = sys.stderr = fh
