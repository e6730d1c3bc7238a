"""One sweep across three pods (shards), tested the way users run it: every pod a fresh
``git clone`` with its own process tree and the README's pod commands plus
``--config shard=I/N``, all mirroring to one real ``rclone serve webdav`` on loopback."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest

from rlpipe.remote.metadata import record_rel

from pods import (
    Pod,
    checkpoints,
    durable_outputs,
    durable_segments,
    kept_alive,
    kill_tree,
    recorded,
    started_jobs,
    wait_until,
    whole_json,
)

pytestmark = pytest.mark.slow

CONFIG = "--configfile tests/configs/sweep.yaml"
SWEEP = f"{CONFIG} owners.yaml"  # a pod's extra config file: owner timeouts
TRAINING_RULES = ("ppo_segment", "qlearn_segment", "bc_segment")
DETERMINISTIC = ["exp", "env", "algo", "seeds", "final_return_mean", "ci95_low", "ci95_high"]


def trained(log: str) -> set[str]:
    outs = [o for r in TRAINING_RULES for line in started_jobs(log, r) for o in line.split(", ")]
    return {o for o in outs if re.search(r"/(ckpt|qtable)/step_", o)}


def owners_file(pod: Pod, timeout_s: float, wait_s: float) -> None:
    """The sweep's extra config file: short owner timeouts, so the test waits seconds."""
    text = f"durable:\n  owner_timeout_s: {timeout_s}\n  owner_wait_s: {wait_s}\n"
    (pod.dir / "owners.yaml").write_text(text)


def finish(pod: Pod, proc, timeout_s: float = 900) -> tuple[int, str]:
    rc = proc.wait(timeout=timeout_s)
    return rc, pod.logs[-1].read_text()


def summary(path: Path) -> pd.DataFrame:
    return pd.read_csv(path)[DETERMINISTIC].sort_values(["exp", "env"]).reset_index(drop=True)


def test_three_pods_share_a_sweep_through_a_kill(make_pod, rclone_server, tmp_path):
    """Three shards at once; shard 2's pod is killed mid-segment. A pod without patience is
    refused (live owner); the summary from a fourth directory names the unfinished runs; the
    relaunched shard (a fresh clone) waits out the dead owner's heartbeat, takes over and
    retrains nothing durable. Then the summary from anywhere equals a single pod's, and the
    final checkpoints are byte-identical.

    The dead owner's heartbeat age is set by the test, not by how long the steps before took:
    its record is kept beating (pods.kept_alive) while the impatient pod runs and until the
    relaunched pod reports that it waits, then left to expire."""
    reference = make_pod("reference", {"RLPIPE_REMOTE": "TESTREMOTE:single"})
    owners_file(reference, 60, 90)
    reference_run = reference.start(f"snakemake --profile runpod {SWEEP}")  # beside the shards

    env = {"RLPIPE_REMOTE": "TESTREMOTE:state"}
    state = rclone_server.root / "state"
    pods, procs = {}, {}
    for i in (1, 2, 3):
        pods[i] = make_pod(f"shard{i}", env)
        owners_file(pods[i], 60, 90)
        procs[i] = pods[i].start(f"snakemake --profile runpod {SWEEP} --config shard={i}/3")

    assignment = state / ".rlpipe/shards.json"
    wait_until(lambda: whole_json(assignment), 300, procs[2], "the shard assignment on the remote")
    mine = {n for n, s in whole_json(assignment)["runs"].items() if s == 2}
    mine_dirs = {"runs/" + n for n in mine}

    def shard2_mid_segment():
        done = {k for k in durable_outputs(state) if any(k.startswith(d) for d in mine_dirs)}
        live = any(pods[2].dir.glob("runs/*/*/*/telemetry/*.live"))
        return any("/ckpt/" in k or "/qtable/" in k for k in done) and live

    wait_until(shard2_mid_segment, 600, procs[2], "shard 2 mid-segment")
    kill_tree(procs[2])
    durable_before = durable_segments(state)
    owner = state / ".rlpipe/owners/shard-2-of-3.json"
    assert owner.is_file(), "a killed pod leaves its owner record"

    impatient = make_pod("impatient", env)
    owners_file(impatient, 60, 0)
    with kept_alive(owner, tmp_path) as beating:  # the owner looks alive throughout
        proc = impatient.start(f"snakemake --profile runpod {SWEEP} --config shard=2/3")
        rc, log = finish(impatient, proc)
    assert beating.taken_by is None, f"a live owner's shard was taken: {beating.taken_by}"
    assert rc != 0 and "shard 2/3 is owned by a live pod" in log, log[-3000:]
    assert not trained(log)

    laptop = make_pod("laptop", env)
    proc = laptop.start("snakemake --profile runpod results/summary.md " + CONFIG)
    rc, log = finish(laptop, proc)
    assert rc != 0 and "Not finished yet" in log, log[-3000:]
    assert all(f"{n} (shard 2/3)" in log for n in mine), log[-3000:]

    relaunched = make_pod("shard2-relaunched", env)
    # A dead owner expires owner_timeout_s after its last beat; owner_wait_s is only a bound.
    owners_file(relaunched, 15, 600)
    with kept_alive(owner, tmp_path) as beating:  # alive until the relaunch has seen it so
        proc = relaunched.start(f"snakemake --profile runpod {SWEEP} --config shard=2/3")
        waits = "waiting for its heartbeat to expire"
        wait_until(lambda: waits in relaunched.output(), 600, proc, "the relaunch to wait")
    assert beating.taken_by is None, f"a live owner's shard was taken: {beating.taken_by}"
    rc, log = finish(relaunched, proc)
    assert rc == 0, log[-3000:]
    assert not trained(log) & durable_before, "durable segments trained again"
    assert not owner.exists(), "the owner record goes at exit"
    for i in (1, 3):
        rc, log = finish(pods[i], procs[i])
        assert rc == 0, log[-3000:]

    assert reference_run.wait(timeout=900) == 0, reference.output()[-3000:]
    log = laptop.run("snakemake --profile runpod results/summary.md " + CONFIG)
    assert not trained(log) and not started_jobs(log, "evaluate"), "the summary trains nothing"
    for key in recorded(state):  # the laptop's older copies never went over the newer ones
        if any(key.startswith(d) for d in mine_dirs):
            rel = record_rel(key)
            assert (state / rel).read_bytes() == (relaunched.dir / rel).read_bytes(), key
    pd.testing.assert_frame_equal(
        summary(laptop.dir / "results/summary.csv"),
        summary(reference.dir / "results/summary.csv"),
    )
    single = checkpoints(rclone_server.root / "single")
    sharded = checkpoints(state)
    finals = {k for k in single if k.endswith(("0000001536.pt", "0000020000.npz"))}
    assert len(finals) == 6 and finals <= set(sharded)
    assert {k: sharded[k] for k in finals} == {k: single[k] for k in finals}

    status = laptop.run(
        "rlpipe status --remote $RLPIPE_REMOTE --config tests/configs/sweep.yaml", "status"
    )
    shard_lines = [ln for ln in status.splitlines() if re.match(r"^[123]/3\s", ln)]
    assert len(shard_lines) == 3 and all(ln.endswith("DONE") for ln in shard_lines), status
