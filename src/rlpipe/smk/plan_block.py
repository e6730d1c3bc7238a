"""The plan block ``snakemake -n`` ends with (rlpipe.results.plan's estimate of the jobs it found),
and for a whole sweep on a pod its wall time and cost split across N pods (rlpipe.remote.shards)."""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Iterable
from pathlib import Path

import psutil

from rlpipe.algos import ALGOS
from rlpipe.remote import shards
from rlpipe.results.plan import (
    Allocation,
    Durations,
    OtherJob,
    RunKey,
    bench_seconds,
    estimate,
    hours_text,
    parse_jobs,
    render,
    usd_per_gpu_hour,
)
from rlpipe.smk import invocation
from rlpipe.sweep.runs import ConfigError, Run

# The jobs the plan counts by run (the others by rule): training segments and evaluations.
PLANNED_RULES = frozenset({spec.rule for spec in ALGOS.values()} | {"evaluate"})


def print_dry_run_block(workflow, config: dict, runs: dict, shard, gpus, workdir: Path) -> None:
    """At the end of ``snakemake -n`` (rules/plan.smk): print the plan of the jobs the dry run
    found, training and evaluation by run, the others by rule, on the slots this executor
    really has (``gpus``: rlpipe.runtime.gpu_slots settings)."""
    dag = workflow.dag
    if not workflow.dryrun or dag is None:  # not -n, or no DAG (an error came first)
        return
    needrun = list(dag.needrun_jobs(exclude_finished=False))  # -n "finishes" them
    outputs = [
        str(path) for job in needrun if job.rule.name in PLANNED_RULES for path in job.output
    ]
    others = [
        OtherJob(job.rule.name, bench_seconds(workdir / job.benchmark))
        for job in needrun
        if job.rule.name not in PLANNED_RULES and job.benchmark  # (not `all`)
    ]
    if invocation.executor() == "slurm":
        allocation = Allocation.slurm(workflow.nodes)
    else:
        gpu = getattr(workflow.global_resources.get("gpu"), "value", None)
        allocation = Allocation.local(workflow.cores, gpus, gpu)
    # The real run parses the workflow and builds the DAG again before its first job.
    startup_s = time.time() - psutil.Process().create_time()
    allocation = dataclasses.replace(allocation, startup_s=startup_s)
    try:
        shard_name = str(shard) if shard else None
        block = dry_run_block(
            config, outputs, allocation, workdir / "runs", shard_name, runs, others
        )
        print(f"\n{block}")
    except ConfigError as err:
        print(f"\nrlpipe plan: error: {err}")


def dry_run_block(
    config: dict,
    outputs: Iterable[str],
    allocation: Allocation,
    runs_dir: str | os.PathLike = "runs",
    shard: str | None = None,
    runs: dict[RunKey, Run] | None = None,
    others: Iterable[OtherJob] = (),
) -> str:
    """The block ``snakemake -n`` ends with: the plan of the jobs the dry run would run
    (``outputs``: those of its training and evaluation jobs; ``others``: its other jobs); for
    a whole sweep on a pod, also its wall time and cost split across pods (which build no
    summary: their other jobs are left out there)."""
    seconds = Durations(config, runs_dir, runs)
    jobs = parse_jobs("\n".join(outputs), seconds.runs)
    price, price_from = usd_per_gpu_hour(config.get("planning") or {})
    if price is None:
        head = f"rlpipe plan: {allocation.source}; cost: {price_from}"
    else:
        head = f"rlpipe plan: {allocation.source}; ${price:g} per GPU-hour ({price_from})"
    if shard:
        head += f"; shard {shard} of the sweep"
    if not jobs:
        return f"{head}\nno training or evaluation jobs to run"
    plan = estimate(config, jobs, allocation, price, runs_dir, seconds, others)
    text = head + "\n" + render(plan)
    if allocation.executor == "local" and not shard:
        text += "\n" + pods_line(config, jobs, allocation, price, seconds)
    return text


POD_COUNTS = (1, 2, 4, 8)


def pods_line(config, jobs, allocation, price, seconds: Durations, counts=POD_COUNTS) -> str:
    """Wall time and pod cost of these jobs split into N shards (``shard=I/N``), each shard on
    a pod like this machine: the slowest shard's plan, and N pods billed for it."""
    weight = shards.weights(seconds)
    groups = shards.units(seconds.runs, config.get("datasets") or {})
    names = [shards.run_name(j.run) for j in jobs]
    parts = []
    for n in counts:
        placed = shards.assign(groups, weight, n, {})
        walls = []
        for i in range(1, n + 1):
            mine = [j for j, name in zip(jobs, names, strict=True) if placed[name] == i]
            if mine:
                plan = estimate(config, mine, allocation, price, seconds.runs_dir, seconds)
                walls.append(plan.wall_hours)
        wall = max(walls, default=0.0)
        part = f"{n}: {hours_text(wall)} h"
        if allocation.gpus and price is not None:
            part += f" ${n * allocation.gpus * wall * price:,.2f}"
        parts.append(part)
    return "on N pods like this one (--config shard=I/N): " + ", ".join(parts)
