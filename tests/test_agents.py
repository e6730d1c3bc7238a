"""rlpipe.agents: the Nature CNN runs channels-last and loads a state dict of either layout."""

from __future__ import annotations

import torch

from rlpipe.agents import ActorCritic


def test_cnn_runs_channels_last_and_loads_any_layout():
    torch.manual_seed(0)
    agent = ActorCritic((4, 84, 84), 6, "cnn")
    convs = [m.weight for m in agent.trunk if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 3
    assert all(w.is_contiguous(memory_format=torch.channels_last) for w in convs)

    nchw = {k: v.contiguous() for k, v in agent.state_dict().items()}  # an older checkpoint
    other = ActorCritic((4, 84, 84), 6, "cnn")
    other.load_state_dict(nchw)
    assert other.trunk[0].weight.is_contiguous(memory_format=torch.channels_last)
    obs = torch.randint(0, 256, (3, 4, 84, 84), dtype=torch.uint8)  # (B, C, H, W) uint8
    with torch.no_grad():
        assert torch.equal(agent.logits(obs), other.logits(obs))
        assert agent.get_value(obs).shape == (3,)
