"""publish_dataset + fetch_dataset round trip on a real rclone WebDAV server; no secret leaks."""

import logging

import numpy as np
import pytest

from rlpipe.replays.fetch import fetch_dataset, fingerprint_or_stored, remote_fingerprint
from rlpipe.replays.format import read_episode, write_episode
from rlpipe.replays.publish import publish_dataset
from rlpipe.storage import manifest as mf
from rlpipe.storage.rclone import RcloneRemote, RemoteError

REMOTE = "testremote:datasets/pong"


def local_dataset(root, n=4):
    for i in range(n):
        t = 3 + i
        obs = np.full((t + 1, 2, 8, 8), i, np.uint8)
        trunc = np.zeros(t, bool)
        trunc[-1] = True
        write_episode(
            root / f"ep_{i:03d}.npz",
            obs,
            np.zeros(t),
            np.arange(t),
            np.zeros(t, bool),
            trunc,
            env_id="Pong-v5",
            n_actions=6,
            source_checkpoint="runs/x/ckpt/step_0000000100.pt",
            seed=i,
        )
    (root / ".ep_009.npz.tmp-42").write_bytes(b"an unfinished write")  # never published
    return root


def fast_client(remote=REMOTE):
    return RcloneRemote(remote, retries=2, backoff_s=0.05, timeout_s=5, low_level_retries=1)


def test_publish_then_fetch_round_trip(rclone_server, tmp_path):
    src = local_dataset(tmp_path / "pong")
    published = publish_dataset(src, REMOTE, client=fast_client())
    served = rclone_server.root / "datasets" / "pong"
    assert sorted(p.name for p in served.iterdir()) == [
        "MANIFEST.json",
        "ep_000.npz",
        "ep_001.npz",
        "ep_002.npz",
        "ep_003.npz",
    ]
    assert mf.load(served / mf.MANIFEST_NAME) == published
    assert published["source"] == REMOTE and published["dataset"] == "pong"
    assert published["remote_fingerprint"] == remote_fingerprint(REMOTE, None)

    dest = tmp_path / "data" / "replays" / "pong"
    fetched = fetch_dataset(REMOTE, "*.npz", dest, require_remote_manifest=True)
    assert fetched["files"] == published["files"]
    assert fetched["remote_fingerprint"] == published["remote_fingerprint"]
    for f in fetched["files"]:
        assert (dest / f["path"]).read_bytes() == (src / f["path"]).read_bytes()
        assert read_episode(dest / f["path"]).meta["source_checkpoint"].endswith(".pt")

    # a fetched dataset (with its local manifest) can be published again elsewhere
    again = publish_dataset(dest, "testremote:mirror/pong", client=fast_client())
    assert again["files"] == published["files"]


def test_manifest_is_removed_first_and_uploaded_last(rclone_server, tmp_path):
    src = local_dataset(tmp_path / "pong", n=2)
    publish_dataset(src, REMOTE, client=fast_client())
    first_log = len(rclone_server.log_requests())
    (src / "ep_000.npz").unlink()
    local_dataset(tmp_path / "extra", n=3)
    (tmp_path / "extra" / "ep_002.npz").rename(src / "ep_002.npz")
    manifest = publish_dataset(src, REMOTE, client=fast_client())
    assert [f["path"] for f in manifest["files"]] == ["ep_001.npz", "ep_002.npz"]
    served = rclone_server.root / "datasets" / "pong"
    assert sorted(p.name for p in served.iterdir()) == [  # sync removed ep_000
        "MANIFEST.json",
        "ep_001.npz",
        "ep_002.npz",
    ]
    writes = [
        (method, path.rsplit("/", 1)[-1])
        for method, path in rclone_server.log_requests()[first_log:]
        if method in ("PUT", "DELETE")
    ]
    assert writes[0] == ("DELETE", "MANIFEST.json")  # readers see "absent" from here on
    assert writes[-1] == ("PUT", "MANIFEST.json")
    assert ("PUT", "ep_002.npz") in writes


def test_half_published_dataset_is_treated_as_absent(rclone_server, tmp_path):
    publish_dataset(local_dataset(tmp_path / "pong"), REMOTE, client=fast_client())
    (rclone_server.root / "datasets" / "pong" / mf.MANIFEST_NAME).unlink()  # upload under way
    rclone_server.changed()
    with pytest.raises(Exception, match="no MANIFEST.json"):
        fetch_dataset(REMOTE, None, tmp_path / "dest", require_remote_manifest=True)
    assert not (tmp_path / "dest" / mf.MANIFEST_NAME).exists()


def test_corrupted_local_dataset_is_not_published(rclone_server, tmp_path):
    dest = tmp_path / "pong"
    publish_dataset(local_dataset(tmp_path / "src"), REMOTE, client=fast_client())
    fetch_dataset(REMOTE, None, dest)
    (dest / "ep_001.npz").write_bytes(b"truncated")
    with pytest.raises(mf.ManifestError, match="ep_001.npz: size 9"):
        publish_dataset(dest, "testremote:mirror/pong", client=fast_client())
    assert not (rclone_server.root / "mirror").exists()


def test_no_secret_in_any_written_file_log_or_output(rclone_server, tmp_path, capfd):
    log_file = tmp_path / "logs" / "rlpipe-debug.log"
    handler = logging.FileHandler(log_file)
    loggers = [logging.getLogger(), logging.getLogger("rclone_python")]
    for lg in loggers:
        lg.addHandler(handler)
    old_levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.DEBUG)
    errors = []
    try:
        src = local_dataset(tmp_path / "pong")
        publish_dataset(src, REMOTE, client=fast_client())
        dest = tmp_path / "data" / "replays" / "pong"
        fetch_dataset(REMOTE, "*.npz", dest, require_remote_manifest=True)
        rclone_server.stop()  # the failure paths write messages too
        fingerprint_or_stored(REMOTE, "*.npz", dest / mf.MANIFEST_NAME, timeout_s=2)
        for action in (
            lambda: fetch_dataset(REMOTE, "*.npz", tmp_path / "again", client=fast_client()),
            lambda: publish_dataset(src, REMOTE, client=fast_client()),
        ):
            with pytest.raises(RemoteError) as exc:
                action()
            errors.append(str(exc.value))
    finally:
        for lg, level in zip(loggers, old_levels, strict=True):
            lg.removeHandler(handler)
            lg.setLevel(level)
        handler.close()
    out, err = capfd.readouterr()
    assert "remote could not be checked" in err
    assert "connection refused" in log_file.read_text()  # the log did record the failures
    secrets = [rclone_server.password, rclone_server.obscured]
    scanned = 0
    for path in tmp_path.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            scanned += 1
            for secret in secrets:
                assert secret.encode() not in data, f"secret found in {path}"
    assert scanned >= 10
    for text in [out, err, *errors]:
        for secret in [*secrets, rclone_server.user]:
            assert secret not in text
