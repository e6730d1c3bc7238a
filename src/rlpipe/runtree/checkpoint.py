"""Torch checkpoints: weights, optimiser, RNG states, counters and resolved hparams.

Saved atomically; bytes are identical for identical state (no timestamps inside). Loaded
with ``torch.load(weights_only=True)``: a checkpoint holds only tensors and plain values, so
a file carrying pickled code (e.g. from a bucket someone else can write to) is refused
instead of run. Every zip member's CRC-32 is checked first, so a flipped bit is an error,
not silently different weights.
"""

from __future__ import annotations

import pickle
import re
from pathlib import Path

import numpy as np
import torch

from rlpipe.runtree import atomic
from rlpipe.runtree.integrity import damaged, verify_zip

FORMAT = "rlpipe-torch-ckpt/2"  # RNG states as tensors and plain values
LEGACY_FORMATS = {"rlpipe-torch-ckpt/1"}  # numpy's RNG key as an ndarray
# What /1 files need beyond weights_only's defaults: plain numpy arrays, no objects or code.
NUMPY_ARRAYS = [np._core.multiarray._reconstruct, np.ndarray, np.dtype, np.dtypes.UInt32DType]


def rng_state() -> dict:
    """The RNG streams training draws from (Python's ``random`` is not used): torch's CPU
    generator, numpy's, and each CUDA device's when this process uses CUDA (otherwise every
    segment would start from the same reseeded CUDA stream)."""
    numpy = np.random.get_state(legacy=False)  # MT19937: a uint32 key, plain values
    key = torch.from_numpy(numpy["state"]["key"].astype(np.int64))
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {**numpy, "state": {"key": key, "pos": int(numpy["state"]["pos"])}},
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()  # one ByteTensor per visible device
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available():
        for device, cuda_state in enumerate(state["cuda"][: torch.cuda.device_count()]):
            torch.cuda.set_rng_state(cuda_state, device)
    numpy = state["numpy"]
    key = numpy["state"]["key"]
    key = key.numpy() if isinstance(key, torch.Tensor) else key  # /1 stored an ndarray
    np.random.set_state({**numpy, "state": {**numpy["state"], "key": key.astype(np.uint32)}})


def save(path: str | Path, **payload) -> None:
    """Save ``payload`` (plus format tag and RNG states) atomically to ``path``."""
    payload = {"format": FORMAT, "rng": rng_state(), **payload}
    with atomic.atomic_path(path) as tmp:
        torch.save(payload, tmp)


def load(path: str | Path, expect_algo: str | None = None) -> dict:
    """Load a checkpoint; errors name the file, what is wrong and what to do."""
    try:
        verify_zip(path)
        with torch.serialization.safe_globals(NUMPY_ARRAYS):
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:  # intact (CRCs match), but not ours
        found = re.search(r"GLOBAL (\S+)|but got <class '([^']+)'>", str(err))
        what = next(filter(None, found.groups()), None) if found else None
        raise damaged(
            path,
            f"refused to load: its pickle asks for {what or 'objects besides tensors'}, which "
            "rlpipe checkpoints never hold, so it may have been tampered with; nothing in it "
            "was run",
            "checkpoint",
        ) from None
    except Exception as err:  # truncated, a flipped bit (CRC), not a zip, ...
        problem = f"not a readable rlpipe checkpoint ({type(err).__name__}: {err})"
        raise damaged(path, problem, "checkpoint") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") not in {FORMAT, *LEGACY_FORMATS}:
        raise damaged(path, f"not an rlpipe checkpoint (expected format {FORMAT})", "checkpoint")
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
