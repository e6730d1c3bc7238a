"""Tabular Q-learning's hyper-parameters: one typed field per config key, with its
description and schema (torch-free: the registry reads it while the DAG is built)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from rlpipe.algos.hparams import (
    COUNT,
    NON_NEGATIVE,
    NON_NEGATIVE_INT,
    NULL,
    NUMBER,
    POSITIVE,
    UNIT,
    defaults,
    param,
    per_env,
)


@dataclass
class QLearnParams:
    """Tabular Q-learning with a numba kernel (rlpipe.algos.qlearn)."""

    algo: ClassVar[str] = "qlearn"

    num_envs: int = param(16, "parallel EnvPool environments", COUNT)
    learning_rate: float = param(0.1, "alpha of the tabular TD update", {**POSITIVE, "maximum": 1})
    gamma: float = param(0.99, "discount factor", UNIT)
    epsilon_start: float = param(1.0, "epsilon-greedy exploration at the start", UNIT)
    epsilon_end: float = param(0.01, "epsilon-greedy exploration after the decay", UNIT)
    epsilon_decay_steps: int = param(
        200_000, "env steps of the linear epsilon decay", NON_NEGATIVE_INT
    )
    indexer: str = param(
        "uniform",
        "uniform bins, or adaptive (percentile edges from the first states)",
        {"enum": ["uniform", "adaptive"]},
    )
    bins: int | list = param(
        [1, 6, 12, 12],
        "bins per observation dimension",
        per_env({"anyOf": [COUNT, {"type": "array", "minItems": 1, "items": COUNT}]}),
        form="an integer >= 1 or a list of them (one per observation dimension), or {ENV_ID: that}",
    )
    low: float | list | None = param(
        None,
        "uniform indexer: per-dimension lower bounds (null: the observation space's)",
        per_env({"anyOf": [NUMBER, NULL, {"type": "array", "minItems": 1, "items": NUMBER}]}),
        form="null, a number or a list of numbers (one per observation dimension), "
        "or {ENV_ID: that}",
    )
    high: float | list | None = param(
        None,
        "uniform indexer: per-dimension upper bounds (null: the observation space's)",
        per_env({"anyOf": [NUMBER, NULL, {"type": "array", "minItems": 1, "items": NUMBER}]}),
        form="null, a number or a list of numbers (one per observation dimension), "
        "or {ENV_ID: that}",
    )
    inf_clip: float = param(3.0, "uniform indexer: infinite bounds become -/+ this", POSITIVE)
    adaptive_fit_states: int = param(
        10_000, "adaptive indexer: states collected before fitting", COUNT
    )
    replay_size: int = param(0, "prioritised replay capacity (0: off)", NON_NEGATIVE_INT)
    replay_alpha: float = param(0.6, "prioritisation exponent", NON_NEGATIVE)
    replay_batch: int = param(32, "transitions per replay batch", COUNT)
    replay_updates_per_step: int = param(1, "replay batches per vector step", NON_NEGATIVE_INT)
    log_every_steps: int = param(20_000, "env steps between telemetry lines", COUNT)


def env_problems(given: dict, env: str, envs: list[str], obs_shape: tuple, usable):
    """Checks of Q-learning's hyper-parameters against one env (rlpipe.sweep.config_checks):
    the bins/low/high lists need one entry per observation dimension. Yields (hparams key,
    what is wrong and what is expected); ``given``: the experiment's hparams;
    ``usable(*keys)``: the schema found those keys fine."""
    dims = obs_shape[0]
    for key in ("bins", "low", "high"):
        if not usable(key):
            continue
        value = given.get(key, defaults(QLearnParams)[key])
        if isinstance(value, dict):
            if env not in value:
                yield key, f"no entry for {env!r}; expected one per env {envs}"
                continue
            key, value = f"{key}.{env}", value[env]
        if isinstance(value, list) and len(value) != dims:
            yield (
                key,
                f"{len(value)} entries, but {env} observations have {dims} dimensions; "
                f"expected {dims} entries (or one value for all)",
            )


# The metrics its trainer writes beyond rlpipe.runtree.telemetry's common ones (name: what it is).
METRICS = {
    "charts/epsilon": "exploration rate of epsilon-greedy (Q-learning)",
    "charts/coverage": "fraction of the Q-table's states visited (Q-learning)",
    "charts/updates": "Q-value updates in the run so far (Q-learning)",
    "charts/updates_per_second": "Q-value updates per second since last log (Q-learning)",
    "losses/td_error_mean": "mean absolute TD error since last log (Q-learning)",
    "replay/size": "transitions in the prioritised replay (Q-learning with replay)",
    "replay/priority_mean": "mean priority in the replay (Q-learning with replay)",
    "replay/priority_max": "largest priority in the replay (Q-learning with replay)",
}
