"""The rclone client against a real rclone WebDAV server on loopback."""

import os
import time

import pytest

from rlpipe.storage.rclone import RcloneRemote, RemoteError, RemoteNotFound, check_spec, scrub


def client(path="data", **kw):
    kw.setdefault("retries", 2)
    kw.setdefault("backoff_s", 0.01)
    kw.setdefault("timeout_s", 5)
    return RcloneRemote(f"testremote:{path}", **kw)


def make_tree(root, dirs=3, files=20):
    for d in range(dirs):
        (root / f"d{d}").mkdir(parents=True)
        for i in range(files):
            (root / f"d{d}" / f"ep_{i:03d}.npz").write_bytes(os.urandom(64 + i))


def assert_no_secret(text, server):
    for secret in (server.password, server.obscured, server.user):
        assert secret not in text


def test_listing_is_one_call_and_batched_per_directory(rclone_server):
    make_tree(rclone_server.root / "data", dirs=3, files=20)
    c = client()
    files = c.list()
    assert len(files) == 60 and c.calls == 1
    assert files[0]["Path"] == "d0/ep_000.npz" and files[0]["Size"] == 64
    propfinds = len(rclone_server.requests("PROPFIND"))
    assert propfinds <= 3 + 2, f"{propfinds} PROPFIND requests for 3 directories of 20 files"
    assert c.list() is files and c.calls == 1  # cached
    assert len(rclone_server.requests("PROPFIND")) == propfinds
    assert len(c.list(["+ /d1/**", "- **"])) == 20 and c.calls == 2
    c.list(refresh=True)
    assert c.calls == 3


def test_copy_check_delete_round_trip(rclone_server, tmp_path):
    local = tmp_path / "local"
    make_tree(local, dirs=2, files=3)
    c = client("up")
    c.copy_up(local)
    assert c.check(local) == []
    assert sorted(e["Path"] for e in c.list()) == sorted(
        p.relative_to(local).as_posix() for p in local.rglob("*.npz")
    )
    (local / "d0" / "ep_000.npz").write_bytes(b"changed size")
    assert c.check(local) == [("*", "d0/ep_000.npz")]
    c.delete("d1/ep_002.npz")
    assert "d1/ep_002.npz" not in {e["Path"] for e in c.list()}
    assert ("+", "d1/ep_002.npz") in c.check(local)
    down = tmp_path / "down"
    c.copy_down(down, ["+ /d1/**", "- **"])
    assert sorted(p.name for p in (down / "d1").iterdir()) == ["ep_000.npz", "ep_001.npz"]
    assert not (down / "d0").exists()
    c.copy_file_down("d1/ep_001.npz", tmp_path / "one.npz")
    assert (tmp_path / "one.npz").read_bytes() == (local / "d1" / "ep_001.npz").read_bytes()


def test_outage_is_retried_with_backoff_then_reported_without_secrets(rclone_server):
    rclone_server.stop()
    sleeps = []
    c = client(retries=3, backoff_s=0.5, sleep=sleeps.append)
    with pytest.raises(RemoteError) as exc:
        c.list()
    assert c.calls == 3 and sleeps == [0.5, 1.0]
    assert exc.value.transient
    msg = str(exc.value)
    assert msg.startswith("rclone lsjson failed for testremote:data:")
    assert "connection refused" in msg
    assert_no_secret(msg, rclone_server)


def test_url_credentials_are_scrubbed(rclone_server, monkeypatch):
    rclone_server.stop()
    url = f"http://{rclone_server.user}:{rclone_server.password}@127.0.0.1:{rclone_server.port}"
    monkeypatch.setenv("RCLONE_CONFIG_TESTREMOTE_URL", url)
    with pytest.raises(RemoteError) as exc:
        client(retries=1).cat("x.txt")
    assert "127.0.0.1" in str(exc.value)
    assert_no_secret(str(exc.value), rclone_server)


def test_missing_path_and_bad_password_are_not_retried(rclone_server, monkeypatch):
    c = client("does/not/exist", retries=3)
    with pytest.raises(RemoteNotFound, match="testremote:does/not/exist"):
        c.list()
    assert c.calls == 1
    monkeypatch.setenv("RCLONE_CONFIG_TESTREMOTE_PASS", rclone_server.obscured[:-4] + "AAAA")
    c = client(retries=3)
    with pytest.raises(RemoteError, match="401") as exc:
        c.list()
    assert c.calls == 1 and not exc.value.transient
    assert_no_secret(str(exc.value), rclone_server)


@pytest.mark.parametrize("port", [24036, 14010, 4050, 4090])  # hold 403, 401, 405, 409
def test_a_port_number_is_not_an_http_status(port):
    """A refused connection is an outage, retried, whatever digits its port has (a pod's
    final upload once failed at once because its test server's port held "403"); a real
    403 is a refusal."""
    refused = (
        f'2026/11/24 03:17:56 CRITICAL: Failed to create file system for "r:state": read '
        f'metadata failed: Propfind "http://127.0.0.1:{port}/state": dial tcp '
        f"127.0.0.1:{port}: connect: connection refused"
    )
    assert RcloneRemote._error("copy", "r:state", refused).transient
    forbidden = "2026/11/24 03:17:56 ERROR : x.pt: Failed to copy: 403 Forbidden"
    assert not RcloneRemote._error("copy", "r:state", forbidden).transient


def test_reachability_check_is_time_bounded(rclone_server):
    c = client()
    assert c.reachable(timeout_s=5)
    rclone_server.pause()  # accepts TCP connections, never answers
    try:
        t0 = time.monotonic()
        assert not c.reachable(timeout_s=1.5)
        assert time.monotonic() - t0 < 4
    finally:
        rclone_server.resume()
    rclone_server.stop()
    assert not c.reachable(timeout_s=2)


def test_scrub_and_spec_checks(monkeypatch):
    monkeypatch.setenv("RCLONE_CONFIG_X_PASS", "obscured-VALUE-123")
    monkeypatch.setenv("RCLONE_CONFIG_X_SECRET_ACCESS_KEY", "plainkey456")
    monkeypatch.setenv("RCLONE_CONFIG_X_TYPE", "s3")
    text = "got obscured-VALUE-123 and plainkey456 from https://bob:hunter2@h.example/x via s3"
    assert scrub(text) == "got *** and *** from https://***@h.example/x via s3"
    with pytest.raises(ValueError, match="connection-string parameters are not allowed"):
        check_spec(":webdav,url='http://u:p@h':path")
    with pytest.raises(ValueError, match="connection-string"):
        check_spec("myremote,user=bob:path")
    with pytest.raises(ValueError, match="not allowed"):
        check_spec('remote:a"; rm -rf x')
    assert check_spec("myremote:bucket/path") == "myremote:bucket/path"


def test_a_replaced_file_is_never_seen_in_part(rclone_server, tmp_path):
    """Pods read the shard assignment and owner records while another pod replaces them. The
    server writes an upload in place, so ``replace_file`` uploads beside the file and moves:
    a reader sees the old file or the new one, whole (or, on this server, none for a moment).
    Every version has the same size, as owner records mostly do: each is still moved."""
    import json
    import threading

    served = rclone_server.root / "state" / "shards.json"
    served.parent.mkdir(parents=True)
    served.write_text(json.dumps({"version": 0}))
    c = client("state")
    seen, done = [], threading.Event()

    def read():
        while not done.is_set():
            try:
                text = served.read_text()
            except FileNotFoundError:  # the server's move deletes the old file first
                continue
            try:
                seen.append(json.loads(text)["version"])
            except ValueError:
                seen.append(f"torn ({len(text)} bytes)")

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for version in range(1, 4):
            local = tmp_path / f"v{version}.json"
            local.write_text(json.dumps({"version": version, "pad": "x" * 8_000_000}))
            c.replace_file(local, "shards.json")
    finally:
        done.set()
        reader.join()
    assert json.loads(served.read_text())["version"] == 3
    assert not [v for v in seen if isinstance(v, str)], sorted(set(map(str, seen)))
    assert sorted(p.name for p in served.parent.iterdir()) == ["shards.json"]


def test_a_replaced_file_read_through_rclone_is_always_whole(rclone_server, tmp_path):
    """Read back through rclone itself (as pods read the shard assignment) while another client
    replaces the file: every read gives a whole version, never nothing."""
    import json
    import threading

    from rlpipe.remote.shards import read_replaced

    served = rclone_server.root / "state" / "shards.json"
    served.parent.mkdir(parents=True)
    served.write_text(json.dumps({"version": 0}))
    writer, reader_client = client("state"), client("state")
    seen, done = [], threading.Event()

    def read():
        while not done.is_set():
            try:
                seen.append(json.loads(read_replaced(reader_client, "shards.json"))["version"])
            except (ValueError, RemoteError) as exc:
                seen.append(f"{type(exc).__name__}: {exc}")

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for version in range(1, 9):
            local = tmp_path / f"v{version}.json"
            local.write_text(json.dumps({"version": version, "pad": "x" * 100_000}))
            writer.replace_file(local, "shards.json")
    finally:
        done.set()
        reader.join()
    assert not [v for v in seen if isinstance(v, str)], [v for v in seen if isinstance(v, str)]
    assert len(seen) >= 2 and seen == sorted(seen) and seen[-1] <= 8
