"""The disk guard of training jobs (durable.min_free_disk_mb), without a remote."""

from __future__ import annotations

import pytest

from conftest import TINY_PPO
from pipeline import Workdir

pytestmark = pytest.mark.slow

RUN = "runs/cp/CartPole-v1/seed{seed}"


def cp_config(total=512, every=512) -> dict:
    return {
        "experiments": {
            "cp": {
                "algo": "ppo",
                "envs": ["CartPole-v1"],
                "seeds": [1],
                "total_steps": total,
                "checkpoint_every": every,
                "hparams": dict(TINY_PPO),
            }
        },
        "evaluation": {"episodes": 2, "max_episode_steps": 200},
        "summary": {"bootstrap_samples": 200},
    }


def test_disk_guard_refuses_segment(tmp_path):
    """Below the free-disk margin the job fails with a clear error (and is retried)."""
    config = {**cp_config(total=512, every=512), "durable": {"min_free_disk_mb": 10**9}}
    work = Workdir(tmp_path / "work", config)
    proc = work.run(f"{RUN.format(seed=1)}/ckpt/step_0000000512.pt", check=False)
    assert proc.returncode != 0
    log = next((work.path / "logs/ppo_segment").rglob("*.log")).read_text()
    assert "disk guard: only" in log and "durable.min_free_disk_mb" in log
    assert not list(work.path.rglob("*.pt"))
