"""Hyper-parameters per algorithm: defaults, descriptions and allowed values in one place.

Each algorithm's parameters are a dataclass; every field carries its description and its
JSON-schema constraints in ``field(metadata=...)``. ``schema(algo)`` turns them into the
fragment that validates ``experiments.*.hparams`` (rlpipe.config), ``expected(...)`` words a
constraint for error messages, and ``resolve`` fills the defaults a config leaves out.

Torch-free: imported while the DAG is built.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field

NUMBER = {"type": "number"}
INTEGER = {"type": "integer"}
BOOLEAN = {"type": "boolean"}
NULL = {"type": "null"}
UNIT = {**NUMBER, "minimum": 0, "maximum": 1}
POSITIVE = {**NUMBER, "exclusiveMinimum": 0}
NON_NEGATIVE = {**NUMBER, "minimum": 0}
COUNT = {**INTEGER, "minimum": 1}
NON_NEGATIVE_INT = {**INTEGER, "minimum": 0}


def describe(f: dataclasses.Field, default) -> str:
    """'FORM (default VALUE): DOC', the expected form an error message shows."""
    return f"{f.metadata['form']} (default {json.dumps(default)}): {f.metadata['doc']}"


def expected(s: dict) -> str:
    """Words for the values a (simple) schema allows, e.g. 'a number in [0, 1]'."""
    if "anyOf" in s:
        return " or ".join(expected(sub) for sub in s["anyOf"])
    if "enum" in s:
        return "one of " + ", ".join(map(str, s["enum"]))
    kind = {"number": "a number", "integer": "an integer", "boolean": "true or false"}
    if s.get("type") == "null":
        return "null"
    low = s.get("minimum", s.get("exclusiveMinimum"))
    high = s.get("maximum", s.get("exclusiveMaximum"))
    words = kind[s["type"]]
    if low is not None and high is not None:
        left = "(" if "exclusiveMinimum" in s else "["
        right = ")" if "exclusiveMaximum" in s else "]"
        return f"{words} in {left}{low}, {high}{right}"
    if low is not None:
        return f"{words} {'>' if 'exclusiveMinimum' in s else '>='} {low}"
    return words


def per_env(value_schema: dict) -> dict:
    """A value, or {ENV_ID: value} with one entry per environment of the experiment."""
    return {"anyOf": [value_schema, {"type": "object", "additionalProperties": value_schema}]}


def param(default, doc: str, schema: dict, form: str | None = None):
    """A hyper-parameter field: its default, description and JSON-schema constraint.

    ``form`` words the allowed values where ``expected(schema)`` cannot.
    """
    meta = {"doc": doc, "schema": schema, "form": form or expected(schema)}
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class PPOParams:
    """CleanRL-style PPO (rlpipe.ppo)."""

    num_envs: int = param(8, "parallel EnvPool environments", COUNT)
    num_steps: int = param(128, "rollout length per environment", COUNT)
    env_pools: int = param(
        1,
        "EnvPools the environments are split into, stepped in turns: while one pool steps, "
        "the policy acts for the next (1: all step at once, as CleanRL; 2 is faster only "
        "where a core is free while the network runs, docs/benchmarks.md); divides num_envs",
        COUNT,
    )
    learning_rate: float = param(2.5e-4, "Adam step size", POSITIVE)
    anneal_lr: bool = param(
        True, "linear decay of the learning rate to 0 at lr_anneal_steps", BOOLEAN
    )
    lr_anneal_steps: int | None = param(
        None,
        "env step where the annealed rate reaches 0 (null: the experiment's total_steps)",
        {"anyOf": [COUNT, NULL]},
    )
    gamma: float = param(0.99, "discount factor", UNIT)
    gae_lambda: float = param(0.95, "GAE lambda", UNIT)
    num_minibatches: int = param(4, "minibatches per epoch; divides num_envs x num_steps", COUNT)
    update_epochs: int = param(4, "passes over each rollout", COUNT)
    norm_adv: bool = param(True, "normalise advantages per minibatch", BOOLEAN)
    clip_coef: float = param(0.2, "clipping range of the probability ratio and value", POSITIVE)
    clip_vloss: bool = param(True, "clip the value loss", BOOLEAN)
    ent_coef: float = param(0.01, "entropy bonus coefficient", NON_NEGATIVE)
    vf_coef: float = param(0.5, "value loss coefficient", NON_NEGATIVE)
    max_grad_norm: float = param(0.5, "global gradient-norm clip", POSITIVE)
    target_kl: float | None = param(
        None,
        "stop an update's epochs above this approximate KL (null: never)",
        {"anyOf": [POSITIVE, NULL]},
    )
    log_every_updates: int = param(1, "updates between telemetry lines", COUNT)


@dataclass
class QLearnParams:
    """Tabular Q-learning with a numba kernel (rlpipe.qlearn)."""

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


@dataclass
class BCParams:
    """Behaviour cloning (rlpipe.bc); one step is one gradient update."""

    batch_size: int = param(256, "(observation, action) pairs per gradient step", COUNT)
    learning_rate: float = param(1e-3, "Adam step size", POSITIVE)
    log_every_steps: int = param(100, "gradient steps between telemetry lines", COUNT)


def _params(algo: str) -> type:
    from rlpipe.algos import ALGOS  # the registry names the dataclasses above

    return ALGOS[algo].hparams


def defaults(algo: str) -> dict:
    """The default hyper-parameters of ``algo``, in field order."""
    return dataclasses.asdict(_params(algo)())


def fields(algo: str) -> dict[str, dataclasses.Field]:
    return {f.name: f for f in dataclasses.fields(_params(algo))}


def schema(algo: str) -> dict:
    """JSON-schema fragment for ``experiments.*.hparams`` of ``algo`` experiments."""
    values = defaults(algo)
    properties = {
        name: {**f.metadata["schema"], "description": describe(f, values[name])}
        for name, f in fields(algo).items()
    }
    return {
        "type": "object",
        "description": f"{algo} hyper-parameters: {', '.join(properties)}",
        "additionalProperties": False,
        "properties": properties,
    }


def resolve(algo: str, overrides: dict | None, total_steps: int) -> dict:
    """Defaults for ``algo`` updated with ``overrides``; unknown keys raise KeyError."""
    base = defaults(algo)
    unknown = sorted(set(overrides or {}) - set(base))
    if unknown:
        raise KeyError(f"unknown {algo} hparams {unknown}; allowed: {sorted(base)}")
    base.update(overrides or {})
    if "lr_anneal_steps" in base and base["lr_anneal_steps"] is None:
        base["lr_anneal_steps"] = total_steps
    return base
