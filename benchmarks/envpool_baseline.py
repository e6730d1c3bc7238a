"""The reference the training benchmarks compare against: raw EnvPool throughput."""

from __future__ import annotations

import time

import numpy as np

from rlpipe.envs import make_vec_env


def raw_envpool_sps(env_id: str, num_envs: int, steps: int) -> float:
    """Env steps/s with uniformly random actions (1 thread, synchronous)."""
    envs = make_vec_env(env_id, num_envs, seed=0, num_threads=1)
    envs.reset()
    rng = np.random.default_rng(0)
    n_actions = envs.action_space.n
    start = time.perf_counter()
    for _ in range(steps // num_envs):
        envs.step(rng.integers(0, n_actions, num_envs))
    return steps / (time.perf_counter() - start)
