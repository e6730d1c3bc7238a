"""A new pod really resumes (the runpod profile), tested the way users run it.

Every pod is a fresh ``git clone`` with its own process tree, running the README's exact pod
commands (``tests/pods.py``) against one real ``rclone serve webdav`` on loopback, with
credentials only in environment variables. The default target and the CPU demo are what a user
runs, so they are what the headline test runs: the demo at test size
(``tests/configs/demo.yaml``: the demo's experiments, algorithms, DAG edges and dataset, fewer
seeds and shorter segments) as the clone's ``config/config.yaml``, where a user edits it.
"""

from __future__ import annotations

import random
import re
import shutil
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from pipeline import live_lines, live_telemetry
from pods import (
    REPO,
    Pod,
    checkpoints,
    durable_outputs,
    durable_segments,
    kill_tree,
    restore_line,
    sha256,
    started_jobs,
    wait_until,
)
from services.rclone_server import RcloneWebdavServer

pytestmark = pytest.mark.slow

TRAINING_RULES = ("ppo_segment", "qlearn_segment", "bc_segment")
DETERMINISTIC = ["exp", "env", "algo", "seeds", "final_return_mean", "ci95_low", "ci95_high"]
DETERMINISTIC += ["iqm", "env_steps"]


def durable_keys(server: RcloneWebdavServer) -> set[str]:
    """Outputs on the remote whose provenance record is there too (what restore trusts)."""
    return durable_outputs(server.root / "state")


def remote_checkpoints(server: RcloneWebdavServer) -> dict[str, str]:
    return checkpoints(server.root / "state")


def session_commands(proc: subprocess.Popen) -> list[str]:
    """Command lines of every live process in the pod's process group."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) != proc.pid:  # process group
                continue
            out.append((stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode())
        except (OSError, ValueError, IndexError):
            continue
    return out


def running(proc: subprocess.Popen, *needles: str) -> bool:
    return any(all(n in cmd for n in needles) for cmd in session_commands(proc))


def trained(log: str) -> set[str]:
    """Checkpoint paths of the training jobs a pod's log shows starting."""
    outs = [
        o for rule in TRAINING_RULES for line in started_jobs(log, rule) for o in line.split(", ")
    ]
    return {o for o in outs if re.search(r"/(ckpt|qtable)/step_", o)}


def summary(path: Path) -> pd.DataFrame:
    return pd.read_csv(path)[DETERMINISTIC].sort_values(["exp", "env"]).reset_index(drop=True)


def edit_config(pod: Pod, change) -> None:
    """Change the pod's config/config.yaml as a user would (keeps YAML anchors resolved)."""
    path = pod.dir / "config" / "config.yaml"
    config = yaml.safe_load(path.read_text())
    change(config)
    path.write_text(yaml.safe_dump(config, sort_keys=False))


def demo_config() -> dict:
    """tests/configs/demo.yaml, checked to still have the demo's shape (config/config.yaml):
    its experiments with their algorithms, envs, init_from and datasets, and its datasets."""
    demo = yaml.safe_load((REPO / "config/config.yaml").read_text())
    small = yaml.safe_load((REPO / "tests/configs/demo.yaml").read_text())

    def shape(config):
        keys = ("algo", "envs", "init_from", "dataset")
        exps = {n: tuple(str(e.get(k)) for k in keys) for n, e in config["experiments"].items()}
        sets = {n: (d.get("remote"), d.get("record", {}).get("experiment")) for n, d in
                config["datasets"].items()}  # fmt: skip
        return exps, sets

    assert shape(small) == shape(demo), "tests/configs/demo.yaml no longer mirrors the demo"
    return small


def test_new_pods_resume_the_demo_through_kills(make_pod, tmp_path, rclone_server):
    """Chaos: the demo (at test size) under `snakemake --profile runpod`, its whole process
    tree killed (SIGKILL) four times at random moments of each kind: mid-upload,
    mid-evaluation, mid-behaviour-cloning and mid-segment of the PPO run that starts from the
    cloned policy (the replay -> BC -> PPO chain). Every time the pod's disk is deleted and a
    new pod (a fresh clone) resumes (so a kill mid-restore, which writes only to that disk, is
    no kind of its own). The result equals an uninterrupted run without the
    profile, no segment trains again once durable, and then a new pod has nothing to do.
    Finally a config change under the profile's keep_last: 2 reruns only the changed
    experiment, and its results come from the new config."""
    env = {"RLPIPE_REMOTE": "TESTREMOTE:state"}
    config = demo_config()
    _make_pod = make_pod

    def make_pod(name, env=None):  # every pod runs the demo at test size
        pod = _make_pod(name, env)
        write_config(pod, config)
        return pod

    reference = make_pod("reference")
    # The README's first command, no profile; beside the pods (it is compared at the end),
    # niced: it fills the CPU the pods leave idle (starting, listing, uploading) and does not
    # slow them; its bytes are the same at any priority.
    reference_run = reference.start("nice -n 19 make run", label="make-run")

    rng = random.Random(15)
    kills = [  # what; trigger on the pod's process group; new durable outputs it needs first;
        # the random delay before SIGKILL
        ("mid-upload", lambda p, pod: running(p, f" copy {pod.dir} TESTREMOTE:state "), 6, 0),
        ("mid-evaluation", lambda p, pod: running(p, "evaluate.py"), 0, 1.0),
        (
            "mid-bc",
            lambda p, pod: any(pod.dir.glob("runs/bc-cartpole/*/*/telemetry/*.live")),
            0,
            1.0,
        ),
        (
            "mid-segment",
            lambda p, pod: any(pod.dir.glob("runs/ppo-from-bc/*/*/telemetry/*.live")),
            0,
            2.0,
        ),
    ]
    retrained, durable_before, durable_count = {}, set(), 0
    t0 = time.monotonic()
    for i, (what, trigger, progress, delay) in enumerate(kills):
        pod = make_pod(f"pod{i}", env)
        proc = pod.start()
        need = durable_count + progress

        def ready(trigger=trigger, proc=proc, pod=pod, need=need):
            return len(durable_keys(rclone_server)) >= need and trigger(proc, pod)

        wait_until(ready, 900, proc, what)
        time.sleep(rng.uniform(0, delay))
        kill_tree(proc)
        retrained[what + str(i)] = trained(pod.output()) & durable_before
        durable_before = durable_segments(rclone_server.root / "state")
        durable_count = len(durable_keys(rclone_server))
        print(f"killed pod{i} {what} at {time.monotonic() - t0:.0f} s: {durable_count} durable")
        shutil.rmtree(pod.dir)  # the pod and its disk are gone

    final = make_pod("final", env)
    log = final.run()
    retrained["final"] = trained(log) & durable_before
    assert not any(retrained.values()), f"durable segments trained again: {retrained}"

    assert reference_run.wait(timeout=900) == 0, reference.output()[-3000:]
    expected = reference.checkpoints()
    remote = remote_checkpoints(rclone_server)
    assert final_checkpoints(expected) <= set(remote), "every run's final checkpoint is durable"
    assert {k: expected[k] for k in remote} == remote, "bit-identical to the uninterrupted run"
    pd.testing.assert_frame_equal(
        summary(final.dir / "results/summary.csv"), summary(reference.dir / "results/summary.csv")
    )

    # A new pod: the README's commands plan nothing, then do nothing.
    fresh = make_pod("fresh", env)
    plan = fresh.run("snakemake -n --profile runpod", label="plan")
    assert "Nothing to be done" in plan, plan[-3000:]
    log = fresh.run()
    assert "Nothing to be done" in log and not trained(log)
    print(f"new pod restore: {restore_line(plan)}")

    # A config change between pods, under the profile's keep_last: 2.
    def cheaper_pong(config):
        config["experiments"]["ppo-pong"]["hparams"]["clip_coef"] = 0.2

    before = {k: sha256(rclone_server.root / "state" / k) for k in durable_keys(rclone_server)}
    changed = make_pod("changed", env)
    edit_config(changed, cheaper_pong)
    # The reference of the new config's ppo-pong evaluations, beside the changed pod.
    edit_config(reference, cheaper_pong)
    pong_evals = sorted(
        str(p.relative_to(reference.dir)) for p in reference.dir.glob("runs/ppo-pong/*/*/eval/*")
    )
    pong_reference = reference.start(
        f"nice -n 19 snakemake {' '.join(pong_evals)}", label="pong-reference"
    )
    log = changed.run()
    assert pong_reference.wait(timeout=900) == 0, reference.output()[-3000:]
    assert {o.split("/")[1] for o in trained(log)} == {"ppo-pong"}, "only that experiment"
    evaluated = {o.split("/")[1] for o in started_jobs(log, "evaluate")}
    assert evaluated == {"ppo-pong"}
    after = {k: sha256(rclone_server.root / "state" / k) for k in durable_keys(rclone_server)}
    assert {k: v for k, v in after.items() if "ppo-pong" not in k and "results/" not in k} == {
        k: v for k, v in before.items() if "ppo-pong" not in k and "results/" not in k
    }
    # Every ppo-pong evaluation on the remote is the new config's: equal to a run of it.
    assert pong_evals == sorted(
        k for k in after if k.startswith("runs/ppo-pong/") and "/eval/" in k
    )
    for key in pong_evals:
        assert after[key] == sha256(reference.dir / key), key
    pong_steps = config["experiments"]["ppo-pong"]["total_steps"]
    final_pong = f"runs/ppo-pong/Pong-v5/seed1/ckpt/step_{pong_steps:010d}.pt"
    assert after[final_pong] == sha256(reference.dir / final_pong)
    assert after[final_pong] != before[final_pong]


def final_checkpoints(ckpts: dict[str, str]) -> set[str]:
    """The last checkpoint of every run among relative checkpoint paths."""
    runs: dict[str, list[str]] = {}
    for path in ckpts:
        runs.setdefault(path.rsplit("/", 2)[0], []).append(path)
    return {max(paths) for paths in runs.values()}


TINY_PPO_SLOW = {  # CartPole segments of several seconds, long enough to kill in the middle
    "num_envs": 8,
    "num_steps": 128,
    "num_minibatches": 4,
    "update_epochs": 10,
    "lr_anneal_steps": 1_000_000,
}


def tiny(total: int = 2 * 32768, every: int = 32768, **extra) -> dict:
    config = {
        "experiments": {
            "cp": {
                "algo": "ppo",
                "envs": ["CartPole-v1"],
                "seeds": [1],
                "total_steps": total,
                "checkpoint_every": every,
                "hparams": dict(TINY_PPO_SLOW),
            }
        },
        "evaluation": {"episodes": 2, "max_episode_steps": 200},
        "summary": {"bootstrap_samples": 200},
    }
    config.update(extra)
    return config


def write_config(pod: Pod, config: dict) -> None:
    """The user's own config in the pod's clone (config/config.yaml, the embedded default)."""
    (pod.dir / "config" / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))


def test_unconfigured_remote_is_one_clear_line(make_pod, tmp_path):
    pod = make_pod("pod", {"RCLONE_CONFIG": str(tmp_path / "no-rclone.conf")})
    write_config(pod, tiny())
    assert pod.start().wait(timeout=120) != 0
    out = pod.output()
    line = next(ln for ln in out.splitlines() if "no remote named" in ln)
    assert "'rlpipe'" in line and "RCLONE_CONFIG_RLPIPE_TYPE" in line and "RLPIPE_REMOTE" in line
    assert "didn't find section" not in out
    assert not (pod.dir / "runs").exists()


def test_catch_up_to_a_remote_that_refuses_writes_fails_loudly(make_pod, tmp_path, rclone_server):
    pod = make_pod("pod", {"RLPIPE_REMOTE": "TESTREMOTE:state"})
    write_config(pod, tiny(total=16384, every=16384))
    pod.run("make run")  # outputs on local disk only
    rclone_server.stop()
    rclone_server.read_only = True  # the same remote now refuses every write (403)
    rclone_server.start()
    assert pod.start().wait(timeout=300) != 0
    out = pod.output()
    assert "Nothing to be done" in out
    assert "could not be uploaded to TESTREMOTE:state" in out
    assert rclone_server.password not in out and rclone_server.obscured not in out
    assert (pod.dir / "runs/cp/CartPole-v1/seed1/ckpt/step_0000016384.pt").is_file()


def _session_pids(proc, needle: str) -> list[int]:
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[2]) != proc.pid:
                continue
            if needle in (stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode():
                pids.append(int(stat.parent.name))
        except (OSError, ValueError, IndexError):
            continue
    return pids


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_killing_only_snakemake_leaves_no_orphan_writer(make_pod, tmp_path, rclone_server):
    """kill -9 of the Snakemake PID alone: its jobs end with it (before writing), and the
    same command then finishes with the bytes of an uninterrupted run."""
    reference = make_pod("reference")
    write_config(reference, tiny())
    reference.run("make run")

    pod = make_pod("pod", {"RLPIPE_REMOTE": "TESTREMOTE:state"})
    write_config(pod, tiny())
    proc = pod.start()
    run_dir = pod.dir / "runs/cp/CartPole-v1/seed1"
    wait_until(lambda: live_lines(run_dir, 65536) >= 1, 300, proc, "segment 2")
    jobs = _session_pids(proc, ".segment.py")
    (main,) = _session_pids(proc, "bin/snakemake --profile runpod")  # bash exec'd it
    assert jobs
    subprocess.run(["kill", "-9", str(main)], check=True)
    proc.wait()
    # The jobs end within the guard's poll (0.5 s) on an idle CPU; the bound is only there so
    # that a job that never ends fails the test. Ending after writing fails the next line.
    wait_until(lambda: not any(map(_alive, jobs)), 120, None, "the orphaned job to end")
    assert not (pod.dir / "runs/cp/CartPole-v1/seed1/ckpt/step_0000065536.pt").exists()

    log = pod.run()  # the same command, the same directory
    assert "removed stale Snakemake locks" in log
    final = "runs/cp/CartPole-v1/seed1/ckpt/step_0000065536.pt"
    assert sha256(pod.dir / final) == sha256(reference.dir / final)


def test_dry_run_beside_a_live_run_restores_nothing(make_pod, tmp_path, rclone_server):
    pod = make_pod("pod", {"RLPIPE_REMOTE": "TESTREMOTE:state"})
    write_config(pod, tiny())
    pod.run()  # the remote holds this config's outputs
    config = tiny()
    config["experiments"]["cp"]["hparams"]["ent_coef"] = 0.02
    write_config(pod, config)  # the live run remakes everything; the remote copies are stale
    proc = pod.start()
    run_dir = pod.dir / "runs/cp/CartPole-v1/seed1"
    wait_until(lambda: live_telemetry(run_dir, 32768), 300, proc, "the live run's 1st segment")
    gets = len(rclone_server.requests("GET"))
    plan = pod.run("snakemake -n --profile runpod", label="plan")
    assert "another rlpipe run holds this directory; restoring nothing" in plan
    assert len(rclone_server.requests("GET")) == gets, "the dry run downloaded files"
    assert proc.wait(timeout=600) == 0, pod.logs[-2].read_text()[-3000:]
    record = pod.dir / ".snakemake/metadata"
    assert "0.02" in "".join(p.read_text() for p in record.rglob("*") if p.is_file())


def test_remote_without_modtimes(make_pod, tmp_path, rclone_server):
    """A WebDAV server that cannot set modification times: upload rounds compare with the
    ledger, not remote modtimes (no re-uploads), and restored outputs get the mtimes their
    records hold, so Snakemake sees a checkpoint older than its evaluation."""
    env = {"RLPIPE_REMOTE": "TESTREMOTE:state", "RCLONE_CONFIG_TESTREMOTE_VENDOR": "other"}
    config = tiny(total=16384, every=16384, durable={"eager_restore_mb": 100})
    config["experiments"]["pong"] = {  # a Nature-CNN checkpoint: over 1 MB, so no checksum
        "algo": "ppo",
        "envs": ["Pong-v5"],
        "seeds": [1],
        "total_steps": 256,
        "checkpoint_every": 256,
        "hparams": {**TINY_PPO_SLOW, "num_envs": 4, "num_steps": 64, "update_epochs": 1},
    }
    first = make_pod("first", env)
    write_config(first, config)
    first.run()
    puts = len(rclone_server.requests("PUT"))
    assert "Nothing to be done" in first.run()
    assert len(rclone_server.requests("PUT")) == puts, "an idle run re-uploaded files"

    second = make_pod("second", env)
    write_config(second, config)
    plan = second.run("snakemake -n --profile runpod", label="plan")
    assert "Nothing to be done" in plan, plan[-3000:]
    ckpt = "runs/pong/Pong-v5/seed1/ckpt/step_0000000256.pt"
    assert (second.dir / ckpt).stat().st_mtime == (first.dir / ckpt).stat().st_mtime


def served(server: RcloneWebdavServer, pattern: str = "**/*") -> dict[str, str]:
    root = server.root / "state"
    return {
        str(p.relative_to(root)): sha256(p)
        for p in root.glob(pattern)
        if p.is_file() and not str(p.relative_to(root)).startswith(".snakemake")
    }


def test_retention_pins_and_a_new_pod_plans_from_the_remote(make_pod, tmp_path, rclone_server):
    """keep_last: 2 with keep_every pins, locally and remotely; a new pod then plans nothing
    (deleted checkpoints stay deleted), with listings per directory, never per file."""
    config = tiny(total=4 * 16384, every=16384, durable={"keep_last": 2, "keep_every": 32768})
    first = make_pod("first", {"RLPIPE_REMOTE": "TESTREMOTE:state"})
    write_config(first, config)
    first.run()
    kept = {f"runs/cp/CartPole-v1/seed1/ckpt/step_{s:010d}.pt" for s in (32768, 49152, 65536)}
    local = {str(p.relative_to(first.dir)) for p in first.dir.rglob("*.pt")}
    assert local == kept and set(remote_checkpoints(rclone_server)) == kept
    assert len(served(rclone_server, "runs/**/eval/*.json")) == 4

    fresh = make_pod("fresh", {"RLPIPE_REMOTE": "TESTREMOTE:state"})
    write_config(fresh, config)
    propfinds = len(rclone_server.requests("PROPFIND"))
    plan = fresh.run("snakemake -n --profile runpod", label="plan")
    assert "Nothing to be done" in plan, plan[-3000:]
    asked = [p.strip("/") for p in rclone_server.requests("PROPFIND")[propfinds:]]
    root = rclone_server.root
    assert not [p for p in asked if (root / p.replace("//", "/")).is_file()]
    print(f"new pod: {restore_line(plan)}; {len(asked)} PROPFIND requests")


def test_outage_catches_up_and_a_lasting_outage_fails_loudly(make_pod, tmp_path, rclone_server):
    """Training goes on while the remote is down; uploads catch up, byte-identical. An outage
    that outlasts upload_deadline_s fails the run naming the remote; the outputs stay local."""
    durable = {"upload_interval_s": 0.5, "upload_retries": 1}
    pod = make_pod("pod", {"RLPIPE_REMOTE": "TESTREMOTE:state"})
    write_config(pod, tiny(total=3 * 16384, every=16384, durable=durable))
    run = "runs/cp/CartPole-v1/seed1"
    first, last = (f"{run}/ckpt/step_{s:010d}.pt" for s in (16384, 49152))
    proc = pod.start()
    wait_until(lambda: first in durable_keys(rclone_server), 300, proc, "the first upload")
    rclone_server.stop(kill=True)  # the server crashes; open connections are reset
    wait_until((pod.dir / last).exists, 300, proc, "training to go on during the outage")
    wait_until(lambda: "upload deferred" in pod.output(), 300, proc, "a failed upload round")
    rclone_server.start()
    assert proc.wait(timeout=600) == 0, pod.output()[-3000:]
    assert {k: sha256(pod.dir / k) for k in served(rclone_server)} == served(rclone_server)
    evals = {f"{run}/eval/step_{s:010d}.json" for s in (16384, 32768, 49152)}
    assert {last, *evals} <= durable_keys(rclone_server)  # (keep_last: 2 dropped the first)

    extra = f"{run}/ckpt/step_{4 * 16384:010d}.pt"
    write_config(
        pod, tiny(total=4 * 16384, every=16384, durable={**durable, "upload_deadline_s": 3})
    )
    proc = pod.start()
    wait_until(lambda: live_telemetry(pod.dir / run, 4 * 16384), 300, proc, "the extra segment")
    rclone_server.stop()
    assert proc.wait(timeout=600) != 0
    log = pod.output()
    assert "could not be uploaded to TESTREMOTE:state" in log
    assert (pod.dir / extra).is_file()  # nothing lost locally
    assert rclone_server.password not in log


def test_nothing_to_be_done_still_uploads(make_pod, tmp_path, rclone_server):
    """Outputs made without the profile are uploaded by the next profile run, also when it has
    nothing to do (Snakemake runs no hooks then); a dry run uploads nothing."""
    pod = make_pod("pod", {"RLPIPE_REMOTE": "TESTREMOTE:state"})
    write_config(pod, tiny(total=16384, every=16384))
    pod.run("make run")
    assert "Nothing to be done" in pod.run("snakemake -n --profile runpod", label="plan")
    assert not served(rclone_server)
    assert "Nothing to be done" in pod.run()
    assert {"runs/cp/CartPole-v1/seed1/ckpt/step_0000016384.pt", "results/summary.csv"} <= set(
        served(rclone_server)
    )
