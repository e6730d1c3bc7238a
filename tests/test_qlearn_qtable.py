"""The Q-table artifact: pickle-free npz, deterministic bytes, validation with clear errors."""

from __future__ import annotations

import numpy as np
import pytest

from rlpipe.algos import hparams
from rlpipe.algos.qlearn import qtable
from rlpipe.algos.qlearn.indexer import StateIndexer
from rlpipe.algos.qlearn.params import QLearnParams


def make_table(bins=(2, 3), n_actions=2) -> qtable.QTable:
    indexer = StateIndexer.uniform([-1.0] * len(bins), [1.0] * len(bins), bins)
    rng = np.random.default_rng(7)
    return qtable.QTable(
        env_id="CartPole-v1",
        q=rng.normal(size=(indexer.n_rows, n_actions)),
        visits=np.arange(indexer.n_rows, dtype=np.int64),
        indexer=indexer,
        rng_state=rng.bit_generator.state,
        global_step=4096,
        epsilon_step=4000,
        episodes=12,
        updates=4001,
        hparams=hparams.resolve(QLearnParams, {}, 8192),
    )


def test_roundtrip_without_pickle_and_same_bytes(tmp_path):
    table = make_table()
    qtable.save(tmp_path / "a.npz", table)
    qtable.save(tmp_path / "b.npz", table)
    assert (tmp_path / "a.npz").read_bytes() == (tmp_path / "b.npz").read_bytes()
    with np.load(tmp_path / "a.npz", allow_pickle=False) as npz:
        assert str(npz["format"]) == qtable.FORMAT
    back = qtable.load(tmp_path / "a.npz", obs_dims=2, n_actions=2)
    np.testing.assert_array_equal(back.q, table.q)
    np.testing.assert_array_equal(back.indexer.edges, table.indexer.edges)
    assert back.rng_state == table.rng_state
    assert (back.global_step, back.epsilon_step, back.episodes, back.updates) == (
        4096,
        4000,
        12,
        4001,
    )
    assert back.hparams == table.hparams and back.replay is None
    assert [p.name for p in tmp_path.iterdir()] == ["a.npz", "b.npz"]  # no temp files left


def test_env_mismatch_names_file_and_problem(tmp_path):
    path = tmp_path / "q.npz"
    qtable.save(path, make_table())
    with pytest.raises(ValueError, match=r"q.npz \(CartPole-v1\): indexer has 2 .* env has 6"):
        qtable.load(path, obs_dims=6, n_actions=2)
    with pytest.raises(ValueError, match=r"q.npz .*Q-table has 2 actions, the env has 3"):
        qtable.load(path, obs_dims=2, n_actions=3)


def test_table_indexer_shape_mismatch(tmp_path):
    table = make_table()
    table.q = np.zeros((5, 2))  # indexer bins (2, 3) need 6 rows
    qtable.save(tmp_path / "q.npz", table)
    with pytest.raises(ValueError, match=r"q.npz.*shape \(5, 2\) does not match indexer bins"):
        qtable.load(tmp_path / "q.npz")


def test_truncated_and_foreign_files(tmp_path):
    path = tmp_path / "q.npz"
    qtable.save(path, make_table())
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"q.npz: not a readable Q-table npz"):
        qtable.load(path)
    other = tmp_path / "other.npz"
    np.savez(other, x=np.zeros(3))
    with pytest.raises(ValueError, match=r"other.npz: not an rlpipe Q-table \(missing"):
        qtable.load(other)
