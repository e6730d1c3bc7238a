"""PPO's environments as pools stepped in turns (hyper-parameter env_pools, rlpipe.envs)."""

import hashlib

import numpy as np
import pytest
import torch

from rlpipe.algos.hparams import typed
from rlpipe.algos.ppo.params import PPOParams
from rlpipe.algos.ppo.train import train_segment
from rlpipe.envs import make_env_pools, make_vec_env
from rlpipe.runtree.span import Segment


@pytest.mark.parametrize("env_id", ["CartPole-v1", "Pong-v5"])
def test_pools_step_the_games_one_pool_of_all_environments_steps(env_id):
    """Pool k seeded seed + k * size plays what environments k * size... of one pool play."""
    whole = make_vec_env(env_id, 4, 7)
    pools = make_env_pools(env_id, 4, 2, 7)
    assert [len(p) for p in pools] == [2, 2]
    obs = whole.reset()[0]
    assert np.array_equal(obs, np.concatenate([p.reset()[0] for p in pools]))
    rng = np.random.default_rng(0)
    for _ in range(60):
        actions = rng.integers(0, whole.action_space.n, 4)
        expected = whole.step(actions)
        got = [p.step(actions[k * 2 : k * 2 + 2]) for k, p in enumerate(pools)]
        for field in range(4):  # obs, reward, terminated, truncated
            assert np.array_equal(expected[field], np.concatenate([g[field] for g in got]))


class RecordingPool:
    """A real pool that logs its sends and receives."""

    def __init__(self, pool, k: int, log: list):
        self.pool, self.k, self.log = pool, k, log

    def __getattr__(self, name):
        return getattr(self.pool, name)

    def send(self, action):
        self.log.append(("send", self.k))
        self.pool.send(action)

    def recv(self):
        self.log.append(("recv", self.k))
        return self.pool.recv()


def tiny_pong(pools: int) -> PPOParams:
    hp = {"num_envs": 4, "num_steps": 16, "num_minibatches": 1, "update_epochs": 1}
    return typed(PPOParams, {**hp, "env_pools": pools}, 128)


def test_a_pool_steps_while_the_policy_acts_for_the_next(tmp_path, monkeypatch):
    """Each pool is sent its actions before the next pool's are computed, and received only
    after: its emulators run during the other pool's forward pass."""
    log = []

    def recording(*args, **kwargs):
        return [RecordingPool(p, k, log) for k, p in enumerate(make_env_pools(*args, **kwargs))]

    monkeypatch.setattr("rlpipe.algos.ppo.train.make_env_pools", recording)
    train_segment(
        Segment("Pong-v5", 1, 0, 64),
        tiny_pong(2),
        str(tmp_path / "c.pt"),
        str(tmp_path / "t.jsonl"),
    )
    steady = [("recv", 0), ("send", 0), ("recv", 1), ("send", 1)]
    first = [("send", 0), ("send", 1)]
    rollout = first + steady * 15 + [("recv", 0), ("recv", 1)]
    assert log == rollout


def digest(path) -> str:
    model = torch.load(path, weights_only=True)["model"]
    return hashlib.sha256(b"".join(v.numpy().tobytes() for v in model.values())).hexdigest()


def test_two_pools_train_the_same_bytes_each_time_and_on_resume(tmp_path):
    """Pong (the CNN) with two pools: a rerun and a resumed segment give the same weights."""
    hp = tiny_pong(2)
    runs = []
    for name in ("a", "b"):
        first, second = tmp_path / f"{name}1.pt", tmp_path / f"{name}2.pt"
        train_segment(Segment("Pong-v5", 3, 0, 64), hp, str(first), str(first) + ".jsonl")
        train_segment(
            Segment("Pong-v5", 3, 64, 128), hp, str(second), f"{second}.jsonl", str(first)
        )
        runs.append((digest(first), digest(second)))
    assert runs[0] == runs[1]
    one_pool = tmp_path / "one.pt"
    train_segment(Segment("Pong-v5", 3, 0, 64), tiny_pong(1), str(one_pool), f"{one_pool}.jsonl")
    assert digest(one_pool) != runs[0][0]  # the pools are really in use: other numbers
