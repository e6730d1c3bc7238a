"""rlpipe.algos: the one registry of algorithms agrees with the schema, hparams and rules."""

import dataclasses
import re
from pathlib import Path

import pytest
import yaml

from rlpipe import layout
from rlpipe.algos import ALGOS

ROOT = Path(__file__).resolve().parents[1]


def rule_scripts() -> dict[str, str]:
    """{rule name: its script's text}, read from rules/*.smk."""
    text = "\n".join(p.read_text() for p in sorted(ROOT.glob("rules/*.smk")))
    blocks = re.split(r"^rule (\w+):", text, flags=re.M)[1:]
    scripts = {}
    for name, body in zip(blocks[::2], blocks[1::2], strict=True):
        script = re.search(r'script:\s*"\.\./(workflow/scripts/\w+\.py)"', body)
        scripts[name] = (ROOT / script[1]).read_text() if script else ""
    return scripts


def test_schema_enum_is_the_registry():
    schema = yaml.safe_load((ROOT / "workflow/schemas/config.schema.yaml").read_text())
    assert schema["$defs"]["experiment"]["properties"]["algo"]["enum"] == list(ALGOS)


@pytest.mark.parametrize("algo", sorted(ALGOS))
def test_every_hparam_is_documented(algo):
    params = ALGOS[algo].hparams
    assert params.__doc__
    for field in dataclasses.fields(params):
        assert field.metadata.get("doc"), f"{algo}: hparam {field.name} has no docstring"
    assert set(ALGOS[algo].update_keys) <= {f.name for f in dataclasses.fields(params)}


@pytest.mark.parametrize("algo", sorted(ALGOS))
def test_rule_script_and_job_exist(algo):
    spec = ALGOS[algo]
    scripts = rule_scripts()
    assert spec.rule in scripts, f"{algo}: no rule {spec.rule} in rules/*.smk"
    assert f'worker.run("{spec.job}"' in scripts[spec.rule]
    assert spec.ckpt_kind in layout.FILES
    assert all(key.split("/")[0] == algo for key in spec.default_sps)


COMMON = ["segment", "hp", "ckpt_out", "telemetry_out", "prev_ckpt"]


@pytest.mark.parametrize("algo", sorted(ALGOS))
def test_every_trainer_has_the_one_signature(algo):
    """train_segment(segment, hp, ckpt_out, telemetry_out, prev_ckpt, ...): what an algorithm
    needs beyond that (a warm start, a dataset) comes after, by name."""
    import importlib
    import inspect

    trainer = importlib.import_module(ALGOS[algo].job_module).train_segment
    params = list(inspect.signature(trainer).parameters)
    assert params[: len(COMMON)] == COMMON
    assert {"threads", "heartbeat"} <= set(params)
