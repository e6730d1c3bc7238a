"""MANIFEST.json: structure, atomic write, verification naming the bad file."""

import hashlib
import json

import pytest

from rlpipe.storage import manifest as mf


def make_dataset(root):
    (root / "sub").mkdir(parents=True)
    (root / "a.npz").write_bytes(b"alpha")
    (root / "sub" / "b.npz").write_bytes(b"bravo!")
    (root / ".a.npz.tmp-123").write_bytes(b"temp")  # a writer's temp file: not part of it
    entries = [mf.file_entry(root, rel) for rel in mf.dataset_files(root)]
    return mf.build("ds", "remote:datasets/ds", entries, "sha256:abc")


def test_build_write_load_round_trip(tmp_path):
    manifest = make_dataset(tmp_path / "ds")
    assert [f["path"] for f in manifest["files"]] == ["a.npz", "sub/b.npz"]
    assert manifest["files"][0] == {
        "path": "a.npz",
        "size": 5,
        "sha256": hashlib.sha256(b"alpha").hexdigest(),
    }
    path = tmp_path / "ds" / mf.MANIFEST_NAME
    mf.write(path, manifest)
    assert json.loads(path.read_text())["format"] == "rlpipe-dataset-manifest/1"
    assert mf.load(path) == manifest
    assert mf.stored_fingerprint(path) == "sha256:abc"
    assert mf.dataset_files(tmp_path / "ds") == ["a.npz", "sub/b.npz"]  # manifest excluded
    mf.verify(manifest, tmp_path / "ds")


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda root: (root / "sub" / "b.npz").unlink(), r"sub/b.npz: missing"),
        (lambda root: (root / "a.npz").write_bytes(b"alph"), r"a.npz: size 4, manifest says 5"),
        (lambda root: (root / "a.npz").write_bytes(b"ALPHA"), r"a.npz: sha256 differs"),
    ],
)
def test_verify_names_the_bad_file(tmp_path, damage, message):
    root = tmp_path / "ds"
    manifest = make_dataset(root)
    damage(root)
    with pytest.raises(mf.ManifestError, match=message):
        mf.verify(manifest, root)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"format": "other/1"}, "format is 'other/1'"),
        ({"source": None}, "key 'source'"),
        ({"files": [{"path": "a", "size": "5", "sha256": "0" * 64}]}, r"files\[0\]"),
        ({"remote_fingerprint": 5}, "key 'remote_fingerprint'"),
    ],
)
def test_malformed_manifest_names_the_key(tmp_path, change, message):
    manifest = {**make_dataset(tmp_path / "ds"), **change}
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(manifest))
    with pytest.raises(mf.ManifestError, match=rf"bad.json: {message}"):
        mf.load(path)
    assert mf.stored_fingerprint(path) is None
    with pytest.raises(mf.ManifestError):
        mf.write(tmp_path / "out.json", manifest)
    assert not (tmp_path / "out.json").exists()


def test_unreadable_manifest(tmp_path):
    (tmp_path / "m.json").write_text("{not json")
    with pytest.raises(mf.ManifestError, match="m.json: not valid JSON"):
        mf.load(tmp_path / "m.json")
    with pytest.raises(mf.ManifestError, match="nope.json: cannot read"):
        mf.load(tmp_path / "nope.json")
