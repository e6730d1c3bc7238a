"""Tabular Q-learning throughput: vs raw EnvPool, and numba vs NumPy update kernels.

Run: .venv/bin/python benchmarks/bench_qlearn.py   (writes benchmarks/out/qlearn.json)

(a) Env steps/s of a Q-learning segment (default hparams, 1 thread) vs raw EnvPool with
    random actions, same env and num_envs; best of REPEATS interleaved runs (shared machine).
(b) Updates/s of the sequential numba TD kernel vs the vectorised NumPy fancy-index update
    (which drops duplicate (state, action) updates) on the same random transitions, for one
    vector step of 16 envs per call and for large batches.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import numpy as np

from rlpipe.algos import hparams
from rlpipe.algos.qlearn import kernel
from rlpipe.algos.qlearn.params import QLearnParams
from rlpipe.algos.qlearn.train import train_segment
from rlpipe.runtree.span import Segment

from envpool_baseline import raw_envpool_sps

OUT = Path(__file__).resolve().parents[1] / "benchmarks/out"
REPEATS = 3
ENV_STEPS = 320_000
ENVS = {"CartPole-v1": {}, "Acrobot-v1": {"bins": 6}}


def qlearn_sps(env_id: str, steps: int, overrides: dict) -> float:
    hp = hparams.typed(QLearnParams, overrides, steps)
    with tempfile.TemporaryDirectory() as tmp:
        segment = Segment(env_id, 1, 0, steps)
        result = train_segment(segment, hp, f"{tmp}/q.npz", f"{tmp}/t.jsonl")
    return result["sps"]


def numpy_update(q, rows, actions, rewards, next_rows, bootstrap, alpha, gamma):
    target = rewards + gamma * q[next_rows].max(axis=1) * bootstrap
    q[rows, actions] += alpha * (target - q[rows, actions])


def kernel_updates_per_s(batch: int, n_batches: int, n_rows=864, n_actions=2) -> dict:
    rng = np.random.default_rng(0)
    data = [
        (
            rng.integers(0, n_rows, batch),
            rng.integers(0, n_actions, batch),
            rng.normal(size=batch),
            rng.integers(0, n_rows, batch),
            rng.random(batch) < 0.95,
        )
        for _ in range(n_batches)
    ]
    valid, td = np.ones(batch, bool), np.zeros(batch)
    q = np.zeros((n_rows, n_actions))
    kernel.td_update(q, *data[0][:4], data[0][4], valid, 0.1, 0.99, td)  # compile / load cache
    start = time.perf_counter()
    for rows, actions, rewards, next_rows, boot in data:
        kernel.td_update(q, rows, actions, rewards, next_rows, boot, valid, 0.1, 0.99, td)
    numba_s = time.perf_counter() - start
    q = np.zeros((n_rows, n_actions))
    start = time.perf_counter()
    for rows, actions, rewards, next_rows, boot in data:
        numpy_update(q, rows, actions, rewards, next_rows, boot, 0.1, 0.99)
    numpy_s = time.perf_counter() - start
    total = batch * n_batches
    return {
        "batch": batch,
        "numba_updates_per_s": total / numba_s,
        "numpy_updates_per_s": total / numpy_s,
    }


def main() -> None:
    num_envs = QLearnParams().num_envs
    qlearn_sps("CartPole-v1", 16_000, {})  # warm numba's on-disk cache
    throughput = {}
    for env_id, overrides in ENVS.items():
        raw = max(raw_envpool_sps(env_id, num_envs, ENV_STEPS) for _ in range(REPEATS))
        ql = max(qlearn_sps(env_id, ENV_STEPS, overrides) for _ in range(REPEATS))
        throughput[env_id] = {
            "num_envs": num_envs,
            "raw_envpool_sps": raw,
            "qlearn_sps": ql,
            "ratio": ql / raw,
        }
    kernels = [kernel_updates_per_s(16, 20_000), kernel_updates_per_s(4096, 100)]
    results = {
        "env_steps": ENV_STEPS,
        "repeats": REPEATS,
        "throughput": throughput,
        "kernel": kernels,
    }
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "qlearn.json").write_text(json.dumps(results, indent=2) + "\n")

    print(f"{'env':<14}{'num_envs':>9}{'raw SPS':>12}{'Q-learn SPS':>13}{'ratio':>7}")
    for env_id, row in throughput.items():
        print(
            f"{env_id:<14}{row['num_envs']:>9}{row['raw_envpool_sps']:>12,.0f}"
            f"{row['qlearn_sps']:>13,.0f}{row['ratio']:>7.2f}"
        )
    print(f"\n{'batch':>6}{'numba upd/s':>14}{'numpy upd/s':>14}{'speed-up':>10}")
    for row in kernels:
        speedup = row["numba_updates_per_s"] / row["numpy_updates_per_s"]
        print(
            f"{row['batch']:>6}{row['numba_updates_per_s']:>14,.0f}"
            f"{row['numpy_updates_per_s']:>14,.0f}{speedup:>9.1f}x"
        )


if __name__ == "__main__":
    main()
