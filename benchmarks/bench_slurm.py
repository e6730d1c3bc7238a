"""The demo under SLURM against the demo run locally, on the same machine.

Run (root, apt; installs and starts the tests' single-node SLURM cluster, then stops it):
    .venv/bin/python benchmarks/bench_slurm.py   (writes benchmarks/out/slurm.json)

Both runs start in an empty directory with the embedded demo config: locally with
`snakemake --cores 2`, and with `snakemake --profile profiles/slurm` as a cluster user types it
(the profile's status checks, groups and settings; the one extra flag keeps the group jobs'
logs, which changes no timing). Wall time is the whole command. Goal: SLURM <= 1.5x local.

Where the SLURM time goes, from the group jobs' own logs: an allocation's time (its
Snakemake's start to its last line) against the `benchmark:` seconds of the jobs it ran. The
difference, per job, is what running a job inside a group allocation costs: the jobstep
executor starts every job as its own `srun python -m snakemake` (a new interpreter, Snakemake's
imports, the Snakefile parsed again), one after another.
"""

from __future__ import annotations

import csv
import datetime
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "benchmarks/out"
SNAKEMAKE = str(Path(sys.executable).parent / "snakemake")
sys.path.insert(0, str(REPO / "tests"))

from services.slurm import SlurmCluster, ensure_installed  # noqa: E402

STAMP = re.compile(r"^\[(\w{3} \w{3} +\d+ [\d:]+ \d{4})\]$")
DATE = re.compile(r"^\s*Date: (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)$")


def allocations(work: Path) -> dict:
    """Allocation seconds of the group jobs (their SLURM logs) against the benchmark seconds
    of the jobs they ran, and the cost per job of running inside an allocation."""
    alloc_s, jobs = 0.0, 0
    for log in (work / ".snakemake/slurm_logs").glob("group_*/*.log"):
        times = []
        for line in log.read_text().splitlines():
            if m := DATE.match(line):
                times.append(datetime.datetime.strptime(m[1], "%Y-%m-%d %H:%M:%S"))
            elif m := STAMP.match(line):
                times.append(datetime.datetime.strptime(m[1], "%a %b %d %H:%M:%S %Y"))
            elif line.startswith("rule "):  # the group's Snakemake starting one of its jobs
                jobs += 1
        alloc_s += (max(times) - min(times)).total_seconds()
    job_s = 0.0  # training, evaluation and recording (in its teacher's allocation)
    for tsv in [
        *(work / "runs").rglob("benchmark/*.tsv"),
        *(work / "results/benchmarks/record_replays").glob("*.tsv"),
    ]:
        with open(tsv, newline="") as fh:
            job_s += float(next(csv.DictReader(fh, delimiter="\t"))["s"])
    return {
        "allocation_s": alloc_s,
        "job_s": round(job_s, 2),
        "jobs": jobs,
        "per_job_s": round((alloc_s - job_s) / jobs, 2) if jobs else None,
    }


def timed_demo(*args: str, env: dict | None = None, log_as: str | None = None) -> tuple:
    """(wall time, allocations) of the demo in an empty directory; ``log_as`` keeps
    Snakemake's log there (benchmarks/out/), which shows where the time went."""
    with tempfile.TemporaryDirectory(dir="/tmp") as tmp:
        work = Path(tmp)
        (work / "config").mkdir()
        shutil.copy(REPO / "config/config.yaml", work / "config/config.yaml")
        work.chmod(0o755)
        cmd = [SNAKEMAKE, "-s", str(REPO / "Snakefile"), "-d", str(work), *args]
        start = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
        wall = time.perf_counter() - start
        if log_as:
            OUT.mkdir(parents=True, exist_ok=True)
            (OUT / log_as).write_text(proc.stderr)
        if proc.returncode:
            raise SystemExit(f"{' '.join(args)} failed:\n{proc.stderr[-4000:]}")
        return wall, allocations(work)


def main() -> None:
    local, _ = timed_demo("--cores", "2", log_as="local-demo.log")
    print(f"local: {local:.1f} s", flush=True)
    ensure_installed(accounting=False)
    cluster = SlurmCluster()
    cluster.start()
    try:
        slurm, inside = timed_demo(
            "--profile",
            str(REPO / "profiles/slurm"),
            "--slurm-keep-successful-logs",
            env=cluster.env,
            log_as="slurm-demo.log",
        )
    finally:
        cluster.stop()
        shutil.rmtree(cluster.base, ignore_errors=True)
    result = {"local_s": local, "slurm_s": slurm, "ratio": slurm / local, "groups": inside}
    print(json.dumps(result), flush=True)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "slurm.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
