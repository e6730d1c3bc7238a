"""fetch_dataset / remote_fingerprint against a real rclone WebDAV server on loopback."""

import json
import os
import threading
import time

import numpy as np
import pytest

from rlpipe.replays.fetch import (
    FetchError,
    fetch_dataset,
    fingerprint_or_stored,
    remote_fingerprint,
)
from rlpipe.replays.format import read_episode, write_episode
from rlpipe.storage import manifest as mf
from rlpipe.storage.rclone import RcloneRemote, RemoteError

REMOTE = "testremote:datasets/cp"


def served_episodes(server, n=3, name="cp"):
    root = server.root / "datasets" / name
    for i in range(n):
        t = 4 + i
        obs = np.arange((t + 1) * 4, dtype=np.float32).reshape(t + 1, 4)
        term = np.zeros(t, bool)
        term[-1] = True
        write_episode(
            root / f"ep_{i:03d}.npz",
            obs,
            np.arange(t) % 2,
            np.ones(t),
            term,
            np.zeros(t, bool),
            env_id="CartPole-v1",
            n_actions=2,
            seed=i,
        )
    return root


def fast_client(remote=REMOTE, **kw):
    return RcloneRemote(remote, retries=2, backoff_s=0.05, timeout_s=5, low_level_retries=1, **kw)


def test_fetch_verifies_and_writes_manifest_last(rclone_server, tmp_path):
    root = served_episodes(rclone_server)
    (root / "notes.txt").write_text("not an episode")
    dest = tmp_path / "data" / "replays" / "cp"
    client = fast_client()
    manifest = fetch_dataset(REMOTE, "*.npz", dest, client=client)
    assert client.calls == 2  # one listing, one copy: not one call per file
    assert manifest == mf.load(dest / mf.MANIFEST_NAME)
    assert manifest["dataset"] == "cp" and manifest["source"] == REMOTE
    assert [f["path"] for f in manifest["files"]] == ["ep_000.npz", "ep_001.npz", "ep_002.npz"]
    assert sorted(p.name for p in dest.iterdir()) == [
        "MANIFEST.json",
        "ep_000.npz",
        "ep_001.npz",
        "ep_002.npz",
    ]
    mf.verify(manifest, dest)
    for f in manifest["files"]:
        assert (dest / f["path"]).read_bytes() == (root / f["path"]).read_bytes()
        assert read_episode(dest / f["path"]).meta["env_id"] == "CartPole-v1"
    assert manifest["remote_fingerprint"] == remote_fingerprint(REMOTE, "*.npz")
    assert not any(p.name.startswith(".") for p in dest.parent.iterdir())  # temp dirs gone
    # a second fetch replaces the dataset in place
    (root / "ep_000.npz").unlink()
    rclone_server.changed()
    manifest = fetch_dataset(REMOTE, ["*.npz"], dest, client=fast_client())
    assert sorted(p.name for p in dest.iterdir()) == ["MANIFEST.json", "ep_001.npz", "ep_002.npz"]


def test_listing_and_fetch_are_batched_for_many_files(rclone_server, tmp_path):
    for d in range(3):
        (rclone_server.root / "many" / f"d{d}").mkdir(parents=True)
        for i in range(20):
            (rclone_server.root / "many" / f"d{d}" / f"e{i}.npz").write_bytes(os.urandom(50))
    client = fast_client("testremote:many")
    manifest = fetch_dataset("testremote:many", None, tmp_path / "many", client=client)
    assert len(manifest["files"]) == 60
    assert client.calls == 2
    listings = len(rclone_server.requests("PROPFIND"))
    assert listings <= 2 * (3 + 2), f"{listings} PROPFINDs for 3 directories of 20 files"
    assert len(rclone_server.requests("GET")) == 60


def complete_files(partial, sizes):
    return [p for p in partial.glob("*.npz") if p.stat().st_size == sizes.get(p.name)]


def test_interrupted_download_leaves_no_manifest_and_rerun_resumes(rclone_server, tmp_path):
    root = rclone_server.root / "datasets" / "big"
    root.mkdir(parents=True)
    for i in range(6):
        (root / f"ep_{i}.npz").write_bytes(os.urandom(256 * 1024))
    sizes = {p.name: p.stat().st_size for p in root.iterdir()}
    dest = tmp_path / "replays" / "big"
    partial = dest.with_name(".big.partial")
    slow = fast_client("testremote:datasets/big", transfers=1, extra_flags=["--bwlimit", "512K"])
    errors = []

    def run():
        try:
            fetch_dataset("testremote:datasets/big", "*.npz", dest, client=slow)
        except Exception as exc:  # noqa: BLE001 - handed to the test thread
            errors.append(exc)

    worker = threading.Thread(target=run)
    worker.start()
    deadline = time.monotonic() + 20
    while len(complete_files(partial, sizes)) < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    rclone_server.stop(kill=True)  # the server dies mid-transfer
    worker.join(timeout=30)
    assert len(errors) == 1 and isinstance(errors[0], RemoteError), errors
    assert not (dest / mf.MANIFEST_NAME).exists() and not dest.exists()
    done = len(complete_files(partial, sizes))
    assert 2 <= done < 6

    rclone_server.start()
    gets_before = len(rclone_server.requests("GET"))
    client = fast_client("testremote:datasets/big")
    manifest = fetch_dataset("testremote:datasets/big", "*.npz", dest, client=client)
    assert len(manifest["files"]) == 6
    mf.verify(manifest, dest)
    assert len(rclone_server.requests("GET")) - gets_before == 6 - done  # resumed
    assert not partial.exists()


def test_file_changed_on_remote_fails_verification_naming_it(rclone_server, tmp_path):
    root = served_episodes(rclone_server)
    published = [mf.file_entry(root, p.name) for p in sorted(root.iterdir())]
    (root / mf.MANIFEST_NAME).write_text(json.dumps(mf.build("cp", REMOTE, published, None)))
    bad = root / "ep_001.npz"
    st = bad.stat()
    data = bytearray(bad.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, same modtime: only a content check sees it
    bad.write_bytes(bytes(data))
    os.utime(bad, ns=(st.st_atime_ns, st.st_mtime_ns))
    dest = tmp_path / "cp"
    with pytest.raises(FetchError, match="ep_001.npz: differs from the remote MANIFEST.json"):
        fetch_dataset(REMOTE, None, dest, client=fast_client())
    assert not (dest / mf.MANIFEST_NAME).exists()
    assert not (tmp_path / ".cp.partial" / "ep_001.npz").exists()  # refetched next time
    (tmp_path / ".cp.partial" / "ep_000.npz").write_bytes(b"stale")  # damaged local leftover
    data[len(data) // 2] ^= 0xFF
    bad.write_bytes(bytes(data))
    rclone_server.changed()
    manifest = fetch_dataset(REMOTE, None, dest, client=fast_client())
    mf.verify(manifest, dest)
    assert [f["sha256"] for f in manifest["files"]] == [f["sha256"] for f in published]


def test_missing_remote_manifest_means_absent_when_required(rclone_server, tmp_path):
    served_episodes(rclone_server)
    with pytest.raises(FetchError, match="no MANIFEST.json"):
        fetch_dataset(REMOTE, None, tmp_path / "cp", require_remote_manifest=True)
    with pytest.raises(FetchError, match="no files match"):
        fetch_dataset(REMOTE, "*.parquet", tmp_path / "cp")
    with pytest.raises(FetchError, match="no such remote directory"):
        fetch_dataset("testremote:nothing/here", None, tmp_path / "cp")
    assert not (tmp_path / "cp" / mf.MANIFEST_NAME).exists()


def test_fingerprint_follows_remote_content(rclone_server):
    root = served_episodes(rclone_server)
    first = remote_fingerprint(REMOTE, "*.npz")
    assert first.startswith("sha256:") and remote_fingerprint(REMOTE, "*.npz") == first
    (root / "readme.txt").write_text("x")
    rclone_server.changed()
    assert remote_fingerprint(REMOTE, "*.npz") == first  # not included
    assert remote_fingerprint(REMOTE, None) != first
    ep = root / "ep_002.npz"
    data = bytearray(ep.read_bytes())
    data[-30] ^= 1  # same size; the modtime moves on as with any rewrite
    ep.write_bytes(bytes(data))
    os.utime(ep, (time.time() + 60, time.time() + 60))
    rclone_server.changed()
    second = remote_fingerprint(REMOTE, "*.npz")
    assert second != first
    (root / "ep_009.npz").write_bytes(b"new")
    rclone_server.changed()
    assert remote_fingerprint(REMOTE, "*.npz") not in (first, second)


def test_unreachable_remote_falls_back_to_stored_fingerprint(rclone_server, tmp_path, capfd):
    served_episodes(rclone_server)
    dest = tmp_path / "cp"
    manifest = fetch_dataset(REMOTE, "*.npz", dest)
    live = fingerprint_or_stored(REMOTE, "*.npz", dest / mf.MANIFEST_NAME)
    assert live == manifest["remote_fingerprint"]
    assert "could not be checked" not in capfd.readouterr().err
    rclone_server.stop()
    t0 = time.monotonic()
    assert remote_fingerprint(REMOTE, "*.npz", timeout_s=2) is None
    assert time.monotonic() - t0 < 5
    assert fingerprint_or_stored(REMOTE, "*.npz", dest / mf.MANIFEST_NAME, 2) == live
    err = capfd.readouterr().err
    assert "testremote:datasets/cp: remote could not be checked" in err
    assert fingerprint_or_stored(REMOTE, "*.npz", tmp_path / "none.json", 2) == "unreachable"
    with pytest.raises(RemoteError, match="rclone lsjson failed for testremote:datasets/cp"):
        fetch_dataset(REMOTE, "*.npz", dest, client=fast_client())
    assert not (dest / mf.MANIFEST_NAME).exists()  # a failed refetch leaves no manifest
