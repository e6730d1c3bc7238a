"""Actor-critic networks: an MLP for vector observations, the Nature CNN for Atari."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.distributions.categorical import Categorical

from rlpipe.envs import is_image_env


def layer_init(layer: nn.Module, std: float = np.sqrt(2), bias: float = 0.0) -> nn.Module:
    nn.init.orthogonal_(layer.weight, std)
    nn.init.constant_(layer.bias, bias)
    return layer


def network_kind(env_id: str) -> str:
    """The network an env's observations get: "cnn" for frames (Atari), else "mlp"."""
    return "cnn" if is_image_env(env_id) else "mlp"


class ActorCritic(nn.Module):
    """Shared-interface actor-critic; ``kind`` is "mlp" or "cnn".

    The CNN keeps its convolution weights and inputs in the channels-last memory layout: the
    same arithmetic (floats may round differently), ~1.3x faster on CPU
    (``benchmarks/bench_ppo_levers.py``). A state dict loads either way.
    """

    def __init__(self, obs_shape: tuple[int, ...], n_actions: int, kind: str):
        super().__init__()
        self.kind = kind
        if kind == "cnn":  # (B, 4, 84, 84) uint8 -> (B, 512)
            self.trunk = nn.Sequential(
                layer_init(nn.Conv2d(obs_shape[0], 32, 8, stride=4)),
                nn.ReLU(),
                layer_init(nn.Conv2d(32, 64, 4, stride=2)),
                nn.ReLU(),
                layer_init(nn.Conv2d(64, 64, 3, stride=1)),
                nn.ReLU(),
                nn.Flatten(),
                layer_init(nn.Linear(64 * 7 * 7, 512)),
                nn.ReLU(),
            )
            self.actor = layer_init(nn.Linear(512, n_actions), std=0.01)
            self.critic = layer_init(nn.Linear(512, 1), std=1)
            self.trunk.to(memory_format=torch.channels_last)
        else:  # (B, D) float -> separate tanh MLPs, as in CleanRL's ppo.py
            d = int(np.prod(obs_shape))
            self.trunk = nn.Identity()
            self.actor = nn.Sequential(
                layer_init(nn.Linear(d, 64)),
                nn.Tanh(),
                layer_init(nn.Linear(64, 64)),
                nn.Tanh(),
                layer_init(nn.Linear(64, n_actions), std=0.01),
            )
            self.critic = nn.Sequential(
                layer_init(nn.Linear(d, 64)),
                nn.Tanh(),
                layer_init(nn.Linear(64, 64)),
                nn.Tanh(),
                layer_init(nn.Linear(64, 1), std=1.0),
            )

    def features(self, obs: torch.Tensor) -> torch.Tensor:
        if self.kind == "cnn":
            # channels-last while still uint8: one float pass instead of two
            pixels = obs.contiguous(memory_format=torch.channels_last).float().div_(255.0)
            return self.trunk(pixels)
        return obs.float()

    def get_value(self, obs: torch.Tensor) -> torch.Tensor:
        return self.critic(self.features(obs)).squeeze(-1)

    def logits(self, obs: torch.Tensor) -> torch.Tensor:
        return self.actor(self.features(obs))

    def get_action_and_value(self, obs: torch.Tensor, action: torch.Tensor | None = None):
        hidden = self.features(obs)
        dist = Categorical(logits=self.actor(hidden))
        if action is None:
            action = dist.sample()
        return action, dist.log_prob(action), dist.entropy(), self.critic(hidden).squeeze(-1)
