"""numba Q-learning kernels: sequential semantics, autoreset masking, epsilon-greedy."""

from __future__ import annotations

import numpy as np

from rlpipe.algos.qlearn import kernel

ALPHA, GAMMA = 0.5, 0.9


def python_reference(q, rows, actions, rewards, next_rows, bootstrap, valid):
    """Plain-Python Q-learning, one transition after another."""
    q = q.copy()
    for s, a, r, s2, boot, ok in zip(
        rows, actions, rewards, next_rows, bootstrap, valid, strict=True
    ):
        if ok:
            target = r + (GAMMA * max(q[s2]) if boot else 0.0)
            q[s, a] += ALPHA * (target - q[s, a])
    return q


def numpy_fancy_index(q, rows, actions, rewards, next_rows, bootstrap):
    """The tempting vectorised version: duplicate (s, a) pairs keep only one update."""
    q = q.copy()
    target = rewards + GAMMA * q[next_rows].max(axis=1) * bootstrap
    q[rows, actions] += ALPHA * (target - q[rows, actions])
    return q


def run_kernel(q, rows, actions, rewards, next_rows, bootstrap, valid):
    q = q.copy()
    td = np.zeros(len(rows))
    kernel.td_update(q, rows, actions, rewards, next_rows, bootstrap, valid, ALPHA, GAMMA, td)
    return q, td


def test_two_envs_same_state_action_both_updates_apply():
    q = np.zeros((3, 2))
    q[2] = [4.0, 1.0]
    rows, actions = np.array([0, 0]), np.array([1, 1])
    rewards, next_rows = np.array([1.0, 1.0]), np.array([2, 2])
    bootstrap, valid = np.ones(2, bool), np.ones(2, bool)

    got, _ = run_kernel(q, rows, actions, rewards, next_rows, bootstrap, valid)
    ref = python_reference(q, rows, actions, rewards, next_rows, bootstrap, valid)
    fancy = numpy_fancy_index(q, rows, actions, rewards, next_rows, bootstrap)

    target = 1.0 + GAMMA * 4.0
    once = ALPHA * target
    twice = once + ALPHA * (target - once)
    np.testing.assert_array_equal(got, ref)
    assert got[0, 1] == twice
    assert fancy[0, 1] == once  # NumPy dropped one of the two updates


def test_random_batches_match_python_loop():
    rng = np.random.default_rng(0)
    q = rng.normal(size=(5, 3))  # few rows: many duplicate pairs and chained s -> s'
    for _ in range(20):
        n = 32
        batch = (
            rng.integers(0, 5, n),
            rng.integers(0, 3, n),
            rng.normal(size=n),
            rng.integers(0, 5, n),
            rng.random(n) < 0.8,
            rng.random(n) < 0.9,
        )
        got, _ = run_kernel(q, *batch)
        np.testing.assert_allclose(got, python_reference(q, *batch), rtol=1e-12, atol=1e-12)
        q = got


def test_online_step_skips_junk_and_bootstraps_only_on_truncation():
    q = np.zeros((4, 2))
    q[3] = [10.0, 0.0]
    visits = np.zeros(4, np.int64)
    rows, actions = np.array([0, 1, 2]), np.array([0, 0, 0])
    rewards, next_rows = np.ones(3), np.array([3, 3, 3])
    terminated = np.array([True, False, False])  # env 0 terminated; env 1 truncated or running
    junk = np.array([False, False, True])  # env 2: EnvPool's reset step after a done
    td, stats = np.zeros(3), np.zeros(kernel.N_STATS)

    n = kernel.online_step(
        q, visits, rows, actions, rewards, next_rows, terminated, junk, ALPHA, GAMMA, td, stats
    )

    assert n == 2
    assert q[0, 0] == ALPHA * 1.0  # terminal: no bootstrap
    assert q[1, 0] == ALPHA * (1.0 + GAMMA * 10.0)  # truncated/running: bootstrap
    assert q[2, 0] == 0.0 and td[2] == 0.0  # junk never learned from
    assert visits.tolist() == [1, 1, 0, 0]
    assert stats[kernel.TD_COUNT] == 2 and stats[kernel.TD_ABS_SUM] == abs(td[0]) + abs(td[1])


def test_track_episodes_ignores_junk_steps():
    ep_return, ep_length, stats = np.zeros(1), np.zeros(1, np.int64), np.zeros(kernel.N_STATS)
    seq = [(1.0, False, False), (1.0, True, False), (0.0, False, False), (1.0, False, True)]
    junk = np.zeros(1, bool)
    for r, term, trunc in seq:
        terminated, truncated = np.array([term]), np.array([trunc])
        kernel.track_episodes(
            np.array([r]), terminated, truncated, junk, ep_return, ep_length, stats
        )
        junk = terminated | truncated
    # Episodes: 2 steps (return 2) and, after the junk reset step, 1 step (return 1).
    assert stats[kernel.EP_COUNT] == 2
    assert stats[kernel.EP_RETURN_SUM] == 3.0 and stats[kernel.EP_LENGTH_SUM] == 3


def test_epsilon_greedy():
    q = np.array([[0.0, 2.0, 1.0], [5.0, 5.0, 0.0]])
    rows = np.array([0, 1, 0])
    u_explore, u_action = np.array([0.2, 0.9, 0.5]), np.array([0.0, 0.5, 0.99])
    assert kernel.epsilon_greedy(q, rows, u_explore, u_action, 0.0).tolist() == [1, 0, 1]
    assert kernel.epsilon_greedy(q, rows, u_explore, u_action, 1.0).tolist() == [0, 1, 2]
    assert kernel.epsilon_greedy(q, rows, u_explore, u_action, 0.6).tolist() == [0, 0, 2]


def test_digitize_mixed_radix_rows():
    edges = np.array([[0.0, np.inf], [-1.0, 1.0]])  # dim 0: 2 bins, dim 1: 3 bins
    bins, strides = np.array([2, 3]), np.array([3, 1])
    obs = np.array([[-5.0, -5.0], [0.5, 0.0], [0.0, 1.0], [9.0, 9.0]], np.float32)
    assert kernel.digitize(obs, edges, bins, strides).tolist() == [0, 4, 5, 5]
