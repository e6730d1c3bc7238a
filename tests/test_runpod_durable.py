"""The runpod profile: durable outputs + provenance on a real rclone WebDAV remote (loopback)."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time

import pytest
import yaml

from conftest import TINY_PPO
from pipeline import REPO, Workdir, sha256, subprocess_env

pytestmark = pytest.mark.slow

PROFILE = str(REPO / "profiles" / "runpod")
RUN = "runs/cp/CartPole-v1/seed{seed}"


def cp_config(seeds=(1,), total=1536, every=512, **hparams) -> dict:
    return {
        "experiments": {
            "cp": {
                "algo": "ppo",
                "envs": ["CartPole-v1"],
                "seeds": list(seeds),
                "total_steps": total,
                "checkpoint_every": every,
                "hparams": {**TINY_PPO, **hparams},
            }
        },
        "evaluation": {"episodes": 2, "max_episode_steps": 200},
        "summary": {"bootstrap_samples": 200},
    }


@pytest.fixture
def remote(rclone_server, monkeypatch):
    """The profile's remote, redirected to the loopback server through $RLPIPE_REMOTE."""
    monkeypatch.setenv("RLPIPE_REMOTE", "TESTREMOTE:state")
    return rclone_server


def durable_file(tmp_path, **settings) -> str:
    """A --configfile replacing the profile's pod.yaml (fast uploads for tests)."""
    path = tmp_path / "durable.yaml"
    path.write_text(yaml.safe_dump({"durable": {"remote": "unused:x", **settings}}))
    return str(path)


def served(server, pattern="**/*") -> dict[str, str]:
    root = server.root / "state"
    return {
        str(p.relative_to(root)): sha256(p)
        for p in root.glob(pattern)
        if p.is_file() and not str(p.relative_to(root)).startswith(".snakemake")
    }


def remote_ckpts(server) -> dict[str, str]:
    return {k: v for k, v in served(server).items() if k.endswith(".pt")}


def jobs_of(stdout_err: str, rule: str) -> int:
    return sum(
        ln.strip() in (f"rule {rule}:", f"localrule {rule}:") for ln in stdout_err.splitlines()
    )


def evals(total: int, every: int, seeds=(1,)) -> list[str]:
    """Targets: every evaluation (summarize is left out to keep the tests small)."""
    steps = range(every, total + 1, every)
    return [f"{RUN.format(seed=s)}/eval/step_{n:010d}.json" for s in seeds for n in steps]


def rel_gets(server, since: int) -> list[str]:
    return [g.replace("//", "/").removeprefix("/state/") for g in server.requests("GET")[since:]]


def test_plan_from_fresh_directory_and_retention(tmp_path, remote):
    """Tests 5, 6 and 2: retention under the profile; a fresh directory plans from the remote."""
    config = cp_config(total=2048, every=512)
    first = Workdir(tmp_path / "pod1", config)
    targets = evals(2048, 512)
    first.run(
        *targets,
        "--profile",
        PROFILE,
        "--configfile",
        durable_file(tmp_path, keep_last=2, keep_every=1024),
    )
    run = RUN.format(seed=1)
    kept = {f"{run}/ckpt/step_{s:010d}.pt" for s in (1024, 1536, 2048)}  # pinned 1024
    local = {str(p.relative_to(first.path)) for p in first.path.rglob("*.pt")}
    assert local == kept and set(remote_ckpts(remote)) == kept
    assert len(served(remote, "runs/**/eval/*.json")) == 4
    assert "Nothing to be done" in first.run(*targets, "-n", "--profile", PROFILE).stdout

    fresh = Workdir(tmp_path / "pod2", config)
    propfind_before = len(remote.requests("PROPFIND"))
    get_before = len(remote.requests("GET"))
    assert (
        fresh.planned_jobs(*targets, "--profile", PROFILE) == []
    )  # deleted checkpoints stay deleted
    propfinds = [p.strip("/") for p in remote.requests("PROPFIND")[propfind_before:]]
    assert [g for g in rel_gets(remote, get_before) if g.endswith(".pt")] == [
        f"{run}/ckpt/step_0000002048.pt"
    ]
    entries = list((remote.root / "state").rglob("*"))
    n_dirs = sum(p.is_dir() for p in entries) + 1
    print(
        f"planning: {len(propfinds)} PROPFIND for {n_dirs} dirs, {len(entries) - n_dirs + 1} files"
    )
    # Listing requests are per directory: none of them asks about a single file.
    assert not [p for p in propfinds if (remote.root / p.replace("//", "/")).is_file()]

    # A hyper-parameter change is still detected (provenance came with the outputs).
    fresh.write_config(cp_config(total=2048, every=512, ent_coef=0.05))
    out = fresh.run(*targets, "-n", "--profile", PROFILE).stdout
    assert out.count("rule train_segment:") == 4
    # The plan block: throughput measured from the telemetry restored from the remote, price
    # and slots from the profile (pod.yaml, resources gpu).
    plan = out[out.index("rlpipe plan:") :].splitlines()
    assert "1 job slot(s) (resources gpu)" in plan[0]
    assert plan[2].split()[:5] == ["cp", "ppo", "4", "1", "2,048"] and "measured" in plan[2]
    assert "$2.50/GPU-hour" in plan[-1]


def test_disk_guard_refuses_segment(tmp_path):
    """Test 4: below the free-disk margin the job fails with a clear error (and is retried)."""
    config = {**cp_config(total=512, every=512), "durable": {"min_free_disk_mb": 10**9}}
    work = Workdir(tmp_path / "work", config)
    proc = work.run(f"{RUN.format(seed=1)}/ckpt/step_0000000512.pt", check=False)
    assert proc.returncode != 0
    logs = list((work.path / "logs/train_segment").rglob("*.log"))
    assert "disk guard: only" in logs[0].read_text()
    assert "min_free_disk_mb" in proc.stdout + proc.stderr or logs
    assert not list(work.path.rglob("*.pt"))


def wait_for(condition, proc, what: str, timeout_s: float = 120) -> None:
    deadline = time.time() + timeout_s
    while not condition():
        assert proc.poll() is None, f"workflow ended before {what}"
        assert time.time() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def start(work: Workdir, *args: str, log_name: str = "snakemake.out") -> subprocess.Popen:
    """The workflow in its own session (so the whole process tree can be killed)."""
    out = open(work.path.parent / log_name, "w")
    return subprocess.Popen(
        work.command(*args),
        stdout=out,
        stderr=subprocess.STDOUT,
        env=subprocess_env(),
        start_new_session=True,
    )


def durable_keys(server) -> set[str]:
    """Outputs on the remote whose provenance record is there too (what restore trusts)."""
    from rlpipe.durable import METADATA, key_of

    root = server.root / "state"
    records = {
        key_of(str(p.relative_to(root))) for p in (root / METADATA).rglob("*") if p.is_file()
    }
    return {k for k in records if (root / k).is_file()}


def test_pod_death_resumes_from_remote(tmp_path, remote):
    """Test 1: SIGKILL the pod's process tree mid-segment, delete its disk, resume elsewhere."""
    total, every = 2048, 512
    config = cp_config(total=total, every=every)
    targets = evals(total, every)
    reference = Workdir(tmp_path / "reference", config)
    reference.run(*targets)  # uninterrupted, no remote

    settings = durable_file(tmp_path, upload_interval_s=0.5)
    args = (*targets, "--profile", PROFILE, "--configfile", settings)
    pod1 = Workdir(tmp_path / "pod1", config)
    run = RUN.format(seed=1)
    ckpt = f"{run}/ckpt/step_{{:010d}}.pt"
    live = [pod1.path / f"{run}/telemetry/step_{s:010d}.jsonl.live" for s in (1536, 2048)]
    proc = start(pod1, *args)
    # Kill once segment 2 is durable (output + record on the remote) and a later segment is
    # training (segment 3, or 4 when the upload was slow).
    wait_for(
        lambda: ckpt.format(1024) in durable_keys(remote) and any(p.exists() for p in live),
        proc,
        "segment 2 durable while a later segment runs",
    )
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    durable_at_death = durable_keys(remote)
    shutil.rmtree(pod1.path)  # the pod's disk is gone

    trained_before = {s for s in (512, 1024, 1536, 2048) if ckpt.format(s) in durable_at_death}
    assert {512, 1024} <= trained_before and 2048 not in trained_before

    # A hyper-parameter changed before the resume is detected: that run retrains entirely.
    changed = Workdir(tmp_path / "changed", cp_config(total=total, every=every, ent_coef=0.05))
    jobs = changed.planned_jobs(*args)
    assert sum(r == "train_segment" for r, _ in jobs) == 4

    pod2 = Workdir(tmp_path / "pod2", config)
    gets_before = len(remote.requests("GET"))
    done = pod2.run(*args)
    out = done.stdout + done.stderr
    trained = {int(s) for s in re.findall(r"ckpt/step_(\d+)\.pt", _train_outputs(out))}
    assert trained == {512, 1024, 1536, 2048} - trained_before
    pt_gets = [g for g in rel_gets(remote, gets_before) if g.endswith(".pt")]
    latest = max(trained_before)
    assert pt_gets == [ckpt.format(latest)], "only the checkpoint the next segment needs"

    final = ckpt.format(total)
    assert sha256(pod2.path / final) == sha256(reference.path / final)
    assert remote_ckpts(remote) == reference.checkpoints()  # every checkpoint, bit-identical
    assert "Nothing to be done" in pod2.run(*targets, "-n", "--profile", PROFILE).stdout


def _train_outputs(log: str) -> str:
    """The ``output:`` lines of the train_segment jobs in a Snakemake log."""
    lines, keep = [], False
    for line in log.splitlines():
        if line.strip().endswith("rule train_segment:"):
            keep = True
        elif keep and line.strip().startswith("output:"):
            lines.append(line)
            keep = False
    return "\n".join(lines)


def test_remote_outage_catches_up_and_permanent_failure_is_loud(tmp_path, remote):
    """Test 3: training goes on while the remote is down; uploads catch up; a lasting outage
    fails the run with a message naming the remote, and the outputs stay on local disk."""
    config = cp_config(total=1536, every=512)
    targets = evals(1536, 512)
    settings = durable_file(tmp_path, upload_interval_s=0.5, upload_retries=1)
    pod = Workdir(tmp_path / "pod", config)
    run = RUN.format(seed=1)
    first, last = (f"{run}/ckpt/step_{s:010d}.pt" for s in (512, 1536))
    proc = start(pod, *targets, "--profile", PROFILE, "--configfile", settings)
    wait_for(lambda: first in durable_keys(remote), proc, "the first checkpoint's upload")
    remote.stop(kill=True)  # outage: the server crashes, open connections are reset
    out = tmp_path / "snakemake.out"
    wait_for(lambda: (pod.path / last).exists(), proc, "training to go on during the outage")
    # The server stays down until the uploader has reported a failed round (one rclone call
    # can ride out a short outage on its own retries; this one outlasts them).
    wait_for(lambda: "upload deferred" in out.read_text(), proc, "a failed upload round")
    remote.start()
    assert proc.wait(timeout=300) == 0, out.read_text()
    local = {k: sha256(pod.path / k) for k in served(remote)}
    assert local == served(remote)  # caught up: every output, identical
    assert {first, last} <= durable_keys(remote) and len(served(remote, "runs/**/eval/*")) == 3

    # A permanent outage: one more segment trains, its upload never succeeds -> loud failure.
    pod.write_config(cp_config(total=2048, every=512))
    short = durable_file(tmp_path, upload_interval_s=0.5, upload_retries=1, upload_deadline_s=3)
    extra = f"{run}/ckpt/step_{2048:010d}.pt"
    proc = start(pod, extra, "--profile", PROFILE, "--configfile", short, log_name="down.out")
    live = pod.path / f"{run}/telemetry/step_{2048:010d}.jsonl.live"
    wait_for(live.exists, proc, "the extra segment to start")
    remote.stop()
    assert proc.wait(timeout=300) != 0
    log = (tmp_path / "down.out").read_text()
    assert "could not be uploaded to TESTREMOTE:state" in log
    assert (pod.path / extra).is_file()  # nothing lost locally
    assert remote.password not in log


def test_nothing_to_be_done_still_uploads(tmp_path, remote):
    """Outputs made before the profile was used (or whose upload a crash cut off) are uploaded
    by the next run even when it has nothing to do (Snakemake runs no hooks then)."""
    config = cp_config(total=512, every=512)
    targets = evals(512, 512)
    pod = Workdir(tmp_path / "pod", config)
    pod.run(*targets)  # no profile: nothing goes to the remote
    profile = ("--profile", PROFILE, "--configfile", durable_file(tmp_path))
    assert "Nothing to be done" in pod.run(*targets, *profile, "-n").stdout
    assert not served(remote)  # a dry run uploads nothing
    done = pod.run(*targets, *profile)
    assert "Nothing to be done" in done.stdout + done.stderr
    run = RUN.format(seed=1)
    assert {f"{run}/ckpt/step_{512:010d}.pt", targets[0]} <= durable_keys(remote)
