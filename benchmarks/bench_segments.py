"""What segments cost: one run trained as 1 segment vs 10, and evaluation vs training time.

Run: .venv/bin/python benchmarks/bench_segments.py   (writes benchmarks/out/segments.json)

1. Pong-v5 with CleanRL's Atari hyper-parameters, 40,960 env steps, through Snakemake
   (--cores 1, the final checkpoint as target: training jobs only), as 1 segment and as 10,
   with the warm worker (the default) and without it (RLPIPE_WORKER=0). Goal: 10 segments
   take <= 1.05x the wall time of 1.
2. The demo's PPO CartPole (two segments and their evaluations): each evaluation job's wall
   time against its segment's training job (Snakemake's benchmark files). Goal: <= 10%.
Wall times are of the whole `snakemake` command, start-up and DAG included.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml
from bench_vs_cleanrl import HPARAMS as CLEANRL_PONG  # CleanRL's Atari defaults

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "benchmarks/out"
SNAKEMAKE = str(Path(sys.executable).parent / "snakemake")
DEMO_CARTPOLE = yaml.safe_load((REPO / "config/config.yaml").read_text())["experiments"][
    "ppo-cartpole"
]


def snakemake(workdir: Path, config: dict, targets: list[str], env: dict) -> float:
    """Wall seconds of one `snakemake` command in ``workdir`` with ``config``."""
    (workdir / "config").mkdir(parents=True, exist_ok=True)
    (workdir / "config/config.yaml").write_text(yaml.safe_dump(config))
    cmd = [SNAKEMAKE, "-s", str(REPO / "Snakefile"), "-d", str(workdir), *targets]
    cmd += ["--cores", "1"]
    start = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, env={**os.environ, **env})
    return time.perf_counter() - start


def pong_run(segments: int, worker: bool) -> float:
    total = 40_960
    config = {
        "experiments": {
            "pong": {
                "algo": "ppo",
                "envs": ["Pong-v5"],
                "seeds": [1],
                "total_steps": total,
                "checkpoint_every": total // segments,
                "hparams": {**CLEANRL_PONG, "lr_anneal_steps": total},
            }
        }
    }
    target = f"runs/pong/Pong-v5/seed1/ckpt/step_{total:010d}.pt"
    env = {} if worker else {"RLPIPE_WORKER": "0"}
    with tempfile.TemporaryDirectory() as tmp:
        return snakemake(Path(tmp), config, [target], env)


def eval_vs_train() -> dict:
    spec = {**DEMO_CARTPOLE, "seeds": [1], "total_steps": 51_200}
    spec["hparams"] = {**spec["hparams"], "lr_anneal_steps": 102_400}
    config = {"experiments": {"ppo-cartpole": spec}}
    run = "runs/ppo-cartpole/CartPole-v1/seed1"
    steps = (25_600, 51_200)
    targets = [f"{run}/eval/step_{s:010d}.json" for s in steps]
    with tempfile.TemporaryDirectory() as tmp:
        snakemake(Path(tmp), config, targets, {})
        seconds = {
            kind: [_bench_s(Path(tmp, run, f"benchmark/{kind}_step_{s:010d}.tsv")) for s in steps]
            for kind in ("train", "eval")
        }
    ratios = [e / t for e, t in zip(seconds["eval"], seconds["train"], strict=True)]
    return {**{f"{k}_s": v for k, v in seconds.items()}, "eval_over_train": ratios}


def _bench_s(path: Path) -> float:
    with open(path, newline="") as fh:
        return float(next(csv.DictReader(fh, delimiter="\t"))["s"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=2, help="runs per variant (median)")
    repeats = parser.parse_args().repeats
    results = {}
    for worker in (True, False):
        one = statistics.median(pong_run(1, worker) for _ in range(repeats))
        ten = statistics.median(pong_run(10, worker) for _ in range(repeats))
        key = "worker" if worker else "no_worker"
        results[f"pong_40960_{key}"] = {
            "wall_1_segment_s": one,
            "wall_10_segments_s": ten,
            "ratio": ten / one,
            "per_extra_segment_s": (ten - one) / 9,
        }
        print(key, json.dumps(results[f"pong_40960_{key}"]), flush=True)
    results["demo_cartpole_eval"] = eval_vs_train()
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "segments.json").write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
