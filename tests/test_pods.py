"""A new pod really resumes (the runpod profile), tested the way users run it.

Every pod is a fresh ``git clone`` with its own process tree, running the README's exact pod
commands (``tests/pods.py``) against one real ``rclone serve webdav`` on loopback, with
credentials only in environment variables. The default target and the default config (the
CPU demo) are what a user runs, so they are what the headline test runs.
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

from pods import Pod, checkpoints, kill_tree, restore_line, sha256, started_jobs, wait_until
from services.rclone_server import RcloneWebdavServer

pytestmark = pytest.mark.slow

TRAINING_RULES = ("train_segment", "qlearn_segment", "bc_segment")
DETERMINISTIC = ["exp", "env", "algo", "seeds", "final_return_mean", "ci95_low", "ci95_high"]
DETERMINISTIC += ["iqm", "env_steps"]


def durable_keys(server: RcloneWebdavServer) -> set[str]:
    """Outputs on the remote whose provenance record is there too (what restore trusts)."""
    from rlpipe.durable import METADATA, key_of

    root = server.root / "state"
    records = {
        key_of(str(p.relative_to(root))) for p in (root / METADATA).rglob("*") if p.is_file()
    }
    return {k for k in records if (root / k).is_file()}


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


def test_new_pods_resume_the_demo_through_kills(tmp_path, rclone_server):
    """Chaos: the default demo under `snakemake --profile runpod`, its whole process tree
    killed (SIGKILL) six times at random moments of each kind: mid-segment, mid-restore,
    mid-upload, mid-evaluation, mid-behaviour-cloning (the replay -> BC -> PPO chain), and
    mid-segment again. Every time the pod's disk is deleted and a new pod (a fresh clone)
    resumes. The result equals an uninterrupted run without the profile, no segment trains
    again once durable, and then a new pod has nothing to do. Finally a config change under
    the profile's keep_last: 2 reruns only the changed experiment, and its results come from
    the new config."""
    env = {"RLPIPE_REMOTE": "TESTREMOTE:state"}
    reference = Pod(tmp_path, "reference")
    reference.run("make run", label="make-run")  # the README's first command, no profile
    expected = reference.checkpoints()

    rng = random.Random(15)
    kills = [  # (what, trigger on the pod's process group, random delay before SIGKILL)
        (
            "mid-segment",
            lambda p, pod: bool(list(pod.dir.glob("runs/*/*/*/telemetry/*.live"))),
            2.0,
        ),
        ("mid-restore", lambda p, pod: running(p, "--dry-run", "--workflow-profile none"), 0.0),
        ("mid-upload", lambda p, pod: running(p, f" copy {pod.dir} TESTREMOTE:state "), 0.0),
        ("mid-evaluation", lambda p, pod: running(p, "evaluate.py"), 1.0),
        ("mid-bc", lambda p, pod: running(p, "bc_segment.py"), 1.0),
        (
            "mid-segment",
            lambda p, pod: bool(list(pod.dir.glob("runs/ppo-from-bc/*/*/telemetry/*.live"))),
            2.0,
        ),
    ]
    retrained, durable_before = {}, set()
    for i, (what, trigger, delay) in enumerate(kills):
        pod = Pod(tmp_path, f"pod{i}", env)
        proc = pod.start()
        wait_until(lambda t=trigger, p=proc, d=pod: t(p, d), 900, proc, what)
        time.sleep(rng.uniform(0, delay))
        kill_tree(proc)
        retrained[what + str(i)] = trained(pod.output()) & durable_before
        durable_before = durable_keys(rclone_server)
        print(f"killed pod{i} {what}: {len(durable_before)} outputs durable")
        shutil.rmtree(pod.dir)  # the pod and its disk are gone

    final = Pod(tmp_path, "final", env)
    log = final.run()
    retrained["final"] = trained(log) & durable_before
    assert not any(retrained.values()), f"durable segments trained again: {retrained}"

    remote = remote_checkpoints(rclone_server)
    assert final_checkpoints(expected) <= set(remote), "every run's final checkpoint is durable"
    assert {k: expected[k] for k in remote} == remote, "bit-identical to the uninterrupted run"
    pd.testing.assert_frame_equal(
        summary(final.dir / "results/summary.csv"), summary(reference.dir / "results/summary.csv")
    )

    # A new pod: the README's commands plan nothing, then do nothing.
    fresh = Pod(tmp_path, "fresh", env)
    plan = fresh.run("snakemake -n --profile runpod", label="plan")
    assert "Nothing to be done" in plan, plan[-3000:]
    log = fresh.run()
    assert "Nothing to be done" in log and not trained(log)
    print(f"new pod restore: {restore_line(plan)}")

    # A config change between pods, under the profile's keep_last: 2.
    def cheaper_pong(config):
        config["experiments"]["ppo-pong"]["hparams"]["clip_coef"] = 0.2

    before = {k: sha256(rclone_server.root / "state" / k) for k in durable_keys(rclone_server)}
    changed = Pod(tmp_path, "changed", env)
    edit_config(changed, cheaper_pong)
    log = changed.run()
    assert {o.split("/")[1] for o in trained(log)} == {"ppo-pong"}, "only that experiment"
    evaluated = {o.split("/")[1] for o in started_jobs(log, "evaluate")}
    assert evaluated == {"ppo-pong"}
    after = {k: sha256(rclone_server.root / "state" / k) for k in durable_keys(rclone_server)}
    assert {k: v for k, v in after.items() if "ppo-pong" not in k and "results/" not in k} == {
        k: v for k, v in before.items() if "ppo-pong" not in k and "results/" not in k
    }
    # Every ppo-pong evaluation on the remote is the new config's: equal to a run of it.
    edit_config(reference, cheaper_pong)
    pong_evals = sorted(k for k in after if k.startswith("runs/ppo-pong/") and "/eval/" in k)
    reference.run(f"snakemake {' '.join(pong_evals)}", label="pong-reference")
    for key in pong_evals:
        assert after[key] == sha256(reference.dir / key), key
    final_pong = next(k for k in after if k.startswith("runs/ppo-pong/") and k.endswith("4096.pt"))
    assert after[final_pong] == sha256(reference.dir / final_pong)
    assert after[final_pong] != before[final_pong]


def final_checkpoints(ckpts: dict[str, str]) -> set[str]:
    """The last checkpoint of every run among relative checkpoint paths."""
    runs: dict[str, list[str]] = {}
    for path in ckpts:
        runs.setdefault(path.rsplit("/", 2)[0], []).append(path)
    return {max(paths) for paths in runs.values()}
