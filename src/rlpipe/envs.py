"""EnvPool environment construction and episode bookkeeping."""

from __future__ import annotations

import warnings

import numpy as np

# gymnasium notes that EnvPool's float64 Box bounds are cast to float32: harmless.
warnings.filterwarnings("ignore", message=".*precision lowered by casting.*")


def _envpool():
    import envpool

    return envpool


def is_image_env(env_id: str) -> bool:
    """True for pixel observations (Atari): those get the Nature CNN."""
    return len(_envpool().make_spec(env_id).observation_space.shape) == 3


def make_vec_env(
    env_id: str, num_envs: int, seed: int, num_threads: int = 1, train: bool = True, **kwargs
):
    """Synchronous EnvPool vector env (deterministic per seed).

    Atari training uses CleanRL's episodic-life and reward clipping; evaluation plays whole
    games with raw rewards.
    """
    if is_image_env(env_id):
        kwargs.setdefault("episodic_life", train)
        kwargs.setdefault("reward_clip", train)
    return _envpool().make(
        env_id,
        env_type="gymnasium",
        num_envs=num_envs,
        batch_size=num_envs,
        seed=int(seed),
        num_threads=num_threads,
        **kwargs,
    )


def make_env_pools(env_id: str, num_envs: int, pools: int, seed: int, num_threads: int = 1) -> list:
    """``num_envs`` environments as ``pools`` synchronous EnvPools of ``num_envs // pools``.

    EnvPool seeds environment *i* of a pool with ``seed + i``, so pool *k* is seeded
    ``seed + k * num_envs // pools``: together they step the games one pool of ``num_envs``
    would. Separate pools can step in turns: one steps while the policy acts for another.
    """
    size = num_envs // pools
    return [make_vec_env(env_id, size, seed + k * size, num_threads) for k in range(pools)]


class EpisodeTracker:
    """Track real (whole-game) episode returns across EnvPool's autoreset and lost lives."""

    def __init__(self, num_envs: int):
        self.returns = np.zeros(num_envs, dtype=np.float64)
        self.lengths = np.zeros(num_envs, dtype=np.int64)

    def update(self, info: dict, reward, terminated, truncated) -> list[tuple[int, float, int]]:
        """Add one step; return (env index, return, length) of episodes that ended on it."""
        raw_reward = info.get("reward", reward)  # Atari: unclipped reward in info
        self.returns += raw_reward
        self.lengths += 1
        if "lives" in info:
            ended = truncated | (terminated & (info["lives"] == 0))
        else:
            ended = terminated | truncated
        finished = [
            (int(i), float(self.returns[i]), int(self.lengths[i])) for i in np.flatnonzero(ended)
        ]
        self.returns[ended] = 0.0
        self.lengths[ended] = 0
        return finished
