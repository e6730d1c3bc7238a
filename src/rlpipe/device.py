"""The torch device of a job: CUDA (within its GPU slot's memory share) when present, else CPU."""

from __future__ import annotations

from rlpipe.gpu_slots import memory_fraction_from_env


def torch_device():
    """``cuda`` if torch sees a GPU (the slot set CUDA_VISIBLE_DEVICES), else ``cpu``.

    Applies the slot's memory fraction (1 / jobs_per_gpu), so jobs sharing a GPU cannot
    starve each other of memory.
    """
    import torch

    if not torch.cuda.is_available():
        return torch.device("cpu")
    fraction = memory_fraction_from_env()
    if fraction:
        torch.cuda.set_per_process_memory_fraction(fraction)
    return torch.device("cuda")
