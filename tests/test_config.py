"""Config validation: the shipped configs, hyper-parameter schemas, the EnvPool task cache."""

from __future__ import annotations

import copy
import dataclasses
import json
import os
import subprocess
import sys

import jsonschema
import pytest
import yaml

from rlpipe.algos import ALGOS, hparams
from rlpipe.sweep import config as rlconfig
from rlpipe.sweep import envspecs
from rlpipe.sweep.runs import ConfigError, Resources, Run, expand_runs, segment_steps

from conftest import tiny_config
from pipeline import REPO, SNAKEMAKE, Workdir

SCHEMA = REPO / "workflow/schemas/config.schema.yaml"


def _validated(cfg):
    return expand_runs(rlconfig.validate(cfg, SCHEMA))


@pytest.mark.parametrize("name", ["config.yaml", "atari10.yaml"])
def test_shipped_configs_validate(name):
    runs = _validated(yaml.safe_load((REPO / "config" / name).read_text()))
    for run in runs.values():
        defaults = hparams.defaults(ALGOS[run.algo].hparams)
        assert list(run.hparams) == list(defaults)  # every key, field order


def test_defaults_filled_and_runs_expanded():
    runs = _validated(tiny_config())
    assert sorted(runs) == [
        ("cp", "CartPole-v1", 1),
        ("cp", "CartPole-v1", 2),
        ("pong", "Pong-v5", 1),
    ]
    run = runs[("cp", "CartPole-v1", 1)]
    assert run.steps == [512, 1024, 1536]
    assert run.previous_step(512) is None and run.previous_step(1536) == 1024
    assert run.hparams["gamma"] == 0.99 and run.hparams["num_envs"] == 4
    assert runs[("pong", "Pong-v5", 1)].hparams["lr_anneal_steps"] == 100000  # as given
    assert segment_steps(10, 4) == [4, 8, 10]


def test_runs_carry_their_resources_with_the_schema_defaults():
    schema = yaml.safe_load(SCHEMA.read_text())
    given = schema["$defs"]["experiment"]["properties"]["resources"]["properties"]
    assert dataclasses.asdict(Resources()) == {key: p["default"] for key, p in given.items()}
    config = tiny_config()
    config["experiments"]["cp"]["resources"] = {"gpu": 1, "mem_mb": 500}
    runs = _validated(config)
    assert runs[("cp", "CartPole-v1", 2)].resources == Resources(gpu=1, mem_mb=500)
    assert runs[("pong", "Pong-v5", 1)].resources == Resources()


def test_runs_carry_their_stall_timeout_with_the_schema_default():
    schema = yaml.safe_load(SCHEMA.read_text())
    default = schema["$defs"]["experiment"]["properties"]["stall_timeout"]["default"]
    config = tiny_config()
    config["experiments"]["cp"]["stall_timeout"] = 42
    runs = _validated(config)
    assert runs[("cp", "CartPole-v1", 2)].stall_timeout == 42
    assert runs[("pong", "Pong-v5", 1)].stall_timeout == default == Run.stall_timeout


def test_lr_anneal_steps_defaults_to_each_envs_budget():
    cfg = tiny_config()
    cfg["experiments"]["cp"]["hparams"].pop("lr_anneal_steps")
    cfg["experiments"]["cp"]["total_steps"] = {"default": 1024, "CartPole-v1": 1536}
    run = _validated(cfg)[("cp", "CartPole-v1", 1)]
    assert run.total_steps == 1536 and run.hparams["lr_anneal_steps"] == 1536


@pytest.mark.parametrize("algo", sorted(ALGOS))
def test_every_default_satisfies_its_own_schema(algo):
    params = ALGOS[algo].hparams
    fragment = hparams.schema(params)
    assert list(fragment["properties"]) == list(hparams.defaults(params))
    jsonschema.Draft202012Validator(fragment).validate(hparams.defaults(params))
    for name, prop in fragment["properties"].items():
        assert prop["description"].count(":") >= 1, name  # "FORM (default X): DOC"


def test_expected_words_follow_the_schema():
    assert hparams.expected(hparams.UNIT) == "a number in [0, 1]"
    assert hparams.expected({"type": "number", "exclusiveMinimum": 0, "maximum": 1}) == (
        "a number in (0, 1]"
    )
    assert hparams.expected({"anyOf": [hparams.COUNT, hparams.NULL]}) == "an integer >= 1 or null"


def test_all_problems_are_listed_at_once_one_line_each():
    cfg = tiny_config()
    cp = cfg["experiments"]["cp"]
    cp["hparams"].update(num_minibatches=0, gamma=1.5)
    cp["seeds"] = "1,2"
    cfg["experiments"]["pong"]["envs"] = ["NoSuchGame-v5"]
    cfg["experiments"]["pong"]["init_from"] = "pong"
    with pytest.raises(ConfigError) as err:
        _validated(cfg)
    lines = str(err.value).splitlines()
    assert lines[0] == "invalid config (5 problems):"
    assert [line.split(":")[0] for line in lines[1:]] == [
        "  - experiments.cp.hparams.gamma",
        "  - experiments.cp.hparams.num_minibatches",
        "  - experiments.cp.seeds",
        "  - experiments.pong.envs.0",
        "  - experiments.pong.init_from",
    ]
    assert "got 1.5" in lines[1] and "a number in [0, 1]" in lines[1]


def test_schema_problems_skip_checks_that_would_echo_them():
    cfg = tiny_config()
    cfg["experiments"]["cp"]["hparams"]["num_envs"] = "4"  # would break num_envs x num_steps
    with pytest.raises(ConfigError) as err:
        _validated(cfg)
    assert str(err.value).count("\n") == 1, err.value


def test_snakemake_reports_the_bad_key_before_building_the_dag(tmp_path):
    cfg = tiny_config()
    cfg["experiments"]["cp"]["seeds"] = ["x"]
    work = Workdir(tmp_path, cfg)
    proc = work.run("-n", check=False)
    assert proc.returncode != 0
    assert "experiments.cp.seeds.0: got 'x'" in proc.stderr + proc.stdout
    assert "Building DAG" not in proc.stdout + proc.stderr


def test_envpool_registry_cache(tmp_path, monkeypatch):
    """A cold cache asks EnvPool once; a warm one answers without importing it."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    cold = envspecs.registry(["CartPole-v1", "Pendulum-v1", "NoSuchGame-v5"])
    assert cold.spec("CartPole-v1") == envspecs.EnvSpec((4,), 2, "Discrete(2)")
    assert cold.spec("Pendulum-v1").n_actions is None
    assert cold.spec("NoSuchGame-v5") is None and "CartPole-v1" in cold.ids
    cached = json.loads(envspecs.cache_path().read_text())
    assert envspecs.cache_path().parent == tmp_path / "rlpipe"
    assert set(cached["specs"]) == {"CartPole-v1", "Pendulum-v1"}

    code = (
        "import sys\n"
        "from rlpipe.sweep import envspecs\n"
        "r = envspecs.registry(['CartPole-v1', 'NoSuchGame-v5'])\n"
        "assert r.spec('CartPole-v1').obs_shape == (4,) and r.spec('NoSuchGame-v5') is None\n"
        "assert 'envpool' not in sys.modules\n"
    )
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path), "PYTHONPATH": str(REPO / "src")}
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_corrupt_envpool_cache_is_rebuilt(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    envspecs.cache_path().parent.mkdir(parents=True)
    envspecs.cache_path().write_text('{"ids": ["CartPole-v1"], "spe')
    assert envspecs.registry(["Acrobot-v1"]).spec("Acrobot-v1").n_actions == 3
    assert "Acrobot-v1" in json.loads(envspecs.cache_path().read_text())["specs"]


def test_validation_does_not_change_the_given_hparams():
    cfg = tiny_config()
    before = copy.deepcopy(cfg["experiments"]["cp"]["hparams"])
    _validated(cfg)
    assert cfg["experiments"]["cp"]["hparams"] == before  # defaults go to runs, not config


def test_derived_checks_still_run_beside_unrelated_schema_problems():
    cfg = tiny_config()
    cfg["experiments"]["cp"]["hparams"].update(gamma=3, num_minibatches=3)
    with pytest.raises(ConfigError) as err:
        _validated(cfg)
    assert "hparams.gamma: got 3" in str(err.value)
    assert "hparams.num_minibatches: 3 does not divide the batch" in str(err.value)


def test_config_readme_documents_every_schema_key():
    """config/README.md names every key the schema accepts (leaf names, in backticks)."""
    import re

    schema = yaml.safe_load((REPO / "workflow/schemas/config.schema.yaml").read_text())
    text = (REPO / "config/README.md").read_text()

    def names(node):
        if "$ref" in node:
            node = schema["$defs"][node["$ref"].split("/")[-1]]
        for key, sub in (node.get("properties") or {}).items():
            yield key
            yield from names(sub)
        if isinstance(node.get("additionalProperties"), dict):
            yield from names(node["additionalProperties"])

    pattern = r"`([\w.<>]*\.)?{}(\.[\w.<>]*)?`"
    missing = sorted({n for n in names(schema) if not re.search(pattern.format(n), text)})
    assert not missing, f"config/README.md does not document: {missing}"


@pytest.mark.parametrize("path", sorted((REPO / "tests/configs").glob("*.yaml")), ids=str)
def test_every_test_config_is_valid_and_plans(path, tmp_path):
    """tests/configs/*.yaml are configs a person can run: each validates and dry-runs."""
    cmd = [
        SNAKEMAKE,
        "-s",
        str(REPO / "Snakefile"),
        "-d",
        str(tmp_path),
        "-n",
        "--cores",
        "1",
        "--configfile",
        str(path),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "rlpipe plan:" in proc.stdout
