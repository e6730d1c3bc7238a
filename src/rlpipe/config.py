"""Load and validate the workflow config against its JSON schema (torch-free)."""

from __future__ import annotations

from pathlib import Path

import jsonschema
import yaml

from rlpipe.runs import ConfigError


def _where(error: jsonschema.ValidationError) -> str:
    path = ".".join(str(p) for p in error.absolute_path)
    return path or "(top level)"


def validate(config: dict, schema_path: str | Path, source: str = "config") -> dict:
    """Validate ``config``, fill schema defaults, raise ConfigError naming every bad key."""
    schema = yaml.safe_load(Path(schema_path).read_text())
    validator_cls = jsonschema.validators.validator_for(schema)
    validator = _with_defaults(validator_cls)(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: list(e.absolute_path))
    if errors:
        lines = [f"invalid {source}:"]
        for err in errors:
            expected = err.schema.get("description") if isinstance(err.schema, dict) else None
            hint = f" (expected: {expected})" if expected else ""
            lines.append(f"  - key {_where(err)}: {err.message}{hint}")
        raise ConfigError("\n".join(lines))
    return config


def _with_defaults(validator_cls):
    """A validator that also sets ``default`` values of absent properties."""
    validate_properties = validator_cls.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for name, sub in properties.items():
                if isinstance(sub, dict) and "default" in sub:
                    instance.setdefault(name, sub["default"])
        yield from validate_properties(validator, properties, instance, schema)

    return jsonschema.validators.extend(validator_cls, {"properties": set_defaults})


def load(path: str | Path, schema_path: str | Path) -> dict:
    """Read a YAML config file and validate it; errors name the file."""
    try:
        config = yaml.safe_load(Path(path).read_text()) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from None
    return validate(config, schema_path, source=str(path))
