"""Q-learning through the workflow: two envs, warm start as a DAG edge, determinism."""

from __future__ import annotations

import pandas as pd
import pytest

from conftest import load_test_config
from pipeline import Workdir

pytestmark = pytest.mark.slow


def qlearn_config() -> dict:
    return load_test_config("qlearn")


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
