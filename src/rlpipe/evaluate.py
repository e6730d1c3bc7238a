"""Greedy evaluation of a torch policy checkpoint on fixed evaluation seeds."""

from __future__ import annotations

import numpy as np
import torch

from rlpipe import checkpoint
from rlpipe.agents import ActorCritic
from rlpipe.envs import EpisodeTracker, make_vec_env


def run_greedy(policy, env_id: str, episodes: int, seed: int, max_steps: int, threads: int = 1):
    """Play one episode in each of ``episodes`` envs; ``policy`` maps obs batch -> actions.

    Returns (returns, lengths) in env order; an episode cut at ``max_steps`` scores what it
    collected so far.
    """
    envs = make_vec_env(env_id, episodes, seed, threads, train=False)
    tracker = EpisodeTracker(episodes)
    returns = np.full(episodes, np.nan)
    lengths = np.zeros(episodes, dtype=np.int64)
    obs, _ = envs.reset()
    for _ in range(max_steps):
        obs, reward, term, trunc, info = envs.step(policy(obs))
        for i, ret, length in tracker.update(info, reward, term, trunc):
            if np.isnan(returns[i]):
                returns[i], lengths[i] = ret, length
        if not np.isnan(returns).any():
            break
    envs.close()
    unfinished = np.isnan(returns)  # cut at max_steps: score what was collected
    returns[unfinished] = tracker.returns[unfinished]
    lengths[unfinished] = tracker.lengths[unfinished]
    return returns.tolist(), lengths.tolist()


def evaluate_checkpoint(
    path: str, episodes: int, seed: int, max_steps: int, threads: int = 1
) -> dict:
    """Greedy (argmax) evaluation of a PPO/BC checkpoint -> the eval JSON record."""
    torch.set_num_threads(threads)
    ckpt = checkpoint.load(path)
    agent = ActorCritic(tuple(ckpt["obs_shape"]), ckpt["n_actions"], ckpt["network"])
    agent.load_state_dict(ckpt["model"])
    agent.eval()

    def policy(obs):
        with torch.no_grad():
            return agent.logits(torch.as_tensor(obs)).argmax(dim=1).numpy()

    returns, lengths = run_greedy(policy, ckpt["env_id"], episodes, seed, max_steps, threads)
    return {
        "algo": ckpt["algo"],
        "env": ckpt["env_id"],
        "step": int(ckpt["global_step"]),
        "eval_seed": seed,
        "episodes": episodes,
        "returns": returns,
        "lengths": lengths,
        "mean_return": float(np.mean(returns)),
    }
