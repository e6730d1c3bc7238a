"""The episode format rlpipe-episode/1: round trip, validation, damaged files."""

import json
import struct
import zipfile

import numpy as np
import pytest

from rlpipe.replays.format import FORMAT_VERSION, EpisodeFormatError, read_episode, write_episode


def episode_arrays(t=5, obs_shape=(4,), dtype=np.float32, seed=0):
    rng = np.random.default_rng(seed)
    obs = rng.normal(size=(t + 1, *obs_shape)).astype(dtype)
    term = np.zeros(t, bool)
    term[-1] = True
    return dict(
        observations=obs,
        actions=rng.integers(0, 3, size=t),
        rewards=rng.normal(size=t),
        terminations=term,
        truncations=np.zeros(t, bool),
    )


def write(path, **overrides):
    arrays = {**episode_arrays(), **overrides}
    write_episode(
        path, **arrays, env_id="CartPole-v1", n_actions=3, source_checkpoint="a.pt", seed=7
    )


def test_round_trip_keeps_values_dtypes_and_metadata(tmp_path):
    arrays = episode_arrays(t=6, obs_shape=(2, 3, 3), dtype=np.uint8, seed=1)
    path = tmp_path / "ep.npz"
    write_episode(path, **arrays, env_id="Pong-v5", n_actions=3, source_checkpoint=None, seed=11)
    ep = read_episode(path)
    assert ep.length == 6
    np.testing.assert_array_equal(ep.observations, arrays["observations"])
    np.testing.assert_array_equal(ep.actions, arrays["actions"])
    np.testing.assert_array_equal(ep.rewards, arrays["rewards"].astype(np.float32))
    assert ep.observations.dtype == np.uint8 and ep.actions.dtype == np.int64
    assert ep.rewards.dtype == np.float32 and ep.terminations.dtype == bool
    assert ep.meta == {
        "format": FORMAT_VERSION,
        "env_id": "Pong-v5",
        "obs_shape": [2, 3, 3],
        "obs_dtype": "uint8",
        "n_actions": 3,
        "source_checkpoint": None,
        "seed": 11,
    }
    assert [p.name for p in tmp_path.iterdir()] == ["ep.npz"]  # no temp file left


def test_file_loads_without_pickle(tmp_path):
    path = tmp_path / "ep.npz"
    write(path)
    with np.load(path, allow_pickle=False) as npz:
        assert json.loads(str(npz["metadata"][()]))["format"] == FORMAT_VERSION
        assert set(npz.files) == {
            "observations",
            "actions",
            "rewards",
            "terminations",
            "truncations",
            "metadata",
        }


def test_truncated_file_names_the_file(tmp_path):
    path = tmp_path / "ep_truncated.npz"
    write(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(EpisodeFormatError, match="ep_truncated.npz: truncated or corrupted"):
        read_episode(path)


def test_corrupted_bytes_name_the_file(tmp_path):
    path = tmp_path / "ep_corrupt.npz"
    write(path, observations=np.zeros((6, 4), np.float32) + 0.5)
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as zf:  # flip bytes inside the compressed observations member
        info = zf.getinfo("observations.npy")
    name_len, extra_len = struct.unpack(
        "<HH", data[info.header_offset + 26 : info.header_offset + 30]
    )
    start = info.header_offset + 30 + name_len + extra_len + info.compress_size // 2
    data[start : start + 8] = bytes(b ^ 0xFF for b in data[start : start + 8])
    path.write_bytes(bytes(data))
    with pytest.raises(EpisodeFormatError, match="ep_corrupt.npz"):
        read_episode(path)


def test_not_an_episode_and_pickled_arrays_are_refused(tmp_path):
    npy = tmp_path / "plain.npz"
    with open(npy, "wb") as fh:
        np.save(fh, np.zeros(3))
    with pytest.raises(EpisodeFormatError, match="plain.npz: truncated or corrupted"):
        read_episode(npy)
    missing = tmp_path / "missing.npz"
    np.savez(missing, observations=np.zeros((2, 1)))
    with pytest.raises(EpisodeFormatError, match=r"missing.npz: not an episode file.*actions"):
        read_episode(missing)
    pickled = tmp_path / "pickled.npz"
    arrays = {k: v for k, v in episode_arrays().items()}
    np.savez(pickled, metadata=np.array([{"format": FORMAT_VERSION}], dtype=object), **arrays)
    with pytest.raises(EpisodeFormatError, match="pickled.npz"):
        read_episode(pickled)


def rewrite_with(path, tmp_path, name, meta_changes=None, **array_changes):
    """Copy an episode with some arrays or metadata keys replaced (bypassing the writer)."""
    with np.load(path, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    meta = json.loads(str(arrays.pop("metadata")[()]))
    meta.update(meta_changes or {})
    arrays.update(array_changes)
    out = tmp_path / name
    np.savez(out, metadata=np.array(json.dumps(meta)), **arrays)
    return out


@pytest.mark.parametrize(
    "meta_changes, array_changes, message",
    [
        ({"format": "rlpipe-episode/9"}, {}, "format 'rlpipe-episode/9'"),
        ({"n_actions": "3"}, {}, "metadata key 'n_actions'"),
        ({}, {"actions": np.zeros(4, np.int64)}, r"rewards has shape \(5,\), expected \(4,\)"),
        ({}, {"observations": np.zeros((5, 4), np.float32)}, r"observations has shape \(5, 4\)"),
        ({}, {"rewards": np.zeros(5, np.float64)}, "rewards has dtype float64"),
        ({}, {"actions": np.full(5, 3, np.int64)}, r"actions outside \[0, 3\)"),
        ({}, {"terminations": np.ones(5, bool)}, "episode ends early"),
        ({}, {"terminations": np.zeros(5, bool)}, "neither terminated nor truncated"),
        ({"obs_dtype": "uint8"}, {}, "metadata says uint8"),
    ],
)
def test_invalid_contents_are_named(tmp_path, meta_changes, array_changes, message):
    good = tmp_path / "good.npz"
    write(good)
    bad = rewrite_with(good, tmp_path, "bad_episode.npz", meta_changes, **array_changes)
    with pytest.raises(EpisodeFormatError, match=rf"bad_episode.npz: invalid episode: .*{message}"):
        read_episode(bad)


def test_writer_refuses_invalid_episode(tmp_path):
    path = tmp_path / "ep.npz"
    with pytest.raises(EpisodeFormatError, match=r"ep.npz: refusing .*observations has shape"):
        write(path, observations=np.zeros((3, 4), np.float32))
    assert not path.exists()
