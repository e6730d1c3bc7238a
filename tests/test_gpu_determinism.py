"""On a CUDA GPU: a run resumed from its checkpoints is bit-identical to an uninterrupted one.

Skipped where torch sees no GPU (CI, and this project's CPU machines); run it on a lent GPU
(`pytest tests/test_gpu_determinism.py`). The CPU path is covered by the pipeline tests.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from pipeline import REPO, sha256

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU here")

SEGMENT = """
import sys
from rlpipe.ppo import train_segment
from rlpipe.segment import Segment
hp = {"num_envs": 8, "num_steps": 64, "num_minibatches": 2, "update_epochs": 2,
      "lr_anneal_steps": 100000}
from rlpipe.hparams import resolve
start, end, prev, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3] or None, sys.argv[4]
train_segment(Segment(sys.argv[5], 1, start, end), resolve("ppo", hp, 100000), out,
              out + ".jsonl", prev_ckpt=prev)
"""


def _segment(env_id, start, end, prev, out):
    """One segment in a fresh process, as a Snakemake job runs it."""
    env = {"PYTHONPATH": str(REPO / "src"), "PATH": "/usr/bin:/bin"}
    args = [str(start), str(end), prev or "", str(out), env_id]
    subprocess.run([sys.executable, "-c", SEGMENT, *args], check=True, env=env)


@pytest.mark.parametrize("env_id", ["CartPole-v1", "Pong-v5"])
def test_resumed_run_on_gpu_is_bit_identical(tmp_path, env_id):
    """Two chains of segments split at the same steps, each segment in a fresh process (as
    after a kill): identical bytes, CUDA RNG state included."""
    steps = [512, 1024, 1536] if env_id == "CartPole-v1" else [512, 1024]
    prev = None
    for start, end in zip([0, *steps[:-1]], steps, strict=True):
        out = tmp_path / "resumed" / f"step_{end}.pt"
        out.parent.mkdir(exist_ok=True)
        _segment(env_id, start, end, prev, out)
        prev = str(out)
    chained = tmp_path / "chained" / f"step_{steps[-1]}.pt"
    chained.parent.mkdir()
    prev = None
    for start, end in zip([0, *steps[:-1]], steps, strict=True):  # the same split, again
        out = tmp_path / "chained" / f"step_{end}.pt"
        _segment(env_id, start, end, prev, out)
        prev = str(out)
    assert sha256(tmp_path / "resumed" / f"step_{steps[-1]}.pt") == sha256(chained)
    ckpt = torch.load(chained, weights_only=True)
    assert "cuda" in ckpt["rng"], "the CUDA RNG state is saved"
