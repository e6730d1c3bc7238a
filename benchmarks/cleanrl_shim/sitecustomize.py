"""Run CleanRL's ppo_atari_envpool.py, unchanged, on EnvPool 1.x (bench_vs_cleanrl.py).

The script was written for EnvPool's old gym API (``reset() -> obs``, 4-tuple ``step``,
gym spaces); EnvPool 1.x's ``env_type="gym"`` is the gymnasium API. Python imports this
module at start-up (it is first on PYTHONPATH), so ``envpool.make`` returns an adapter:
the same environment, the old API. It also gives EnvPool the bench's thread count, as
rlpipe's runs get. Nothing of CleanRL's code is copied here.
"""

import os

import envpool
import gym
import numpy as np

_make = envpool.make


class OldGymAPI(gym.Env):
    """An EnvPool gymnasium environment behind the pre-0.26 gym interface."""

    def __init__(self, env):
        self.env = env
        space = env.observation_space
        self.observation_space = gym.spaces.Box(space.low, space.high, dtype=space.dtype)
        self.action_space = gym.spaces.Discrete(int(env.action_space.n))

    def reset(self, **kwargs):
        obs, _ = self.env.reset(**kwargs)
        return obs

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(np.asarray(action))
        return obs, reward, terminated | truncated, info


def make(task_id, env_type="gym", **kwargs):
    kwargs.setdefault("num_threads", int(os.environ.get("BENCH_ENVPOOL_THREADS", "1")))
    if env_type != "gym":
        return _make(task_id, env_type=env_type, **kwargs)
    return OldGymAPI(_make(task_id, env_type="gymnasium", **kwargs))


envpool.make = make
