"""Config validation: malformed configs fail before the DAG is built, naming the key."""

from __future__ import annotations

import copy

import pytest

from rlpipe import config as rlconfig
from rlpipe.runs import ConfigError, expand_runs, segment_steps

from conftest import tiny_config
from pipeline import REPO, Workdir

SCHEMA = REPO / "workflow/schemas/config.schema.yaml"


def _validated(cfg):
    return expand_runs(rlconfig.validate(cfg, SCHEMA))


def _broken(mutate):
    cfg = copy.deepcopy(tiny_config())
    mutate(cfg)
    return cfg


@pytest.mark.parametrize(
    "mutate, words",
    [
        (lambda c: c["experiments"]["cp"].update(seeds="1,2"), ["experiments.cp.seeds", "array"]),
        (lambda c: c["experiments"]["cp"].update(algo="dqn"), ["experiments.cp.algo", "dqn"]),
        (lambda c: c["experiments"]["cp"].update(total_step=5), ["experiments.cp", "total_step"]),
        (lambda c: c["experiments"]["cp"].pop("envs"), ["experiments.cp", "'envs'"]),
        (lambda c: c["evaluation"].update(episodes=0), ["evaluation.episodes", "minimum"]),
        (lambda c: c.update(experiment={}), ["(top level)", "experiment"]),
        (lambda c: c["experiments"]["cp"].update(envs=["cartpole"]), ["experiments.cp.envs.0"]),
    ],
)
def test_schema_errors_name_the_key(mutate, words):
    with pytest.raises(ConfigError) as err:
        _validated(_broken(mutate))
    for word in words:
        assert word in str(err.value)


def test_semantic_errors_name_the_key():
    bad_every = _broken(lambda c: c["experiments"]["cp"].update(checkpoint_every=500))
    with pytest.raises(ConfigError, match=r"experiments\.cp\.checkpoint_every: 500 .*multiple"):
        _validated(bad_every)
    bad_hp = _broken(lambda c: c["experiments"]["cp"]["hparams"].update(lr=1))
    with pytest.raises(
        ConfigError, match=r"experiments\.cp\.hparams: unknown ppo hparams \['lr'\]"
    ):
        _validated(bad_hp)
    bad_init = _broken(lambda c: c["experiments"]["cp"].update(init_from="nope"))
    with pytest.raises(ConfigError, match=r"experiments\.cp\.init_from: no experiment named"):
        _validated(bad_init)
    too_long = _broken(lambda c: c["experiments"]["cp"].update(checkpoint_every=2048))
    with pytest.raises(ConfigError, match=r"experiments\.cp\.checkpoint_every: 2048 exceeds"):
        _validated(too_long)


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
    assert segment_steps(10, 4) == [4, 8, 10]


def test_snakemake_reports_the_bad_key_before_building_the_dag(tmp_path):
    work = Workdir(tmp_path, _broken(lambda c: c["experiments"]["cp"].update(seeds=["x"])))
    proc = work.run("-n", check=False)
    assert proc.returncode != 0
    assert "experiments.cp.seeds.0" in proc.stderr + proc.stdout
    assert "Building DAG" not in proc.stdout + proc.stderr
