"""The Q-learning segment artifact ``qtable/step_{N}.npz`` (no pickle, byte-deterministic).

Holds the Q-table, visit counts, the state indexer, the training RNG state, counters, the
epsilon-schedule position, resolved hparams (JSON) and, when enabled, the replay buffer.
Written as a zip with fixed timestamps (np.savez stamps the current time), atomically; read
whole member by member, so a flipped bit fails the CRC-32 check instead of loading.
"""

from __future__ import annotations

import io
import json
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rlpipe.algos.qlearn.indexer import StateIndexer
from rlpipe.algos.qlearn.replay import ARRAYS as REPLAY_ARRAYS
from rlpipe.runtree import atomic
from rlpipe.runtree.integrity import damaged, read_zip

FORMAT = "rlpipe-qtable/1"
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
REQUIRED = (
    "format",
    "env_id",
    "q",
    "visits",
    "indexer_kind",
    "indexer_bins",
    "indexer_edges",
    "indexer_buffer",
    "indexer_fit_states",
    "rng_state",
    "global_step",
    "epsilon_step",
    "episodes",
    "updates",
    "hparams",
)


@dataclass
class QTable:
    """Everything a segment needs to continue training (or to act greedily)."""

    env_id: str
    q: np.ndarray  # (rows, n_actions) float64
    visits: np.ndarray  # (rows,) int64: updates made from each row
    indexer: StateIndexer
    rng_state: dict  # numpy Generator bit_generator.state
    global_step: int
    epsilon_step: int  # env steps into the epsilon schedule
    episodes: int
    updates: int
    hparams: dict
    replay: dict | None = None  # PrioritizedReplay.arrays

    @property
    def coverage(self) -> float:
        return float(np.count_nonzero(self.visits)) / len(self.visits)


def save(path: str | Path, table: QTable) -> None:
    ix = table.indexer
    arrays = {
        "format": np.array(FORMAT),
        "env_id": np.array(table.env_id),
        "q": table.q,
        "visits": table.visits,
        "indexer_kind": np.array(ix.kind),
        "indexer_bins": ix.bins,
        "indexer_edges": ix.edges,
        "indexer_buffer": ix.buffer,
        "indexer_fit_states": np.array(ix.fit_states),
        "rng_state": np.array(json.dumps(table.rng_state, sort_keys=True)),
        "global_step": np.array(table.global_step, np.int64),
        "epsilon_step": np.array(table.epsilon_step, np.int64),
        "episodes": np.array(table.episodes, np.int64),
        "updates": np.array(table.updates, np.int64),
        "hparams": np.array(json.dumps(table.hparams, sort_keys=True)),
    }
    for name, value in (table.replay or {}).items():
        arrays[f"replay_{name}"] = value
    with atomic.atomic_path(path) as tmp, open(tmp, "wb") as fh:
        _write_npz(fh, arrays)


def _write_npz(fh, arrays: dict) -> None:
    """np.savez's format, minus the wall-clock timestamps: same arrays -> same bytes."""
    with zipfile.ZipFile(fh, "w", compression=zipfile.ZIP_STORED) as zf:
        for name in sorted(arrays):
            info = zipfile.ZipInfo(f"{name}.npy", date_time=ZIP_EPOCH)
            with zf.open(info, "w", force_zip64=True) as member:
                np.lib.format.write_array(member, np.asarray(arrays[name]), allow_pickle=False)


def load(path: str | Path, obs_dims: int | None = None, n_actions: int | None = None) -> QTable:
    """Read and validate a Q-table file; errors name the file and what is wrong.

    With ``obs_dims``/``n_actions`` also check it fits the environment it will be used in.
    """
    try:
        arrays = {
            name.removesuffix(".npy"): np.lib.format.read_array(
                io.BytesIO(data), allow_pickle=False
            )
            for name, data in read_zip(path).items()  # whole members: CRC-32 checked
        }
    except Exception as err:  # truncated zip, a flipped bit, not a zip, pickled member, ...
        problem = f"not a readable Q-table npz ({type(err).__name__}: {err})"
        raise damaged(path, problem, "checkpoint") from None
    missing = [k for k in REQUIRED if k not in arrays]
    if missing:
        raise damaged(path, f"not an rlpipe Q-table (missing {missing})", "checkpoint")
    if str(arrays["format"]) != FORMAT:
        raise damaged(path, f"format {arrays['format']}, expected {FORMAT}", "checkpoint")
    try:
        indexer = StateIndexer(
            str(arrays["indexer_kind"]),
            arrays["indexer_bins"],
            arrays["indexer_edges"],
            arrays["indexer_buffer"],
            int(arrays["indexer_fit_states"]),
        )
    except ValueError as err:
        raise ValueError(f"{path}: bad state indexer ({err})") from None
    q = arrays["q"]
    env_id = str(arrays["env_id"])
    problems = []
    if q.ndim != 2 or q.shape[0] != indexer.n_rows:
        problems.append(
            f"Q-table shape {q.shape} does not match indexer bins "
            f"{indexer.bins.tolist()} ({indexer.n_rows} rows)"
        )
    if arrays["visits"].shape != (q.shape[0],):
        problems.append(f"visit counts shape {arrays['visits'].shape} != ({q.shape[0]},)")
    if obs_dims is not None and indexer.dims != obs_dims:
        problems.append(f"indexer has {indexer.dims} observation dims, the env has {obs_dims}")
    if n_actions is not None and q.ndim == 2 and q.shape[1] != n_actions:
        problems.append(f"Q-table has {q.shape[1]} actions, the env has {n_actions}")
    if problems:
        raise ValueError(f"{path} ({env_id}): " + "; ".join(problems))
    replay = {k: arrays[f"replay_{k}"] for k in REPLAY_ARRAYS if f"replay_{k}" in arrays}
    return QTable(
        env_id=env_id,
        q=q,
        visits=arrays["visits"],
        indexer=indexer,
        rng_state=json.loads(str(arrays["rng_state"])),
        global_step=int(arrays["global_step"]),
        epsilon_step=int(arrays["epsilon_step"]),
        episodes=int(arrays["episodes"]),
        updates=int(arrays["updates"]),
        hparams=json.loads(str(arrays["hparams"])),
        replay=replay or None,
    )
