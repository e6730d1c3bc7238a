"""Levers for PPO throughput on Atari, measured one at a time on the Nature CNN.

Run: .venv/bin/python benchmarks/bench_ppo_levers.py   (writes benchmarks/out/ppo_levers.json)

CleanRL's Atari shapes: the rollout calls the policy on 8 observations (4x84x84 uint8) per
env step; the update runs forward + backward on minibatches of 256. Each lever is timed on
the same network and inputs (median of repeats), against the baseline before this lever
(`torch.no_grad`, the network channels-last as rlpipe.algos.nets builds it, the default Adam,
float32, eager). A lever that changes the numbers (bf16) would be a user-visible
hyper-parameter, off by default; the others are learning-neutral. Then, under
"components", the two parts of an update that the fused-Adam and channels-last-storage
levers change, old and new timed in turns (single variants above drift with the VM).
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "benchmarks/out"
sys.path.insert(0, str(REPO / "src"))

from rlpipe.algos.nets import ActorCritic  # noqa: E402

OBS = (4, 84, 84)
N_ACTIONS = 6


def timed(fn, repeats: int) -> float:
    fn()  # warm-up (allocations, compilation)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def rollout_step(agent, obs, mode):
    with mode():
        agent.get_action_and_value(obs)


def update_step(agent, optimizer, obs, actions):
    _, logprob, entropy, value = agent.get_action_and_value(obs, actions)
    loss = -(logprob.mean() + 0.01 * entropy.mean()) + value.pow(2).mean()
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()


def measure(threads: int) -> dict:
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    small = torch.randint(0, 255, (8, *OBS), dtype=torch.uint8)
    batch = torch.randint(0, 255, (256, *OBS), dtype=torch.uint8)
    actions = torch.randint(0, N_ACTIONS, (256,))
    out = {}
    variants = {
        "baseline": {},
        "inference_mode": {"mode": torch.inference_mode},
        "fused Adam (now the default)": {"fused": True},
        "bf16_autocast (changes numbers)": {"bf16": True},
        "torch.compile": {"compile": True},
    }
    for name, v in variants.items():
        agent = ActorCritic(OBS, N_ACTIONS, "cnn")
        obs_small, obs_batch = small, batch
        fused = bool(v.get("fused"))
        optimizer = torch.optim.Adam(agent.parameters(), lr=2.5e-4, eps=1e-5, fused=fused)
        net = torch.compile(agent) if v.get("compile") else agent
        mode = v.get("mode", torch.no_grad)
        bf16 = bool(v.get("bf16"))

        def roll(net=net, obs=obs_small, mode=mode, bf16=bf16):
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                rollout_step(net, obs, mode)

        def upd(net=net, opt=optimizer, obs=obs_batch, bf16=bf16):
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                update_step(net, opt, obs, actions)

        try:
            t_roll, t_upd = timed(roll, 50), timed(upd, 10)
        except Exception as exc:  # noqa: BLE001 - a lever that does not run here is reported
            out[name] = {"error": f"{type(exc).__name__}: {exc}"[:300]}
            continue
        # One PPO iteration of CleanRL's Atari defaults: 128 rollout calls, 4 epochs x 4
        # minibatches of 256. Network time only (no env stepping).
        iteration = 128 * t_roll + 16 * t_upd
        out[name] = {"rollout_ms": t_roll * 1e3, "update_ms": t_upd * 1e3}
        out[name]["net_s_per_iter"] = iteration
    base = out["baseline"]["net_s_per_iter"]
    for v in out.values():
        if "net_s_per_iter" in v:
            v["speedup"] = round(base / v["net_s_per_iter"], 3)
    return out


def components(threads: int, rounds: int = 4) -> dict:
    """The two parts of an update that this stop's levers change, each old and new timed in
    turns (median ms over ``rounds`` rounds of repeats): the Adam step of the Nature CNN,
    and gathering a minibatch of 256 observations from the rollout storage and making it the
    CNN's input (NCHW storage, then reordered; or channels-last storage, rlpipe's now)."""
    torch.set_num_threads(threads)
    agent = ActorCritic(OBS, N_ACTIONS, "cnn")
    for p in agent.parameters():
        p.grad = torch.randn_like(p)
    adams = {
        f"adam_step_ms ({name})": torch.optim.Adam(agent.parameters(), lr=2.5e-4, fused=fused)
        for name, fused in (("default", False), ("fused", True))
    }
    frames = torch.randint(0, 255, (128, 8, *OBS), dtype=torch.uint8)
    c, h, w = OBS
    last = torch.empty((128, 8, h, w, c), dtype=torch.uint8).permute(0, 1, 4, 2, 3)
    last.copy_(frames)
    index = torch.randperm(128 * 8)[:256]

    def to_input(x):
        return x.contiguous(memory_format=torch.channels_last).float().div_(255.0)

    tasks = {name: opt.step for name, opt in adams.items()}
    for name, store in (("NCHW storage", frames), ("channels-last storage", last)):
        flat = store.reshape(-1, *OBS)
        tasks[f"minibatch_input_ms ({name})"] = lambda flat=flat: to_input(flat[index])
    times: dict[str, list[float]] = {name: [] for name in tasks}
    for _ in range(rounds):
        for name, fn in tasks.items():
            times[name].append(timed(fn, 30) * 1e3)
    return {name: statistics.median(values) for name, values in times.items()}


def main() -> None:
    results = {f"threads={t}": measure(t) | {"components": components(t)} for t in (1, 2)}
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "ppo_levers.json").write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
