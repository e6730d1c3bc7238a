"""rlpipe.remote.durable pieces that need no remote: record paths, settings, retention, disk
guard."""

from __future__ import annotations

import time
import types

import pytest
from snakemake.persistence.file import FilePersistence

from rlpipe.remote import durable, metadata
from rlpipe.smk.job import check_free_disk


@pytest.mark.parametrize("key", ["runs/cp/CartPole-v1/seed1/ckpt/step_0000000512.pt", "x" * 400])
def test_record_path_matches_snakemake(key):
    fake = types.SimpleNamespace(_fetch_max_len=lambda subject: 255)
    expected = FilePersistence._record_path(fake, metadata.METADATA, key)
    assert metadata.record_rel(key) == expected
    assert metadata.key_of(expected) == key


def test_remote_env_var_wins(monkeypatch):
    monkeypatch.delenv(durable.REMOTE_ENV, raising=False)
    assert durable.Settings.from_config({}) is None
    assert durable.Settings.from_config({"remote": "a:b"}).remote == "a:b"
    monkeypatch.setenv(durable.REMOTE_ENV, "c:d")
    assert durable.Settings.from_config({}) is None  # the env var alone does not switch it on
    assert durable.Settings.from_config({"remote": "a:b", "keep_last": 2}).remote == "c:d"


def _retention_mirror(tmp_path, keep_last=2):
    steps = [100, 200, 300, 400, 500]
    run = durable.RunFiles(
        steps=steps,
        ckpts=[f"r/ckpt/step_{s}.pt" for s in steps],
        evals=[f"r/eval/step_{s}.json" for s in steps],
        pinned={"r/ckpt/step_200.pt"},
    )
    settings = durable.Settings(remote=f":local:{tmp_path}/remote", keep_last=keep_last)
    return durable.Mirror(settings, [run], tmp_path), run


def _durable(mirror, keys, current=True):
    """Outputs and records on the remote; their records here as uploaded (current) or only
    restored for the probe (not current: the ledger does not vouch for them)."""
    for key in keys:
        record = mirror.workdir / metadata.record_rel(key)
        record.parent.mkdir(parents=True, exist_ok=True)
        size = record.write_text('{"endtime": 1}')
        mirror.state[key] = mirror.state[metadata.record_rel(key)] = {"Size": size}
        if current:
            mirror.ledger.mark([metadata.record_rel(key)], mirror.state)


def test_retention_keeps_last_final_and_pinned(tmp_path):
    mirror, run = _retention_mirror(tmp_path)
    mirror.state = {}
    _durable(mirror, run.ckpts[:4] + run.evals[:3])  # eval of step 400 not yet durable
    # 100 goes; 200 pinned; 300 and 400 are the last two; 500 does not exist yet.
    assert mirror.doomed() == ["r/ckpt/step_100.pt"]
    mirror.settings.keep_last = None
    assert mirror.doomed() == []


def test_retention_never_counts_stale_outputs(tmp_path):
    """An older config's outputs on the remote (records not vouched for by this directory) or
    outputs this run is remaking never make a fresh checkpoint look superseded."""
    mirror, run = _retention_mirror(tmp_path, keep_last=1)
    mirror.state = {}
    _durable(mirror, run.ckpts[:1] + run.evals[:1])  # this config: step 100 done
    _durable(mirror, run.ckpts[1:] + run.evals[1:], current=False)  # old config's 200..500
    assert mirror.doomed() == []
    # Once this config has made step 200 (and uploaded it), 100 is superseded...
    records = [metadata.record_rel(k) for k in run.ckpts[1:2] + run.evals[1:2]]
    mirror.ledger.mark(records, mirror.state)
    assert mirror.doomed() == ["r/ckpt/step_100.pt"]
    # ...unless this run is about to remake 200 (found out of date when it started).
    mirror.stale = {run.ckpts[1]}
    mirror.started = time.time() + 60
    assert mirror.doomed() == []


def test_unconfigured_remote_is_one_clear_line(monkeypatch, tmp_path):
    monkeypatch.setenv("RCLONE_CONFIG", str(tmp_path / "none.conf"))
    with pytest.raises(durable.RemoteError) as err:
        durable.Mirror(durable.Settings(remote="rlpipe:rlpipe-state"), [], tmp_path)
    message = str(err.value)
    assert "no remote named 'rlpipe'" in message and "RCLONE_CONFIG_RLPIPE_TYPE" in message
    assert "\n" not in message
    monkeypatch.setenv("RCLONE_CONFIG_RLPIPE_TYPE", "local")
    durable.Mirror(durable.Settings(remote="rlpipe:rlpipe-state"), [], tmp_path)
    monkeypatch.delenv("RCLONE_CONFIG_RLPIPE_TYPE")
    config = tmp_path / "rclone.conf"  # an rclone config file, and a name in upper case
    config.write_text("[MYREMOTE]\ntype = local\n")
    monkeypatch.setenv("RCLONE_CONFIG", str(config))
    durable.Mirror(durable.Settings(remote="MYREMOTE:state"), [], tmp_path)


def test_ledger_notices_changed_files(tmp_path):
    (tmp_path / "a.txt").write_text("one")
    ledger = durable.Ledger(tmp_path)
    ledger.mark(["a.txt"], {"a.txt": {"Size": 3, "ModTime": "t1"}})
    assert durable.Ledger(tmp_path).same("a.txt")  # persisted
    assert not ledger.replaced("a.txt", {"Size": 3, "ModTime": "t1"})
    assert ledger.replaced("a.txt", {"Size": 3, "ModTime": "t2"})  # another upload since
    assert ledger.replaced("a.txt", {"Size": 4, "ModTime": "t1"})
    ledger.mark(["missing.txt", "not-on-remote.txt"], {"missing.txt": {"Size": 1}})
    assert "missing.txt" not in ledger.entries and "not-on-remote.txt" not in ledger.entries
    time.sleep(0.01)
    (tmp_path / "a.txt").write_text("two")
    assert not ledger.same("a.txt") and not ledger.same("missing.txt")


def test_disk_guard(tmp_path):
    prev = tmp_path / "prev.pt"
    prev.write_bytes(b"x" * 1000)
    check_free_disk(str(tmp_path / "out/a.pt"), str(prev), 0)
    check_free_disk(str(tmp_path / "out/a.pt"), str(prev), 1)
    with pytest.raises(RuntimeError, match="disk guard: only .* MiB free"):
        check_free_disk(str(tmp_path / "out/a.pt"), str(prev), 10**12)


def test_uploader_thread_survives_failed_rounds(capfd, tmp_path):
    """A remote error or a file vanishing under an upload (a job rerunning) costs one round."""
    mirror = durable.Mirror(
        durable.Settings(remote=":local:/nonexistent", upload_interval_s=0.01), [], tmp_path
    )
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


def test_retention_is_a_pure_function_of_runs_and_currency():
    run = durable.RunFiles(
        steps=[1, 2, 3, 4],
        ckpts=[f"c{i}" for i in range(1, 5)],
        evals=[f"e{i}" for i in range(1, 5)],
        pinned={"c1"},
    )
    everything = {*run.ckpts, *run.evals}
    assert durable.superseded([run], everything.__contains__, 2) == ["c2"]  # c1 pinned, c3-4 kept
    run.pinned = set()
    assert durable.superseded([run], everything.__contains__, 2) == ["c1", "c2"]
    assert durable.superseded([run], (everything - {"e2"}).__contains__, 2) == ["c1"]
    assert durable.superseded([run], (everything - {"c3"}).__contains__, 1) == ["c1"]
    assert durable.superseded([run], everything.__contains__, None) == []
