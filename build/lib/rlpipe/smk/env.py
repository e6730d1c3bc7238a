"""Process environment the Snakefile sets up for its jobs while it is parsed."""

from __future__ import annotations

import os
from pathlib import Path


def export_pythonpath(src_dir: str | os.PathLike) -> None:
    """Let rule scripts import rlpipe from this checkout, also in --sdm conda envs."""
    current = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(Path(src_dir)), current]))
