"""Greedy evaluation of any checkpoint on fixed evaluation seeds."""

from __future__ import annotations

import numpy as np

from rlpipe.algos.policies import load_greedy_policy
from rlpipe.envs import EpisodeTracker, make_vec_env
from rlpipe.runtime.gpu_slots import placement
from rlpipe.runtime.watchdog import Watchdog


def run_greedy(
    policy,
    env_id: str,
    episodes: int,
    seed: int,
    max_steps: int,
    threads: int = 1,
    heartbeat=None,
):
    """Play one episode in each of ``episodes`` envs; ``policy`` maps obs batch -> actions.

    Returns (returns, lengths) in env order; an episode cut at ``max_steps`` scores what it
    collected so far. ``heartbeat()`` is called after every step (the stall watchdog's).
    """
    envs = make_vec_env(env_id, episodes, seed, threads, train=False)
    tracker = EpisodeTracker(episodes)
    returns = np.full(episodes, np.nan)
    lengths = np.zeros(episodes, dtype=np.int64)
    obs, _ = envs.reset()
    for _ in range(max_steps):
        obs, reward, term, trunc, info = envs.step(policy(obs))
        if heartbeat is not None:
            heartbeat()
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
    path: str, episodes: int, seed: int, max_steps: int, threads: int = 1, heartbeat=None
) -> dict:
    """Greedy (argmax) evaluation of a PPO/BC checkpoint or Q-table -> the eval JSON record."""
    policy = load_greedy_policy(path, threads)
    returns, lengths = run_greedy(
        policy.act, policy.env_id, episodes, seed, max_steps, threads, heartbeat
    )
    return {
        **placement(),
        "algo": policy.algo,
        "env": policy.env_id,
        "step": policy.step,
        "eval_seed": seed,
        "episodes": episodes,
        "returns": returns,
        "lengths": lengths,
        "mean_return": float(np.mean(returns)),
    }


def evaluate_job(
    ckpt: str,
    out: str,
    episodes: int,
    seed: int,
    max_steps: int,
    threads: int = 1,
    stall_timeout: float = 600,
) -> None:
    """Greedy evaluation of a checkpoint as a job, written to ``out`` (JSON, atomically); a
    record in the run tree carries its run's key (``run``, as telemetry does). The stall
    watchdog ends it if its environments stop stepping (a hung GPU, say)."""
    from rlpipe.runtree import atomic, layout

    with Watchdog(stall_timeout, out) as watchdog:
        record = evaluate_checkpoint(ckpt, episodes, seed, max_steps, threads, watchdog.beat)
    artifact = layout.parse(out)
    if artifact is not None:
        record["run"] = artifact.run
    atomic.write_json(out, record)
    print(f"mean return {record['mean_return']:.2f} over {record['episodes']} episodes")
