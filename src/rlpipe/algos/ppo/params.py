"""PPO's hyper-parameters: one typed field per config key, with its description and
schema (torch-free: the registry reads it while the DAG is built)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from rlpipe.algos.hparams import BOOLEAN, COUNT, NON_NEGATIVE, NULL, POSITIVE, UNIT, param


@dataclass
class PPOParams:
    """CleanRL-style PPO (rlpipe.algos.ppo.train)."""

    algo: ClassVar[str] = "ppo"

    num_envs: int = param(8, "parallel EnvPool environments", COUNT)
    num_steps: int = param(128, "rollout length per environment", COUNT)
    env_pools: int = param(
        1,
        "EnvPools the environments are split into, stepped in turns: while one pool steps, "
        "the policy acts for the next (1: all step at once, as CleanRL; 2 is faster only "
        "where a core is free while the network runs, docs/benchmarks.md); divides num_envs",
        COUNT,
    )
    learning_rate: float = param(2.5e-4, "Adam step size", POSITIVE)
    anneal_lr: bool = param(
        True, "linear decay of the learning rate to 0 at lr_anneal_steps", BOOLEAN
    )
    lr_anneal_steps: int | None = param(
        None,
        "env step where the annealed rate reaches 0 (null: the experiment's total_steps)",
        {"anyOf": [COUNT, NULL]},
    )
    gamma: float = param(0.99, "discount factor", UNIT)
    gae_lambda: float = param(0.95, "GAE lambda", UNIT)
    num_minibatches: int = param(4, "minibatches per epoch; divides num_envs x num_steps", COUNT)
    update_epochs: int = param(4, "passes over each rollout", COUNT)
    norm_adv: bool = param(True, "normalise advantages per minibatch", BOOLEAN)
    clip_coef: float = param(0.2, "clipping range of the probability ratio and value", POSITIVE)
    clip_vloss: bool = param(True, "clip the value loss", BOOLEAN)
    ent_coef: float = param(0.01, "entropy bonus coefficient", NON_NEGATIVE)
    vf_coef: float = param(0.5, "value loss coefficient", NON_NEGATIVE)
    max_grad_norm: float = param(0.5, "global gradient-norm clip", POSITIVE)
    target_kl: float | None = param(
        None,
        "stop an update's epochs above this approximate KL (null: never)",
        {"anyOf": [POSITIVE, NULL]},
    )
    log_every_updates: int = param(1, "updates between telemetry lines", COUNT)


def problems(hp: dict, usable, budgets: dict[str, int]):
    """Checks of PPO's hyper-parameters a schema cannot express (rlpipe.sweep.config_checks):
    yields (hparams key, what is wrong and what is expected). ``hp``: resolved values;
    ``usable(*keys)``: the schema found those keys fine; ``budgets``: {budget key: steps}."""
    batch = hp["num_envs"] * hp["num_steps"] if usable("num_envs", "num_steps") else None
    if batch and usable("num_minibatches") and batch % hp["num_minibatches"]:
        divisors = [d for d in range(1, min(batch, 64) + 1) if batch % d == 0]
        yield (
            "num_minibatches",
            f"{hp['num_minibatches']} does not divide the batch of num_envs x num_steps = "
            f"{batch} env steps; expected a divisor of {batch} (e.g. {divisors[-4:]})",
        )
    if usable("num_envs", "env_pools") and hp["num_envs"] % hp["env_pools"]:
        yield (
            "env_pools",
            f"{hp['env_pools']} does not divide num_envs {hp['num_envs']}; expected a "
            f"divisor of {hp['num_envs']} (1 steps all environments at once)",
        )
    anneal = hp["lr_anneal_steps"]
    if usable("anneal_lr", "lr_anneal_steps") and hp["anneal_lr"] and anneal and budgets:
        budget, total = max(budgets.items(), key=lambda item: item[1])
        if anneal < total:
            yield (
                "lr_anneal_steps",
                f"{anneal} is below {budget} {total}: the learning rate would be 0 for "
                f"the last {total - anneal} steps; expected >= {total} (or null: the "
                "run's total_steps)",
            )


# The metrics its trainer writes beyond rlpipe.runtree.telemetry's common ones (name: what it is).
METRICS = {
    "charts/learning_rate": "the optimiser's learning rate at this update (PPO)",
    "losses/value_loss": "PPO value loss",
    "losses/policy_loss": "PPO clipped policy loss",
    "losses/entropy": "PPO policy entropy",
    "losses/old_approx_kl": "PPO KL estimate -log(ratio) (CleanRL's old_approx_kl)",
    "losses/approx_kl": "PPO KL estimate (ratio - 1) - log(ratio)",
    "losses/clipfrac": "share of PPO ratios clipped",
    "losses/explained_variance": "explained variance of the value function on the batch",
}
