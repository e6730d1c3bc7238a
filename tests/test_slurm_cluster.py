"""Snakemake's SLURM executor against a real single-node cluster (profiles/slurm)."""

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake"]

# Each job records what SLURM gave it; gpu jobs hold their GPU a moment so two overlap.
SNAKEFILE = r"""
rule all:
    input:
        expand("out/cpu{i}.txt", i=range(2)),
        expand("out/gpu{i}.txt", i=range(3)),

rule cpu:
    output: "out/cpu{i}.txt"
    shell: "echo job=${{SLURM_JOB_ID:-none}} cuda=${{CUDA_VISIBLE_DEVICES:-none}} > {output}"

rule gpu:
    output: "out/gpu{i}.txt"
    resources: gpu=1
    shell:
        "start=$(date +%s.%N); sleep 2; "
        "echo job=${{SLURM_JOB_ID:-none}} cuda=${{CUDA_VISIBLE_DEVICES:-none}}"
        " start=$start end=$(date +%s.%N) > {output}"
"""


def _record(path: Path) -> dict[str, str]:
    return dict(kv.split("=", 1) for kv in path.read_text().split())


@pytest.mark.slurm
@pytest.mark.slow
def test_snakemake_runs_jobs_through_slurm(slurm_cluster, tmp_path):
    (tmp_path / "Snakefile").write_text(SNAKEFILE)
    # the workflow profile applies too, as it does for the real workflow
    shutil.copytree(REPO / "profiles" / "default", tmp_path / "profiles" / "default")
    cmd = [
        *SNAKEMAKE,
        "--profile",
        str(REPO / "profiles" / "slurm"),
        "--jobs",
        "6",
        "--default-resources",
        "runtime=10",
        "mem_mb=200",
        *slurm_cluster.snakemake_args,
    ]
    t0 = time.monotonic()
    res = subprocess.run(
        cmd, cwd=tmp_path, env=slurm_cluster.env, capture_output=True, text=True, timeout=400
    )
    run_s = time.monotonic() - t0
    print(f"6-job SLURM workflow: {run_s:.1f} s; cluster timings {slurm_cluster.timings}")
    assert res.returncode == 0, f"{res.stderr[-4000:]}\n{slurm_cluster.log_tail()}"

    records = {p.stem: _record(p) for p in sorted((tmp_path / "out").glob("*.txt"))}
    assert len(records) == 5
    job_ids = [r["job"] for r in records.values()]
    assert all(j.isdigit() for j in job_ids), records  # every job ran inside a SLURM job
    assert len(set(job_ids)) == len(job_ids), records  # ... each its own
    accounted = subprocess.run(
        ["squeue", "-h", "-t", "all", "-o", "%i %T"],
        env=slurm_cluster.env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    states = dict(line.split() for line in accounted.splitlines())
    assert all(states.get(j) == "COMPLETED" for j in job_ids), (states, job_ids)

    for name, rec in records.items():
        if name.startswith("gpu"):
            assert rec["cuda"] in {"0", "1"}, rec  # set by SLURM from the fake gres
        else:
            assert rec["cuda"] == "none", rec
    gpu = [records[f"gpu{i}"] for i in range(3)]
    for a in gpu:
        for b in gpu:
            overlap = a is not b and float(a["start"]) < float(b["end"])
            if overlap and float(b["start"]) < float(a["end"]):
                assert a["cuda"] != b["cuda"], gpu  # concurrent jobs never share a GPU


SLURM_PROFILE = ("--profile", str(REPO / "profiles" / "slurm"))


def _cp_config(seeds=(1, 2), segments=2, every=16384) -> dict:
    """CartPole PPO runs whose segments take seconds (long enough to kill one mid-way)."""
    return {
        "experiments": {
            "cp": {
                "algo": "ppo",
                "envs": ["CartPole-v1"],
                "seeds": list(seeds),
                "total_steps": segments * every,
                "checkpoint_every": every,
                "hparams": {"num_envs": 8, "num_steps": 128, "num_minibatches": 4,
                            "update_epochs": 10, "lr_anneal_steps": 1_000_000},
                "resources": {"mem_mb": 500, "runtime": 10},
            }
        },
        "evaluation": {"episodes": 2, "max_episode_steps": 200},
        "summary": {"bootstrap_samples": 200},
    }  # fmt: skip


def _jobs(cluster, workdir: Path) -> dict[str, tuple[str, str]]:
    """SLURM jobs (any state squeue still shows) run in ``workdir``: {id: (state, comment)}."""
    out = subprocess.run(
        ["squeue", "-h", "-t", "all", "-o", "%i|%T|%k|%Z"],
        env=cluster.env, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    jobs = {}
    for line in out.splitlines():
        job, state, comment, cwd = line.split("|", 3)
        if Path(cwd).resolve() == workdir.resolve():
            jobs[job] = (state, comment)
    return jobs


def _running(cluster, workdir: Path) -> list[str]:
    return [j for j, (state, _) in _jobs(cluster, workdir).items() if state == "RUNNING"]


def _wait(condition, proc, what: str, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert proc.poll() is None, f"snakemake ended before {what}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


@pytest.mark.slurm
@pytest.mark.slow
def test_rlpipe_sweep_through_slurm_to_the_summary(slurm_cluster, tmp_path):
    """The profile as it is (no extra flags): one allocation per run's chain of segments and
    evaluations, the summary on the submitting machine."""
    from pipeline import Workdir

    work = Workdir(tmp_path / "sweep", _cp_config(every=8192))
    res = subprocess.run(
        work.command(*SLURM_PROFILE), env=slurm_cluster.env, capture_output=True, text=True,
        timeout=600,
    )  # fmt: skip
    assert res.returncode == 0, f"{res.stderr[-4000:]}\n{slurm_cluster.log_tail()}"
    summary = (work.path / "results/summary.csv").read_text()
    assert "cp,CartPole-v1" in summary
    submitted = re.findall(r"has been submitted with SLURM jobid (\d+)", res.stdout + res.stderr)
    assert len(set(submitted)) == 2  # one group job per run: 2 segments + 2 evaluations each
    rows = subprocess.run(
        ["squeue", "-h", "-t", "all", "-o", "%i|%C|%Z"],
        env=slurm_cluster.env, capture_output=True, text=True, check=True,
    ).stdout.splitlines()  # fmt: skip
    cpus = {
        job: n
        for job, n, cwd in (r.split("|", 2) for r in rows)
        if Path(cwd).resolve() == work.path.resolve()
    }
    # A chain runs one job at a time in a one-CPU allocation (chain_slot), so on this 2-CPU
    # node the two runs' chains run side by side, not one after the other.
    assert cpus == dict.fromkeys(set(submitted), "1"), cpus


@pytest.mark.slurm
@pytest.mark.slow
def test_scancel_of_a_running_job_is_retried_and_the_run_finishes(slurm_cluster, tmp_path):
    """sacct reports a scancel as "CANCELLED by <uid>", which the plugin (2.8.0) took for a
    running job forever; the profile's squeue status sees it, and Snakemake retries."""
    from pipeline import Workdir

    work = Workdir(tmp_path / "work", _cp_config(seeds=(1,), segments=1, every=8192))
    # The profile's squeue status, polled every 2 s rather than 10 (snakemake_args).
    proc = subprocess.Popen(
        work.command(*SLURM_PROFILE, *slurm_cluster.snakemake_args), env=slurm_cluster.env,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )  # fmt: skip
    try:
        _wait(lambda: _running(slurm_cluster, work.path), proc, "a running job")
        (job,) = _running(slurm_cluster, work.path)
        subprocess.run(["scancel", job], env=slurm_cluster.env, check=True)
        out, _ = proc.communicate(timeout=600)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 0, f"{out[-4000:]}\n{slurm_cluster.log_tail()}"
    assert _jobs(slurm_cluster, work.path)[job][0] == "CANCELLED"
    assert len(_jobs(slurm_cluster, work.path)) >= 2, "the cancelled job was submitted again"
    assert (work.path / "results/summary.csv").is_file()


@pytest.mark.slurm
@pytest.mark.slow
def test_rerun_after_a_killed_snakemake_cancels_its_orphans_first(slurm_cluster, tmp_path):
    """SIGKILL of Snakemake leaves its sbatch jobs running; the rerun finds them by their
    working directory, cancels them with a message, and only then submits: one writer per
    segment, and the bytes of an uninterrupted run. (Killed in the last of two segments: the
    orphan still has that segment and the evaluations to run.)"""
    from pipeline import Workdir, live_telemetry

    every = 8192
    config = _cp_config(seeds=(1,), segments=2, every=every)
    reference = Workdir(tmp_path / "reference", config)
    reference.run()  # locally, uninterrupted
    work = Workdir(tmp_path / "work", config)
    status = slurm_cluster.snakemake_args  # squeue polled every 2 s rather than 10
    proc = subprocess.Popen(
        work.command(*SLURM_PROFILE, *status), env=slurm_cluster.env,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    run_dir = work.path / "runs/cp/CartPole-v1/seed1"
    _wait(lambda: live_telemetry(run_dir, 2 * every), proc, "segment 2 to train on the cluster")
    os.kill(proc.pid, signal.SIGKILL)  # Snakemake only: its sbatch job goes on
    proc.wait()
    orphans = _running(slurm_cluster, work.path)
    assert orphans, "the killed run left no running job: the test proves nothing"

    done = work.run(*SLURM_PROFILE, *status, env={"SLURM_CONF": slurm_cluster.env["SLURM_CONF"]})
    out = done.stdout + done.stderr
    assert "cancelling them before resubmitting" in out and orphans[0] in out
    assert all(_jobs(slurm_cluster, work.path)[j][0] == "CANCELLED" for j in orphans)
    assert work.checkpoints() == reference.checkpoints()


def test_a_job_step_never_clears_the_runs_locks(tmp_path):
    """A SLURM job step re-parses the Snakefile (--mode remote): it must leave Snakemake's
    locks alone, which only the main process of a user-started run may clear."""
    from conftest import tiny_config
    from pipeline import Workdir

    work = Workdir(tmp_path / "work", tiny_config())
    lock = work.path / ".snakemake/locks/0.input.lock"
    lock.parent.mkdir(parents=True)
    lock.write_text("held by the live main process on another node")
    step = work.run("--mode", "remote", "-n", "--nolock")
    assert lock.exists(), step.stdout + step.stderr
    work.run("-n")  # a user's own run: no rlpipe run holds the directory, so it is stale
    assert not lock.exists()
