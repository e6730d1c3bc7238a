import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))  # this checkout's rlpipe
os.environ.setdefault("RLPIPE_WORKER_IDLE_S", "5")  # many workdirs: warm workers go soon

import numpy as np
import pytest
import yaml

from pipeline import Workdir
from rclone_fixtures import rclone_server  # noqa: F401
from slurm_fixtures import slurm_cluster  # noqa: F401

TINY_PPO = {
    "num_envs": 4,
    "num_steps": 64,
    "num_minibatches": 2,
    "update_epochs": 2,
    "lr_anneal_steps": 100000,
}


def tiny_config() -> dict:
    """Two CartPole runs of three 512-step segments, plus one Atari (CNN) segment."""
    return load_test_config("ppo")


def load_test_config(name: str) -> dict:
    """tests/configs/NAME.yaml, which a person can also run with --configfile."""
    return yaml.safe_load((Path(__file__).parent / "configs" / f"{name}.yaml").read_text())


def tiny_qtable():
    """A 6-row Q-table for 2-D observations, as a segment would save it."""
    from rlpipe.algos.qlearn import qtable
    from rlpipe.algos.qlearn.indexer import StateIndexer

    indexer = StateIndexer.uniform(np.zeros(2), np.ones(2), np.array([2, 3]))
    return qtable.QTable(
        env_id="CartPole-v1",
        q=np.arange(12.0).reshape(6, 2),
        visits=np.zeros(6, np.int64),
        indexer=indexer,
        rng_state=np.random.default_rng(0).bit_generator.state,
        global_step=16,
        epsilon_step=16,
        episodes=0,
        updates=0,
        hparams={"num_envs": 16},
    )


@pytest.fixture
def tiny(tmp_path):
    return Workdir(tmp_path / "work", tiny_config())


@pytest.fixture
def make_pod(tmp_path):
    """``make_pod(name, env)``: a fresh-clone pod (tests/pods.py); its processes are killed
    at teardown, whatever the test did."""
    from pods import Pod

    made = []

    def make(name, env=None):
        made.append(Pod(tmp_path, name, env))
        return made[-1]

    yield make
    for pod in made:
        pod.kill_all()
