"""PPO throughput vs raw EnvPool, and the pipeline's per-segment overhead.

Run: .venv/bin/python benchmarks/bench_ppo.py   (writes benchmarks/out/ppo.json)

1. Raw EnvPool env-steps/s with random actions (same env, num_envs, 1 thread).
2. PPO env-steps/s of one in-process training segment (default hparams of the demo config).
3. Wall time of one CartPole run trained as 1 segment vs 10 segments through Snakemake
   (--cores 1, training jobs only), and the start-up cost of a bare job process; the
   overhead beyond process start-up is (T10 - T1 - 9 * startup) / T1.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from rlpipe.algos import hparams
from rlpipe.algos.ppo.params import PPOParams
from rlpipe.algos.ppo.train import train_segment
from rlpipe.runtree.span import Segment

from envpool_baseline import raw_envpool_sps

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "benchmarks/out"
SNAKEMAKE = str(Path(sys.executable).parent / "snakemake")


def ppo_sps(env_id: str, steps: int, overrides: dict) -> float:
    hp = hparams.typed(PPOParams, overrides, steps)
    with tempfile.TemporaryDirectory() as tmp:
        result = train_segment(
            Segment(env_id, 1, 0, steps), hp, f"{tmp}/c.pt", f"{tmp}/t.jsonl", threads=1
        )
    return result["sps"]


def process_startup_s() -> float:
    # What every segment job pays before its first step: interpreter, torch, envpool, the
    # environment, and the first optimiser (whose constructor imports torch._dynamo, ~2.5 s).
    code = (
        "import snakemake.script, torch; from rlpipe.algos.ppo import train;"
        "from rlpipe.envs import make_vec_env;"
        "envs = make_vec_env('CartPole-v1', 8, 0); envs.reset();"
        "torch.optim.Adam(train.build_agent('CartPole-v1', envs).parameters())"
    )
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True)
    return time.perf_counter() - start


def pipeline_wall_s(total: int, every: int) -> float:
    config = {
        "experiments": {
            "cp": {
                "algo": "ppo",
                "envs": ["CartPole-v1"],
                "seeds": [1],
                "total_steps": total,
                "checkpoint_every": every,
                "hparams": {"lr_anneal_steps": total},
            }
        }
    }
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "config").mkdir()
        (Path(tmp) / "config/config.yaml").write_text(yaml.safe_dump(config))
        target = f"runs/cp/CartPole-v1/seed1/ckpt/step_{total:010d}.pt"
        cmd = [SNAKEMAKE, "-s", str(REPO / "Snakefile"), "-d", tmp, target, "--cores", "1"]
        start = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        return time.perf_counter() - start


def main() -> None:
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    results = {
        "raw_envpool_sps": {
            "CartPole-v1": raw_envpool_sps("CartPole-v1", 8, 200_000),
            "Pong-v5": raw_envpool_sps("Pong-v5", 8, 8_000),
        },
        "ppo_sps": {
            "CartPole-v1": ppo_sps("CartPole-v1", 51_200, {}),
            "Pong-v5": ppo_sps("Pong-v5", 2_048, {"clip_coef": 0.1}),
        },
    }
    startup = min(process_startup_s() for _ in range(3))
    one = pipeline_wall_s(102_400, 102_400)
    ten = pipeline_wall_s(102_400, 10_240)
    results["segments"] = {
        "total_steps": 102_400,
        "wall_1_segment_s": one,
        "wall_10_segments_s": ten,
        "job_startup_s": startup,
        "overhead_per_segment_s": (ten - one) / 9,
        "overhead_beyond_startup_pct": 100 * (ten - one - 9 * startup) / one,
    }
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "ppo.json").write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
