"""The episode file format ``rlpipe-episode/1`` (see docs/replay-format.md).

One ``.npz`` per episode, loadable with ``np.load(path, allow_pickle=False)``::

    observations  (T+1, *obs_shape)  obs_dtype   o_0 .. o_T (o_T: the observation after the end)
    actions       (T,)               int64       a_t taken in o_t, 0 <= a_t < n_actions
    rewards       (T,)               float32     r_t received after a_t
    terminations  (T,)               bool        only the last may be True
    truncations   (T,)               bool        only the last may be True; the last step has
                                                 terminations or truncations True
    metadata      ()                 str (JSON)  format, env_id, obs_shape, obs_dtype,
                                                 n_actions, source_checkpoint, seed
"""

from __future__ import annotations

import io
import json
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rlpipe.runtree import atomic

FORMAT_VERSION = "rlpipe-episode/1"
STEP_ARRAYS = {
    "actions": "int64",
    "rewards": "float32",
    "terminations": "bool",
    "truncations": "bool",
}
ARRAYS = ("observations", *STEP_ARRAYS, "metadata")
META_TYPES = {
    "format": str,
    "env_id": str,
    "obs_shape": list,
    "obs_dtype": str,
    "n_actions": int,
    "source_checkpoint": (str, type(None)),
    "seed": (int, type(None)),
}


class EpisodeFormatError(ValueError):
    """An episode file is unreadable or breaks the format; the message names the file."""


@dataclass(frozen=True)
class Episode:
    observations: np.ndarray  # (T+1, *obs_shape)
    actions: np.ndarray  # (T,) int64
    rewards: np.ndarray  # (T,) float32
    terminations: np.ndarray  # (T,) bool
    truncations: np.ndarray  # (T,) bool
    meta: dict

    @property
    def length(self) -> int:
        return len(self.actions)


def _check_meta(meta: object) -> list[str]:
    if not isinstance(meta, dict):
        return ["metadata is not a JSON object"]
    if meta.get("format") != FORMAT_VERSION:
        return [f"format {meta.get('format')!r}, this reader supports {FORMAT_VERSION!r}"]
    problems = [
        f"metadata key {k!r} missing or not {t.__name__ if isinstance(t, type) else 'str/null'}"
        for k, t in META_TYPES.items()
        if not isinstance(meta.get(k), t) or isinstance(meta.get(k), bool)
    ]
    if not problems and not all(isinstance(d, int) and d > 0 for d in meta["obs_shape"]):
        problems.append(f"metadata obs_shape {meta['obs_shape']} is not a list of positive ints")
    if not problems and meta["n_actions"] < 1:
        problems.append(f"metadata n_actions {meta['n_actions']} < 1")
    return problems


def _check_arrays(a: dict[str, np.ndarray], meta: dict) -> list[str]:
    """Shapes, dtypes, lengths and values; empty when the episode is valid."""
    obs, problems = a["observations"], []
    t = a["actions"].shape[0] if a["actions"].ndim == 1 else -1
    if t < 1:
        return [f"actions must have shape (T,) with T >= 1, got {a['actions'].shape}"]
    for name, dtype in STEP_ARRAYS.items():
        if a[name].shape != (t,):
            problems.append(f"{name} has shape {a[name].shape}, expected ({t},)")
        if a[name].dtype != np.dtype(dtype):
            problems.append(f"{name} has dtype {a[name].dtype}, expected {dtype}")
    expected_obs = (t + 1, *meta["obs_shape"])
    if obs.shape != expected_obs:
        problems.append(f"observations has shape {obs.shape}, expected {expected_obs} (T+1, ...)")
    if str(obs.dtype) != meta["obs_dtype"]:
        problems.append(f"observations has dtype {obs.dtype}, metadata says {meta['obs_dtype']}")
    if problems:
        return problems
    if a["actions"].min() < 0 or a["actions"].max() >= meta["n_actions"]:
        problems.append(f"actions outside [0, {meta['n_actions']})")
    if not np.isfinite(a["rewards"]).all():
        problems.append("rewards contain NaN or inf")
    done = a["terminations"] | a["truncations"]
    if done[:-1].any():
        problems.append(f"episode ends early: done at step {int(np.argmax(done))} of {t}")
    if not done[-1]:
        problems.append("last step is neither terminated nor truncated")
    return problems


def write_episode(
    path: str | Path,
    observations: np.ndarray,
    actions: np.ndarray,
    rewards: np.ndarray,
    terminations: np.ndarray,
    truncations: np.ndarray,
    *,
    env_id: str,
    n_actions: int,
    source_checkpoint: str | None = None,
    seed: int | None = None,
) -> None:
    """Validate and write one episode atomically (compressed .npz)."""
    observations = np.asarray(observations)
    meta = {
        "format": FORMAT_VERSION,
        "env_id": env_id,
        "obs_shape": [int(d) for d in observations.shape[1:]],
        "obs_dtype": str(observations.dtype),
        "n_actions": int(n_actions),
        "source_checkpoint": source_checkpoint,
        "seed": None if seed is None else int(seed),
    }
    arrays = {
        "observations": observations,
        "actions": np.asarray(actions, dtype=np.int64),
        "rewards": np.asarray(rewards, dtype=np.float32),
        "terminations": np.asarray(terminations, dtype=bool),
        "truncations": np.asarray(truncations, dtype=bool),
    }
    problems = _check_meta(meta) or _check_arrays(arrays, meta)
    if problems:
        raise EpisodeFormatError(
            f"{path}: refusing to write an invalid episode: " + "; ".join(problems)
        )
    with atomic.atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez_compressed(fh, metadata=np.array(json.dumps(meta, sort_keys=True)), **arrays)


def _load_arrays(path: str | Path) -> dict[str, np.ndarray]:
    """The archive's arrays, each member read whole so its CRC-32 is checked (np.load reads
    members partially and can miss corruption); never unpickles."""
    with zipfile.ZipFile(path) as zf:
        members = {n.removesuffix(".npy"): n for n in zf.namelist()}
        missing = [name for name in ARRAYS if name not in members]
        if missing:
            raise EpisodeFormatError(f"{path}: not an episode file, missing arrays {missing}")
        return {
            name: np.lib.format.read_array(io.BytesIO(zf.read(members[name])), allow_pickle=False)
            for name in ARRAYS
        }


def read_episode(path: str | Path) -> Episode:
    """Load and validate one episode; EpisodeFormatError names the file and the problem."""
    try:
        arrays = _load_arrays(path)
    except EpisodeFormatError:
        raise
    except zipfile.BadZipFile as exc:
        raise EpisodeFormatError(f"{path}: truncated or corrupted episode file ({exc})") from None
    except Exception as exc:  # any other failure to decode the archive means damage
        raise EpisodeFormatError(
            f"{path}: truncated or corrupted episode file ({type(exc).__name__}: {exc})"
        ) from None
    raw = arrays.pop("metadata")
    try:
        meta = json.loads(str(raw[()])) if raw.shape == () and raw.dtype.kind == "U" else None
    except json.JSONDecodeError:
        meta = None
    problems = _check_meta(meta) if meta is not None else ["metadata is not a JSON string"]
    problems = problems or _check_arrays(arrays, meta)
    if problems:
        raise EpisodeFormatError(f"{path}: invalid episode: " + "; ".join(problems))
    return Episode(meta=meta, **arrays)
