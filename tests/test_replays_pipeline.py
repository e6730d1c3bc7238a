"""Replays through the workflow against a real rclone WebDAV server on loopback:
record -> publish -> fetch -> behaviour cloning -> PPO fine-tuned from BC."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from rlpipe.replays.format import write_episode
from rlpipe.storage import manifest as mf

from conftest import load_test_config
from pipeline import Workdir

pytestmark = pytest.mark.slow


def loop_config(remote: str) -> dict:
    config = load_test_config("bc-chain")
    config["datasets"]["expert"]["remote"] = remote
    return config


def _files_containing(root, needles):
    hits = []
    for path in root.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            hits += [(str(path), n) for n in needles if n.encode() in data]
    return hits


def test_record_publish_fetch_clone_finetune(rclone_server, tmp_path):
    work = Workdir(tmp_path / "work", loop_config("TESTREMOTE:datasets/expert"))
    work.run()

    summary = pd.read_csv(work.path / "results/summary.csv")
    assert sorted(summary["exp"]) == ["bc", "bc-ppo", "cp"]
    published = rclone_server.root / "datasets/expert"
    assert sorted(p.name for p in published.iterdir()) == [
        "MANIFEST.json",
        "episode_00000.npz",
        "episode_00001.npz",
        "episode_00002.npz",
    ]
    assert (work.path / "data/replays/expert/MANIFEST.json").exists()
    secrets = [rclone_server.password, rclone_server.obscured]
    assert _files_containing(work.path, secrets) == []

    # The warm start is a DAG edge: new BC weights make the fine-tuned run stale.
    config = loop_config("TESTREMOTE:datasets/expert")
    config["experiments"]["bc"]["hparams"]["learning_rate"] = 3e-4
    work.write_config(config)
    stale = {w.get("exp") for rule, w in work.planned_jobs() if rule != "summarize"}
    assert stale == {"bc", "bc-ppo"}


def test_external_dataset_refetched_when_remote_changes(rclone_server, tmp_path):
    remote_dir = rclone_server.root / "ext"
    obs = np.zeros((3, 4), np.float32)
    for i in range(2):
        write_episode(remote_dir / f"ep{i}.npz", obs, [0, 1], [1, 1], [False, True],
                      [False, False], env_id="CartPole-v1", n_actions=2)  # fmt: skip
    config = loop_config("TESTREMOTE:ext")
    del config["datasets"]["expert"]["record"]
    del config["experiments"]["bc-ppo"]
    config["datasets"]["expert"]["require_manifest"] = False  # a publisher without MANIFEST.json
    work = Workdir(tmp_path / "work", config)
    work.run("data/replays/expert/MANIFEST.json")
    assert "Nothing to be done" in work.run("-n", "data/replays/expert/MANIFEST.json").stdout

    write_episode(remote_dir / "ep9.npz", obs, [1, 1], [1, 1], [False, True], [False, False],
                  env_id="CartPole-v1", n_actions=2)  # fmt: skip
    rclone_server.changed()
    jobs = work.planned_jobs("data/replays/expert/MANIFEST.json")
    assert [rule for rule, _ in jobs] == ["fetch_replays"]

    work.run("data/replays/expert/MANIFEST.json")
    rclone_server.stop()
    offline = work.run("-n", "data/replays/expert/MANIFEST.json")
    assert "remote could not be checked" in offline.stderr
    assert "Nothing to be done" in offline.stdout


def test_behaviour_cloning_is_byte_identical_across_processes(tmp_path):
    """Same config, same bytes: two BC segments in fresh processes (each with its own
    unseeded global NumPy state) write identical checkpoints."""
    import subprocess
    import sys

    from pipeline import REPO, sha256

    rng = np.random.default_rng(0)
    for i in range(2):
        t = 20
        write_episode(
            tmp_path / "data" / f"episode_{i:05d}.npz",
            rng.normal(size=(t + 1, 4)).astype(np.float32),
            rng.integers(0, 2, t),
            np.ones(t),
            np.r_[np.zeros(t - 1, bool), True],
            np.zeros(t, bool),
            env_id="CartPole-v1",
            n_actions=2,
        )
    data = tmp_path / "data"
    files = [mf.file_entry(data, rel) for rel in mf.dataset_files(data)]
    mf.write(data / mf.MANIFEST_NAME, mf.build("expert", str(data), files, None))
    code = (
        "import sys; from rlpipe.algos.bc.train import train_segment; "
        "from rlpipe.runtree.span import Segment; "
        "from rlpipe.algos.bc.params import BCParams; "
        "train_segment(Segment('CartPole-v1', 1, 0, 20), BCParams(batch_size=8, "
        "learning_rate=1e-3, log_every_steps=10), sys.argv[1], sys.argv[2], "
        f"dataset_dir={str(tmp_path / 'data')!r})"
    )
    env = {"PYTHONPATH": str(REPO / "src"), "PATH": "/usr/bin:/bin"}
    for name in ("a", "b"):  # torch.save names zip members after the file: same name
        out = [str(tmp_path / name / "step.pt"), str(tmp_path / name / "step.jsonl")]
        subprocess.run([sys.executable, "-c", code, *out], check=True, env=env)
    assert sha256(tmp_path / "a/step.pt") == sha256(tmp_path / "b/step.pt")
