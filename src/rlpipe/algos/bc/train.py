"""Behaviour cloning: cross-entropy on recorded actions, trained in segments like PPO.

A BC "step" is one gradient update on a minibatch of ``batch_size`` (observation, action)
pairs. The checkpoint has the PPO checkpoint's layout (same ActorCritic), so
``init_from: <bc experiment>`` starts PPO from the cloned policy.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import optim

from rlpipe.algos.bc.params import METRICS, BCParams
from rlpipe.algos.nets import ActorCritic, network_kind
from rlpipe.replays.format import read_episode
from rlpipe.runtime.device import torch_device
from rlpipe.runtime.gpu_slots import placement
from rlpipe.runtime.seeding import derive_seed
from rlpipe.runtime.watchdog import run_watched
from rlpipe.runtree import checkpoint
from rlpipe.runtree.integrity import damaged
from rlpipe.runtree.span import Segment
from rlpipe.runtree.telemetry import TelemetryWriter
from rlpipe.storage import manifest as mf


def load_dataset(dataset_dir: str | Path, env_id: str) -> tuple[np.ndarray, np.ndarray, int]:
    """All (observation, action) pairs of the episodes the dataset's manifest lists.

    The files are checked against MANIFEST.json (size, sha256) first, and must be for env_id.
    """
    root = Path(dataset_dir)
    manifest_path = root / mf.MANIFEST_NAME
    try:
        manifest = mf.load(manifest_path)
        mf.verify(manifest, root)
    except mf.ManifestError as err:
        raise damaged(manifest_path, f"dataset check failed ({err})", "dataset") from None
    files = [root / entry["path"] for entry in manifest["files"] if entry["path"].endswith(".npz")]
    if not files:
        raise ValueError(f"{manifest_path}: lists no episode files (*.npz)")
    obs, actions, n_actions = [], [], None
    for path in files:
        episode = read_episode(path)
        if episode.meta["env_id"] != env_id:
            raise ValueError(f"{path}: recorded on {episode.meta['env_id']}, not {env_id}")
        obs.append(episode.observations[:-1])  # (T, *obs_shape): drop the final observation
        actions.append(episode.actions)  # (T,)
        n_actions = int(episode.meta["n_actions"])
    return np.concatenate(obs), np.concatenate(actions).astype(np.int64), n_actions


def train_segment(
    segment: Segment,
    hp: BCParams,
    ckpt_out: str,
    telemetry_out: str,
    prev_ckpt: str | None = None,
    threads: int = 1,
    heartbeat=None,
    *,
    dataset_dir: str,
) -> dict:
    """Gradient steps (start_step, end_step] of behaviour cloning on the replays in
    ``dataset_dir`` (BC starts from no other experiment: it has no ``warm_start``)."""
    torch.set_num_threads(threads)
    device = torch_device()
    obs_np, act_np, n_actions = load_dataset(dataset_dir, segment.env_id)
    obs_all = torch.as_tensor(obs_np, device=device)  # (N, *obs_shape)
    act_all = torch.as_tensor(act_np, device=device)  # (N,)
    prev = checkpoint.load(prev_ckpt, expect_algo="bc") if prev_ckpt else None
    torch.manual_seed(derive_seed(segment.seed, 0))
    np.random.seed(derive_seed(segment.seed, 1))  # saved in the checkpoint: seed it too
    kind = network_kind(segment.env_id)
    agent = ActorCritic(tuple(obs_np.shape[1:]), n_actions, kind).to(device)
    optimizer = optim.Adam(agent.parameters(), lr=hp.learning_rate)
    if prev is not None:
        agent.load_state_dict(prev["model"])
        optimizer.load_state_dict(prev["optimizer"])
        checkpoint.set_rng_state(prev["rng"])

    t0 = time.time()
    with TelemetryWriter(
        telemetry_out, METRICS, env_id=segment.env_id, seed=segment.seed, **placement()
    ) as tel:
        for step in range(segment.start_step + 1, segment.end_step + 1):
            idx = torch.randint(0, len(act_all), (hp.batch_size,)).to(device)  # CPU RNG
            logits = agent.logits(obs_all[idx])  # (B, n_actions)
            loss = F.cross_entropy(logits, act_all[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if heartbeat:
                heartbeat()
            if step % hp.log_every_steps == 0 or step == segment.end_step:
                elapsed = time.time() - t0
                accuracy = (logits.argmax(1) == act_all[idx]).float().mean()
                tel.log(
                    step,
                    **{
                        "losses/bc_loss": loss.item(),
                        "charts/accuracy": accuracy.item(),
                        "charts/SPS": (step - segment.start_step) / elapsed,
                        "charts/samples_per_second": (step - segment.start_step)
                        * hp.batch_size
                        / elapsed,
                        "charts/dataset_size": len(act_all),
                    },
                )
        checkpoint.save(
            ckpt_out,
            algo="bc",
            env_id=segment.env_id,
            seed=segment.seed,
            global_step=segment.end_step,
            episodes=0,
            hparams=dataclasses.asdict(hp),
            network=kind,
            obs_shape=tuple(obs_np.shape[1:]),
            n_actions=n_actions,
            model={k: v.cpu() for k, v in agent.state_dict().items()},
            optimizer=checkpoint.to_cpu(optimizer.state_dict()),
        )
    return {
        "global_step": segment.end_step,
        "sps": (segment.end_step - segment.start_step) / (time.time() - t0),
    }


def segment_job(
    env: str,
    seed: int,
    start: int,
    end: int,
    hparams: dict,
    ckpt: str,
    telemetry: str,
    dataset: str,
    prev: str | None = None,
    threads: int = 1,
    stall_timeout: float = 600,
) -> None:
    """One BC segment as a job (plain-data arguments, see ``rlpipe.warm.worker``)."""
    segment = Segment(env, seed, start, end)
    run_watched(
        lambda beat: train_segment(
            segment, BCParams(**hparams), ckpt, telemetry, prev, threads, beat, dataset_dir=dataset
        ),
        stall_timeout, ckpt,
    )  # fmt: skip
