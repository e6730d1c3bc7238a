"""A job's start-up, from its process's start to its first environment step, by the path that
runs it: forked from the warm worker (CPU jobs), a pre-warmed spare (GPU jobs), or a cold
process of its own (RLPIPE_WORKER=0).

Run: .venv/bin/python benchmarks/bench_startup.py   (writes benchmarks/out/startup.json)

The sweep is gpu_check's CPU stand-in (CartPole PPO, 3 seeds x 3 segments) run as a user runs
it (`snakemake --configfile gpu.yaml --profile profiles/local` in a fresh copy); its `gpu`
resource picks the path: 0 forks, 1 (with a slot standing for a GPU) takes spares. Each PPO
segment's telemetry records its start-up (``startup_s``). On a machine without a GPU the spare
path costs what a spare's warm-up leaves over; on a GPU, see `make gpu-check`.
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from gpu_check import OUT, SNAKEMAKE, fresh_copy, machine, run, sweep, telemetry_first_lines  # noqa: E402


def measure(name: str, gpu: int, env: dict, tmp: Path) -> dict:
    cfg = sweep(gpu=False)
    cfg["experiments"]["ppo-atari"]["resources"]["gpu"] = gpu
    pod = fresh_copy(tmp / name, cfg)
    cmd = [*SNAKEMAKE, "--configfile", "gpu.yaml", "--profile", "profiles/local"]
    result = run(cmd, pod, 900, env=env)
    tel = sorted(telemetry_first_lines(pod), key=lambda t: t["time"])
    values = [t["startup_s"] for t in tel]
    return {
        "rc": result["rc"],
        "seconds": result["seconds"],
        "startup_s": values,
        "median_s": statistics.median(values) if values else None,
        "median_after_first_s": statistics.median(values[1:]) if len(values) > 1 else None,
    }


def main() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="rlpipe-bench-startup-"))
    rows = {
        "forked (CPU job)": measure("fork", 0, {}, tmp),
        "spare (GPU job)": measure("spare", 1, {}, tmp),
        "cold process": measure("cold", 0, {"RLPIPE_WORKER": "0"}, tmp),
    }
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "startup.json").write_text(json.dumps({"machine": machine(), "rows": rows}, indent=1))
    print("| path | median start-up s | after the first job | sweep wall s |")
    print("|---|---|---|---|")
    for name, row in rows.items():
        print(f"| {name} | {row['median_s']} | {row['median_after_first_s']} | {row['seconds']} |")


if __name__ == "__main__":
    main()
