"""numba kernels of the Q-learning inner loop.

All updates over a batch of environments are applied SEQUENTIALLY, in env order: when two
envs update the same (state, action) in one step, both updates count, the second seeing the
first. (NumPy fancy-index assignment would silently keep only one of them.)
"""

from __future__ import annotations

import numpy as np
from numba import njit

# Layout of the ``stats`` accumulator the kernels add to (reset by the caller per log interval).
TD_ABS_SUM, TD_COUNT, EP_RETURN_SUM, EP_LENGTH_SUM, EP_COUNT = range(5)
N_STATS = 5


@njit(cache=True)
def digitize(obs, edges, bins, strides):
    """Observations (N, D) -> rows (N,) int64: mixed-radix number of per-dimension bins.

    edges: (D, max_bins - 1) sorted interior edges; dimension d uses its first bins[d] - 1.
    A value below the first edge is bin 0, at or above the last one is bin bins[d] - 1.
    """
    n, d_dims = obs.shape
    rows = np.zeros(n, dtype=np.int64)
    for i in range(n):
        row = 0
        for d in range(d_dims):
            x = obs[i, d]
            b = 0
            while b < bins[d] - 1 and x >= edges[d, b]:
                b += 1
            row += b * strides[d]
        rows[i] = row
    return rows


@njit(cache=True)
def td_update(q, rows, actions, rewards, next_rows, bootstrap, valid, alpha, gamma, td):
    """One Q-learning update per valid transition, in order; TD errors written to ``td``.

    target = r + gamma * max_a' Q(s', a') if bootstrap (not terminated) else r.
    """
    for i in range(rows.shape[0]):
        if not valid[i]:
            td[i] = 0.0
            continue
        target = rewards[i]
        if bootstrap[i]:
            target += gamma * q[next_rows[i]].max()
        td[i] = target - q[rows[i], actions[i]]
        q[rows[i], actions[i]] += alpha * td[i]


@njit(cache=True)
def epsilon_greedy(q, rows, u_explore, u_action, epsilon):
    """Actions (N,): uniform-random where u_explore < epsilon, else argmax (first on ties)."""
    n_actions = q.shape[1]
    actions = np.empty(rows.shape[0], dtype=np.int64)
    for i in range(rows.shape[0]):
        if u_explore[i] < epsilon:
            actions[i] = min(int(u_action[i] * n_actions), n_actions - 1)
        else:
            actions[i] = np.argmax(q[rows[i]])
    return actions


@njit(cache=True)
def online_step(
    q, visits, rows, actions, rewards, next_rows, terminated, junk, alpha, gamma, td, stats
):
    """TD-update the step's transitions, skipping EnvPool's post-done junk ones.

    Bootstraps on truncation, not on termination. Counts visits of updated rows and adds
    |TD error| to ``stats``; returns the number of updates.
    """
    valid = ~junk
    td_update(q, rows, actions, rewards, next_rows, ~terminated, valid, alpha, gamma, td)
    n_updates = 0
    for i in range(rows.shape[0]):
        if valid[i]:
            visits[rows[i]] += 1
            stats[TD_ABS_SUM] += abs(td[i])
            n_updates += 1
    stats[TD_COUNT] += n_updates
    return n_updates


@njit(cache=True)
def track_episodes(rewards, terminated, truncated, junk, ep_return, ep_length, stats):
    """Accumulate per-env episode return/length; add finished episodes to ``stats``."""
    for i in range(rewards.shape[0]):
        if junk[i]:
            continue
        ep_return[i] += rewards[i]
        ep_length[i] += 1
        if terminated[i] or truncated[i]:
            stats[EP_RETURN_SUM] += ep_return[i]
            stats[EP_LENGTH_SUM] += ep_length[i]
            stats[EP_COUNT] += 1
            ep_return[i] = 0.0
            ep_length[i] = 0
