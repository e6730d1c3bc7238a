"""The torch device of a job: CUDA (within its GPU slot's memory share) when present, else CPU."""

from __future__ import annotations

import os

from rlpipe.runtime.gpu_slots import memory_fraction_from_env


def torch_device():
    """``cuda`` if torch sees a GPU (the slot set CUDA_VISIBLE_DEVICES), else ``cpu``.

    Applies the slot's memory fraction (1 / jobs_per_gpu), so jobs sharing a GPU cannot
    starve each other of memory. On CUDA, kernels are deterministic (as CleanRL's default
    ``torch_deterministic=True``): with the CUDA RNG state in the checkpoint, a resumed run
    then repeats an uninterrupted one bit for bit on the same GPU model and software.
    """
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # before CUDA starts
    import torch

    if not torch.cuda.is_available():
        return torch.device("cpu")
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False
    torch.use_deterministic_algorithms(True)
    fraction = memory_fraction_from_env()
    if fraction:
        torch.cuda.set_per_process_memory_fraction(fraction)
    return torch.device("cuda")
