"""Prioritised replay: ring buffer, proportional sampling, priority updates."""

from __future__ import annotations

import numpy as np

from rlpipe.algos.qlearn import kernel
from rlpipe.algos.qlearn.replay import PrioritizedReplay, _find, _set_priority


def test_ring_buffer_keeps_the_newest_valid_transitions():
    replay = PrioritizedReplay(capacity=5, alpha=0.6)
    for step in range(3):
        rows = np.arange(3) + 3 * step  # rows 0..8 over three steps
        valid = np.array([True, True, step != 1])  # row 5 is a junk transition
        replay.add(rows, np.zeros(3, np.int64), np.ones(3), rows, np.ones(3, bool), valid)
    assert replay.size == 5
    assert sorted(replay.arrays["state"].tolist()) == [3, 4, 6, 7, 8]
    mean, top = replay.priority_stats()
    assert mean == top == 1.0  # new transitions enter at the max priority


def test_sum_tree_samples_proportionally_to_priority():
    tree = np.zeros(2 * 4)
    for i, p in enumerate([1.0, 0.0, 3.0, 4.0]):
        _set_priority(tree, i, p)
    assert tree[1] == 8.0
    masses = (np.arange(8000) + 0.5) / 1000.0  # evenly over the total mass 8
    counts = np.bincount([_find(tree, m) for m in masses], minlength=4)
    assert counts.tolist() == [1000, 0, 3000, 4000]


def test_train_updates_q_and_priorities():
    replay = PrioritizedReplay(capacity=4, alpha=1.0)
    q = np.zeros((3, 1))
    rows = np.array([0, 1])
    replay.add(
        rows,
        np.zeros(2, np.int64),
        np.array([1.0, 0.0]),
        np.array([2, 2]),
        np.array([False, False]),
        np.ones(2, bool),
    )
    stats = np.zeros(kernel.N_STATS)
    n = replay.train(q, 8, 3, 0.5, 0.9, np.random.default_rng(0), stats)
    assert n == 24 and stats[kernel.TD_COUNT] == 24
    assert q[0, 0] > 0.5 and q[1, 0] == 0.0  # only the rewarded transition moves Q
    leaves = replay.arrays["tree"][4:6]
    assert leaves[0] > leaves[1]  # its |TD| (hence priority) stays larger
