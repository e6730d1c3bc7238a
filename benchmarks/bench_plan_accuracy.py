"""Does the plan block predict what the run then takes?

Run: .venv/bin/python benchmarks/bench_plan_accuracy.py   (writes benchmarks/out/plan_accuracy.json)

For the demo (config/config.yaml) and a 2-experiment sweep (tests/configs/sweep.yaml), each in
an empty directory on this machine (`--cores 2`):

1. `snakemake -n`: the plan of a fresh clone (built-in SPS defaults and overheads);
2. `snakemake`: the real run, timed (the whole command);
3. `snakemake -n -F`: the plan again, now from the run's own benchmark files.

Compared: planned job-hours with the sum of every job's `benchmark:` file (training and
evaluation in `job_s`, the summary and replays in `other_jobs_s`), and planned wall time with
the run's wall time. Goal: within +-15%.
"""

from __future__ import annotations

import csv
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
CASES = {"demo": REPO / "config/config.yaml", "sweep": REPO / "tests/configs/sweep.yaml"}
TOTAL = re.compile(r"^TOTAL\s+\d+\s+\d+\s+\d+\s+[\d,]+\s+(?P<job_h>[\d.,]+)\s", re.M)
WALL = re.compile(r"\(wall time (?P<wall_h>[\d.,]+) h")


def snakemake(workdir: Path, *args: str) -> tuple[float, str]:
    cmd = [SNAKEMAKE, "-s", str(REPO / "Snakefile"), "-d", str(workdir), "--cores", "2", *args]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return time.perf_counter() - start, proc.stdout


def planned(text: str) -> dict:
    job_h = float(TOTAL.search(text)["job_h"].replace(",", ""))
    wall_h = float(WALL.search(text)["wall_h"].replace(",", ""))
    return {"job_s": job_h * 3600, "wall_s": wall_h * 3600}


def benchmark_seconds(workdir: Path) -> dict:
    """Seconds of the training + evaluation jobs (their benchmark files) and of the others."""
    planned_s = other_s = 0.0
    for path in workdir.rglob("*.tsv"):
        rel = path.relative_to(workdir)
        if "benchmark" not in str(rel):
            continue
        with open(path, newline="") as fh:
            seconds = float(next(csv.DictReader(fh, delimiter="\t"))["s"])
        if rel.parts[0] == "runs":  # runs/EXP/ENV/seedN/benchmark/{train,eval}_step_N.tsv
            planned_s += seconds
        else:
            other_s += seconds
    return {"job_s": planned_s, "other_jobs_s": other_s}


def case(name: str, config: Path) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "config").mkdir()
        shutil.copy(config, work / "config/config.yaml")
        fresh = planned(snakemake(work, "-n")[1])
        wall, _ = snakemake(work)
        actual = {"wall_s": wall, **benchmark_seconds(work)}
        actual["all_jobs_s"] = actual["job_s"] + actual["other_jobs_s"]
        measured = planned(snakemake(work, "-n", "-F")[1])
    ratios = {
        f"{plan}_{what}": round(p[what] / actual[real], 3)
        for plan, p in (("fresh", fresh), ("measured", measured))
        for what, real in (("job_s", "all_jobs_s"), ("wall_s", "wall_s"))
    }
    result = {"fresh_plan": fresh, "actual": actual, "measured_plan": measured, **ratios}
    print(name, json.dumps(result), flush=True)
    return result


def main() -> None:
    results = {name: case(name, path) for name, path in CASES.items()}
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "plan_accuracy.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
