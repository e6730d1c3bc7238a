"""Behaviour cloning's hyper-parameters: one typed field per config key, with its
description and schema (torch-free: the registry reads it while the DAG is built)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from rlpipe.algos.hparams import COUNT, POSITIVE, param


@dataclass
class BCParams:
    """Behaviour cloning (rlpipe.algos.bc.train); one step is one gradient update."""

    algo: ClassVar[str] = "bc"

    batch_size: int = param(256, "(observation, action) pairs per gradient step", COUNT)
    learning_rate: float = param(1e-3, "Adam step size", POSITIVE)
    log_every_steps: int = param(100, "gradient steps between telemetry lines", COUNT)


# The metrics its trainer writes beyond rlpipe.runtree.telemetry's common ones (name: what it is).
METRICS = {
    "charts/accuracy": "share of the minibatch's actions the policy predicts (BC)",
    "charts/samples_per_second": "dataset samples per second (BC)",
    "charts/dataset_size": "transitions in the replay dataset (BC)",
    "losses/bc_loss": "BC cross-entropy loss",
}
