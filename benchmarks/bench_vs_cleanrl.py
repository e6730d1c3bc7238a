"""rlpipe's PPO against CleanRL's ppo_atari_envpool.py, side by side on this machine.

Run: .venv/bin/python benchmarks/bench_vs_cleanrl.py --cleanrl PATH
     (writes benchmarks/out/cleanrl.json and cleanrl.md)

PATH is a CleanRL checkout (or bare git repository): the script is not on PyPI (the `cleanrl`
package stops at 0.4.8, before it), so the bench takes it from there, unchanged, and runs it
in its own virtualenv (benchmarks/out/cleanrl-venv: torch, EnvPool, gym 0.26, tyro,
tensorboard). EnvPool 1.x speaks the gymnasium API; cleanrl_shim/sitecustomize.py adapts it
from outside the file. Both sides: Pong-v5, CleanRL's Atari hyper-parameters, the same
env-step budget, the same threads (torch's and EnvPool's), OMP_WAIT_POLICY=PASSIVE, CPU.
Throughput is each program's own figure (env steps / seconds since its environments were
made); learning is the mean episodic return of the episodes finished in the second half of
the budget, per seed. rlpipe runs twice: with `env_pools: 1` (the default: CleanRL's
synchronous loop, the same bytes as before the lever existed) and with `env_pools: 2` (one half
of the environments steps while the policy acts for the other; issue 25).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "benchmarks/out"
VENV = OUT / "cleanrl-venv"
SHIM = REPO / "benchmarks/cleanrl_shim"
PINS = ["torch==2.13.0", "envpool==1.2.5", "gym==0.26.2", "tyro==1.0.17", "tensorboard==2.21.0"]
SCRIPT = "cleanrl/ppo_atari_envpool.py"
HPARAMS = {  # CleanRL's defaults for ppo_atari_envpool.py
    "num_envs": 8,
    "num_steps": 128,
    "num_minibatches": 4,
    "update_epochs": 4,
    "clip_coef": 0.1,
    "learning_rate": 2.5e-4,
    "ent_coef": 0.01,
    "vf_coef": 0.5,
    "gamma": 0.99,
    "gae_lambda": 0.95,
    "max_grad_norm": 0.5,
}
RLPIPE_RUN = """
import json, sys, tempfile
from rlpipe.algos import hparams
from rlpipe.algos.ppo.params import PPOParams
from rlpipe.algos.ppo.train import train_segment
from rlpipe.runtree.span import Segment
from rlpipe.runtree.telemetry import read_jsonl
steps, seed, threads, hp = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
hp = hparams.typed(PPOParams, {**json.loads(hp), "lr_anneal_steps": steps}, steps)
with tempfile.TemporaryDirectory() as tmp:
    result = train_segment(Segment("Pong-v5", seed, 0, steps), hp, f"{tmp}/c.pt",
                           f"{tmp}/t.jsonl", threads=threads)
    records = read_jsonl(f"{tmp}/t.jsonl")
print(json.dumps({"sps": result["sps"], "records": records}))
"""


def reference_script(cleanrl: Path) -> tuple[Path, str]:
    """CleanRL's script (from a checkout or a bare repository) and its commit."""
    git = ["git", f"--git-dir={cleanrl / '.git' if (cleanrl / '.git').exists() else cleanrl}"]
    commit = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True)
    text = subprocess.run([*git, "show", f"HEAD:{SCRIPT}"], capture_output=True, text=True)
    if text.returncode != 0:
        raise SystemExit(f"{cleanrl}: no {SCRIPT} at HEAD ({text.stderr.strip()})")
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / "ppo_atari_envpool.py"
    path.write_text(text.stdout)
    return path, commit.stdout.strip()


def ensure_venv() -> Path:
    python = VENV / "bin/python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", *PINS], check=True)
    return python


def thread_env(threads: int) -> dict:
    env = {k: str(threads) for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    return {**os.environ, **env, "OMP_WAIT_POLICY": "PASSIVE"}


def run_cleanrl(python: Path, script: Path, steps: int, seed: int, threads: int) -> dict:
    env = {**thread_env(threads), "PYTHONPATH": str(SHIM), "BENCH_ENVPOOL_THREADS": str(threads)}
    args = [str(python), str(script), "--env-id", "Pong-v5", "--total-timesteps", str(steps)]
    args += ["--seed", str(seed), "--no-cuda"]
    with tempfile.TemporaryDirectory() as tmp:
        out = subprocess.run(args, cwd=tmp, env=env, capture_output=True, text=True, check=True)
    sps = [int(x) for x in re.findall(r"^SPS: (\d+)", out.stdout, re.M)]
    episodes = [
        (int(step), float(ret))
        for step, ret in re.findall(r"global_step=(\d+), episodic_return=\[?(-?[\d.]+)", out.stdout)
    ]
    return {"sps": sps[-1], "late_return": _late_mean(episodes, steps)}


def run_rlpipe(steps: int, seed: int, threads: int, env_pools: int) -> dict:
    env = {**thread_env(threads), "PYTHONPATH": str(REPO / "src")}
    args = [sys.executable, "-c", RLPIPE_RUN, str(steps), str(seed), str(threads)]
    hp = json.dumps({**HPARAMS, "env_pools": env_pools})
    out = subprocess.run([*args, hp], env=env, capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(out.stderr[-3000:])
    result = json.loads(out.stdout.splitlines()[-1])
    episodes, seen = [], 0
    for record in result["records"]:  # per update: mean return of the episodes it finished
        count = record["charts/episodes"] - seen
        seen = record["charts/episodes"]
        if count and "charts/episodic_return" in record:
            episodes += [(record["global_step"], record["charts/episodic_return"])] * count
    return {"sps": result["sps"], "late_return": _late_mean(episodes, steps)}


def _late_mean(episodes: list[tuple[int, float]], steps: int) -> float | None:
    late = [ret for step, ret in episodes if step > steps // 2]
    return statistics.fmean(late) if late else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cleanrl", type=Path, default=os.environ.get("RLPIPE_CLEANRL"))
    parser.add_argument("--steps", type=int, default=40_960)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    if args.cleanrl is None:
        raise SystemExit("pass --cleanrl PATH (a CleanRL checkout) or set RLPIPE_CLEANRL")
    script, commit = reference_script(args.cleanrl)
    python = ensure_venv()
    impls = {
        "cleanrl": lambda s, t: run_cleanrl(python, script, args.steps, s, t),
        "rlpipe": lambda s, t: run_rlpipe(args.steps, s, t, env_pools=1),
        "rlpipe-pools2": lambda s, t: run_rlpipe(args.steps, s, t, env_pools=2),
    }
    rows = []
    for threads in args.threads:
        for seed in args.seeds:
            for impl, fn in impls.items():  # in turns: the VM's drift hits all alike
                rows.append({"impl": impl, "threads": threads, "seed": seed, **fn(seed, threads)})
                print(json.dumps(rows[-1]), flush=True)
    table = [
        "| threads | CleanRL SPS | rlpipe SPS (env_pools 1, default) | ratio | rlpipe SPS "
        "(env_pools 2) | ratio | late return CleanRL | rlpipe | rlpipe env_pools 2 |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    summary = {}
    for threads in args.threads:
        mine = {i: [r for r in rows if r["impl"] == i and r["threads"] == threads] for i in impls}
        sps = {i: statistics.median(r["sps"] for r in mine[i]) for i in mine}
        ret = {i: [r["late_return"] for r in mine[i]] for i in mine}
        ratio = {i: sps[i] / sps["cleanrl"] for i in ("rlpipe", "rlpipe-pools2")}
        summary[threads] = {"sps": sps, "ratio": ratio["rlpipe"], "ratios": ratio, "returns": ret}
        table.append(
            f"| {threads} | {sps['cleanrl']:.0f} | {sps['rlpipe']:.0f} | "
            f"{ratio['rlpipe']:.2f}x | {sps['rlpipe-pools2']:.0f} | {ratio['rlpipe-pools2']:.2f}x"
            f" | {ret['cleanrl']} | {ret['rlpipe']} | {ret['rlpipe-pools2']} |"
        )
    result = {"cleanrl_commit": commit, "steps": args.steps, "rows": rows, "summary": summary}
    (OUT / "cleanrl.json").write_text(json.dumps(result, indent=2))
    (OUT / "cleanrl.md").write_text("\n".join(table) + "\n")
    print("\n".join(table))


if __name__ == "__main__":
    main()
