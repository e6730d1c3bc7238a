"""rlpipe.algos.nets: the Nature CNN runs channels-last and loads a state dict of either layout."""

from __future__ import annotations

import torch

from rlpipe.algos.nets import ActorCritic


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


def test_ppo_rollout_storage_is_channels_last_and_minibatches_need_no_reorder():
    """PPO stores image observations channels-last (uint8), so a minibatch gathered from the
    flattened rollout is already in the CNN's layout; vectors stay float32."""
    from rlpipe.algos.ppo.train import _obs_buffer

    agent = ActorCritic((4, 84, 84), 6, "cnn")
    buf = _obs_buffer(agent, (16, 8), (4, 84, 84), torch.device("cpu"))
    assert buf.shape == (16, 8, 4, 84, 84) and buf.dtype == torch.uint8
    obs = torch.randint(0, 256, (8, 4, 84, 84), dtype=torch.uint8)  # EnvPool's (B, C, H, W)
    buf[3] = obs
    flat = buf.reshape(-1, 4, 84, 84)
    assert flat.data_ptr() == buf.data_ptr(), "flattening is a view, not a copy"
    minibatch = flat[torch.tensor([24, 25, 0])]
    assert minibatch.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(minibatch[:2], obs[:2]) and not minibatch[2].any()

    mlp = ActorCritic((4,), 2, "mlp")
    vectors = _obs_buffer(mlp, (16, 8), (4,), torch.device("cpu"))
    assert vectors.shape == (16, 8, 4) and vectors.dtype == torch.float32


def test_ppo_uses_fused_adam_on_cpu(tmp_path):
    """One short Pong segment: its optimizer state names the fused implementation (the
    benchmarked lever, docs/benchmarks.md) and resuming from it keeps it."""
    from rlpipe.algos.hparams import typed
    from rlpipe.algos.ppo.params import PPOParams
    from rlpipe.algos.ppo.train import train_segment
    from rlpipe.runtree.span import Segment

    hp = typed(
        PPOParams, {"num_envs": 2, "num_steps": 16, "num_minibatches": 1, "update_epochs": 1}, 64
    )
    first, second = tmp_path / "a.pt", tmp_path / "b.pt"
    train_segment(Segment("Pong-v5", 1, 0, 32), hp, str(first), str(first) + ".jsonl")
    train_segment(
        Segment("Pong-v5", 1, 32, 64), hp, str(second), str(second) + ".jsonl", prev_ckpt=str(first)
    )
    for path in (first, second):
        groups = torch.load(path, weights_only=True)["optimizer"]["param_groups"]
        assert groups[0]["fused"] is True
