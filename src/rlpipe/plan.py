"""Plan and cost estimate for the segments still to run (torch-free).

Per experiment: segments, env steps, GPU-hours, wall time on the profile's slots, cost.
Throughput (env steps/s) comes from the experiment's own finished telemetry when there is
some (median of each segment's final ``charts/SPS``), else from ``planning.default_sps`` in
the config, keyed ``algo/ENV`` (e.g. ``ppo/Pong-v5``), ``algo/kind`` (kind: atari, classic)
or ``algo``, else from the built-in defaults below. A segment takes
``steps / SPS + segment_overhead_s``; segments of one run are serial; runs are packed onto
the slots longest first (greedy LPT). A job with ``resources.gpu: 0`` still holds a slot and
is counted as 1 GPU, since on a rented GPU machine the slot is paid for either way; with
``jobs_per_gpu`` jobs sharing each GPU, a job-hour is ``1 / jobs_per_gpu`` GPU-hours.
"""

from __future__ import annotations

import heapq
import os
import re
import statistics
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from rlpipe import gpu_slots
from rlpipe.runs import ConfigError, Run, expand_runs, fmt_step
from rlpipe.status import last_record, text_table

# Built-in throughput guesses (steps/s of one job; for BC a step is a gradient step): Atari from
# CleanRL's published ppo_atari_envpool figure (1 GPU, ~900-1,100 SPS); the others from the
# demo config's CPU runs on a 2-core VM (PPO CartPole ~4.4k, Q-learning ~36k, BC ~360).
BUILTIN_SPS = {"ppo/atari": 1000.0, "ppo/classic": 4000.0, "qlearn": 30000.0, "bc": 300.0}
ENV_PRICE = "RLPIPE_USD_PER_GPU_HOUR"
DEFAULT_OVERHEAD_S = 10.0  # per segment: process start, imports, checkpoint load/save
CLASSIC_ENVS = {"CartPole", "Acrobot", "MountainCar", "MountainCarContinuous", "Pendulum"}
MUJOCO_ENVS = set(
    "Ant HalfCheetah Hopper Humanoid HumanoidStandup InvertedDoublePendulum InvertedPendulum "
    "Pusher Reacher Swimmer Walker2d".split()
)
ARTIFACT = re.compile(
    r"runs/(?P<exp>[^/\s]+)/(?P<env>[^/\s]+)/seed(?P<seed>\d+)/(?:ckpt|qtable)/step_(?P<step>\d+)\."
)

RunKey = tuple[str, str, int]


@dataclass(frozen=True, order=True)
class Segment:
    exp: str
    env: str
    seed: int
    start: int
    end: int

    @property
    def run(self) -> RunKey:
        return (self.exp, self.env, self.seed)


@dataclass(frozen=True)
class ExperimentPlan:
    exp: str
    algo: str
    segments: int
    runs: int
    env_steps: int
    sps_source: str
    gpu_hours: float
    wall_hours: float
    usd: float | None


@dataclass(frozen=True)
class Plan:
    experiments: list[ExperimentPlan]
    slots: int
    usd_per_gpu_hour: float | None
    gpu_hours: float
    wall_hours: float
    usd: float | None


def env_kind(env: str) -> str:
    name = env.rsplit("-v", 1)[0]
    if name in CLASSIC_ENVS:
        return "classic"
    if name in MUJOCO_ENVS:
        return "mujoco"
    return "atari"


# --- which segments remain ------------------------------------------------------------------


def _segment_done(run_dir: Path, step: int) -> bool:
    name = f"step_{fmt_step(step)}"
    if (run_dir / "telemetry" / f"{name}.jsonl").exists():
        return True
    return any(next((run_dir / sub).glob(f"{name}.*"), None) for sub in ("ckpt", "qtable"))


def remaining_segments(runs: dict[RunKey, Run], runs_dir: str | os.PathLike) -> list[Segment]:
    """Segments after the last one whose telemetry or checkpoint file exists, per run.

    A later finished segment implies the earlier ones (their checkpoints may be temp()).
    """
    todo = []
    for key, run in sorted(runs.items()):
        run_dir = Path(runs_dir, run.exp, run.env, f"seed{run.seed}")
        steps = run.steps
        done = [i for i, s in enumerate(steps) if _segment_done(run_dir, s)]
        first = done[-1] + 1 if done else 0
        for i in range(first, len(steps)):
            todo.append(Segment(*key, steps[i - 1] if i else 0, steps[i]))
    return todo


def parse_segments(text: str, runs: dict[RunKey, Run]) -> list[Segment]:
    """Segments named by checkpoint paths in text, e.g. ``snakemake -n`` output."""
    found = set()
    for m in ARTIFACT.finditer(text):
        key = (m["exp"], m["env"], int(m["seed"]))
        if key not in runs:
            raise ConfigError(f"{m[0]}: no run {key} in the config")
        run, end = runs[key], int(m["step"])
        if end not in run.steps:
            raise ConfigError(f"{m[0]}: step {end} is not a segment boundary of this run")
        found.add(Segment(*key, run.previous_step(end) or 0, end))
    return sorted(found)


# --- throughput -----------------------------------------------------------------------------


def measured_sps(runs_dir: str | os.PathLike, exp: str) -> tuple[float, int] | None:
    """(median final charts/SPS, number of segments) over the experiment's finished telemetry."""
    values = []
    for path in sorted(Path(runs_dir, exp).glob("*/seed*/telemetry/step_*.jsonl")):
        record = last_record(path)
        sps = (record or {}).get("charts/SPS")
        if isinstance(sps, int | float) and sps > 0:
            values.append(float(sps))
    return (statistics.median(values), len(values)) if values else None


def default_sps(planning: dict, algo: str, env: str) -> tuple[float, str]:
    """(SPS, key it came from) for a run without measurements."""
    table = {**BUILTIN_SPS, **(planning.get("default_sps") or {})}
    for key in (f"{algo}/{env}", f"{algo}/{env_kind(env)}", algo):
        if key in table:
            value = table[key]
            if not isinstance(value, int | float) or value <= 0:
                raise ConfigError(f"planning.default_sps.{key}: must be a number > 0")
            return float(value), key
    raise ConfigError(
        f"planning.default_sps: no throughput for {algo} on {env} and no telemetry to measure; "
        f"add one of '{algo}/{env}', '{algo}/{env_kind(env)}' or '{algo}' (env steps/s)"
    )


# --- estimate -------------------------------------------------------------------------------


def usd_per_gpu_hour(planning: dict) -> tuple[float | None, str]:
    """(price, where from): planning.usd_per_gpu_hour, else $RLPIPE_USD_PER_GPU_HOUR, else None."""
    if planning.get("usd_per_gpu_hour") is not None:
        return float(planning["usd_per_gpu_hour"]), "planning.usd_per_gpu_hour"
    text = os.environ.get(ENV_PRICE)
    if text is None:
        return None, f"nowhere (set planning.usd_per_gpu_hour or {ENV_PRICE})"
    try:
        price = float(text)
    except ValueError:
        price = -1.0
    if not price >= 0:
        raise ConfigError(f"{ENV_PRICE}={text!r}: must be a number >= 0")
    return price, ENV_PRICE


def jobs_per_gpu(config: dict) -> int:
    """Jobs sharing one GPU: the config's gpus.jobs_per_gpu or $RLPIPE_JOBS_PER_GPU."""
    return gpu_slots.settings(config.get("gpus")).jobs_per_gpu


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
    segments: list[Segment],
    slots: int = 1,
    usd_per_gpu_hour: float | None = None,
    runs_dir: str | os.PathLike = "runs",
) -> Plan:
    """Estimate GPU-hours, wall time and cost of ``segments`` on ``slots`` parallel jobs."""
    runs = expand_runs(config)
    planning = config.get("planning") or {}
    overhead = float(planning.get("segment_overhead_s", DEFAULT_OVERHEAD_S))
    share = jobs_per_gpu(config)
    seconds: dict[RunKey, float] = {}  # remaining job seconds per run
    by_exp: dict[str, list[Segment]] = {}
    for seg in segments:
        by_exp.setdefault(seg.exp, []).append(seg)

    experiments = []
    for exp, segs in sorted(by_exp.items()):
        spec = config["experiments"][exp]
        algo = spec["algo"]
        gpus = max(1, int((spec.get("resources") or {}).get("gpu", 0)))
        measured = measured_sps(runs_dir, exp)
        sources = set()
        for seg in segs:
            if measured:
                sps = measured[0]
                sources.add(f"measured {sps:.0f} ({measured[1]} segments)")
            else:
                sps, key = default_sps(planning, algo, seg.env)
                sources.add(f"default {sps:.0f} ({key})")
            seconds[seg.run] = seconds.get(seg.run, 0.0) + (seg.end - seg.start) / sps + overhead
        exp_runs = sorted({seg.run for seg in segs})
        gpu_h = sum(seconds[r] for r in exp_runs) * gpus / share / 3600
        experiments.append(
            ExperimentPlan(
                exp=exp,
                algo=algo,
                segments=len(segs),
                runs=len(exp_runs),
                env_steps=sum(seg.end - seg.start for seg in segs),
                sps_source="; ".join(sorted(sources)),
                gpu_hours=gpu_h,
                wall_hours=lpt_makespan([seconds[r] for r in exp_runs], slots) / 3600,
                usd=None if usd_per_gpu_hour is None else gpu_h * usd_per_gpu_hour,
            )
        )
    gpu_total = sum(e.gpu_hours for e in experiments)
    return Plan(
        experiments=experiments,
        slots=slots,
        usd_per_gpu_hour=usd_per_gpu_hour,
        gpu_hours=gpu_total,
        wall_hours=lpt_makespan(_chains(seconds, runs).values(), slots) / 3600,
        usd=None if usd_per_gpu_hour is None else gpu_total * usd_per_gpu_hour,
    )


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


def _hours(h: float) -> str:
    return f"{h:,.2f}" if h >= 1 else f"{h:.3g}"


def dry_run_block(
    config: dict,
    outputs: Iterable[str],
    slots: int,
    slots_from: str,
    runs_dir: str | os.PathLike = "runs",
) -> str:
    """The block ``snakemake -n`` ends with: the plan of the training outputs it would make.

    ``slots`` is the profile's GPU slot count (``slots_from`` says where it came from); the
    price is ``planning.usd_per_gpu_hour`` of the config (a profile sets it via its configfile).
    """
    segments = parse_segments("\n".join(outputs), expand_runs(config))
    price, price_from = usd_per_gpu_hour(config.get("planning") or {})
    head = f"rlpipe plan: {slots} job slot(s) ({slots_from}); $/GPU-hour from {price_from}"
    if not segments:
        return f"{head}\nno training segments to run"
    return head + "\n" + render(estimate(config, segments, slots, price, runs_dir))


def render(plan: Plan) -> str:
    """Plain-text table of a plan, one line per experiment plus totals."""
    header = ["experiment", "algo", "segments", "runs", "env steps", "SPS source"]
    header += ["GPU-h", f"wall h ({plan.slots} slots)", "USD"]
    rows = [
        [e.exp, e.algo, e.segments, e.runs, f"{e.env_steps:,}", e.sps_source]
        + [_hours(e.gpu_hours), _hours(e.wall_hours), _usd(e.usd)]
        for e in plan.experiments
    ]
    exps = plan.experiments
    rows.append(
        ["TOTAL", "", sum(e.segments for e in exps), sum(e.runs for e in exps)]
        + [f"{sum(e.env_steps for e in exps):,}", ""]
        + [_hours(plan.gpu_hours), _hours(plan.wall_hours), _usd(plan.usd)]
    )
    price = plan.usd_per_gpu_hour
    note = f"at ${price:.2f}/GPU-hour" if price is not None else "no price given"
    footer = f"({note}; wall time packs runs longest-first onto {plan.slots} slots)"
    return text_table(header, rows) + "\n" + footer
