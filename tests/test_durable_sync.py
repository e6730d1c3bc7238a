"""Two directories sharing one remote (rlpipe.remote.durable with a real rclone ``:local:`` remote):
a copy that another directory has since replaced on the remote is fetched again and never
uploaded over the newer version, and a file that changes during its upload is uploaded again."""

from __future__ import annotations

import json
import os
from pathlib import Path

from rlpipe.remote import durable
from rlpipe.remote.metadata import record_rel
from rlpipe.remote.probe import ProbeJob, ProbeResult

KEY = "runs/cp/CartPole-v1/seed1/ckpt/step_0000000512.pt"
BENCH = "runs/cp/CartPole-v1/seed1/benchmark/train_step_0000000512.tsv"


def mirror(workdir: Path, remote: Path) -> durable.Mirror:
    m = durable.Mirror(durable.Settings(remote=f":local:{remote}"), [], workdir)
    m.companions = lambda key: [BENCH] if key == KEY else []
    return m


def make(workdir: Path, version: str, endtime: float) -> None:
    """What a finished job leaves: its output, its benchmark file and its record."""
    for rel, text in [(KEY, version), (BENCH, f"s\t{version}\n")]:
        (workdir / rel).parent.mkdir(parents=True, exist_ok=True)
        (workdir / rel).write_text(text)
    os.utime(workdir / KEY, (endtime, endtime))
    record = workdir / record_rel(KEY)
    record.parent.mkdir(parents=True, exist_ok=True)
    record.write_text(json.dumps({"endtime": endtime, "version": version}))


def current_probe() -> ProbeResult:
    return ProbeResult([ProbeJob((KEY,), (BENCH,), True)], frozenset())


def remote_version(remote: Path) -> tuple[str, str]:
    record = json.loads((remote / record_rel(KEY)).read_text())
    return (remote / KEY).read_text(), record["version"]


def test_a_replaced_copy_is_fetched_again_and_never_uploaded_over_the_newer(tmp_path):
    remote, pod, laptop = tmp_path / "remote", tmp_path / "pod", tmp_path / "laptop"
    make(pod, "v1", 1_700_000_000)
    first = mirror(pod, remote)
    assert first.flush() == 1
    seen = mirror(laptop, remote)
    seen.restore(current_probe)
    assert (laptop / KEY).read_text() == "v1" and not seen.pending()

    make(pod, "v2-remade-elsewhere", 1_700_000_100)  # another size: the old code uploaded v1
    assert mirror(pod, remote).flush() == 1
    assert remote_version(remote) == ("v2-remade-elsewhere",) * 2

    again = mirror(laptop, remote)
    assert again.flush() == 0, "an unchanged copy of an older version is not uploaded"
    assert remote_version(remote) == ("v2-remade-elsewhere",) * 2
    again = mirror(laptop, remote)
    restored = again.restore(current_probe)
    assert record_rel(KEY) in restored and KEY in restored and BENCH in restored
    assert (laptop / KEY).read_text() == "v2-remade-elsewhere"
    assert json.loads((laptop / record_rel(KEY)).read_text())["version"] == "v2-remade-elsewhere"
    assert (laptop / BENCH).read_text() == "s\tv2-remade-elsewhere\n"
    assert not again.pending() and again.current(KEY)


def test_a_record_that_changes_during_its_upload_is_uploaded_again(tmp_path):
    remote, pod = tmp_path / "remote", tmp_path / "pod"
    make(pod, "v1", 1_700_000_000)
    m = mirror(pod, remote)
    real = m.remote.files_op

    def rewritten_meanwhile(op, src, dst, files, anchored=False):
        real(op, src, dst, files, anchored)
        if op == "copy" and record_rel(KEY) in files:  # e.g. Snakemake rewrites it
            make(pod, "v3", 1_700_000_050)

    m.remote.files_op = rewritten_meanwhile
    m.flush()
    assert remote_version(remote)[1] == "v1"
    m.remote.files_op = real
    assert record_rel(KEY) in mirror(pod, remote).pending()
    mirror(pod, remote).flush()
    assert remote_version(remote) == ("v3",) * 2


def test_a_probe_copy_of_a_record_is_fetched_again_when_the_remote_changes(tmp_path):
    """A record fetched only for an earlier probe (its job was not current then) is not kept:
    the next restore brings the remote's version."""
    remote, pod, laptop = tmp_path / "remote", tmp_path / "pod", tmp_path / "laptop"
    make(pod, "v1", 1_700_000_000)
    mirror(pod, remote).flush()
    mirror(laptop, remote).restore(lambda: ProbeResult([ProbeJob((KEY,), (), False)], frozenset()))
    assert not (laptop / KEY).exists() and (laptop / record_rel(KEY)).is_file()

    make(pod, "v2", 1_700_000_100)  # same size as v1
    mirror(pod, remote).flush()
    mirror(laptop, remote).restore(current_probe)
    assert json.loads((laptop / record_rel(KEY)).read_text())["version"] == "v2"
    assert (laptop / KEY).read_text() == "v2"
