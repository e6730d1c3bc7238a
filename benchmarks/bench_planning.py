"""Planning time: rlpipe's `snakemake -n` against stock Snakemake on the same DAG shape.

Run: .venv/bin/python benchmarks/bench_planning.py   (writes benchmarks/out/planning.json)

The config is Atari-10 (config/atari10.yaml). The floor is a Snakefile of trivial rules
(`touch`) with the same files and edges: segments chained per run, an evaluation per
segment, one summary over every evaluation, telemetry and training benchmark file (a
segment's third output here, its `benchmark:` file in rlpipe). Both are timed (median of 7,
the two in turns; `snakemake -n --cores 1 -q all`) in an empty directory (the plan of a new
sweep) and in a finished one (the no-op rerun: every output present, recorded with
`snakemake --touch`).
Goal: rlpipe <= 1.2x the floor in both.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "benchmarks/out"
SNAKEMAKE = str(Path(sys.executable).parent / "snakemake")
REPEATS = 7
sys.path.insert(0, str(REPO / "src"))

from rlpipe.sweep.runs import expand_runs  # noqa: E402

STOCK = """
RUNS = {runs!r}

def prev(wildcards):
    steps = RUNS[f"{{wildcards.exp}}/{{wildcards.env}}/{{wildcards.seed}}"]
    i = steps.index(int(wildcards.step))
    if i == 0:
        return []
    d = f"runs/{{wildcards.exp}}/{{wildcards.env}}/seed{{wildcards.seed}}"
    return [f"{{d}}/ckpt/step_{{steps[i - 1]:010d}}.pt"]

def every(kind):
    name = {{"eval": "step_{{s:010d}}.json", "telemetry": "step_{{s:010d}}.jsonl",
            "benchmark": "train_step_{{s:010d}}.tsv"}}[kind]
    out = []
    for key, steps in RUNS.items():
        exp, env, seed = key.split("/")
        d = f"runs/{{exp}}/{{env}}/seed{{seed}}/{{kind}}"
        out += [f"{{d}}/" + name.format(s=s) for s in steps]
    return out

rule all:
    input: every("eval"), every("telemetry"), "results/summary.csv"

rule segment:
    input: prev
    output: "runs/{{exp}}/{{env}}/seed{{seed}}/ckpt/step_{{step}}.pt",
            "runs/{{exp}}/{{env}}/seed{{seed}}/telemetry/step_{{step}}.jsonl",
            "runs/{{exp}}/{{env}}/seed{{seed}}/benchmark/train_step_{{step}}.tsv"
    shell: "touch {{output}}"

rule evaluate:
    input: "runs/{{exp}}/{{env}}/seed{{seed}}/ckpt/step_{{step}}.pt"
    output: "runs/{{exp}}/{{env}}/seed{{seed}}/eval/step_{{step}}.json"
    shell: "touch {{output}}"

rule summarize:
    input: every("eval"), every("telemetry"), every("benchmark")
    output: "results/summary.csv"
    shell: "touch {{output}}"
"""


def outputs(config: dict) -> list[str]:
    """Every file a finished Atari-10 run tree has (rlpipe's layout)."""
    files = []
    for run in expand_runs(config).values():
        for step in run.steps:
            kinds = ("ckpt", "telemetry", "eval", "train_benchmark", "eval_benchmark")
            files += [run.path(kind, step) for kind in kinds]
    files += [f"results/{n}" for n in ("summary.csv", "summary.md", "runs.csv", "curves.png")]
    files += [f"results/{n}" for n in ("aggregate.csv", "performance_profile.png")]
    return files + ["results/job_benchmarks.csv", "results/job_benchmarks.png"]


def timed(cmd: list[str], cwd: Path) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, check=True, capture_output=True)
    return time.perf_counter() - start


def plan_times(stock: tuple[Path, Path], mine: tuple[Path, Path]) -> dict:
    """Median dry-run seconds of each (Snakefile, directory), the two run in turns so that
    the VM's drifting speed weighs on both alike."""
    times: dict[str, list[float]] = {"stock_s": [], "rlpipe_s": []}
    for _ in range(REPEATS):
        for key, (snakefile, workdir) in (("stock_s", stock), ("rlpipe_s", mine)):
            cmd = [SNAKEMAKE, "-s", str(snakefile), "-d", str(workdir), "-n", "--cores", "1"]
            times[key].append(timed([*cmd, "-q", "all"], workdir))
    return {key: statistics.median(values) for key, values in times.items()}


def finish(snakefile: Path, workdir: Path, files: list[str]) -> None:
    """Create every output and record it as done (`snakemake --touch`)."""
    for rel in files:
        (workdir / rel).parent.mkdir(parents=True, exist_ok=True)
        (workdir / rel).touch()
    cmd = [SNAKEMAKE, "-s", str(snakefile), "-d", str(workdir), "--touch", "--cores", "1"]
    subprocess.run(cmd, check=True, capture_output=True)


def main() -> None:
    config = yaml.safe_load((REPO / "config/atari10.yaml").read_text())
    runs = {f"{r.exp}/{r.env}/{r.seed}": r.steps for r in expand_runs(config).values()}
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        stock, mine = Path(tmp, "stock"), Path(tmp, "rlpipe")
        for d in (stock, mine):
            (d / "config").mkdir(parents=True)
            (d / "config/config.yaml").write_text(yaml.safe_dump(config))
        snakefile = Path(tmp, "Snakefile.stock")
        snakefile.write_text(STOCK.format(runs=runs))
        results["new_sweep"] = plan_times((snakefile, stock), (REPO / "Snakefile", mine))
        print(json.dumps(results), flush=True)
        finish(snakefile, stock, outputs(config))
        finish(REPO / "Snakefile", mine, outputs(config))
        results["no_op_rerun"] = plan_times((snakefile, stock), (REPO / "Snakefile", mine))
    for phase in results.values():
        phase["ratio"] = phase["rlpipe_s"] / phase["stock_s"]
    results["jobs"] = sum(len(s) for s in runs.values()) * 2 + 1
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "planning.json").write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
