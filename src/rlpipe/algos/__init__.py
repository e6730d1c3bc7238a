"""The algorithms rlpipe trains, in one registry (torch-free: read while the DAG is built).

Each :class:`AlgoSpec` names what the workflow needs to know of an algorithm: its
hyper-parameters (its ``params`` dataclass), its checkpoint kind (rlpipe.runtree.layout), its
Snakemake rule and rule script, the warm worker's job (module and function, see
rlpipe.warm.worker), the built-in planning throughput (rlpipe.results.plan) and what it takes
as input.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from rlpipe.algos.bc import params as bc_params
from rlpipe.algos.ppo import params as ppo_params
from rlpipe.algos.qlearn import params as qlearn_params


@dataclass(frozen=True)
class AlgoSpec:
    hparams: type  # its params dataclass (algos/<name>/params.py), a docstring per field
    ckpt_kind: str  # rlpipe.runtree.layout kind of its checkpoints: "ckpt" (.pt) or "qtable" (.npz)
    rule: str  # the Snakemake rule training one segment
    job_module: str  # the worker runs f"{job_module}:{job_function}" (kept apart: see below)
    job_function: str
    default_sps: dict[str, float]  # rlpipe.results.plan's built-in env steps/s, by planning key
    update_keys: tuple[str, ...] = ()  # hparams whose product is the env steps of one update
    warm_starts_from: frozenset[str] = field(default_factory=frozenset)  # init_from's algos
    needs_dataset: bool = False  # trains on a replay dataset (config key dataset)
    vector_obs_only: bool = False  # takes vector observations (D,) only, no frames
    # Config checks a schema cannot express (rlpipe.sweep.config_checks), from its params
    # module: hparam_problems(hp, usable, budgets) and env_problems(given, env, envs,
    # obs_shape, usable), each yielding (hparams key, what is wrong and what is expected).
    hparam_problems: Callable[..., Iterable[tuple[str, str]]] | None = None
    env_problems: Callable[..., Iterable[tuple[str, str]]] | None = None

    @property
    def job(self) -> str:
        """The worker's job target. rlpipe.smk.provenance follows such strings to the module they
        name, so this module holds them only in parts: importing it covers no algorithm."""
        return f"{self.job_module}:{self.job_function}"

    def steps_per_update(self, hp: dict) -> int:
        """Environment steps one update consumes (a BC step is one gradient update)."""
        return math.prod(hp[key] for key in self.update_keys)


# Built-in throughputs (env steps/s of one job, charts/SPS): Atari PPO on a GPU from CleanRL's
# published ppo_atari_envpool figure (~900-1,100 SPS); the rest from the demo's CPU jobs on a
# 2-core VM (`make run`; one torch thread per job). A key ending in "/cpu" applies to runs
# without a GPU (resources.gpu 0) and is tried first for them.
ALGOS: dict[str, AlgoSpec] = {
    "ppo": AlgoSpec(
        hparams=ppo_params.PPOParams,
        ckpt_kind="ckpt",
        rule="ppo_segment",
        job_module="rlpipe.algos.ppo.train",
        job_function="segment_job",
        # ppo/atari: one job alone on an H200 (2 threads), scaled by rlpipe.results.plan.GPU_SHARING
        default_sps={"ppo/atari": 1585.0, "ppo/atari/cpu": 250.0, "ppo/classic": 3500.0},
        update_keys=("num_envs", "num_steps"),
        warm_starts_from=frozenset({"ppo", "bc"}),
        hparam_problems=ppo_params.problems,
    ),
    "qlearn": AlgoSpec(
        hparams=qlearn_params.QLearnParams,
        ckpt_kind="qtable",
        rule="qlearn_segment",
        job_module="rlpipe.algos.qlearn.train",
        job_function="segment_job",
        default_sps={"qlearn": 100000.0},
        update_keys=("num_envs",),
        warm_starts_from=frozenset({"qlearn"}),
        vector_obs_only=True,
        env_problems=qlearn_params.env_problems,
    ),
    "bc": AlgoSpec(
        hparams=bc_params.BCParams,
        ckpt_kind="ckpt",
        rule="bc_segment",
        job_module="rlpipe.algos.bc.train",
        job_function="segment_job",
        default_sps={"bc": 1200.0},
        needs_dataset=True,
    ),
}
