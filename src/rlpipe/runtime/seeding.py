"""Deterministic seeds derived from (run seed, segment start step)."""

from __future__ import annotations

import numpy as np


def derive_seed(seed: int, *keys: int) -> int:
    """A 31-bit seed from the run seed and integer keys (e.g. the segment's first step)."""
    return int(np.random.SeedSequence([int(seed), *map(int, keys)]).generate_state(1)[0] >> 1)
