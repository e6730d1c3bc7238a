"""Roll out a trained checkpoint (PPO, BC or Q-table) into a replay dataset."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rlpipe.algos.policies import load_greedy_policy
from rlpipe.envs import make_vec_env
from rlpipe.replays.format import write_episode
from rlpipe.runtime.watchdog import Watchdog


def record_episodes(
    ckpt_path: str,
    out_dir: str | Path,
    episodes: int,
    seed: int,
    max_steps: int,
    threads: int = 1,
    heartbeat=None,
) -> list[Path]:
    """Record one greedy episode in each of ``episodes`` envs seeded ``seed``.

    Files are ``episode_{i:05d}.npz`` in env order; an episode cut at ``max_steps`` is
    saved as truncated. ``heartbeat()`` is called after every step (the stall watchdog's).
    """
    policy = load_greedy_policy(ckpt_path, threads)
    envs = make_vec_env(policy.env_id, episodes, seed, threads, train=False)
    obs, _ = envs.reset()
    trace = [
        {"obs": [obs[i]], "act": [], "rew": [], "term": [], "trunc": []} for i in range(episodes)
    ]
    running = np.ones(episodes, dtype=bool)
    for t in range(max_steps):
        actions = policy.act(obs)  # (episodes,)
        obs, reward, term, trunc, _ = envs.step(actions)
        if heartbeat is not None:
            heartbeat()
        cut = t == max_steps - 1
        for i in np.flatnonzero(running):
            ep = trace[i]
            ep["act"].append(actions[i])
            ep["rew"].append(reward[i])
            ep["obs"].append(obs[i])
            ep["term"].append(bool(term[i]))
            ep["trunc"].append(bool(trunc[i]) or (cut and not term[i]))
        running &= ~(term | trunc)
        if not running.any():
            break
    envs.close()

    out = Path(out_dir)
    paths = []
    for i, ep in enumerate(trace):
        path = out / f"episode_{i:05d}.npz"
        write_episode(
            path,
            np.stack(ep["obs"]),
            np.array(ep["act"]),
            np.array(ep["rew"]),
            np.array(ep["term"]),
            np.array(ep["trunc"]),
            env_id=policy.env_id,
            n_actions=policy.n_actions,
            source_checkpoint=str(ckpt_path),
            seed=seed + i,
        )
        paths.append(path)
    return paths


def record_job(
    ckpt: str,
    manifest: str,
    dataset: str,
    episodes: int,
    seed: int,
    max_steps: int,
    threads: int,
    stall_timeout: float = 600,
) -> None:
    """Greedy episodes of a checkpoint into a dataset directory as a job, MANIFEST.json last;
    the stall watchdog ends it if its environments stop stepping."""
    from rlpipe.storage import manifest as mf

    out_dir = Path(manifest).parent
    for stale in out_dir.glob("episode_*.npz"):  # a previous recording of another checkpoint
        stale.unlink()
    with Watchdog(stall_timeout, manifest) as watchdog:
        paths = record_episodes(ckpt, out_dir, episodes, seed, max_steps, threads, watchdog.beat)
    files = [mf.file_entry(out_dir, p.name) for p in paths]
    mf.write(manifest, mf.build(dataset, ckpt, files, None))
    print(f"recorded {len(paths)} episodes from {ckpt}")
