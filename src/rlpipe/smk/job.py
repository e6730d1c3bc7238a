"""The preamble every rule script runs first: job guard, log redirection, segment set-up."""

import os
import shutil
import sys
from contextlib import ExitStack
from pathlib import Path

from rlpipe.runtime.gpu_slots import acquire_slot
from rlpipe.smk.jobguard import guard_job

_held = ExitStack()  # the job's GPU slot, held until the process ends (freed even on SIGKILL)


def redirect_to_log(snakemake) -> None:
    """Guard the job (it ends if its Snakemake dies, see ``rlpipe.smk.jobguard``), point
    stdout and stderr (Python and C level) at ``snakemake.log[0]``, and take a GPU slot if
    the job asks for a GPU (before anything initialises CUDA; see ``rlpipe.runtime.gpu_slots``);
    a job that asks for none sees no GPU."""
    from rlpipe.runtree.telemetry import job_started_now

    job_started_now()
    guard_job()
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    if snakemake.log:
        fh = open(snakemake.log[0], "w", buffering=1)
        os.dup2(fh.fileno(), 1)
        os.dup2(fh.fileno(), 2)
        sys.stdout = sys.stderr = fh
    if getattr(snakemake.resources, "gpu", 0) > 0:
        slot = _held.enter_context(acquire_slot())
        print(f"GPU slot {slot.index}, CUDA_VISIBLE_DEVICES={slot.cuda_visible_devices}")
    else:  # it asked for no GPU: it gets none (and the warm worker may fork it)
        os.environ["CUDA_VISIBLE_DEVICES"] = ""


def check_free_disk(out_path: str, prev_ckpt: str | None, min_free_mb: float) -> None:
    """Refuse to start a segment when free disk < margin + expected checkpoint size."""
    if not min_free_mb:
        return
    need = min_free_mb * 2**20 + (os.path.getsize(prev_ckpt) if prev_ckpt else 0)
    target = Path(out_path).parent
    target.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(target).free
    if free < need:
        raise RuntimeError(
            f"disk guard: only {free / 2**20:.0f} MiB free under {target}, need "
            f"{need / 2**20:.0f} MiB (durable.min_free_disk_mb={min_free_mb} plus the previous "
            "checkpoint's size); the job fails now and Snakemake retries it later"
        )


def stall_timeout(snakemake, path: str) -> float:
    """The stall timeout of the run that the run-tree file ``path`` belongs to (an operational
    setting, not a param: changing it reruns nothing)."""
    from rlpipe.runtree import layout
    from rlpipe.sweep.runs import expand_runs

    artifact = layout.parse(path)
    run = expand_runs(snakemake.config)[(artifact.exp, artifact.env, artifact.seed)]
    return run.stall_timeout


def segment_spec(snakemake) -> dict:
    """Prepare a training job and describe it for its ``segment_job`` function (every
    algorithm's takes the same arguments; ``init`` and ``dataset`` only where given).

    Refuses to start without enough free disk (the job fails and Snakemake retries it later)
    and removes temp files a killed attempt left.
    """
    from rlpipe.runtree.atomic import remove_stale_temps
    from rlpipe.sweep.runs import expand_runs

    smk = snakemake
    margin = (smk.config.get("durable") or {}).get("min_free_disk_mb", 0)
    check_free_disk(smk.output[0], smk.input.get("prev"), margin)
    remove_stale_temps(smk.output[0])
    seg = smk.params.segment
    run = expand_runs(smk.config)[(smk.wildcards.exp, seg["env"], seg["seed"])]
    inputs = smk.input.keys()
    extra = {"init": smk.input.init} if "init" in inputs else {}  # a warm start
    if "dataset" in inputs:  # the replay dataset's directory (its manifest is the input)
        extra["dataset"] = str(Path(smk.input.dataset).parent)
    return {
        **extra,
        "env": seg["env"],
        "seed": seg["seed"],
        "start": seg["start"],
        "end": seg["end"],
        "hparams": dict(smk.params.hparams),
        "ckpt": smk.output[0],
        "telemetry": smk.output.telemetry,
        "prev": smk.input.get("prev"),
        "threads": smk.threads,
        # an operational setting, not a param: changing it reruns nothing
        "stall_timeout": run.stall_timeout,
    }
