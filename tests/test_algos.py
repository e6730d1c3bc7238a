"""rlpipe.algos: the one registry of algorithms agrees with the schema, hparams and rules."""

import dataclasses
import importlib
import inspect
import re
from pathlib import Path

import pytest

from rlpipe.algos import ALGOS
from rlpipe.runtree import layout

ROOT = Path(__file__).resolve().parents[1]


def rule_blocks() -> dict[str, str]:
    """{rule name: its text}, from rules/*.smk: `rule NAME:` and `use rule BASE as NAME with:`
    (whose text is the base rule's followed by its own changes)."""
    text = "\n".join(p.read_text() for p in sorted(ROOT.glob("rules/*.smk")))
    heads = r"^(?:rule (\w+):|use rule (\w+) as (\w+) with:)"
    parts = re.split(heads, text, flags=re.M)[1:]
    blocks = {}
    for rule, base, name, body in zip(*(parts[i::4] for i in range(4)), strict=True):
        blocks[rule or name] = (blocks[base] if base else "") + body
    return blocks


def test_schema_enum_is_the_registry():
    from rlpipe.sweep.config import load_schema

    schema = load_schema(ROOT / "workflow/schemas/config.schema.yaml")
    assert schema["$defs"]["experiment"]["properties"]["algo"]["enum"] == list(ALGOS)


def test_the_warm_worker_loads_every_registered_trainer():
    from rlpipe.warm.jobproc import WARM_MODULES

    assert {spec.job_module for spec in ALGOS.values()} <= set(WARM_MODULES)


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
    blocks = rule_blocks()
    assert spec.rule in blocks, f"{algo}: no rule {spec.rule} in rules/*.smk"
    # every algorithm's rule runs the one segment script with its own job and code version
    assert '"../workflow/scripts/segment.py"' in blocks[spec.rule]
    assert re.findall(r'\*\*segment_job_params\("(\w+)"\)', blocks[spec.rule])[-1] == algo
    assert "worker.run(smk.params.job" in (ROOT / "workflow/scripts/segment.py").read_text()
    job = importlib.import_module(spec.job_module)
    assert callable(getattr(job, spec.job_function))
    assert spec.ckpt_kind in layout.FILES
    assert all(key.split("/")[0] == algo for key in spec.default_sps)


COMMON = ["segment", "hp", "ckpt_out", "telemetry_out", "prev_ckpt"]


@pytest.mark.parametrize("algo", sorted(ALGOS))
def test_every_trainer_has_the_one_signature(algo):
    """train_segment(segment, hp, ckpt_out, telemetry_out, prev_ckpt, ...): what an algorithm
    needs beyond that (a warm start, a dataset) comes after, by name."""
    trainer = importlib.import_module(ALGOS[algo].job_module).train_segment
    params = list(inspect.signature(trainer).parameters)
    assert params[: len(COMMON)] == COMMON
    assert {"threads", "heartbeat"} <= set(params)
