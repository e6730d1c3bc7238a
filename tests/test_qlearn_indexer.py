"""State indexers: uniform bins from config, adaptive percentile bins fitted then frozen."""

from __future__ import annotations

import numpy as np
import pytest

from rlpipe.algos import ALGOS, hparams
from rlpipe.algos.qlearn.indexer import StateIndexer, build_indexer
from rlpipe.algos.qlearn.params import QLearnParams

CARTPOLE_LOW = np.array([-4.8, -np.inf, -0.42, -np.inf], np.float32)
CARTPOLE_HIGH = -CARTPOLE_LOW


def hp(**overrides):
    return hparams.typed(QLearnParams, overrides, 1000)


def test_uniform_clips_infinite_bounds_and_maps_rows():
    ix = build_indexer(
        hp(bins=[1, 2, 3, 4], inf_clip=2.0), "CartPole-v1", CARTPOLE_LOW, CARTPOLE_HIGH
    )
    assert ix.n_rows == 24 and ix.fitted
    np.testing.assert_allclose(ix.edges[1, :1], [0.0])  # (-2, 2) in 2 bins
    np.testing.assert_allclose(ix.edges[3, :3], [-1.0, 0.0, 1.0])  # (-2, 2) in 4 bins
    obs = np.array([[0, -1, -0.41, -9], [0, 1, 0.41, 9], [3, 0.5, 0.0, 0.5]], np.float32)
    # row = b1 * 12 + b2 * 4 + b3
    assert ix.rows(obs).tolist() == [0, 12 + 2 * 4 + 3, 12 + 1 * 4 + 2]
    assert ix.rows(obs).dtype == np.int64


def test_uniform_configured_ranges_and_per_env_bins():
    config = hp(bins={"CartPole-v1": 2}, low=[-1, -1, -1, -1], high=1.0)
    ix = build_indexer(config, "CartPole-v1", CARTPOLE_LOW, CARTPOLE_HIGH)
    np.testing.assert_allclose(ix.edges, np.zeros((4, 1)))
    with pytest.raises(ValueError, match="hparams.bins: no entry for Acrobot-v1"):
        build_indexer(config, "Acrobot-v1", np.zeros(6), np.ones(6))


def test_bins_of_wrong_length_name_the_env():
    with pytest.raises(ValueError, match=r"hparams.bins: 4 entries, but Acrobot-v1 .* 6 dims"):
        build_indexer(hp(), "Acrobot-v1", -np.ones(6), np.ones(6))


def test_adaptive_fits_percentiles_on_first_states_then_freezes():
    ix = build_indexer(
        hp(indexer="adaptive", bins=4, adaptive_fit_states=1000), "X-v0", -np.ones(2), np.ones(2)
    )
    assert not ix.fitted
    with pytest.raises(RuntimeError):
        ix.rows(np.zeros((1, 2), np.float32))
    rng = np.random.default_rng(0)
    states = rng.normal(size=(1200, 2)).astype(np.float32)
    for chunk in np.split(states, 12):  # 100 states per "step"
        if not ix.fitted:
            ix.collect(chunk)
    assert ix.fitted and len(ix.buffer) == 0
    expected = np.percentile(states[:1000].astype(np.float64), [25, 50, 75], axis=0).T
    np.testing.assert_allclose(ix.edges, expected)
    counts = np.bincount(ix.rows(states[:1000]) // 4, minlength=4)  # dim 0's bins
    assert counts.tolist() == [250, 250, 250, 250]


def test_bad_indexer_kind():
    with pytest.raises(ValueError, match="hparams.indexer: 'kmeans'"):
        build_indexer(hp(indexer="kmeans"), "CartPole-v1", CARTPOLE_LOW, CARTPOLE_HIGH)
    with pytest.raises(ValueError, match="bins must be >= 1"):
        StateIndexer("uniform", [0, 2])


def test_qlearn_defaults_resolve():
    resolved = hparams.resolve(QLearnParams, {"num_envs": 4, "indexer": "adaptive"}, 1000)
    assert resolved["num_envs"] == 4 and resolved["indexer"] == "adaptive"
    assert ALGOS["qlearn"].steps_per_update(resolved) == 4
    with pytest.raises(KeyError, match="unknown qlearn hparams"):
        hparams.resolve(QLearnParams, {"alpha": 0.1}, 1000)
