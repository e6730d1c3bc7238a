"""Greedy policies loaded from any rlpipe checkpoint: torch (.pt: PPO, BC) or Q-table (.npz)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class GreedyPolicy:
    algo: str
    env_id: str
    step: int
    n_actions: int
    act: Callable[[np.ndarray], np.ndarray]  # (N, *obs_shape) -> (N,) int actions


def load_greedy_policy(path: str | Path, threads: int = 1) -> GreedyPolicy:
    """argmax-action policy of a checkpoint; torch is imported only for .pt files."""
    if Path(path).suffix == ".npz":
        from rlpipe.algos.qlearn import qtable

        table = qtable.load(path)
        rows = table.indexer.rows if table.indexer.fitted else _row_zero

        def act_table(obs):
            return table.q[rows(obs)].argmax(axis=1)

        n_actions = table.q.shape[1]
        return GreedyPolicy("qlearn", table.env_id, table.global_step, n_actions, act_table)

    import torch

    from rlpipe.algos.nets import ActorCritic
    from rlpipe.runtime.device import torch_device
    from rlpipe.runtree import checkpoint

    torch.set_num_threads(threads)
    device = torch_device()
    ckpt = checkpoint.load(path)
    agent = ActorCritic(tuple(ckpt["obs_shape"]), ckpt["n_actions"], ckpt["network"])
    agent.load_state_dict(ckpt["model"])
    agent.to(device).eval()

    def act_torch(obs):
        with torch.inference_mode():
            return agent.logits(torch.as_tensor(obs, device=device)).argmax(dim=1).cpu().numpy()

    return GreedyPolicy(
        ckpt["algo"], ckpt["env_id"], int(ckpt["global_step"]), ckpt["n_actions"], act_torch
    )


def _row_zero(obs: np.ndarray) -> np.ndarray:
    """An adaptive indexer still collecting states maps everything to row 0."""
    return np.zeros(len(obs), np.int64)
