"""State indexers: observations (N, D) float32 -> Q-table rows (N,) int64.

``uniform``: equal-width bins between per-dimension ``low``/``high`` (hparams, or the
observation space's bounds with infinite ones replaced by -/+``inf_clip``).
``adaptive``: per-dimension percentile edges fitted once on the first ``adaptive_fit_states``
observed states, then frozen. Until it is fitted the agent acts uniformly at random and
only collects states (no Q updates; epsilon does not decay).
"""

from __future__ import annotations

import numpy as np

from rlpipe.algos.qlearn.kernel import digitize
from rlpipe.algos.qlearn.params import QLearnParams

KINDS = ("uniform", "adaptive")


class StateIndexer:
    """Per-dimension bin edges; a row is the mixed-radix number of the dimensions' bins.

    edges: (D, max(bins) - 1) float64, padded with +inf (NaN everywhere until fitted).
    """

    def __init__(self, kind: str, bins, edges=None, buffer=None, fit_states: int = 0):
        if kind not in KINDS:
            raise ValueError(f"indexer {kind!r} is not one of {KINDS}")
        self.kind = kind
        self.bins = np.asarray(bins, dtype=np.int64)  # (D,)
        if (self.bins < 1).any():
            raise ValueError(f"bins must be >= 1 per dimension, got {self.bins.tolist()}")
        dims, width = len(self.bins), int(self.bins.max()) - 1
        self.edges = np.full((dims, width), np.nan) if edges is None else np.asarray(edges)
        if self.edges.shape != (dims, width):
            raise ValueError(f"edges have shape {self.edges.shape}, bins need {(dims, width)}")
        # strides[d] = prod(bins[d+1:]): row = sum_d bin_d * strides[d]
        self.strides = np.append(np.cumprod(self.bins[::-1])[::-1][1:], 1).astype(np.int64)
        self.fit_states = int(fit_states)
        self.fitted = not np.isnan(self.edges).any()
        self.buffer = np.zeros((0, dims), np.float32) if buffer is None else np.asarray(buffer)

    @property
    def dims(self) -> int:
        return len(self.bins)

    @property
    def n_rows(self) -> int:
        return int(np.prod(self.bins))

    @classmethod
    def uniform(cls, low, high, bins) -> StateIndexer:
        low, high = np.asarray(low, np.float64), np.asarray(high, np.float64)
        if not (np.isfinite(low).all() and np.isfinite(high).all() and (low < high).all()):
            raise ValueError(f"uniform bins need finite low < high, got {low} / {high}")
        bins = np.asarray(bins, np.int64)
        edges = np.full((len(bins), int(bins.max()) - 1), np.inf)
        for d, n in enumerate(bins):
            edges[d, : n - 1] = np.linspace(low[d], high[d], n + 1)[1:-1]
        return cls("uniform", bins, edges)

    def rows(self, obs: np.ndarray) -> np.ndarray:
        """(N, D) observations -> (N,) int64 rows; values outside the edges clip to end bins."""
        if not self.fitted:
            raise RuntimeError("adaptive indexer used before it was fitted")
        return digitize(obs, self.edges, self.bins, self.strides)

    def collect(self, obs: np.ndarray) -> None:
        """Adaptive: add states (N, D) to the fitting buffer; fit once it holds enough."""
        need = self.fit_states - len(self.buffer)
        self.buffer = np.concatenate([self.buffer, obs[:need].astype(np.float32)])
        if len(self.buffer) >= self.fit_states:
            edges = np.full_like(self.edges, np.inf)
            for d, n in enumerate(self.bins):
                quantiles = np.linspace(0.0, 100.0, n + 1)[1:-1]
                edges[d, : n - 1] = np.percentile(self.buffer[:, d].astype(np.float64), quantiles)
            self.edges, self.fitted = edges, True
            self.buffer = self.buffer[:0]


def build_indexer(hp: QLearnParams, env_id: str, low, high) -> StateIndexer:
    """The indexer the hparams ask for, for an env with observation-space bounds low/high."""
    dims = len(low)
    bins = _per_dim(hp.bins, dims, "bins", env_id)
    if hp.indexer == "adaptive":
        if hp.adaptive_fit_states < 1:
            raise ValueError(f"hparams.adaptive_fit_states must be >= 1 for {env_id}")
        return StateIndexer("adaptive", bins, fit_states=hp.adaptive_fit_states)
    if hp.indexer != "uniform":
        raise ValueError(f"hparams.indexer: {hp.indexer!r} is not one of {KINDS}")
    clip = float(hp.inf_clip)
    lo = _per_dim(hp.low, dims, "low", env_id, default=low)
    hi = _per_dim(hp.high, dims, "high", env_id, default=high)
    lo, hi = np.where(np.isinf(lo), -clip, lo), np.where(np.isinf(hi), clip, hi)
    return StateIndexer.uniform(lo, hi, bins)


def _per_dim(value, dims: int, key: str, env_id: str, default=None) -> np.ndarray:
    """A scalar (broadcast), a list of length D, None (-> ``default``) or {env_id: those}."""
    if isinstance(value, dict):
        if env_id not in value:
            raise ValueError(f"hparams.{key}: no entry for {env_id} (has {sorted(value)})")
        value = value[env_id]
    if value is None:
        return np.asarray(default, np.float64)
    arr = np.asarray(value, np.float64)
    if arr.ndim == 0:
        return np.full(dims, arr)
    if arr.shape != (dims,):
        raise ValueError(
            f"hparams.{key}: {len(arr)} entries, but {env_id} observations have {dims} dims"
        )
    return arr
