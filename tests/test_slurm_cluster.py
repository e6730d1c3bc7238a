"""Snakemake's SLURM executor against a real single-node cluster (profiles/slurm)."""

import re
import shutil
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


@pytest.mark.slurm
@pytest.mark.slow
def test_rlpipe_sweep_through_slurm_to_the_summary(slurm_cluster, tmp_path):
    from conftest import tiny_config
    from pipeline import Workdir

    config = tiny_config()
    del config["experiments"]["pong"]
    config["experiments"]["cp"]["total_steps"] = 1024
    config["experiments"]["cp"]["resources"] = {"mem_mb": 500, "runtime": 10}
    work = Workdir(tmp_path / "sweep", config)
    cmd = work.command("--profile", str(REPO / "profiles" / "slurm"), "--jobs", "4",
                       *slurm_cluster.snakemake_args)  # fmt: skip
    res = subprocess.run(cmd, env=slurm_cluster.env, capture_output=True, text=True, timeout=500)
    assert res.returncode == 0, f"{res.stderr[-4000:]}\n{slurm_cluster.log_tail()}"
    summary = (work.path / "results/summary.csv").read_text()
    assert "cp,CartPole-v1" in summary
    submitted = re.findall(r"has been submitted with SLURM jobid (\d+)", res.stdout + res.stderr)
    assert len(set(submitted)) == 2 * 2 + 2 * 2 + 1  # segments, evals and summary: all sbatch
