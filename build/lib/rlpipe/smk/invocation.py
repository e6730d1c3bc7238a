"""What the user asked Snakemake for, read from its command line with Snakemake's own parser.

The Snakefile is parsed before Snakemake hands it the targets and the DAG settings, so code
that runs at parse time (the durable restore's probe) reads them from ``sys.argv``.
"""

from __future__ import annotations

import io
import sys
from contextlib import redirect_stderr
from functools import cache
from pathlib import Path


@cache
def _args():
    """The parsed command line, or None when Snakemake was not started from its CLI."""
    if Path(sys.argv[0]).name not in ("snakemake", "__main__.py"):
        return None
    from snakemake.cli import parse_args

    with redirect_stderr(io.StringIO()):  # it announces the profiles; Snakemake did already
        _, args = parse_args(sys.argv[1:])
    return args


def targets() -> list[str]:
    """The targets given on the command line ([] = the default target)."""
    args = _args()
    return list(args.targets or []) if args else []


def force_args() -> list[str]:
    """The command line's ``--forceall``/``--forcerun``/``--force`` flags, for a dry run."""
    args = _args()
    if args is None:
        return []
    out = ["--forceall"] if args.forceall else []
    if args.force:
        out.append("--force")
    if args.forcerun:
        out += ["--forcerun", *args.forcerun]
    return out


def executor() -> str:
    """The executor plugin's name (profiles applied): "local" unless one was chosen."""
    args = _args()
    return (args.executor if args else None) or "local"


def profile_configs(name: str = "rlpipe.yaml") -> list[Path]:
    """The ``rlpipe.yaml`` beside each ``--profile``'s config, in the order given: workflow
    config a profile adds (e.g. the runpod profile's durable remote)."""
    args = _args()
    if args is None or not args.profile:
        return []
    from snakemake.cli import get_profile_dir

    found = []
    for profile in args.profile:
        entry = get_profile_dir(profile)
        if entry is not None and (entry[0] / name).is_file():
            found.append(entry[0] / name)
    return found


def dry_run() -> bool:
    """``-n`` / ``--dry-run`` was given."""
    args = _args()
    return bool(args and args.dryrun)
