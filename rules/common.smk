# Input and param functions of the rules, and the targets of rule all (rules/setup.smk has
# settled the config, RUNS, SHARD and the settings before this file is read).
import re
from pathlib import Path

from rlpipe import tracking as rltracking
from rlpipe.algos import ALGOS
from rlpipe.replays.fetch import fingerprint_or_stored
from rlpipe.runtree import layout
from rlpipe.smk import provenance
from rlpipe.sweep.runs import read_by_others, recording_source


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
