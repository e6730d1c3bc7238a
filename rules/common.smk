import dataclasses
import re
import sys
import time
from pathlib import Path

import psutil
from snakemake.settings.types import ExecMode

# This checkout's library, whatever rlpipe the interpreter has installed (fresh clones and
# worktrees may share one virtualenv).
sys.path.insert(0, str(Path(workflow.basedir) / "src"))

from rlpipe import tracking as rltracking
from rlpipe.algos import ALGOS
from rlpipe.remote import durable, probe, shards
from rlpipe.replays.fetch import fingerprint_or_stored
from rlpipe.results import plan as rlplan
from rlpipe.runtime import gpu_slots
from rlpipe.runtree import atomic, layout
from rlpipe.smk import invocation, jobguard, locks, plan_block, provenance
from rlpipe.smk import slurm, sourcecache
from rlpipe.smk.env import export_pythonpath
from rlpipe.storage.rclone import RcloneRemote, RemoteError, RemoteNotFound
from rlpipe.sweep import config as rlconfig
from rlpipe.sweep.runs import ConfigError, expand_runs, read_by_others, recording_source

# Snakemake checks every planned job's script through a slow, pure path parser: remember its
# answers (rlpipe.smk.sourcecache).
sourcecache.remember_source_paths()


def assemble_config():
    """The run's config: each --profile's rlpipe.yaml, then the --configfile files given on
    the command line, or else the embedded config/config.yaml (a command-line config file
    replaces the embedded demo rather than extending it), then --config values."""
    from snakemake.common.configfile import load_configfile
    from snakemake.utils import update_config

    profiles = invocation.profile_configs()
    given = list(workflow.config_settings.configfiles)
    merged = {}
    for path in [
        *profiles,
        *(given or ["config/config.yaml"]),
    ]:  # as configfile: finds it
        update_config(merged, load_configfile(str(path)))
    update_config(merged, dict(workflow.config_settings.config))
    if given:
        names = ", ".join(map(str, given))
        print(
            f"rlpipe: config from {names} (the embedded demo is not used)",
            file=sys.stderr,
        )
    return merged


_assembled = probe.resolved_config() if probe.active() else assemble_config()
config.clear()
config.update(_assembled)

try:
    rlconfig.validate(
        config, workflow.source_path("../workflow/schemas/config.schema.yaml")
    )
    RUNS = expand_runs(config)
except ConfigError as err:
    raise WorkflowError(str(err)) from None

# Absolute: Snakemake has left the working directory when atexit hooks run.
WORKDIR = Path.cwd()
RUNS_DIR = WORKDIR / "runs"
provenance.use_disk_cache(provenance.user_cache_path())

# The main process of a run a user started (not a job step, not the restore probe) owns the
# directory if no other rlpipe run does: only then may it clear stale locks or restore files.
MAIN_RUN = workflow.exec_mode == ExecMode.DEFAULT and not probe.active()
HOLDS_DIRECTORY = MAIN_RUN and locks.hold_directory()
if HOLDS_DIRECTORY:
    locks.clear_stale_locks()
    jobguard.wait_for_orphans()
    if invocation.executor() == "slurm" and slurm.available():
        if invocation.dry_run():
            if slurm.jobs_in(WORKDIR):
                print(
                    "rlpipe: SLURM jobs of an earlier run of this directory are still "
                    "alive; a real run cancels them first (rlpipe.smk.slurm)",
                    file=sys.stderr,
                )
        else:
            slurm.cancel_orphans(WORKDIR)
if MAIN_RUN:
    jobguard.mark_main()

# GPU slots, said once in the config (`gpus`, env vars override, count detected): jobs with
# resources.gpu > 0 each take one of count x jobs_per_gpu slots (rlpipe.runtime.gpu_slots), and
# Snakemake runs no more of them at once, unless --resources gpu=N says otherwise. SLURM
# assigns GPUs itself: there the count is SLURM's business and no local limit is set.
try:
    GPUS = gpu_slots.settings(config.get("gpus"))
except ValueError as err:
    raise WorkflowError(f"gpus: {err}") from None
if MAIN_RUN:
    GPUS.export()
    local_gpus = invocation.executor() in ("local", "dryrun", "touch")
    if local_gpus and GPUS.slots and "gpu" not in workflow.global_resources:
        workflow.register_resource("gpu", GPUS.slots)

export_pythonpath(Path(workflow.basedir) / "src")

DURABLE = durable.Settings.from_config(config.get("durable"))
try:
    SHARD = shards.Shard.parse(config.get("shard"))
except ConfigError as err:
    raise WorkflowError(str(err)) from None


def shard_assignment():
    """This sharded sweep's assignment (rlpipe.remote.shards): the main run reads the remote's,
    extends it with new runs (stored back by a real run) and leaves a local copy, which the
    restore probe and job steps read."""
    local = WORKDIR / shards.LOCAL_COPY
    if not MAIN_RUN and local.is_file():
        return shards.Assignment.from_json(local.read_text(), str(local))
    remote, stored = None, None
    if DURABLE is not None and MAIN_RUN:
        durable.ensure_configured(DURABLE.remote, "durable state (durable.remote)")
        remote = RcloneRemote(DURABLE.remote, retries=DURABLE.upload_retries)
        try:
            text = shards.read_replaced(remote, shards.ASSIGNMENT_REL)
            stored = shards.Assignment.from_json(
                text, remote.path(shards.ASSIGNMENT_REL)
            )
        except RemoteNotFound:
            pass
    assignment = shards.plan_assignment(config, SHARD.count, stored, RUNS_DIR, RUNS)
    if MAIN_RUN:
        atomic.write_text(local, assignment.to_json())
    if remote is not None and assignment != stored and not invocation.dry_run():
        remote.replace_file(local, shards.ASSIGNMENT_REL)  # pods read it meanwhile
    return assignment


if SHARD is None:
    SHARD_RUNS = RUNS
else:
    try:
        _mine = shard_assignment().runs_of(SHARD.index)
    except (ConfigError, RemoteError) as err:
        raise WorkflowError(f"shard {SHARD}: {err}") from None
    SHARD_RUNS = {k: r for k, r in RUNS.items() if shards.run_name(k) in _mine}
    print(
        f"rlpipe shards: shard {SHARD} builds {len(SHARD_RUNS)} of {len(RUNS)} runs",
        file=sys.stderr,
    )


def companion_dirs(job):
    """Directories whose files travel with a job's outputs in the durable mirror (each
    "dir/"): a dataset's files beside its MANIFEST.json, and a local-directory remote inside
    this working directory that the job published to (the demo's)."""
    if job.rule.name in ("record_replays", "fetch_replays"):
        return [f"{Path(out).parent}/" for out in job.output]
    if job.rule.name == "publish_replays":
        remote = config["datasets"][job.wildcards["dataset"]]["remote"]
        local = remote.removeprefix(":local:")
        if local != remote and not Path(local).is_absolute():
            return [f"{Path(local)}/"]
    return []


def code_version(script, *modules):
    """Param: content hash of a rule script and the rlpipe modules it runs, ``modules``
    included (rerun trigger; Snakemake's mtime-based code trigger is off, see
    profiles/default)."""
    return provenance.code_version(
        Path(workflow.basedir) / "workflow" / "scripts" / script,
        Path(workflow.basedir) / "src",
        modules,
    )


def data_version(rel):
    """Param: content hash of a data file of this repository, e.g. the Atari baselines."""
    return provenance.data_version(Path(workflow.basedir) / rel)


def experiments_of(*algos):
    """Regex matching the experiments of the given algorithms (a wildcard constraint)."""
    names = [e for e, spec in config["experiments"].items() if spec["algo"] in algos]
    return "|".join(map(re.escape, names)) or "(?!)"


def run_of(wildcards):
    return RUNS[(wildcards.exp, wildcards.env, int(wildcards.seed))]


def ckpt_path(run, step):
    return run.path(ALGOS[run.algo].ckpt_kind, step)


def segment_inputs(wildcards):
    """Previous segment's checkpoint, or the init_from experiment's final one; and the
    replay dataset of an algorithm that trains on one."""
    run = run_of(wildcards)
    step = int(wildcards.step)
    if step not in run.steps:
        raise WorkflowError(
            f"{layout.run_name(run.exp, run.env, run.seed)}: step {step} is not a "
            f"segment boundary of this run ({run.steps[:3]}...)"
        )
    inputs = {}
    if ALGOS[run.algo].needs_dataset:  # fetched and verified (rules/replays.smk)
        inputs["dataset"] = f"data/replays/{run.dataset}/MANIFEST.json"
    prev = run.previous_step(step)
    if prev is not None:
        inputs["prev"] = ckpt_path(run, prev)
    elif run.init_from:
        source = RUNS[(run.init_from, run.env, run.seed)]
        inputs["init"] = ckpt_path(source, source.total_steps)
    return inputs


def segment_job_params(algo):
    """Params of an algorithm's segment jobs (rules/train.smk): the job function the worker
    runs, the hash of the code it runs (this algorithm's modules only), the segment and the
    run's hyper-parameters."""
    spec = ALGOS[algo]
    return {
        "job": spec.job,
        "code": code_version("segment.py", spec.job_module),
        "segment": segment_params,
        "hparams": lambda wildcards: run_of(wildcards).hparams,
    }


def segment_params(wildcards):
    run = run_of(wildcards)
    step = int(wildcards.step)
    prev = run.previous_step(step)
    return {"start": prev or 0, "end": step, "seed": run.seed, "env": run.env}


BUDGET_RANK = {
    b: i + 1 for i, b in enumerate(sorted({r.total_steps for r in RUNS.values()}))
}


WAITED_FOR = read_by_others(RUNS, config.get("datasets") or {})


def per_run(value_of):
    """A directive whose value is the job's run's ``value_of(run)``: the value itself when
    every run of the sweep has the same one (Snakemake then calls nothing per job, which
    shortens the plan of a big sweep), else a function of the job's wildcards."""
    values = {value_of(run) for run in RUNS.values()}
    if len(values) == 1:
        return values.pop()
    return lambda wildcards: value_of(run_of(wildcards))


def _priority(run):
    waited = (run.exp, run.env, run.seed) in WAITED_FOR
    return BUDGET_RANK[run.total_steps] + (len(BUDGET_RANK) if waited else 0)


# Scheduling priority: segments of runs that other runs wait for start first (they are on
# the sweep's longest path), then those of runs with bigger budgets.
RUN_PRIORITY = per_run(_priority)


def run_resource(name):
    """A resource (or threads) of the job's run (config key ``resources``)."""
    return per_run(lambda run: getattr(run.resources, name))


def eval_targets(runs=RUNS):
    return [run.path("eval", step) for run in runs.values() for step in run.steps]


def telemetry_targets(runs=RUNS):
    return [run.path("telemetry", step) for run in runs.values() for step in run.steps]


def summary_targets():
    """The result tables and figures of the whole sweep; a shard builds none (they need
    every shard's runs: build them with `snakemake --profile runpod results/summary.md`).
    """
    if SHARD is not None:
        return []
    names = ["summary.csv", "summary.md", "curves.png", "aggregate.csv"]
    names += ["performance_profile.png", "job_benchmarks.png"]
    return [f"results/{name}" for name in names]


def train_benchmark_targets():
    return [
        run.path("train_benchmark", step) for run in RUNS.values() for step in run.steps
    ]


def eval_input(wildcards):
    return ckpt_path(run_of(wildcards), int(wildcards.step))


def recorded_run(wildcards):
    """The run whose final checkpoint a recorded dataset plays."""
    return RUNS[recording_source(config["datasets"][wildcards.dataset])]


def record_input(wildcards):
    run = recorded_run(wildcards)
    return ckpt_path(run, run.total_steps)


def record_gpu(wildcards):
    """Recording plays the policy of its source run: that run's GPU need."""
    return recorded_run(wildcards).resources.gpu


def fetch_inputs(wildcards):
    """A dataset recorded by this workflow is fetched after it has been published."""
    if "record" in config["datasets"][wildcards.dataset]:
        return {"published": f"data/published/{wildcards.dataset}.json"}
    return {}


def remote_state(wildcards):
    """Fingerprint of an external dataset's remote listing: a changed remote refetches."""
    spec = config["datasets"][wildcards.dataset]
    if "record" in spec:
        return "published-by-this-workflow"
    return fingerprint_or_stored(
        spec["remote"],
        spec["include"] or None,
        f"data/replays/{wildcards.dataset}/MANIFEST.json",
        timeout_s=5,
    )


TRAINING_RULES = {spec.rule for spec in ALGOS.values()}
PLANNED_RULES = TRAINING_RULES | {"evaluate"}


def print_plan_block():
    """Print the plan of the jobs a dry run found (rules/plan.smk), training and evaluation
    by run, the others by rule, on the slots this executor really has."""
    dag = workflow.dag
    if not workflow.dryrun or dag is None:  # not -n, or no DAG (an error came first)
        return
    needrun = list(dag.needrun_jobs(exclude_finished=False))  # -n "finishes" them
    outputs = [
        str(path)
        for job in needrun
        if job.rule.name in PLANNED_RULES
        for path in job.output
    ]
    others = [
        rlplan.OtherJob(job.rule.name, rlplan.bench_seconds(WORKDIR / job.benchmark))
        for job in needrun
        if job.rule.name not in PLANNED_RULES and job.benchmark  # (not `all`)
    ]
    if invocation.executor() == "slurm":
        allocation = rlplan.Allocation.slurm(workflow.nodes)
    else:
        gpu = getattr(workflow.global_resources.get("gpu"), "value", None)
        allocation = rlplan.Allocation.local(workflow.cores, GPUS, gpu)
    # The real run parses the workflow and builds the DAG again before its first job.
    startup_s = time.time() - psutil.Process().create_time()
    allocation = dataclasses.replace(allocation, startup_s=startup_s)
    try:
        shard = str(SHARD) if SHARD else None
        block = plan_block.dry_run_block(
            config, outputs, allocation, RUNS_DIR, shard, RUNS, others
        )
        print(f"\n{block}")
    except ConfigError as err:
        print(f"\nrlpipe plan: error: {err}")


# Tracking (rules/track.smk): TensorBoard event files and W&B runs, views of the telemetry.
TRACKING = rltracking.Settings.from_config(config.get("tracking"))
WANDB_HASHES = rltracking.config_hashes(config, RUNS) if TRACKING.wandb else {}
TRACK_KINDS = ("tensorboard", "wandb")  # rlpipe.runtree.layout kinds, one per tracker
WANDB_SUMMARY = "results/wandb_summary.json"


def tracking_targets():
    """Every segment's event file / W&B receipt, as config `tracking` asks (default none)."""
    kinds = [k for k in TRACK_KINDS if getattr(TRACKING, k)]
    targets = [
        run.path(k, s) for k in kinds for run in SHARD_RUNS.values() for s in run.steps
    ]
    return targets + ([WANDB_SUMMARY] if TRACKING.wandb and SHARD is None else [])


def track_inputs(kind):
    """A segment's telemetry and evaluation, and the previous segment's tracking output
    (so TensorBoard and W&B get the segments in step order)."""

    def inputs(wildcards):
        run = run_of(wildcards)
        step = int(wildcards.step)
        if step not in run.steps:
            raise WorkflowError(f"{run.dir}: step {step} is not a segment boundary")
        files = {
            "telemetry": run.path("telemetry", step),
            "eval": run.path("eval", step),
        }
        prev = run.previous_step(step)
        return files | ({"prev": run.path(kind, prev)} if prev else {})

    return inputs


def wandb_settings():
    if not TRACKING.wandb:
        raise WorkflowError("W&B targets need config key tracking.wandb (project, ...)")
    return TRACKING.wandb


def wandb_params(wildcards):
    """The run's W&B settings, deterministic id, name and config (never the API key)."""
    settings = wandb_settings()
    run = run_of(wildcards)
    digest = WANDB_HASHES[(run.exp, run.env, run.seed)]
    return {
        "settings": settings,
        "id": rltracking.wandb_run_id(run, digest),
        "name": layout.run_name(run.exp, run.env, run.seed),
        "group": run.exp,
        "config": rltracking.wandb_run_config(run, config, digest),
    }


def wandb_summary_params(wildcards):
    settings = wandb_settings()
    ids = [rltracking.wandb_run_id(r, WANDB_HASHES[k]) for k, r in RUNS.items()]
    return {"settings": settings, "id": rltracking.summary_run_id(ids)}
