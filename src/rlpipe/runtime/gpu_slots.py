"""Exclusive GPU slots for concurrent jobs on one machine.

Snakemake can limit how many GPU jobs run at once (``--resources gpu=SLOTS``) but does not say
which GPU a job gets (snakemake#281). Each job therefore takes one of
``SLOTS = n_gpus * jobs_per_gpu`` slots with an exclusive ``flock`` on
``<slot_dir>/slot<i>.lock``. The open file descriptor holds the lock for the job's life (also
across ``exec`` and in children that inherit it); the kernel frees it when the last holder
dies, even on SIGKILL, so a killed job never leaves a slot taken.

Slot ``i`` runs on GPU ``i // jobs_per_gpu`` (an index into the ``CUDA_VISIBLE_DEVICES`` the
job started with, if set, else a physical index) and may use ``1 / jobs_per_gpu`` of its
memory: apply it with ``torch.cuda.set_per_process_memory_fraction`` when CUDA is present.
Slots are tried GPU by GPU in turn, so a few jobs spread over all GPUs.

Under SLURM (``SLURM_JOB_ID`` set) SLURM has already chosen the GPUs: no slot is taken and
``CUDA_VISIBLE_DEVICES`` is left alone. With 0 GPUs nothing happens. A process that already
holds a slot (``RLPIPE_GPU_SLOT`` set, e.g. by the CLI wrapper) takes no second one, so a
training script may call ``acquire_slot`` whether or not its rule used the wrapper.

Settings; arguments win over environment variables:
  ``RLPIPE_GPUS``          GPUs to share (default 0: no slots)
  ``RLPIPE_JOBS_PER_GPU``  jobs sharing one GPU (default 1)
  ``RLPIPE_GPU_SLOT_DIR``  lock directory (default ``.snakemake/gpu-slots`` in the job's cwd;
                           point all workflows on a machine at one directory to share GPUs)

In Python, before CUDA is initialised::

    with acquire_slot(n_gpus, jobs_per_gpu) as slot:
        if slot.memory_fraction and torch.cuda.is_available():
            torch.cuda.set_per_process_memory_fraction(slot.memory_fraction)
        ...

For shell rules: ``python -m rlpipe.runtime.gpu_slots [--gpus N] [--jobs-per-gpu K]
[--slot-dir DIR] -- CMD ARGS...`` takes a slot and execs CMD holding it, with
``CUDA_VISIBLE_DEVICES``, ``RLPIPE_GPU_SLOT`` and ``RLPIPE_GPU_MEMORY_FRACTION`` set.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ENV_GPUS = "RLPIPE_GPUS"
ENV_JOBS_PER_GPU = "RLPIPE_JOBS_PER_GPU"
ENV_SLOT_DIR = "RLPIPE_GPU_SLOT_DIR"
ENV_SLOT = "RLPIPE_GPU_SLOT"
ENV_MEMORY_FRACTION = "RLPIPE_GPU_MEMORY_FRACTION"
DEFAULT_SLOT_DIR = ".snakemake/gpu-slots"


@dataclass(frozen=True)
class Slot:
    """What a job got. ``index`` is None when it holds no slot (no GPUs, or under SLURM)."""

    index: int | None
    cuda_visible_devices: str | None  # as the job sees it (SLURM's value under SLURM)
    memory_fraction: float | None  # share of the GPU's memory; None: no limit


def _count(value: int | str | None, env_var: str, default: int, minimum: int) -> int:
    """An argument, else the env var, else the default; must be an integer >= minimum."""
    source = "argument" if value is not None else f"environment variable {env_var}"
    if value is None:
        value = os.environ.get(env_var, default)
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ValueError(f"{source} must be an integer, got {value!r}") from None
    if number < minimum:
        raise ValueError(f"{source} must be >= {minimum}, got {number}")
    return number


def _slot_order(n_gpus: int, jobs_per_gpu: int) -> list[int]:
    """Slot indices GPU by GPU in turn: 2 GPUs x 2 -> [0, 2, 1, 3] (GPUs 0, 1, 0, 1)."""
    return [gpu * jobs_per_gpu + k for k in range(jobs_per_gpu) for gpu in range(n_gpus)]


def _device(gpu: int, n_gpus: int) -> str:
    """GPU number -> CUDA_VISIBLE_DEVICES value, within the devices the job started with."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is None:
        return str(gpu)
    devices = [d.strip() for d in visible.split(",") if d.strip()]
    if len(devices) < n_gpus:
        raise ValueError(
            f"{n_gpus} GPUs configured but CUDA_VISIBLE_DEVICES={visible!r} lists {len(devices)}"
        )
    return devices[gpu]


def _take_slot(
    n_gpus: int, jobs_per_gpu: int, slot_dir: Path, timeout: float | None, poll_s: float
) -> tuple[int, int]:
    """Lock a free slot file, waiting if all are taken; return (fd, slot index)."""
    slot_dir.mkdir(parents=True, exist_ok=True)
    deadline = None if timeout is None else time.monotonic() + timeout
    warned = False
    while True:
        for index in _slot_order(n_gpus, jobs_per_gpu):
            fd = os.open(slot_dir / f"slot{index}.lock", os.O_RDWR | os.O_CREAT, 0o666)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())  # who holds it, for people looking
            return fd, index
        if deadline is not None and time.monotonic() >= deadline:
            raise TimeoutError(f"all {n_gpus * jobs_per_gpu} GPU slots in {slot_dir} are busy")
        if not warned:
            print(f"rlpipe: all GPU slots in {slot_dir} busy; waiting", file=sys.stderr)
            warned = True
        time.sleep(poll_s)


def _plan(
    n_gpus: int | str | None, jobs_per_gpu: int | str | None, slot_dir: str | os.PathLike | None
) -> tuple[int, int, Path] | None:
    """Resolved (n_gpus, jobs_per_gpu, slot_dir), or None when no slot is to be taken."""
    n_gpus = _count(n_gpus, ENV_GPUS, 0, 0)
    jobs_per_gpu = _count(jobs_per_gpu, ENV_JOBS_PER_GPU, 1, 1)
    if n_gpus == 0 or os.environ.get("SLURM_JOB_ID") or ENV_SLOT in os.environ:
        return None
    return n_gpus, jobs_per_gpu, Path(slot_dir or os.environ.get(ENV_SLOT_DIR) or DEFAULT_SLOT_DIR)


def _lock_slot(
    n_gpus: int, jobs_per_gpu: int, slot_dir: Path, timeout: float | None, poll_s: float
) -> tuple[int, Slot]:
    fd, index = _take_slot(n_gpus, jobs_per_gpu, slot_dir, timeout, poll_s)
    try:
        device = _device(index // jobs_per_gpu, n_gpus)
    except ValueError:
        os.close(fd)
        raise
    return fd, Slot(index, device, 1.0 / jobs_per_gpu)


@contextlib.contextmanager
def acquire_slot(
    n_gpus: int | None = None,
    jobs_per_gpu: int | None = None,
    slot_dir: str | os.PathLike | None = None,
    *,
    timeout: float | None = None,
    poll_s: float = 0.2,
) -> Iterator[Slot]:
    """Hold an exclusive GPU slot (and set CUDA_VISIBLE_DEVICES) for the ``with`` block."""
    plan = _plan(n_gpus, jobs_per_gpu, slot_dir)
    if plan is None:  # no GPUs, SLURM's choice, or a slot already held (by the CLI wrapper)
        held = os.environ.get(ENV_SLOT)
        index = int(held) if held is not None else None
        yield Slot(index, os.environ.get("CUDA_VISIBLE_DEVICES"), memory_fraction_from_env())
        return
    fd, slot = _lock_slot(*plan, timeout, poll_s)
    try:
        with _environ(_slot_env(slot)):
            yield slot
    finally:
        os.close(fd)


def _slot_env(slot: Slot) -> dict[str, str]:
    return {
        "CUDA_VISIBLE_DEVICES": slot.cuda_visible_devices,
        ENV_SLOT: str(slot.index),
        ENV_MEMORY_FRACTION: repr(slot.memory_fraction),
    }


@contextlib.contextmanager
def _environ(values: dict[str, str]) -> Iterator[None]:
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, old in saved.items():
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old


def memory_fraction_from_env() -> float | None:
    """The fraction set by ``python -m rlpipe.runtime.gpu_slots`` for the command it runs, if
    any."""
    value = os.environ.get(ENV_MEMORY_FRACTION)
    return float(value) if value else None


@dataclass(frozen=True)
class GpuSettings:
    """How many GPUs this machine shares among jobs, and how many jobs share each."""

    count: int
    jobs_per_gpu: int
    count_from: str  # where ``count`` came from, for the plan and error messages

    @property
    def slots(self) -> int:
        return self.count * self.jobs_per_gpu

    def export(self) -> None:
        """Hand the numbers to this process's jobs (``acquire_slot`` reads them)."""
        os.environ[ENV_GPUS] = str(self.count)
        os.environ[ENV_JOBS_PER_GPU] = str(self.jobs_per_gpu)


def jobs_per_gpu() -> int:
    """The jobs sharing one GPU, as this process's jobs take slots (``$RLPIPE_JOBS_PER_GPU``)."""
    return _count(None, ENV_JOBS_PER_GPU, 1, 1)


def settings_jobs_per_gpu(section: dict | None) -> int:
    """``jobs_per_gpu`` as :func:`settings` resolves it, without detecting GPUs."""
    if ENV_JOBS_PER_GPU in os.environ:
        return _count(None, ENV_JOBS_PER_GPU, 1, 1)
    return int((section or {}).get("jobs_per_gpu", 1))


def detect_gpus() -> tuple[int, str]:
    """(number of NVIDIA GPUs this process may use, how that was found), without torch."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        devices = [d for d in visible.split(",") if d.strip() and d.strip() != "-1"]
        return len(devices), "CUDA_VISIBLE_DEVICES"
    proc = Path("/proc/driver/nvidia/gpus")
    if proc.is_dir():
        return len(list(proc.iterdir())), "detected (/proc/driver/nvidia/gpus)"
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return 0, "detected (no NVIDIA driver)"
    return sum(line.startswith("GPU ") for line in out.stdout.splitlines()), "detected (nvidia-smi)"


def settings(section: dict | None) -> GpuSettings:
    """The config's ``gpus: {count, jobs_per_gpu}``; ``$RLPIPE_GPUS`` and
    ``$RLPIPE_JOBS_PER_GPU`` override it; a missing count is detected."""
    section = section or {}
    jobs = settings_jobs_per_gpu(section)
    if ENV_GPUS in os.environ:
        return GpuSettings(_count(None, ENV_GPUS, 0, 0), jobs, f"${ENV_GPUS}")
    if section.get("count") is not None:
        return GpuSettings(section["count"], jobs, "config gpus.count")
    count, source = detect_gpus()
    return GpuSettings(count, jobs, source)


def placement() -> dict:
    """Where this job runs, for telemetry and evaluation records: its slot and its
    ``CUDA_VISIBLE_DEVICES`` (both None without a slot or a GPU assignment)."""
    slot = os.environ.get(ENV_SLOT)
    return {
        "gpu_slot": int(slot) if slot is not None else None,
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m rlpipe.runtime.gpu_slots",
        description="Run CMD holding an exclusive GPU slot (see the module docstring).",
    )
    parser.add_argument("--gpus", type=int, help=f"GPUs to share (default ${ENV_GPUS} or 0)")
    parser.add_argument(
        "--jobs-per-gpu", type=int, help=f"jobs per GPU (default ${ENV_JOBS_PER_GPU} or 1)"
    )
    parser.add_argument(
        "--slot-dir", help=f"lock directory (default ${ENV_SLOT_DIR} or {DEFAULT_SLOT_DIR})"
    )
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- CMD ARGS...")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error(
            "no command given: python -m rlpipe.runtime.gpu_slots [options] -- CMD ARGS..."
        )
    plan = _plan(args.gpus, args.jobs_per_gpu, args.slot_dir)
    if plan is not None:
        fd, slot = _lock_slot(*plan, None, 0.2)
        os.set_inheritable(fd, True)  # the lock lives as long as CMD (and its children)
        os.environ.update(_slot_env(slot))
    try:
        os.execvp(command[0], command)
    except OSError as exc:
        sys.exit(f"rlpipe.runtime.gpu_slots: cannot run {command[0]!r}: {exc}")


if __name__ == "__main__":
    main()
