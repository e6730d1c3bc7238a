"""Trackers as views of the telemetry: TensorBoard event files and W&B runs.

This module is imported while the DAG is built, so it imports neither ``tensorboard`` nor
``wandb`` (``rlpipe.tracking.tb`` and ``rlpipe.tracking.wb`` do, inside the tracking jobs).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from rlpipe.runtree import layout
from rlpipe.runtree.telemetry import read_jsonl
from rlpipe.sweep.runs import Run


@dataclass(frozen=True)
class Settings:
    """The ``tracking:`` config section."""

    tensorboard: bool = False
    wandb: dict | None = None  # {project, entity, mode}; None = off

    @classmethod
    def from_config(cls, section: dict | None) -> Settings:
        """From the schema-validated section; ``mode: disabled`` turns W&B off."""
        section = section or {}
        wandb = section.get("wandb")
        if wandb is not None and wandb.get("mode") == "disabled":
            wandb = None
        return cls(tensorboard=bool(section.get("tensorboard")), wandb=wandb)


@dataclass
class Point:
    """Metrics logged at one ``global_step`` (CleanRL names) and its wall time."""

    step: int
    time: float
    metrics: dict[str, float] = field(default_factory=dict)


def segment_points(telemetry: str | Path, evaluation: str | Path, start: int, end: int):
    """A segment's telemetry records, then its checkpoint's evaluation, as Points.

    Raises ValueError naming the file when steps are not strictly increasing inside
    (start, end]: the points of consecutive segments then form one increasing series.
    """
    points: list[Point] = []
    for record in read_jsonl(telemetry):
        step = record.get("global_step")
        last = points[-1].step if points else start
        if not isinstance(step, int) or not last < step <= end:
            raise ValueError(
                f"{telemetry}: global_step {step!r} does not follow step {last} "
                f"inside this segment's ({start}, {end}]"
            )
        metrics = {k: float(v) for k, v in record.items() if "/" in k and _number(v)}
        points.append(Point(step, float(record.get("time", 0.0)), metrics))
    result = json.loads(Path(evaluation).read_text())
    if result.get("step") != end:
        raise ValueError(f"{evaluation}: step {result.get('step')!r}, expected {end}")
    lengths = result["lengths"]
    evals = {
        "eval/mean_return": float(result["mean_return"]),
        "eval/mean_length": sum(lengths) / len(lengths),
    }
    if points and points[-1].step == end:
        points[-1].metrics.update(evals)
    else:
        points.append(Point(end, points[-1].time if points else 0.0, evals))
    return points


def _number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def config_hashes(config: dict, runs: dict[tuple, Run]) -> dict[tuple, str]:
    """Per run, a hash of everything that shapes its curve (not ``total_steps``, so an
    extended run continues its W&B run): algorithm, segment length, resolved hparams,
    evaluation settings, and the hashes of the runs it starts from or clones."""
    memo: dict[tuple, str] = {}

    def digest(key: tuple) -> str:
        if key not in memo:
            run = runs[key]
            ident = {
                "algo": run.algo,
                "checkpoint_every": run.checkpoint_every,
                "hparams": run.hparams,
                "evaluation": config.get("evaluation", {}),
                "init_from": run.init_from and digest((run.init_from, run.env, run.seed)),
                "dataset": run.dataset and _dataset_ident(config, run.dataset, digest),
            }
            text = json.dumps(ident, sort_keys=True, default=str)
            memo[key] = hashlib.sha256(text.encode()).hexdigest()[:10]
        return memo[key]

    return {key: digest(key) for key in runs}


def _dataset_ident(config: dict, name: str, digest) -> dict:
    spec = dict(config["datasets"][name])
    record = spec.get("record")
    if record:
        spec["recorded_from"] = digest((record["experiment"], record["env"], record["run_seed"]))
    return spec


def wandb_run_id(run: Run, config_hash: str) -> str:
    """Deterministic W&B run id of one rlpipe run (W&B forbids ``:;,#?/'`` in ids)."""
    return f"{layout.run_name(run.exp, run.env, run.seed, sep='-')}-{config_hash}"


def wandb_run_config(run: Run, config: dict, config_hash: str) -> dict:
    """The W&B run's config: what its id hashes, readable."""
    return {
        "experiment": run.exp,
        "env_id": run.env,
        "seed": run.seed,
        "algo": run.algo,
        "checkpoint_every": run.checkpoint_every,
        "hparams": run.hparams,
        "evaluation": config.get("evaluation", {}),
        "init_from": run.init_from,
        "dataset": run.dataset,
        "config_hash": config_hash,
    }


def summary_run_id(run_ids) -> str:
    """W&B run id of the summary tables of a set of runs."""
    text = json.dumps(sorted(run_ids))
    return f"rlpipe-summary-{hashlib.sha256(text.encode()).hexdigest()[:10]}"
