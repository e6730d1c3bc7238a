"""Plan and cost estimate for the jobs still to run (torch-free).

The jobs are every training segment and every evaluation the dry run plans. A job's duration:

- measured, when the experiment has finished jobs of the same kind: the median wall time per
  env step of its training jobs' ``benchmark:`` files (start-up, checkpoint I/O and all), or
  the median wall time of its evaluation jobs;
- else ``steps / SPS + overhead`` for training, with SPS from the experiment's telemetry,
  ``planning.default_sps`` (keyed ``algo/ENV``, ``algo/kind`` or ``algo``; for a run without
  a GPU, ``.../cpu`` first) or the built-in defaults below, and
  ``planning.segment_overhead_s``; ``planning.eval_s`` for evaluations.

How the jobs run is the executor's :class:`Allocation`: on this machine (local, a pod), jobs
with ``resources.gpu > 0`` share the GPU slots (``gpus``: count x jobs_per_gpu) and each holds
``gpu / jobs_per_gpu`` GPUs; CPU jobs share the cores (``cores // threads`` at once) and hold
no GPU. Under SLURM, ``jobs`` run at once and a ``gpu: N`` job is billed N whole GPUs. A run's
segments are serial (and a warm-started run follows its source); runs and evaluations are
packed onto the slots longest first, after the run's own start-up (Snakemake parsing the
workflow and building the DAG: as long as the dry run that plans it took, when it says).
Cost is billed GPU-hours x ``planning.usd_per_gpu_hour``.
"""

from __future__ import annotations

import csv
import heapq
import os
import re
import statistics
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from rlpipe.algos import ALGOS
from rlpipe.results.status import last_record, text_table
from rlpipe.runtime import gpu_slots
from rlpipe.runtree import layout, telemetry
from rlpipe.sweep.runs import ConfigError, Run, expand_runs

# Built-in guesses, for experiments with nothing measured yet (env steps/s of one job alone on
# its GPU or CPU; for BC a step is a gradient step): each algorithm's, from rlpipe.algos.
BUILTIN_SPS = {key: sps for spec in ALGOS.values() for key, sps in spec.default_sps.items()}
# A GPU job's share of its built-in SPS when jobs_per_gpu jobs share the GPU: Atari PPO, 2
# threads per job, on one H200 with 16 cores: 1,585 env steps/s alone, 1,129 each at 3 jobs,
# 792 each at 6 (docs/benchmarks.md). Between these, interpolated; beyond 6, the 6 jobs' total
# divided among them.
GPU_SHARING = {1: 1.0, 3: 1129 / 1585, 6: 792 / 1585}
# Per job beyond its training steps, handed to the warm worker (rlpipe.warm.worker): checkpoint
# load/save and env creation. The demo's jobs measured 0.15-1.1 s (benchmark files minus
# steps / charts/SPS, 2-core VM).
DEFAULT_OVERHEAD_S = 0.5
# Per evaluation job (evaluation.episodes 10): the demo's measured 0.3-0.7 s (classic) and
# 7 s (Pong, CPU); MuJoCo is not in the demo and stays a guess.
DEFAULT_EVAL_S = {"atari": 8.0, "classic": 0.5, "mujoco": 5.0}
ENV_PRICE = "RLPIPE_USD_PER_GPU_HOUR"
CLASSIC_ENVS = {"CartPole", "Acrobot", "MountainCar", "MountainCarContinuous", "Pendulum"}
MUJOCO_ENVS = set(
    "Ant HalfCheetah Hopper Humanoid HumanoidStandup InvertedDoublePendulum InvertedPendulum "
    "Pusher Reacher Swimmer Walker2d".split()
)
# Per job besides training and evaluation (the summary, replays, tracking), by rule, until an
# earlier run's benchmark file measures it: the demo's summarize 1.3-2.1 s, its replay jobs
# (record, publish, fetch) 0.4-0.7 s each.
DEFAULT_OTHER_S = {"summarize": 2.0}
DEFAULT_OTHER_JOB_S = 0.5
JOB_KIND = {"ckpt": "train", "qtable": "train", "eval": "eval"}  # the files that name a job

RunKey = tuple[str, str, int]


@dataclass(frozen=True, order=True)
class Job:
    """A training segment (steps ``start`` to ``end``) or the evaluation at step ``end``."""

    exp: str
    env: str
    seed: int
    kind: str  # "train" | "eval"
    start: int
    end: int

    @property
    def run(self) -> RunKey:
        return (self.exp, self.env, self.seed)


@dataclass(frozen=True)
class OtherJob:
    """A job that is not a run's training or evaluation (the summary, replays, tracking): its
    rule and, when an earlier run's ``benchmark:`` file measured it, its seconds."""

    rule: str
    measured_s: float | None = None

    @property
    def seconds(self) -> float:
        if self.measured_s is not None:
            return self.measured_s
        return DEFAULT_OTHER_S.get(self.rule, DEFAULT_OTHER_JOB_S)


@dataclass(frozen=True)
class Allocation:
    """How the executor runs jobs: how many at once, and what a GPU job is billed."""

    executor: str  # "local" (this machine or a pod) or "slurm"
    cpu_slots: int  # local: cores; slurm: jobs at once
    gpu_slots: int  # local: GPU slots; slurm: jobs at once
    jobs_per_gpu: int = 1  # local: jobs sharing a GPU; slurm: 1 (whole GPUs per job)
    gpus: int = 0  # local: the machine's GPUs (what a rented pod costs); slurm: 0
    source: str = ""  # where the numbers came from, for the header
    startup_s: float = 0.0  # before the first job: Snakemake parses the workflow, builds the DAG

    @classmethod
    def local(cls, cores: int, gpus: gpu_slots.GpuSettings, gpu_resource: int | None = None):
        slots = gpu_resource if gpu_resource is not None else gpus.slots
        source = f"{cores} cores; {slots} GPU slot(s)"
        if gpu_resource is None or gpu_resource == gpus.slots:
            source += f" = {gpus.count} GPU(s) [{gpus.count_from}] x {gpus.jobs_per_gpu}"
        else:
            source += " (resources gpu)"
        return cls("local", cores, slots, gpus.jobs_per_gpu, gpus.count, source)

    @classmethod
    def slurm(cls, jobs: int):
        return cls("slurm", jobs, jobs, 1, 0, f"SLURM, {jobs} jobs at once, whole GPUs per job")


@dataclass(frozen=True)
class ExperimentPlan:
    exp: str
    algo: str
    train_jobs: int
    eval_jobs: int
    runs: int
    env_steps: int
    duration_source: str
    job_hours: float
    gpu_hours: float
    usd: float | None


@dataclass(frozen=True)
class Plan:
    experiments: list[ExperimentPlan]
    allocation: Allocation
    usd_per_gpu_hour: float | None
    job_hours: float
    gpu_hours: float
    wall_hours: float
    usd: float | None
    other_jobs: tuple[OtherJob, ...] = ()


def env_kind(env: str) -> str:
    name = env.rsplit("-v", 1)[0]
    if name in CLASSIC_ENVS:
        return "classic"
    if name in MUJOCO_ENVS:
        return "mujoco"
    return "atari"


# --- which jobs remain ----------------------------------------------------------------------


def remaining_jobs(runs: dict[RunKey, Run], runs_dir: str | os.PathLike) -> list[Job]:
    """Segments after each run's last finished one (telemetry or checkpoint present; a later
    one implies the earlier ones), and evaluations whose file is missing."""
    todo = []
    for key, run in sorted(runs.items()):
        steps = run.steps
        done = [i for i, s in enumerate(steps) if _segment_done(runs_dir, run, s)]
        first = done[-1] + 1 if done else 0
        for i, end in enumerate(steps):
            start = steps[i - 1] if i else 0
            if i >= first:
                todo.append(Job(*key, "train", start, end))
            if not Path(_file(runs_dir, run, "eval", end)).exists():
                todo.append(Job(*key, "eval", start, end))
    return todo


def _file(runs_dir, run: Run, kind: str, step: int) -> str:
    return layout.path(kind, run.exp, run.env, run.seed, step, root=runs_dir)


def _segment_done(runs_dir, run: Run, step: int) -> bool:
    kinds = ("telemetry", "ckpt", "qtable")
    return any(Path(_file(runs_dir, run, kind, step)).exists() for kind in kinds)


def parse_jobs(text: str, runs: dict[RunKey, Run]) -> list[Job]:
    """Jobs named by their outputs in ``text`` (checkpoints and evaluation files)."""
    found = set()
    for word in re.findall(r"[^\s,]+", text):
        artifact = layout.parse(word)
        if artifact is None or artifact.kind not in JOB_KIND:
            continue
        key = artifact[:3]
        if key not in runs:
            raise ConfigError(f"{word}: no run {key} in the config")
        run, end = runs[key], artifact.step
        if end not in run.steps:
            raise ConfigError(f"{word}: step {end} is not a segment boundary of this run")
        found.add(Job(*key, JOB_KIND[artifact.kind], run.previous_step(end) or 0, end))
    return sorted(found)


# --- durations ------------------------------------------------------------------------------


def bench_seconds(path: str | os.PathLike | None) -> float | None:
    """The seconds a Snakemake ``benchmark:`` file recorded, or None (no file, unreadable)."""
    if path is None:
        return None
    try:
        with open(path, newline="") as fh:
            return float(next(csv.DictReader(fh, delimiter="\t"))["s"])
    except (OSError, StopIteration, KeyError, ValueError):
        return None


def measured(runs_dir: str | os.PathLike, exp: str) -> dict[str, tuple[float, int]]:
    """The experiment's measured job times: ``{"train": (s per env step, n), "eval": (s, n)}``
    from its ``benchmark:`` files (training steps read from their file names)."""
    per_step, evals = [], []
    for path in Path(runs_dir, exp).glob("*/*/benchmark/*.tsv"):
        bench = layout.parse(path)
        seconds = bench_seconds(path) if bench else None
        if seconds is None:
            continue
        if bench.kind == "train_benchmark":
            steps = [
                a.step for a, _ in layout.of_kind(path.parents[1].glob("telemetry/*"), "telemetry")
            ]
            end = bench.step
            prev = max([s for s in steps if s < end], default=0)
            if end in steps and end > prev:
                per_step.append(seconds / (end - prev))
        elif bench.kind == "eval_benchmark":
            evals.append(seconds)
    out = {}
    if per_step:
        out["train"] = (statistics.median(per_step), len(per_step))
    if evals:
        out["eval"] = (statistics.median(evals), len(evals))
    return out


def measured_sps(runs_dir: str | os.PathLike, exp: str) -> tuple[float, int] | None:
    """(median final charts/SPS, number of segments) over the experiment's finished telemetry."""
    values = []
    for _, path in layout.of_kind(sorted(Path(runs_dir, exp).glob("*/*/telemetry/*")), "telemetry"):
        sps = (last_record(path) or {}).get(telemetry.SPS)
        if isinstance(sps, int | float) and sps > 0:
            values.append(float(sps))
    return (statistics.median(values), len(values)) if values else None


def gpu_sharing(jobs_per_gpu: int) -> float:
    """The share of its lone throughput a GPU job keeps beside ``jobs_per_gpu - 1`` others."""
    points = sorted(GPU_SHARING.items())
    if jobs_per_gpu >= points[-1][0]:
        jobs, share = points[-1]
        return share * jobs / jobs_per_gpu
    for (j0, s0), (j1, s1) in zip(points, points[1:], strict=False):
        if j0 <= jobs_per_gpu <= j1:
            return s0 + (s1 - s0) * (jobs_per_gpu - j0) / (j1 - j0)
    return 1.0


def default_sps(
    planning: dict, algo: str, env: str, cpu: bool = False, jobs_per_gpu: int = 1
) -> tuple[float, str]:
    """(SPS, where it came from) for a run without measurements; ``cpu``: the run has no GPU,
    and keys ending in "/cpu" come first. A built-in GPU figure is scaled to
    ``jobs_per_gpu`` jobs sharing the GPU (:data:`GPU_SHARING`); a figure from the config is
    taken as given, for the config's own sharing."""
    own = planning.get("default_sps") or {}
    table = {**BUILTIN_SPS, **own}
    keys = [f"{algo}/{env}", f"{algo}/{env_kind(env)}", algo]
    if cpu:
        keys = [f"{algo}/{env}/cpu", f"{algo}/{env_kind(env)}/cpu", *keys]
    for key in keys:
        if key in table:
            value = table[key]
            if not isinstance(value, int | float) or value <= 0:
                raise ConfigError(f"planning.default_sps.{key}: must be a number > 0")
            if cpu or key in own or jobs_per_gpu == 1:
                return float(value), key
            return value * gpu_sharing(jobs_per_gpu), f"{key} at {jobs_per_gpu} jobs per GPU"
    raise ConfigError(
        f"planning.default_sps: no throughput for {algo} on {env} and no telemetry to measure; "
        f"add one of '{algo}/{env}', '{algo}/{env_kind(env)}' or '{algo}' (env steps/s)"
    )


class Durations:
    """Seconds of each job, and a note per experiment on where they came from. The run tree
    is read once per experiment, however many plans (one per shard count) ask. ``runs``: the
    config's Runs where the caller has them (the workflow does), else expanded here."""

    def __init__(
        self, config: dict, runs_dir: str | os.PathLike, runs: dict[RunKey, Run] | None = None
    ):
        self.config, self.runs_dir = config, runs_dir
        self.runs = runs if runs is not None else expand_runs(config)
        self.planning = config.get("planning") or {}
        self.jobs_per_gpu = gpu_slots.settings_jobs_per_gpu(config.get("gpus"))
        self.sources: dict[str, set[str]] = {}
        self._measured: dict[str, dict] = {}
        self._sps: dict[str, tuple[float, int] | None] = {}

    def __call__(self, job: Job) -> float:
        spec = self.config["experiments"][job.exp]
        if job.exp not in self._measured:
            self._measured[job.exp] = measured(self.runs_dir, job.exp)
            self._sps[job.exp] = measured_sps(self.runs_dir, job.exp)
        mine = self._measured[job.exp]
        notes = self.sources.setdefault(job.exp, set())
        if job.kind == "eval":
            if "eval" in mine:
                notes.add(f"eval measured ({mine['eval'][1]} jobs)")
                return mine["eval"][0]
            seconds = self.planning.get("eval_s", DEFAULT_EVAL_S[env_kind(job.env)])
            notes.add(f"eval {seconds:g} s")
            return float(seconds)
        steps = job.end - job.start
        if "train" in mine:
            notes.add(f"train measured ({mine['train'][1]} jobs)")
            return mine["train"][0] * steps
        sps_measured = self._sps[job.exp]
        if sps_measured:
            sps = sps_measured[0]
            notes.add(f"SPS measured {sps:.0f}")
        else:
            cpu = not self.runs[job.run].resources.gpu
            sps, key = default_sps(self.planning, spec["algo"], job.env, cpu, self.jobs_per_gpu)
            notes.add(f"SPS default {sps:.0f} ({key})")
        overhead = float(self.planning.get("segment_overhead_s", DEFAULT_OVERHEAD_S))
        return steps / sps + overhead


# --- estimate -------------------------------------------------------------------------------


def usd_per_gpu_hour(planning: dict) -> tuple[float | None, str]:
    """(price, where from): planning.usd_per_gpu_hour, else $RLPIPE_USD_PER_GPU_HOUR, else None."""
    if planning.get("usd_per_gpu_hour") is not None:
        return float(planning["usd_per_gpu_hour"]), "planning.usd_per_gpu_hour"
    text = os.environ.get(ENV_PRICE)
    if text is None:
        return None, f"no price set (planning.usd_per_gpu_hour or ${ENV_PRICE})"
    try:
        price = float(text)
    except ValueError:
        price = -1.0
    if not price >= 0:
        raise ConfigError(f"{ENV_PRICE}={text!r}: must be a number >= 0")
    return price, f"${ENV_PRICE}"


def lpt_makespan(durations: Iterable[float], slots: int) -> float:
    """Longest-first greedy packing of jobs onto slots; returns the finishing time."""
    if slots < 1:
        raise ValueError(f"slots must be >= 1, got {slots}")
    loads = [0.0] * slots
    for d in sorted(durations, reverse=True):
        heapq.heapreplace(loads, loads[0] + d)
    return max(loads)


def estimate(
    config: dict,
    jobs: list[Job],
    allocation: Allocation,
    usd_per_gpu_hour: float | None = None,
    runs_dir: str | os.PathLike = "runs",
    seconds: Durations | None = None,
    others: Iterable[OtherJob] = (),
) -> Plan:
    """Job-hours, billed GPU-hours, wall time and cost of ``jobs`` and ``others`` under
    ``allocation`` (``seconds``: the job durations, when the caller plans several times).

    The other jobs hold no GPU and add their time to the wall time: they sit on the sweep's
    path (the summary after every evaluation, replays between a run and those learning from
    it)."""
    others = tuple(others)
    other_s = sum(o.seconds for o in others)
    seconds = seconds or Durations(config, runs_dir)
    runs = seconds.runs
    chains: dict[RunKey, float] = {}  # serial training seconds per run
    evals: dict[str, list[float]] = {"cpu": [], "gpu": []}
    by_exp: dict[str, list[tuple[Job, float]]] = {}
    for job in jobs:
        s = seconds(job)
        by_exp.setdefault(job.exp, []).append((job, s))
        if job.kind == "train":
            chains[job.run] = chains.get(job.run, 0.0) + s
        else:
            evals["gpu" if runs[job.run].resources.gpu else "cpu"].append(s)

    experiments = []
    for exp, timed in sorted(by_exp.items()):
        gpu = runs[timed[0][0].run].resources.gpu  # an experiment's runs share its resources
        job_s = sum(s for _, s in timed)
        gpu_h = job_s * gpu / allocation.jobs_per_gpu / 3600
        trained = [j for j, _ in timed if j.kind == "train"]
        experiments.append(
            ExperimentPlan(
                exp=exp,
                algo=config["experiments"][exp]["algo"],
                train_jobs=len(trained),
                eval_jobs=len(timed) - len(trained),
                runs=len({j.run for j, _ in timed}),
                env_steps=sum(j.end - j.start for j in trained),
                duration_source="; ".join(sorted(seconds.sources.get(exp, ()))),
                job_hours=job_s / 3600,
                gpu_hours=gpu_h,
                usd=None if usd_per_gpu_hour is None else gpu_h * usd_per_gpu_hour,
            )
        )
    wall = allocation.startup_s + _wall_seconds(_chains(chains, runs), evals, runs, allocation)
    gpu_total = sum(e.gpu_hours for e in experiments)
    return Plan(
        experiments=experiments,
        allocation=allocation,
        usd_per_gpu_hour=usd_per_gpu_hour,
        job_hours=sum(e.job_hours for e in experiments) + other_s / 3600,
        gpu_hours=gpu_total,
        wall_hours=(wall + other_s) / 3600,
        usd=None if usd_per_gpu_hour is None else gpu_total * usd_per_gpu_hour,
        other_jobs=others,
    )


def _wall_seconds(chains, evals, runs: dict[RunKey, Run], allocation: Allocation) -> float:
    """Longest-first packing of run chains and evaluations onto the allocation's slots."""
    pools: dict[str, list[float]] = {"cpu": list(evals["cpu"]), "gpu": list(evals["gpu"])}
    threads = {"cpu": [1], "gpu": [1]}
    for key, s in chains.items():
        pool = "gpu" if runs[key].resources.gpu else "cpu"
        pools[pool].append(s)
        threads[pool].append(runs[key].resources.threads)
    if allocation.executor == "slurm":  # one queue: `jobs` at once, GPUs are SLURM's concern
        return lpt_makespan(pools["cpu"] + pools["gpu"], allocation.cpu_slots)
    if not allocation.gpu_slots:  # no GPU slots: GPU jobs run on the CPU like the others
        pools = {"cpu": pools["cpu"] + pools["gpu"], "gpu": []}
        threads = {"cpu": threads["cpu"] + threads["gpu"], "gpu": [1]}
    cpu_slots = max(1, allocation.cpu_slots // max(threads["cpu"]))
    wall = lpt_makespan(pools["cpu"], cpu_slots) if pools["cpu"] else 0.0
    if pools["gpu"]:  # a GPU job holds a slot and its threads' cores
        gpu_slots = min(allocation.gpu_slots, max(1, allocation.cpu_slots // max(threads["gpu"])))
        wall = max(wall, lpt_makespan(pools["gpu"], gpu_slots))
    return wall


def _chains(seconds: dict[RunKey, float], runs: dict[RunKey, Run]) -> dict[RunKey, float]:
    """Merge a warm-started run into its source run's chain when both still have work."""
    chains = dict(seconds)
    for key in sorted(seconds):
        source = runs[key].init_from
        root = (source, key[1], key[2]) if source else None
        while root is not None and root not in chains:  # source finished: follow further up
            src = runs[root].init_from if root in runs else None
            root = (src, key[1], key[2]) if src else None
        if root is not None and root != key and key in chains:
            chains[root] += chains.pop(key)
    return chains


def _usd(x: float | None) -> str:
    return "-" if x is None else f"{x:,.2f}"


def hours_text(h: float) -> str:
    return f"{h:,.2f}" if h >= 1 else f"{h:.3g}"


def render(plan: Plan) -> str:
    """Plain-text table, one line per experiment plus totals and a footer."""
    header = ["experiment", "algo", "train", "eval", "runs", "env steps", "durations from"]
    header += ["job-h", "GPU-h", "USD"]
    rows = [
        [e.exp, e.algo, e.train_jobs, e.eval_jobs, e.runs, f"{e.env_steps:,}", e.duration_source]
        + [hours_text(e.job_hours), hours_text(e.gpu_hours), _usd(e.usd)]
        for e in plan.experiments
    ]
    exps = plan.experiments
    if plan.other_jobs:
        rows.append(_other_row(plan))
    rows.append(
        ["TOTAL", "", sum(e.train_jobs for e in exps), sum(e.eval_jobs for e in exps)]
        + [sum(e.runs for e in exps), f"{sum(e.env_steps for e in exps):,}", ""]
        + [hours_text(plan.job_hours), hours_text(plan.gpu_hours), _usd(plan.usd)]
    )
    price = plan.usd_per_gpu_hour
    footer = [f"wall time {hours_text(plan.wall_hours)} h"]
    if plan.allocation.startup_s:
        footer[0] += f", {plan.allocation.startup_s:.0f} s of it Snakemake's start-up"
    footer.append(f"at ${price:.2f}/GPU-hour" if price is not None else "no price given")
    alloc = plan.allocation
    if alloc.executor == "local" and alloc.gpus and price is not None:
        held = alloc.gpus * plan.wall_hours
        footer.append(f"a pod of {alloc.gpus} GPU(s) for that time: ${held * price:,.2f}")
    return text_table(header, rows) + "\n(" + "; ".join(footer) + ")"


def _other_row(plan: Plan) -> list:
    """The table's line for the jobs outside the runs: how many, by rule, and their time."""
    others = plan.other_jobs
    rules = sorted({o.rule for o in others})
    measured = [o.measured_s is not None for o in others]
    source = "measured" if all(measured) else "measured; built-in" if any(measured) else "built-in"
    hours = sum(o.seconds for o in others) / 3600
    usd = None if plan.usd_per_gpu_hour is None else 0.0
    what = f"{len(others)}: {', '.join(rules)}"
    return [
        "other jobs",
        what,
        "",
        "",
        "",
        "",
        source,
        hours_text(hours),
        hours_text(0.0),
        _usd(usd),
    ]
