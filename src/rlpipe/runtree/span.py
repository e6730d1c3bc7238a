"""The training segment, shared by the algorithms (rlpipe.algos)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Segment:
    """One training job: environment steps (start, end] of run (env_id, seed)."""

    env_id: str
    seed: int
    start_step: int
    end_step: int
