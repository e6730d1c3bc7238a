"""Loading an artifact never runs code from it: checkpoints load with weights_only=True,
Q-tables and episodes without pickle; a planted payload is refused and does not run."""

from __future__ import annotations

import hashlib
import io
import os
import zipfile

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from rlpipe.algos.qlearn import qtable  # noqa: E402
from rlpipe.runtree import checkpoint  # noqa: E402
from rlpipe.runtree.integrity import DamagedFile  # noqa: E402

from conftest import tiny_qtable  # noqa: E402

CKPT = "runs/x/CartPole-v1/seed1/ckpt/step_0000000512.pt"


class Payload:
    """Unpickling this runs a shell command that creates ``marker``."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _checkpoint(path, **extra):
    checkpoint.save(path, algo="ppo", global_step=512, model={"w": torch.arange(4.0)}, **extra)


@pytest.mark.parametrize(
    "where, refused",
    [("top level", "posix.system"), ("in an object array", "numpy.dtypes.ObjectDType")],
)
def test_checkpoint_with_a_code_payload_is_refused_and_not_run(tmp_path, where, refused):
    marker = tmp_path / "payload-ran"
    payload = Payload(marker)
    if where != "top level":  # numpy arrays are allowed for /1 checkpoints; objects are not
        payload = np.array([payload], dtype=object)
    path = tmp_path / CKPT
    _checkpoint(path, extra=payload)  # looks like a checkpoint: format, algo, weights

    with pytest.raises(DamagedFile) as err:
        checkpoint.load(path)
    message = str(err.value)
    assert message.startswith(f"{path}: refused to load") and refused in message
    assert "nothing in it was run" in message and "Delete it and rerun" in message
    assert not marker.exists()

    torch.load(path, weights_only=False)  # the payload is real: an unsafe load runs it
    assert marker.exists()


def test_checkpoints_hold_only_tensors_and_plain_values(tmp_path):
    np.random.seed(7)
    torch.manual_seed(7)
    _checkpoint(tmp_path / "a.pt")
    expected = np.random.random(3), torch.rand(3)
    plain = torch.load(tmp_path / "a.pt", weights_only=True)  # no extra globals allowed
    assert isinstance(plain["rng"]["numpy"]["state"]["key"], torch.Tensor)

    np.random.seed(0)
    torch.manual_seed(0)
    checkpoint.set_rng_state(checkpoint.load(tmp_path / "a.pt")["rng"])
    assert np.array_equal(np.random.random(3), expected[0])
    assert torch.equal(torch.rand(3), expected[1])


def test_identical_state_gives_identical_bytes(tmp_path):
    digests = []
    for run in ("a", "b"):  # torch names the archive after the file: same name, other dirs
        np.random.seed(3)
        torch.manual_seed(3)
        _checkpoint(tmp_path / run / CKPT)
        digests.append(hashlib.sha256((tmp_path / run / CKPT).read_bytes()).hexdigest())
    assert digests[0] == digests[1]


def test_checkpoints_of_format_1_still_load(tmp_path):
    """Format 1 stored numpy's RNG key as an ndarray; runs started before still resume."""
    np.random.seed(11)
    torch.manual_seed(11)
    legacy = {
        "format": "rlpipe-torch-ckpt/1",
        "rng": {"torch": torch.get_rng_state(), "numpy": np.random.get_state(legacy=False)},
        "algo": "ppo",
    }
    torch.save(legacy, tmp_path / "old.pt")
    expected = np.random.random(3)
    np.random.seed(0)
    checkpoint.set_rng_state(checkpoint.load(tmp_path / "old.pt")["rng"])
    assert np.array_equal(np.random.random(3), expected)


def test_qtable_with_a_pickled_member_is_refused_and_not_run(tmp_path):
    marker = tmp_path / "payload-ran"
    clean, planted = tmp_path / "clean.npz", tmp_path / "step_0000000016.npz"
    qtable.save(clean, tiny_qtable())
    with zipfile.ZipFile(clean) as src, zipfile.ZipFile(planted, "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename == "hparams.npy":  # swap in a pickled object array
                buf = io.BytesIO()
                np.save(buf, np.array([Payload(marker)], dtype=object), allow_pickle=True)
                data = buf.getvalue()
            dst.writestr(info, data)

    with pytest.raises(DamagedFile, match=r"step_0000000016.npz: not a readable Q-table npz"):
        qtable.load(planted)
    assert not marker.exists()

    with np.load(planted, allow_pickle=True) as npz:  # the payload is real
        npz["hparams"]
    assert marker.exists()
