"""What one Snakemake invocation of the workflow settles while the Snakefile is parsed
(rules/setup.smk): the config it runs, whether it is the main run and owns the working
directory, its GPU slots, and the runs of its shard.

The main run is the process a user started: not a job step, not the restore probe
(rlpipe.remote.probe). Only it clears stale locks, cancels orphaned SLURM jobs, restores files
and extends the shard assignment.
"""

from __future__ import annotations

import sys
from pathlib import Path

from snakemake.settings.types import ExecMode

from rlpipe.remote import durable, probe, shards
from rlpipe.runtime import gpu_slots
from rlpipe.runtree import atomic
from rlpipe.smk import invocation, jobguard, locks, slurm
from rlpipe.storage.rclone import RcloneRemote, RemoteNotFound
from rlpipe.sweep.runs import Run

EMBEDDED_CONFIG = "config/config.yaml"


def assemble_config(workflow) -> dict:
    """The run's config: each --profile's rlpipe.yaml, then the --configfile files given on
    the command line, or else the embedded config/config.yaml (a command-line config file
    replaces the embedded demo rather than extending it), then --config values. The restore
    probe runs the config its parent resolved."""
    if probe.active():
        return probe.resolved_config()
    from snakemake.common.configfile import load_configfile
    from snakemake.utils import update_config

    given = list(workflow.config_settings.configfiles)
    merged: dict = {}
    for path in [*invocation.profile_configs(), *(given or [EMBEDDED_CONFIG])]:
        update_config(merged, load_configfile(str(path)))
    update_config(merged, dict(workflow.config_settings.config))
    if given:
        names = ", ".join(map(str, given))
        print(f"rlpipe: config from {names} (the embedded demo is not used)", file=sys.stderr)
    return merged


def is_main_run(workflow) -> bool:
    return workflow.exec_mode == ExecMode.DEFAULT and not probe.active()


def claim_directory(workdir: Path) -> bool:
    """Hold the working directory if no other rlpipe run does; the holder clears stale
    locks, waits for the orphaned jobs of a killed run and cancels (or, for -n, names) the
    SLURM jobs an earlier run of this directory left. True if this run holds it."""
    if not locks.hold_directory():
        return False
    locks.clear_stale_locks()
    jobguard.wait_for_orphans()
    if invocation.executor() == "slurm" and slurm.available():
        if not invocation.dry_run():
            slurm.cancel_orphans(workdir)
        elif slurm.jobs_in(workdir):
            print(
                "rlpipe: SLURM jobs of an earlier run of this directory are still "
                "alive; a real run cancels them first (rlpipe.smk.slurm)",
                file=sys.stderr,
            )
    return True


def gpu_settings(workflow, config: dict, main_run: bool) -> gpu_slots.Settings:
    """GPU slots, said once in the config (`gpus`, env vars override, count detected): jobs
    with resources.gpu > 0 each take one of count x jobs_per_gpu slots, and Snakemake runs no
    more of them at once, unless --resources gpu=N says otherwise. SLURM assigns GPUs
    itself: there the count is SLURM's business and no local limit is set."""
    settings = gpu_slots.settings(config.get("gpus"))  # ValueError: a bad `gpus`
    if main_run:
        settings.export()
        local = invocation.executor() in ("local", "dryrun", "touch")
        if local and settings.slots and "gpu" not in workflow.global_resources:
            workflow.register_resource("gpu", settings.slots)
    return settings


def shard_assignment(
    config: dict,
    shard: shards.Shard,
    settings: durable.Settings | None,
    workdir: Path,
    runs: dict[tuple, Run],
    main_run: bool,
) -> shards.Assignment:
    """The sweep's shard assignment: the main run reads the remote's, extends it with new
    runs (stored back by a real run) and leaves a local copy, which the restore probe and job
    steps read."""
    local = workdir / shards.LOCAL_COPY
    if not main_run and local.is_file():
        return shards.Assignment.from_json(local.read_text(), str(local))
    remote, stored = None, None
    if settings is not None and main_run:
        durable.ensure_configured(settings.remote, "durable state (durable.remote)")
        remote = RcloneRemote(settings.remote, retries=settings.upload_retries)
        try:
            text = shards.read_replaced(remote, shards.ASSIGNMENT_REL)
            stored = shards.Assignment.from_json(text, remote.path(shards.ASSIGNMENT_REL))
        except RemoteNotFound:
            pass
    assignment = shards.plan_assignment(config, shard.count, stored, workdir / "runs", runs)
    if main_run:
        atomic.write_text(local, assignment.to_json())
    if remote is not None and assignment != stored and not invocation.dry_run():
        remote.replace_file(local, shards.ASSIGNMENT_REL)  # pods read it meanwhile
    return assignment
