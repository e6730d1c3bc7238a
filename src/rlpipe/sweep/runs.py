"""Expand validated config into runs (experiment x env x seed) and their segment steps.

Torch-free: imported by ``rules/setup.smk`` while the DAG is built.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from rlpipe.algos import ALGOS
from rlpipe.algos import hparams as hp_defaults
from rlpipe.runtree import layout


class ConfigError(ValueError):
    """A config problem, worded for the user: names the key and what is wrong."""


@dataclass(frozen=True)
class Resources:
    """What each job of a run holds (config ``resources``; defaults as the schema's)."""

    threads: int = 1
    gpu: int = 0
    mem_mb: int = 2000
    runtime: int = 60  # minutes


@dataclass(frozen=True)
class Run:
    exp: str
    env: str
    seed: int
    algo: str
    total_steps: int
    checkpoint_every: int
    hparams: dict = field(hash=False)
    init_from: str | None = None
    dataset: str | None = None
    resources: Resources = Resources()
    stall_timeout: float = 600.0  # seconds without progress before a segment job fails

    @property
    def dir(self) -> str:
        return layout.run_dir(self.exp, self.env, self.seed)

    def path(self, kind: str, step: int) -> str:
        """The run's file of ``kind`` (a key of rlpipe.runtree.layout.FILES) at ``step``."""
        return layout.path(kind, self.exp, self.env, self.seed, step)

    @property
    def steps(self) -> list[int]:
        """End step of every segment, the last one equal to total_steps."""
        return segment_steps(self.total_steps, self.checkpoint_every)

    def previous_step(self, step: int) -> int | None:
        steps = self.steps
        i = steps.index(step)
        return steps[i - 1] if i else None


def segment_steps(total: int, every: int) -> list[int]:
    steps = list(range(every, total, every))
    return steps + [total]


def budgets(spec: dict) -> dict:
    """total_steps as {env or "default": steps}; a plain integer applies to every env."""
    total = spec["total_steps"]
    return {"default": total} if isinstance(total, int) else dict(total)


def expand_runs(config: dict) -> dict[tuple[str, str, int], Run]:
    """All runs of a validated config (rlpipe.sweep.config.validate), keyed by (exp, env, seed)."""
    runs: dict[tuple[str, str, int], Run] = {}
    for exp, spec in config["experiments"].items():
        algo = spec["algo"]
        budget = budgets(spec)
        for env in spec["envs"]:
            total = budget.get(env, budget.get("default"))
            hparams = hp_defaults.resolve(ALGOS[algo].hparams, spec.get("hparams"), total)
            for seed in spec["seeds"]:
                runs[(exp, env, int(seed))] = Run(
                    exp=exp,
                    env=env,
                    seed=int(seed),
                    algo=algo,
                    total_steps=total,
                    checkpoint_every=int(spec["checkpoint_every"]),
                    hparams=hparams,
                    init_from=spec.get("init_from"),
                    dataset=spec.get("dataset"),
                    resources=Resources(**(spec.get("resources") or {})),
                    stall_timeout=float(spec.get("stall_timeout", Run.stall_timeout)),
                )
    return runs


def recording_source(dataset: dict | None) -> tuple[str, str, int] | None:
    """The run whose final checkpoint a dataset is recorded from (its ``record:``), if any."""
    record = (dataset or {}).get("record")
    if not record:
        return None
    return (record["experiment"], record["env"], int(record["run_seed"]))


def read_by_others(runs: dict[tuple[str, str, int], Run], datasets: dict) -> set:
    """Runs that other runs read: a warm start's source, a recorded dataset's teacher."""
    keys = {(r.init_from, r.env, r.seed) for r in runs.values() if r.init_from}
    sources = (recording_source(spec) for spec in datasets.values())
    return keys | {key for key in sources if key is not None}
