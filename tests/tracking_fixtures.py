"""Readers the tracking tests share: TensorBoard's and wandb's own, no network."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

WANDB = str(Path(sys.executable).parent / "wandb")


def tb_scalars(tb_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar series of one TensorBoard run directory, as TensorBoard loads it."""
    from tensorboard.backend.event_processing import event_accumulator as ea

    acc = ea.EventAccumulator(str(tb_dir), size_guidance={ea.SCALARS: 0})  # 0: keep all
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def wandb_records(wandb_file: Path, env: dict) -> list[dict]:
    """The records of one .wandb transaction log, read by wandb's own reader (leet inspect)."""
    proc = subprocess.run(
        [WANDB, "leet", "inspect", "--json", str(wandb_file)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    return [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]


def wandb_offline_runs(run_dir: Path, env: dict) -> list[tuple[str, list[dict]]]:
    """(W&B run id, history rows) per offline run file of one rlpipe run, in segment order."""
    out = []
    for path in sorted(run_dir.glob("wandb/step_*/offline-run-*/run-*.wandb")):
        records = wandb_records(path, env)
        run = next(r["run"] for r in records if r["type"] == "run")
        rows = [r["history"]["item"] for r in records if r["type"] == "history"]
        out.append((run["run_id"], rows))
    return out


def isolated_home(tmp_path: Path) -> dict:
    """Environment that keeps wandb's per-user files (cache, config, data) under tmp_path."""
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    return {
        "HOME": str(home),
        "WANDB_CACHE_DIR": str(home / "cache"),
        "WANDB_CONFIG_DIR": str(home / "config"),
        "WANDB_DATA_DIR": str(home / "data"),
        "PATH": os.environ["PATH"],
    }
