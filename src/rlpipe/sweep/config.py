"""Load and validate the workflow config (torch-free: runs while the DAG is built).

Validation has two passes, and reports the problems of both at once, one line each, naming
the full key path, the value and the expected form:

1. the JSON schema (``workflow/schemas/config.schema.yaml``, with the per-algorithm
   hyper-parameter fragments of each algorithm's params dataclass added), which also fills defaults;
2. the checks a schema cannot express (``rlpipe.sweep.config_checks``): divisibility, references
   between experiments and datasets, ``init_from`` cycles, EnvPool task ids and spaces. A
   check is skipped where the schema already found the keys it reads wrong.
"""

from __future__ import annotations

import math
from pathlib import Path

import jsonschema
import yaml

from rlpipe.algos import ALGOS, hparams
from rlpipe.sweep import config_checks
from rlpipe.sweep.config_checks import Problem
from rlpipe.sweep.runs import ConfigError

SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when available


def validate(config: dict, schema_path: str | Path, source: str = "config") -> dict:
    """Validate ``config``, fill schema defaults, raise ConfigError listing every problem."""
    schema = load_schema(schema_path)
    validator = _validator_cls(schema)(schema)
    problems = [_problem(err) for err in validator.iter_errors(config)]
    problems = [p for group in problems for p in group]
    problems += config_checks.check(config, {p.path for p in problems})
    if problems:
        lines = [f"invalid {source} ({len(problems)} problem{'s' * (len(problems) > 1)}):"]
        lines += [f"  - {p.path}: {p.message}" for p in sorted(problems, key=_order)]
        raise ConfigError("\n".join(lines))
    return config


def load(path: str | Path, schema_path: str | Path) -> dict:
    """Read a YAML config file and validate it; errors name the file."""
    try:
        config = yaml.safe_load(Path(path).read_text()) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from None
    return validate(config, schema_path, source=str(path))


def load_schema(schema_path: str | Path) -> dict:
    """The schema file, with the algorithms of the registry (rlpipe.algos) and their
    ``hparams`` validated per algorithm (fragments from each algorithm's params dataclass)."""
    schema = yaml.load(Path(schema_path).read_text(), Loader=SAFE_LOADER)
    schema["$defs"]["experiment"]["properties"]["algo"] = {
        "description": f"one of {', '.join(ALGOS)}",
        "enum": list(ALGOS),
    }
    schema["$defs"]["experiment"]["allOf"] = [
        {
            "if": {"properties": {"algo": {"const": algo}}, "required": ["algo"]},
            "then": {"properties": {"hparams": hparams.schema(spec.hparams)}},
        }
        for algo, spec in ALGOS.items()
    ]
    return schema


def _validator_cls(schema: dict):
    """The schema's draft with strict numbers (no bools, no 8.0 as an integer, no NaN/inf)
    that also fills in defaults of absent properties."""
    base = jsonschema.validators.validator_for(schema)
    checker = base.TYPE_CHECKER.redefine_many(
        {
            "integer": lambda _, x: isinstance(x, int) and not isinstance(x, bool),
            "number": lambda _, x: (
                isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)
            ),
        }
    )
    validate_properties = base.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for name, sub in properties.items():
                if isinstance(sub, dict) and "default" in sub:
                    instance.setdefault(name, sub["default"])
        yield from validate_properties(validator, properties, instance, schema)

    return jsonschema.validators.extend(base, {"properties": set_defaults}, type_checker=checker)


def _problem(err: jsonschema.ValidationError) -> list[Problem]:
    """One schema error as problems: path, what was found, what was expected."""
    path = ".".join(str(p) for p in err.absolute_path)
    schema = err.schema if isinstance(err.schema, dict) else {}
    if err.validator == "required":
        name = err.message.split("'")[1]
        sub = schema.get("properties", {}).get(name, {})
        return [Problem(_join(path, name), f"missing; expected {_expected(sub, err)}")]
    if "propertyNames" in err.schema_path:  # err.instance is the bad name
        return [
            Problem(
                _join(path, err.instance), f"not a valid name; expected {_expected(schema, err)}"
            )
        ]
    if err.validator == "additionalProperties" and schema.get("properties"):
        extra = sorted(set(err.instance) - set(schema["properties"]))
        known = ", ".join(schema["properties"])
        return [
            Problem(_join(path, key), f"unknown key; expected one of: {known}") for key in extra
        ]
    return [
        Problem(
            path or "(top level)", f"got {_short(err.instance)}; expected {_expected(schema, err)}"
        )
    ]


def _expected(schema: dict, err: jsonschema.ValidationError) -> str:
    return schema.get("description") or err.message


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _short(value) -> str:
    text = repr(value) if not isinstance(value, bool | None) else yaml.safe_dump(value).split()[0]
    kind = {str: " (a string)", float: " (a float)", bool: " (a boolean)"}.get(type(value), "")
    return (text if len(text) <= 60 else text[:57] + "...") + kind


def _order(problem: Problem) -> tuple:
    """Key paths in reading order: list indices compare as numbers."""
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in problem.path.split("."))
