"""Proportional prioritised experience replay (Schaul et al. 2016) over table transitions.

A sum tree over ``capacity`` leaves (rounded up to a power of two) holds priorities
p = (|TD error| + PRIORITY_EPS) ** alpha; new transitions get the largest priority seen so far.
Batches are drawn stratified: one draw per equal slice of the total priority mass. Tabular
updates do not use importance-sampling weights. All state is plain arrays, saved with the table.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from rlpipe.algos.qlearn.kernel import TD_ABS_SUM, TD_COUNT, td_update

PRIORITY_EPS = 1e-6
# Stored arrays, in the order the kernels take them.
ARRAYS = ("state", "action", "reward", "next_state", "bootstrap", "tree", "meta", "max_priority")


class PrioritizedReplay:
    """Ring buffer of (row, action, reward, next row, bootstrap) with a priority sum tree."""

    def __init__(self, capacity: int, alpha: float, arrays: dict | None = None):
        self.capacity, self.alpha = int(capacity), float(alpha)
        leaves = 1 << max(0, (self.capacity - 1).bit_length())
        if arrays is None:
            arrays = {
                "state": np.zeros(self.capacity, np.int64),
                "action": np.zeros(self.capacity, np.int64),
                "reward": np.zeros(self.capacity, np.float64),
                "next_state": np.zeros(self.capacity, np.int64),
                "bootstrap": np.zeros(self.capacity, np.bool_),
                "tree": np.zeros(2 * leaves, np.float64),
                "meta": np.array([0, 0], np.int64),  # next write position, size
                "max_priority": np.array([1.0]),
            }
        elif len(arrays["state"]) != self.capacity or len(arrays["tree"]) != 2 * leaves:
            raise ValueError(
                f"replay arrays hold {len(arrays['state'])} slots, hparams say {self.capacity}"
            )
        self.arrays = arrays

    @property
    def size(self) -> int:
        return int(self.arrays["meta"][1])

    def add(self, rows, actions, rewards, next_rows, bootstrap, valid) -> None:
        """Store the valid transitions of one vector step (N,) at the largest priority."""
        buffers = (self.arrays[k] for k in ARRAYS)
        _add(*buffers, rows, actions, rewards, next_rows, bootstrap, valid)

    def train(self, q, batch: int, n_batches: int, alpha_lr: float, gamma: float, rng, stats):
        """``n_batches`` sequential TD updates of ``batch`` prioritised samples -> #updates."""
        if self.size == 0:
            return 0
        uniforms = rng.random((n_batches, batch))  # (n_batches, batch)
        buffers = (self.arrays[k] for k in ARRAYS)
        _train(q, *buffers, uniforms, self.alpha, alpha_lr, gamma, stats)
        return n_batches * batch

    def priority_stats(self) -> tuple[float, float]:
        """(mean, max) priority over the stored transitions."""
        leaves = self.arrays["tree"][len(self.arrays["tree"]) // 2 :][: self.size]
        return float(leaves.mean()), float(leaves.max())


@njit(cache=True)
def _set_priority(tree, index, priority):
    node = tree.shape[0] // 2 + index
    tree[node] = priority
    node //= 2
    while node >= 1:
        tree[node] = tree[2 * node] + tree[2 * node + 1]
        node //= 2


@njit(cache=True)
def _find(tree, mass):
    """Leaf index whose cumulative-priority interval contains ``mass``."""
    node = 1
    n_leaves = tree.shape[0] // 2
    while node < n_leaves:
        left = 2 * node
        if mass < tree[left]:
            node = left
        else:
            mass -= tree[left]
            node = left + 1
    return node - n_leaves


@njit(cache=True)
def _add(s, a, r, s2, boot, tree, meta, max_p, rows, actions, rewards, next_rows, bootstrap, valid):
    capacity = s.shape[0]
    for i in range(rows.shape[0]):
        if not valid[i]:
            continue
        pos = meta[0]
        s[pos] = rows[i]
        a[pos] = actions[i]
        r[pos] = rewards[i]
        s2[pos] = next_rows[i]
        boot[pos] = bootstrap[i]
        _set_priority(tree, pos, max_p[0])
        meta[0] = (pos + 1) % capacity
        meta[1] = min(meta[1] + 1, capacity)


@njit(cache=True)
def _train(q, s, a, r, s2, boot, tree, meta, max_p, uniforms, alpha, lr, gamma, stats):
    n_batches, batch = uniforms.shape
    size = meta[1]
    td = np.zeros(batch)
    valid = np.ones(batch, dtype=np.bool_)
    for k in range(n_batches):
        total = tree[1]
        idx = np.empty(batch, dtype=np.int64)
        for j in range(batch):
            idx[j] = min(_find(tree, (j + uniforms[k, j]) * total / batch), size - 1)
        td_update(q, s[idx], a[idx], r[idx], s2[idx], boot[idx], valid, lr, gamma, td)
        for j in range(batch):
            priority = (abs(td[j]) + PRIORITY_EPS) ** alpha
            max_p[0] = max(max_p[0], priority)
            _set_priority(tree, idx[j], priority)
            stats[TD_ABS_SUM] += abs(td[j])
        stats[TD_COUNT] += batch
