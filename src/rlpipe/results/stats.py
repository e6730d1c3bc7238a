"""Aggregate RL scores over tasks and runs, as rliable does (Agarwal et al. 2021); numpy only.

Scores are given per task: a (runs x tasks) array, or a sequence of 1-D arrays (one per task,
run counts may differ). Aggregates follow rliable's definitions: IQM is the 25% trimmed mean of
all runs x tasks; mean and median are taken over the per-task mean scores; the optimality gap
is ``gamma - mean(min(score, gamma))`` over all runs x tasks. Confidence intervals are
percentile intervals of a STRATIFIED bootstrap: runs are resampled with replacement within
each task, the tasks stay fixed. Everything is deterministic for a given seed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

# Package data (a link to config/atari_baselines.yaml in the repository; a copy in a wheel).
BASELINES_PATH = Path(__file__).parents[1] / "data" / "atari_baselines.yaml"
_CHUNK = 1000  # bootstrap replicates evaluated at once (bounds memory)


@dataclass(frozen=True)
class Estimate:
    point: float
    low: float
    high: float


@dataclass(frozen=True)
class Profile:
    """Fraction of runs scoring above each tau, with a bootstrap confidence band."""

    taus: np.ndarray
    fraction: np.ndarray
    low: np.ndarray
    high: np.ndarray


# --- 1-D helpers (per-experiment summary table) -------------------------------------------


def iqm(values) -> float:
    """Interquartile mean: mean of the middle 50% (scipy ``trim_mean(x, 0.25)``)."""
    x = np.sort(np.asarray(values, dtype=float).ravel())
    if x.size == 0:
        raise ValueError("iqm of an empty array")
    cut = int(0.25 * x.size)
    return float(x[cut : x.size - cut].mean())


def bootstrap_ci(values, n_boot: int, seed: int, level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap CI of the mean of a 1-D sample."""
    x = np.asarray(values, dtype=float).ravel()
    if x.size == 0:
        raise ValueError("bootstrap_ci of an empty array")
    rng = np.random.default_rng(seed)
    means = rng.choice(x, size=(n_boot, x.size), replace=True).mean(axis=1)
    alpha = (1 - level) / 2
    return float(np.quantile(means, alpha)), float(np.quantile(means, 1 - alpha))


# --- aggregates over tasks; each takes a list of (reps, runs_i) arrays, one per task ------


def _trimmed_mean_rows(x: np.ndarray) -> np.ndarray:
    """25% trimmed mean of each row of a (reps, n) array."""
    n = x.shape[1]
    cut = int(0.25 * n)
    return np.sort(x, axis=1)[:, cut : n - cut].mean(axis=1)


def _iqm(tasks: list[np.ndarray]) -> np.ndarray:
    return _trimmed_mean_rows(np.concatenate(tasks, axis=1))


def _mean(tasks: list[np.ndarray]) -> np.ndarray:
    return np.stack([t.mean(axis=1) for t in tasks], axis=1).mean(axis=1)


def _median(tasks: list[np.ndarray]) -> np.ndarray:
    return np.median(np.stack([t.mean(axis=1) for t in tasks], axis=1), axis=1)


def _optimality_gap(tasks: list[np.ndarray], gamma: float = 1.0) -> np.ndarray:
    return gamma - np.minimum(np.concatenate(tasks, axis=1), gamma).mean(axis=1)


AGGREGATES = {"iqm": _iqm, "median": _median, "mean": _mean, "optimality_gap": _optimality_gap}


def _as_tasks(scores) -> list[np.ndarray]:
    """(runs x tasks) array or a sequence of per-task 1-D arrays -> list of 1-D float arrays."""
    if isinstance(scores, np.ndarray):
        if scores.ndim != 2:
            raise ValueError(f"scores must be (runs x tasks); got shape {scores.shape}")
        tasks = [scores[:, j].astype(float) for j in range(scores.shape[1])]
    elif isinstance(scores, Sequence):
        tasks = [np.asarray(t, dtype=float).ravel() for t in scores]
    else:
        raise TypeError("scores must be a (runs x tasks) array or a list of per-task arrays")
    if not tasks or any(t.size == 0 for t in tasks):
        raise ValueError("scores need at least one task and one run per task")
    if any(not np.all(np.isfinite(t)) for t in tasks):
        raise ValueError("scores contain NaN or infinite values")
    return tasks


def aggregate(scores, metric: str) -> float:
    """Point estimate of ``metric`` (iqm, median, mean, optimality_gap)."""
    if metric not in AGGREGATES:
        raise ValueError(f"unknown metric {metric!r}; known: {sorted(AGGREGATES)}")
    tasks = _as_tasks(scores)
    return float(AGGREGATES[metric]([t[None, :] for t in tasks])[0])


def _bootstrap_chunks(tasks: list[np.ndarray], n_boot: int, seed: int):
    """Yield lists of (reps, runs_i) resampled task arrays, runs resampled within each task."""
    rng = np.random.default_rng(seed)
    for start in range(0, n_boot, _CHUNK):
        reps = min(_CHUNK, n_boot - start)
        yield [t[rng.integers(0, t.size, size=(reps, t.size))] for t in tasks]


def interval_estimates(
    scores,
    metrics: Sequence[str] = ("iqm", "median", "mean"),
    n_boot: int = 2000,
    seed: int = 0,
    level: float = 0.95,
) -> dict[str, Estimate]:
    """Point estimate and stratified-bootstrap percentile CI for each metric."""
    unknown = sorted(set(metrics) - set(AGGREGATES))
    if unknown:
        raise ValueError(f"unknown metrics {unknown}; known: {sorted(AGGREGATES)}")
    tasks = _as_tasks(scores)
    replicates: dict[str, list[np.ndarray]] = {m: [] for m in metrics}
    for chunk in _bootstrap_chunks(tasks, n_boot, seed):
        for m in metrics:
            replicates[m].append(AGGREGATES[m](chunk))
    alpha = (1 - level) / 2
    out = {}
    for m in metrics:
        dist = np.concatenate(replicates[m])
        low, high = np.quantile(dist, [alpha, 1 - alpha])
        out[m] = Estimate(aggregate(tasks, m), float(low), float(high))
    return out


def performance_profile(
    scores, taus, n_boot: int = 2000, seed: int = 0, level: float = 0.95
) -> Profile:
    """Score distribution: fraction of all runs x tasks with score > tau, for each tau."""
    tasks = _as_tasks(scores)
    taus = np.asarray(taus, dtype=float).ravel()
    flat = np.concatenate(tasks)
    fraction = (flat[:, None] > taus[None, :]).mean(axis=0)
    dists = []
    for chunk in _bootstrap_chunks(tasks, n_boot, seed):
        runs = np.concatenate(chunk, axis=1)  # (reps, all runs)
        dists.append((runs[:, :, None] > taus[None, None, :]).mean(axis=1))
    dist = np.concatenate(dists)  # (n_boot, len(taus))
    alpha = (1 - level) / 2
    low, high = np.quantile(dist, [alpha, 1 - alpha], axis=0)
    return Profile(taus, fraction, low, high)


# --- Atari human-normalised scores --------------------------------------------------------


def load_baselines(path: str | Path = BASELINES_PATH) -> dict[str, tuple[float, float]]:
    """{env_id: (random, human)} from the baselines YAML; bad entries raise naming the key."""
    data = yaml.safe_load(Path(path).read_text()) or {}
    games = data.get("games")
    if not isinstance(games, dict):
        raise ValueError(f"{path}: expected a mapping under key 'games'")
    table = {}
    for env_id, entry in games.items():
        try:
            random, human = float(entry["random"]), float(entry["human"])
        except (TypeError, KeyError, ValueError):
            raise ValueError(
                f"{path}: games.{env_id}: needs numeric 'random' and 'human'"
            ) from None
        if not human > random:
            raise ValueError(f"{path}: games.{env_id}: human score must exceed random score")
        table[env_id] = (random, human)
    return table


_BASELINES: dict[str, tuple[float, float]] | None = None


def human_normalized(env_id: str, score, baselines: dict | None = None):
    """(score - random) / (human - random) for an Atari task id such as ``Pong-v5``."""
    global _BASELINES
    if baselines is None:
        if _BASELINES is None:
            _BASELINES = load_baselines()
        baselines = _BASELINES
    if env_id not in baselines:
        raise KeyError(
            f"no random/human baseline for {env_id!r} in {BASELINES_PATH.name}; "
            f"known Atari task ids look like 'Pong-v5' ({len(baselines)} games)"
        )
    random, human = baselines[env_id]
    result = (np.asarray(score, dtype=float) - random) / (human - random)
    return float(result) if result.ndim == 0 else result
