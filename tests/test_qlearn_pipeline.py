"""Q-learning through the workflow: two envs, warm start as a DAG edge, determinism."""

from __future__ import annotations

import pandas as pd
import pytest

from pipeline import Workdir

pytestmark = pytest.mark.slow

HP = {"num_envs": 8, "bins": {"CartPole-v1": [1, 6, 12, 12], "Acrobot-v1": 4}}


def qlearn_config() -> dict:
    return {
        "experiments": {
            "q": {
                "algo": "qlearn",
                "envs": ["CartPole-v1", "Acrobot-v1"],
                "seeds": [1],
                "total_steps": 4000,
                "checkpoint_every": 2000,
                "hparams": dict(HP, log_every_steps=1000),
            },
            "q-warm": {
                "algo": "qlearn",
                "envs": ["CartPole-v1"],
                "seeds": [1],
                "total_steps": 2000,
                "checkpoint_every": 2000,
                "init_from": "q",
                "hparams": dict(HP),
            },
        },
        "evaluation": {"episodes": 2, "max_episode_steps": 200},
        "summary": {"bootstrap_samples": 100},
    }


def test_qlearn_runs_warm_starts_and_is_deterministic(tmp_path):
    a = Workdir(tmp_path / "a", qlearn_config())
    b = Workdir(tmp_path / "b", qlearn_config())
    a.run()
    b.run()
    tables = a.checkpoints()
    assert sorted(tables) == [
        "runs/q-warm/CartPole-v1/seed1/qtable/step_0000002000.npz",
        "runs/q/Acrobot-v1/seed1/qtable/step_0000002000.npz",
        "runs/q/Acrobot-v1/seed1/qtable/step_0000004000.npz",
        "runs/q/CartPole-v1/seed1/qtable/step_0000002000.npz",
        "runs/q/CartPole-v1/seed1/qtable/step_0000004000.npz",
    ]
    assert tables == b.checkpoints()
    summary = pd.read_csv(a.path / "results/summary.csv")
    assert set(zip(summary["exp"], summary["env"], strict=True)) == {
        ("q", "CartPole-v1"),
        ("q", "Acrobot-v1"),
        ("q-warm", "CartPole-v1"),
    }

    # The warm-start source changes -> the dependent run is stale too.
    config = qlearn_config()
    config["experiments"]["q"]["hparams"]["learning_rate"] = 0.2
    a.write_config(config)
    stale = {(w.get("exp"), w.get("env")) for r, w in a.planned_jobs() if r == "qlearn_segment"}
    assert stale == {("q", "CartPole-v1"), ("q", "Acrobot-v1"), ("q-warm", "CartPole-v1")}
