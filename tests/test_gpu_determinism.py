"""On a CUDA GPU, through the path jobs run (Snakemake, a GPU slot with its memory share, the
warm worker's spares): a run resumed segment by segment is bit-identical to the same run with
every job in a cold process of its own.

Skipped where torch sees no GPU (CI, and this project's CPU machines); `make gpu-check` runs it
on a GPU. The CPU path is covered by the pipeline and worker tests.
"""

from __future__ import annotations

import json
import sys

import pytest
import torch

from rlpipe.warm import worker

from conftest import TINY_PPO
from pipeline import Workdir

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU here")


def config() -> dict:
    return {
        "experiments": {
            "gpu": {
                "algo": "ppo",
                "envs": ["CartPole-v1", "Pong-v5"],
                "seeds": [1],
                "total_steps": 3 * 512,
                "checkpoint_every": 512,
                "hparams": {**TINY_PPO, "num_envs": 8},
                "resources": {"gpu": 1},
            }
        },
        "evaluation": {"episodes": 1, "max_episode_steps": 300},
        "summary": {"bootstrap_samples": 100},
        "gpus": {"jobs_per_gpu": 2},
    }


class GpuWorkdir(Workdir):
    """As a GPU image runs Snakemake: ``python3 -m snakemake`` (it may have no console
    script), with the greedy scheduler (no PuLP solver binaries there)."""

    def command(self, *args: str) -> list[str]:
        cmd = super().command(*args, "--scheduler", "greedy")
        return [sys.executable, "-m", "snakemake", *cmd[1:]]


def test_gpu_segments_are_bit_identical_warm_and_cold(tmp_path):
    """Every segment a new process (a resume); the warm worker's spares and cold processes
    give the same bytes, and the checkpoints carry the CUDA RNG state."""
    warm = GpuWorkdir(tmp_path / "warm", config())
    cold = GpuWorkdir(tmp_path / "cold", config())
    warm.run()
    cold.run(env={worker.ENV_OFF: "0"})
    log = worker.socket_path(warm.path).with_suffix(".log").read_text()
    assert "warm on cuda" in log, log  # GPU jobs ran in spares warmed up on the GPU
    assert len(warm.checkpoints()) == 6 and warm.checkpoints() == cold.checkpoints()
    for ckpt in warm.path.rglob("ckpt/step_*.pt"):
        assert "cuda" in torch.load(ckpt, weights_only=True)["rng"], ckpt
    for tel in warm.path.rglob("telemetry/step_*.jsonl"):
        first = json.loads(tel.read_text().splitlines()[0])
        assert first["cuda_visible_devices"] not in (None, ""), tel  # a slot's GPU
