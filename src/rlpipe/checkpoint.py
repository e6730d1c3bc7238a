"""Torch checkpoints: weights, optimiser, RNG states, counters and resolved hparams.

Saved atomically; bytes are identical for identical state (no timestamps inside).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from rlpipe import atomic

FORMAT = "rlpipe-torch-ckpt/1"


def rng_state() -> dict:
    """The RNG streams training draws from (Python's ``random`` is not used)."""
    return {
        "torch": torch.get_rng_state(),
        "numpy": np.random.get_state(legacy=False),
    }


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])


def save(path: str | Path, **payload) -> None:
    """Save ``payload`` (plus format tag and RNG states) atomically to ``path``."""
    payload = {"format": FORMAT, "rng": rng_state(), **payload}
    with atomic.atomic_path(path) as tmp:
        torch.save(payload, tmp)


def load(path: str | Path, expect_algo: str | None = None) -> dict:
    """Load a checkpoint; raise ValueError naming the file if it is not a valid one."""
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:  # truncated zip, wrong file type, ...
        raise ValueError(f"{path}: not a readable rlpipe checkpoint ({err})") from err
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise ValueError(f"{path}: not an rlpipe checkpoint (expected format {FORMAT})")
    if expect_algo and ckpt.get("algo") != expect_algo:
        raise ValueError(f"{path}: holds a {ckpt.get('algo')} policy, expected {expect_algo}")
    return ckpt


def to_cpu(obj):
    """A (nested) state dict with every tensor on the CPU, for device-independent files."""
    if isinstance(obj, torch.Tensor):
        return obj.cpu()
    if isinstance(obj, dict):
        return {k: to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [to_cpu(v) for v in obj]
    return obj
