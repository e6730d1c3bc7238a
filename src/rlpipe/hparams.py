"""Default hyper-parameters per algorithm (torch-free: read while the DAG is built)."""

from __future__ import annotations

PPO = {
    "num_envs": 8,  # parallel EnvPool environments
    "num_steps": 128,  # rollout length per environment
    "learning_rate": 2.5e-4,
    "anneal_lr": True,  # linear decay to 0 at lr_anneal_steps
    "lr_anneal_steps": None,  # None -> the experiment's total_steps
    "gamma": 0.99,
    "gae_lambda": 0.95,
    "num_minibatches": 4,
    "update_epochs": 4,
    "norm_adv": True,
    "clip_coef": 0.2,
    "clip_vloss": True,
    "ent_coef": 0.01,
    "vf_coef": 0.5,
    "max_grad_norm": 0.5,
    "target_kl": None,
    "log_every_updates": 1,
}

BC = {
    "batch_size": 256,  # (observation, action) pairs per gradient step
    "learning_rate": 1e-3,
    "log_every_steps": 100,
}

QLEARN = {
    "num_envs": 16,  # parallel EnvPool environments
    "learning_rate": 0.1,  # alpha of the tabular TD update
    "gamma": 0.99,
    "epsilon_start": 1.0,  # linear epsilon-greedy schedule over env steps
    "epsilon_end": 0.01,
    "epsilon_decay_steps": 200_000,
    "indexer": "uniform",  # uniform | adaptive (percentile edges from the first states)
    "bins": [1, 6, 12, 12],  # per observation dimension, or one int for all
    "low": None,  # uniform: per-dim lower bounds; None -> observation space
    "high": None,
    "inf_clip": 3.0,  # uniform: infinite observation-space bounds become -/+ inf_clip
    "adaptive_fit_states": 10_000,  # adaptive: states collected (random actions) before fitting
    "replay_size": 0,  # prioritised replay capacity; 0 = off
    "replay_alpha": 0.6,
    "replay_batch": 32,
    "replay_updates_per_step": 1,  # replay batches per vector step
    "log_every_steps": 20_000,
}

DEFAULTS: dict[str, dict] = {"ppo": PPO, "qlearn": QLEARN, "bc": BC}


def resolve(algo: str, overrides: dict | None, total_steps: int) -> dict:
    """Defaults for ``algo`` updated with ``overrides``; unknown keys raise KeyError."""
    base = dict(DEFAULTS[algo])
    unknown = sorted(set(overrides or {}) - set(base))
    if unknown:
        raise KeyError(f"unknown {algo} hparams {unknown}; allowed: {sorted(base)}")
    base.update(overrides or {})
    if "lr_anneal_steps" in base and base["lr_anneal_steps"] is None:
        base["lr_anneal_steps"] = total_steps
    return base


def steps_per_update(algo: str, hp: dict) -> int:
    """Environment steps one algorithm iteration consumes; segments must be a multiple."""
    if algo == "ppo":
        return hp["num_envs"] * hp["num_steps"]
    if algo == "bc":
        return 1  # a BC step is one gradient update
    return hp.get("num_envs", 1)
