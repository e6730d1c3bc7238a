"""Hyper-parameter dataclasses: how a field states its default, description and allowed values.

Each algorithm's parameters are a dataclass in its package (``rlpipe.algos.<name>.params``)
built with :func:`param`; every field carries its description and its
JSON-schema constraints in ``field(metadata=...)``. ``schema(params)`` turns one into the
fragment that validates ``experiments.*.hparams`` (rlpipe.sweep.config), ``expected(...)`` words a
constraint for error messages, ``resolve`` fills the defaults a config leaves out, and
``typed`` gives the dataclass the training loops read. The registry (rlpipe.algos) names each
algorithm's dataclass; this module knows no registry.

Torch-free: imported while the DAG is built.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import field

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


def defaults(params: type) -> dict:
    """The default hyper-parameters of an algorithm's dataclass, in field order."""
    return dataclasses.asdict(params())


def fields(params: type) -> dict[str, dataclasses.Field]:
    return {f.name: f for f in dataclasses.fields(params)}


def schema(params: type) -> dict:
    """JSON-schema fragment for ``experiments.*.hparams`` of the algorithm's experiments."""
    values = defaults(params)
    properties = {
        name: {**f.metadata["schema"], "description": describe(f, values[name])}
        for name, f in fields(params).items()
    }
    return {
        "type": "object",
        "description": f"{params.algo} hyper-parameters: {', '.join(properties)}",
        "additionalProperties": False,
        "properties": properties,
    }


def resolve(params: type, overrides: dict | None, total_steps: int | None) -> dict:
    """Defaults updated with ``overrides`` (unknown keys raise KeyError), in field order: the
    plain data a run's jobs receive."""
    base = defaults(params)
    unknown = sorted(set(overrides or {}) - set(base))
    if unknown:
        raise KeyError(f"unknown {params.algo} hparams {unknown}; allowed: {sorted(base)}")
    base.update(overrides or {})
    if "lr_anneal_steps" in base and base["lr_anneal_steps"] is None:
        base["lr_anneal_steps"] = total_steps
    return base


def typed(params: type, overrides: dict | None = None, total_steps: int | None = None):
    """``resolve`` as the dataclass the training loops read (``hp.gamma``)."""
    return params(**resolve(params, overrides, total_steps))
