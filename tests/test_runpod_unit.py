"""rlpipe.durable pieces that need no remote: record paths, settings, retention, disk guard."""

from __future__ import annotations

import time
import types

import pytest
from snakemake.persistence.file import FilePersistence

from rlpipe import durable


@pytest.mark.parametrize("key", ["runs/cp/CartPole-v1/seed1/ckpt/step_0000000512.pt", "x" * 400])
def test_record_path_matches_snakemake(key):
    fake = types.SimpleNamespace(_fetch_max_len=lambda subject: 255)
    expected = FilePersistence._record_path(fake, durable.METADATA, key)
    assert durable.record_rel(key) == expected
    assert durable.key_of(expected) == key


def test_remote_env_var_wins(monkeypatch):
    monkeypatch.delenv(durable.REMOTE_ENV, raising=False)
    assert durable.Settings.from_config({}) is None
    assert durable.Settings.from_config({"remote": "a:b"}).remote == "a:b"
    monkeypatch.setenv(durable.REMOTE_ENV, "c:d")
    assert durable.Settings.from_config({}) is None  # the env var alone does not switch it on
    assert durable.Settings.from_config({"remote": "a:b", "keep_last": 2}).remote == "c:d"


def test_retention_keeps_last_final_and_pinned():
    steps = [100, 200, 300, 400, 500]
    run = durable.RunFiles(
        steps=steps,
        ckpts=[f"r/ckpt/step_{s}.pt" for s in steps],
        evals=[f"r/eval/step_{s}.json" for s in steps],
        pinned={"r/ckpt/step_200.pt"},
    )
    mirror = durable.Mirror(durable.Settings(remote="X:y", keep_last=2), [run])
    done = run.ckpts[:4] + run.evals[:3]  # 4 checkpoints durable, eval of step 400 not yet
    mirror.state = {p: {} for p in done} | {durable.record_rel(p): {} for p in done}
    # 100 goes; 200 pinned; 300 and 400 are the last two; 500 does not exist yet.
    assert mirror.doomed() == ["r/ckpt/step_100.pt"]
    mirror.settings.keep_last = None
    assert mirror.doomed() == []


def test_disk_guard(tmp_path):
    prev = tmp_path / "prev.pt"
    prev.write_bytes(b"x" * 1000)
    durable.check_free_disk(str(tmp_path / "out/a.pt"), str(prev), 0)
    durable.check_free_disk(str(tmp_path / "out/a.pt"), str(prev), 1)
    with pytest.raises(RuntimeError, match="disk guard: only .* MiB free"):
        durable.check_free_disk(str(tmp_path / "out/a.pt"), str(prev), 10**12)


def test_uploader_thread_survives_failed_rounds(capfd):
    """A remote error or a file vanishing under an upload (a job rerunning) costs one round."""
    mirror = durable.Mirror(durable.Settings(remote="X:y", upload_interval_s=0.01), [])
    errors = [FileNotFoundError("runs/a.pt vanished"), durable.RemoteError("copy", "X:y", "down")]
    calls = []

    def flush():
        calls.append(1)
        if errors:
            raise errors.pop(0)
        return 0

    mirror.flush = flush
    uploader = durable.Uploader(mirror)
    uploader.start()
    deadline = time.monotonic() + 10
    while len(calls) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    uploader.stop.set()
    uploader.join(timeout=5)
    assert len(calls) >= 3  # the thread went on after both failures
    err = capfd.readouterr().err
    assert "upload deferred: runs/a.pt vanished" in err and "down" in err
