"""PPO (clipped objective, GAE) on EnvPool, trained one segment at a time.

Follows CleanRL's ppo.py / ppo_atari_envpool.py: GAE, advantage normalisation, clipped
policy and value losses, entropy bonus, linear LR annealing, global grad-norm clipping.
EnvPool autoresets on the step after a done; that junk transition is masked out of the loss.
The environments may be split into ``env_pools`` EnvPools stepped in turns (send/recv): while
one pool's emulators step, the policy acts for the next pool (docs/benchmarks.md, issue 25).
Each pool is synchronous and seeded apart, so the run is deterministic; with 1 pool (the
default) it is CleanRL's loop, byte for byte the same as before pools existed.
"""

from __future__ import annotations

import dataclasses
import time
from typing import NamedTuple

import numpy as np
import torch
from torch import nn, optim

from rlpipe.algos.nets import ActorCritic, network_kind
from rlpipe.algos.ppo.params import METRICS, PPOParams
from rlpipe.envs import EpisodeTracker, make_env_pools
from rlpipe.runtime.device import torch_device
from rlpipe.runtime.gpu_slots import placement
from rlpipe.runtime.seeding import derive_seed
from rlpipe.runtime.watchdog import run_watched
from rlpipe.runtree import checkpoint
from rlpipe.runtree.span import Segment
from rlpipe.runtree.telemetry import TelemetryWriter, startup


def build_agent(env_id: str, envs) -> ActorCritic:
    return ActorCritic(envs.observation_space.shape, envs.action_space.n, network_kind(env_id))


def train_segment(
    segment: Segment,
    hp: PPOParams,
    ckpt_out: str,
    telemetry_out: str,
    prev_ckpt: str | None = None,
    warm_start: str | None = None,
    threads: int = 1,
    heartbeat=None,
) -> dict:
    """Train PPO from ``segment.start_step`` to ``segment.end_step`` and checkpoint.

    ``prev_ckpt`` continues a run (restores optimiser, RNG, counters); ``warm_start``
    initialises only the policy weights from another experiment (e.g. behaviour cloning).
    """
    torch.set_num_threads(threads)
    device = torch_device()
    num_envs, num_steps = hp.num_envs, hp.num_steps
    batch_size = num_envs * num_steps
    minibatch_size = batch_size // hp.num_minibatches
    num_updates = (segment.end_step - segment.start_step) // batch_size

    # The environments as `env_pools` pools of `pool_size`, stepped in turns: pool k steps
    # while the policy acts for pool k + 1 (with 1 pool, CleanRL's synchronous loop).
    pools = make_env_pools(
        segment.env_id,
        num_envs,
        hp.env_pools,
        derive_seed(segment.seed, segment.start_step),
        threads,
    )
    pool_size = num_envs // len(pools)
    prev = checkpoint.load(prev_ckpt, expect_algo="ppo") if prev_ckpt else None
    if prev is not None and prev["global_step"] != segment.start_step:
        raise ValueError(
            f"{prev_ckpt}: ends at step {prev['global_step']}, "
            f"segment starts at {segment.start_step}"
        )
    torch.manual_seed(derive_seed(segment.seed, 0))  # before building: initial weights
    np.random.seed(derive_seed(segment.seed, 1))
    agent = build_agent(segment.env_id, pools[0])
    if prev is not None:
        agent.load_state_dict(prev["model"])
    elif warm_start:
        agent.load_state_dict(checkpoint.load(warm_start)["model"])
    agent.to(device)
    # Fused Adam: the same update in one kernel per step (about 3x faster on the Nature CNN on
    # a CPU, docs/benchmarks.md); floats may round differently in the last bit. A resumed
    # segment keeps the implementation its checkpoint's optimizer state names.
    fused = device.type in ("cpu", "cuda")
    optimizer = optim.Adam(agent.parameters(), lr=hp.learning_rate, eps=1e-5, fused=fused)
    if prev is not None:
        optimizer.load_state_dict(prev["optimizer"])
        checkpoint.set_rng_state(prev["rng"])
    episodes_total = prev["episodes"] if prev else 0
    segment_episodes = 0

    # Rollout storage: (num_steps, num_envs, ...)
    obs_shape = pools[0].observation_space.shape
    obs_buf = _obs_buffer(agent, (num_steps, num_envs), obs_shape, device)
    actions = torch.zeros((num_steps, num_envs), dtype=torch.long, device=device)
    logprobs = torch.zeros((num_steps, num_envs), device=device)
    rewards = torch.zeros((num_steps, num_envs), device=device)
    dones = torch.zeros((num_steps, num_envs), device=device)
    values = torch.zeros((num_steps, num_envs), device=device)

    trackers = [EpisodeTracker(pool_size) for _ in pools]
    next_obs = [torch.as_tensor(pool.reset()[0], device=device) for pool in pools]
    next_done = [torch.zeros(pool_size, device=device) for _ in pools]

    def receive(k: int, step: int) -> list:
        """Pool k's step result for its actions of rollout step ``step``; episodes ended."""
        obs_np, reward, term, trunc, info = pools[k].recv()
        envs_k = slice(k * pool_size, (k + 1) * pool_size)
        rewards[step, envs_k] = torch.as_tensor(reward, device=device, dtype=torch.float32)
        next_obs[k] = torch.as_tensor(obs_np, device=device)
        next_done[k] = torch.as_tensor(term | trunc, device=device, dtype=torch.float32)
        return trackers[k].update(info, reward, term, trunc)

    global_step = segment.start_step
    t0 = time.time()

    with TelemetryWriter(
        telemetry_out,
        METRICS,
        env_id=segment.env_id,
        seed=segment.seed,
        **placement(),
        **startup(),
    ) as tel:
        for update in range(num_updates):
            lr = hp.learning_rate
            if hp.anneal_lr:
                lr *= max(0.0, 1.0 - global_step / hp.lr_anneal_steps)
            optimizer.param_groups[0]["lr"] = lr

            finished = []
            for step in range(num_steps):
                global_step += num_envs
                for k, pool in enumerate(pools):
                    if step > 0:  # it stepped while the policy acted for the other pools
                        finished += receive(k, step - 1)
                    envs_k = slice(k * pool_size, (k + 1) * pool_size)
                    obs_buf[step, envs_k] = next_obs[k]
                    dones[step, envs_k] = next_done[k]
                    with torch.no_grad():
                        action, logprob, _, value = agent.get_action_and_value(next_obs[k])
                    values[step, envs_k] = value
                    actions[step, envs_k] = action
                    logprobs[step, envs_k] = logprob
                    pool.send(action.cpu().numpy())
                if heartbeat:
                    heartbeat()
            for k in range(len(pools)):
                finished += receive(k, num_steps - 1)

            advantages, returns = _gae(
                agent, torch.cat(next_obs), torch.cat(next_done), rewards, dones, values, hp
            )
            batch = Batch(
                obs=obs_buf.reshape((-1, *obs_shape)),
                logprobs=logprobs.reshape(-1),
                actions=actions.reshape(-1),
                advantages=advantages.reshape(-1),
                returns=returns.reshape(-1),
                values=values.reshape(-1),
                # A step whose observation is terminal is EnvPool's reset step: no transition.
                valid=(1.0 - dones).reshape(-1),
            )
            stats = _update(agent, optimizer, hp, minibatch_size, batch)
            episodes_total += len(finished)
            segment_episodes += len(finished)
            elapsed = time.time() - t0
            if (update + 1) % hp.log_every_updates == 0 or update + 1 == num_updates:
                metrics = {
                    "charts/learning_rate": lr,
                    "charts/SPS": (global_step - segment.start_step) / elapsed,
                    "charts/episodes": episodes_total,
                    "charts/episodes_per_hour": segment_episodes * 3600.0 / elapsed,
                    **stats,
                }
                if finished:
                    metrics["charts/episodic_return"] = float(np.mean([r for _, r, _ in finished]))
                    metrics["charts/episodic_length"] = float(np.mean([n for _, _, n in finished]))
                if device.type == "cuda":
                    metrics["gpu/memory_allocated_mb"] = torch.cuda.max_memory_allocated() / 2**20
                tel.log(global_step, **metrics)

        checkpoint.save(
            ckpt_out,
            algo="ppo",
            env_id=segment.env_id,
            seed=segment.seed,
            global_step=global_step,
            episodes=episodes_total,
            hparams=dataclasses.asdict(hp),
            network=agent.kind,
            obs_shape=tuple(obs_shape),
            n_actions=int(pools[0].action_space.n),
            model={k: v.cpu() for k, v in agent.state_dict().items()},
            optimizer=checkpoint.to_cpu(optimizer.state_dict()),
        )
    for pool in pools:
        pool.close()
    return {"global_step": global_step, "sps": (global_step - segment.start_step) / elapsed}


def segment_job(
    env: str,
    seed: int,
    start: int,
    end: int,
    hparams: dict,
    ckpt: str,
    telemetry: str,
    prev: str | None = None,
    init: str | None = None,
    threads: int = 1,
    stall_timeout: float = 600,
) -> None:
    """One PPO segment as a job (plain-data arguments, see ``rlpipe.warm.worker``); the stall
    watchdog ends it if its loop stops making progress."""
    segment = Segment(env, seed, start, end)
    run_watched(
        lambda beat: train_segment(
            segment, PPOParams(**hparams), ckpt, telemetry, prev, init, threads, beat
        ),
        stall_timeout, ckpt,
    )  # fmt: skip


def _obs_buffer(agent: ActorCritic, lead: tuple, obs_shape: tuple, device) -> torch.Tensor:
    """Zeroed rollout storage of shape (*lead, *obs_shape). Images (C, H, W) are uint8 and
    stored channels-last, the CNN's layout, so a minibatch gathered from them needs no
    reordering (docs/benchmarks.md)."""
    if agent.kind != "cnn":
        return torch.zeros((*lead, *obs_shape), device=device)
    c, h, w = obs_shape
    buf = torch.zeros((*lead, h, w, c), dtype=torch.uint8, device=device)
    return buf.permute(*range(len(lead)), -1, -3, -2)


def _gae(agent, next_obs, next_done, rewards, dones, values, hp):
    """Generalised advantage estimation over the rollout; returns (advantages, returns)."""
    num_steps = rewards.shape[0]
    with torch.no_grad():
        next_value = agent.get_value(next_obs)
        advantages = torch.zeros_like(rewards)
        lastgaelam = 0
        for t in reversed(range(num_steps)):
            if t == num_steps - 1:
                nextnonterminal, nextvalues = 1.0 - next_done, next_value
            else:
                nextnonterminal, nextvalues = 1.0 - dones[t + 1], values[t + 1]
            delta = rewards[t] + hp.gamma * nextvalues * nextnonterminal - values[t]
            lastgaelam = delta + hp.gamma * hp.gae_lambda * nextnonterminal * lastgaelam
            advantages[t] = lastgaelam
    return advantages, advantages + values


def _masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return (x * mask).sum() / mask.sum().clamp(min=1.0)


class Batch(NamedTuple):
    """One rollout flattened to num_steps x num_envs transitions: obs (B, *obs_shape), the
    rest (B,)."""

    obs: torch.Tensor
    logprobs: torch.Tensor
    actions: torch.Tensor
    advantages: torch.Tensor
    returns: torch.Tensor
    values: torch.Tensor
    valid: torch.Tensor  # 1.0 for a transition, 0.0 for EnvPool's reset step


def _update(agent, optimizer, hp: PPOParams, minibatch_size: int, batch: Batch) -> dict:
    """PPO epochs over shuffled minibatches; returns CleanRL-named loss statistics."""
    b_obs, b_logprobs, b_actions = batch.obs, batch.logprobs, batch.actions
    b_adv, b_returns, b_values, valid = batch.advantages, batch.returns, batch.values, batch.valid
    batch_size = b_logprobs.shape[0]
    clipfracs = []
    for _epoch in range(hp.update_epochs):
        order = torch.randperm(batch_size)
        for start in range(0, batch_size, minibatch_size):
            mb = order[start : start + minibatch_size]
            mask = valid[mb]
            _, newlogprob, entropy, newvalue = agent.get_action_and_value(b_obs[mb], b_actions[mb])
            logratio = newlogprob - b_logprobs[mb]
            ratio = logratio.exp()
            with torch.no_grad():
                approx_kl = _masked_mean((ratio - 1) - logratio, mask)
                old_approx_kl = _masked_mean(-logratio, mask)
                clipfracs.append(
                    _masked_mean(((ratio - 1.0).abs() > hp.clip_coef).float(), mask).item()
                )
            mb_adv = b_adv[mb]
            if hp.norm_adv:
                mean = _masked_mean(mb_adv, mask)
                std = _masked_mean((mb_adv - mean) ** 2, mask).sqrt()
                mb_adv = (mb_adv - mean) / (std + 1e-8)
            pg_loss1 = -mb_adv * ratio
            pg_loss2 = -mb_adv * torch.clamp(ratio, 1 - hp.clip_coef, 1 + hp.clip_coef)
            pg_loss = _masked_mean(torch.max(pg_loss1, pg_loss2), mask)
            if hp.clip_vloss:
                v_unclipped = (newvalue - b_returns[mb]) ** 2
                v_clipped = b_values[mb] + torch.clamp(
                    newvalue - b_values[mb], -hp.clip_coef, hp.clip_coef
                )
                v_loss = 0.5 * _masked_mean(
                    torch.max(v_unclipped, (v_clipped - b_returns[mb]) ** 2), mask
                )
            else:
                v_loss = 0.5 * _masked_mean((newvalue - b_returns[mb]) ** 2, mask)
            entropy_loss = _masked_mean(entropy, mask)
            loss = pg_loss - hp.ent_coef * entropy_loss + v_loss * hp.vf_coef
            optimizer.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(agent.parameters(), hp.max_grad_norm)
            optimizer.step()
        if hp.target_kl is not None and approx_kl > hp.target_kl:
            break
    y_pred, y_true = b_values.cpu().numpy(), b_returns.cpu().numpy()
    var_y = np.var(y_true)
    explained_var = np.nan if var_y == 0 else 1 - np.var(y_true - y_pred) / var_y
    return {
        "losses/value_loss": v_loss.item(),
        "losses/policy_loss": pg_loss.item(),
        "losses/entropy": entropy_loss.item(),
        "losses/old_approx_kl": old_approx_kl.item(),
        "losses/approx_kl": approx_kl.item(),
        "losses/clipfrac": float(np.mean(clipfracs)),
        "losses/explained_variance": float(explained_var),
    }
