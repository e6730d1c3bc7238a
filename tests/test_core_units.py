"""Unit tests of the small building blocks: atomic writes, telemetry, locks, checkpoints."""

from __future__ import annotations

import fcntl
import importlib
import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from rlpipe.envs import EpisodeTracker
from rlpipe.runtime.seeding import derive_seed
from rlpipe.runtree import atomic, telemetry
from rlpipe.runtree.telemetry import TelemetryWriter, read_jsonl
from rlpipe.smk import locks


def test_atomic_write_replaces_whole_file_or_nothing(tmp_path):
    target = tmp_path / "out" / "x.json"
    atomic.write_json(target, {"a": 1})
    with pytest.raises(RuntimeError):
        with atomic.atomic_path(target) as tmp:
            tmp.write_text("partial")
            raise RuntimeError("killed")
    assert json.loads(target.read_text()) == {"a": 1}
    assert [p.name for p in target.parent.iterdir()] == ["x.json"]
    host = socket.gethostname()
    stale = target.with_name(f".x.json{atomic.TEMP_MARK}{host}-{2**22 + 12345}")  # no such PID
    stale.write_text("left by a SIGKILL")
    live = target.with_name(f".x.json{atomic.TEMP_MARK}{host}-{os.getpid()}")
    live.write_text("another attempt, still writing")
    elsewhere = target.with_name(f".x.json{atomic.TEMP_MARK}other-node-1")
    elsewhere.write_text("written on another SLURM node: its writer may be alive there")
    assert atomic.remove_stale_temps(target) == 1 and not stale.exists()
    assert live.exists() and elsewhere.exists()


def test_telemetry_live_then_final(tmp_path):
    path = tmp_path / "t" / "step_1.jsonl"
    tel = TelemetryWriter(path, env_id="CartPole-v1")
    tel.log(8, **{"charts/SPS": np.float32(10.5)})
    assert not path.exists() and len(read_jsonl(tel.live)) == 1
    tel.close()
    (rec,) = read_jsonl(path)
    assert rec["global_step"] == 8 and rec["charts/SPS"] == 10.5 and rec["env_id"] == "CartPole-v1"
    path.write_text('{"global_step": 1}\n{oops\n')
    with pytest.raises(ValueError, match=r"step_1.jsonl:2"):
        read_jsonl(path)


def test_telemetry_metrics_are_declared_and_records_carry_their_run(tmp_path):
    """A metric name not in rlpipe.runtree.telemetry.METRICS fails the write (a typo would start a
    new series); a file in the run tree names its run in every record."""
    path = tmp_path / "runs/ppo-x/Pong-v5/seed3/telemetry/step_0000000512.jsonl"
    with TelemetryWriter(path, env_id="Pong-v5") as tel:
        with pytest.raises(
            ValueError,
            match=r"charts/SPSS not declared in rlpipe.runtree.telemetry.METRICS or the algorithm",
        ):
            tel.log(512, **{"charts/SPSS": 1.0})
        tel.log(512, **{telemetry.SPS: 1.0, "perf/cpu_s": 2.0})
    (rec,) = read_jsonl(path)
    assert rec["run"] == "ppo-x/Pong-v5/seed3" and rec[telemetry.SPS] == 1.0
    assert all(isinstance(doc, str) and doc for doc in telemetry.METRICS.values())


def test_every_metric_a_trainer_names_is_declared():
    """The names each trainer spells (including variants the demo does not run, e.g.
    Q-learning's replay) are in METRICS or its algorithm's params.METRICS: read from their
    source, not from one run."""
    from rlpipe.algos import ALGOS

    src = Path(__file__).resolve().parents[1] / "src"
    pattern = r'"((?:charts|losses|perf|gpu|replay)/\w+)"'
    common = set(re.findall(pattern, (src / "rlpipe/runtree/telemetry.py").read_text()))
    seen = set()
    for spec in ALGOS.values():
        trainer = src / (spec.job_module.replace(".", "/") + ".py")
        named = set(re.findall(pattern, trainer.read_text()))
        own = importlib.import_module(spec.hparams.__module__).METRICS  # its params.METRICS
        assert named - telemetry.METRICS.keys() - own.keys() == set(), trainer
        seen |= named
    assert {"charts/SPS", "replay/size", "losses/bc_loss"} <= seen | common


def test_derive_seed_is_stable_and_distinct():
    assert derive_seed(1, 512) == derive_seed(1, 512)
    assert len({derive_seed(s, k) for s in range(5) for k in (0, 512, 1024)}) == 15
    assert 0 <= derive_seed(3, 7) < 2**31


def test_stale_locks_removed_only_when_no_run_holds_the_directory(tmp_path):
    smk = tmp_path / ".snakemake"
    (smk / "locks").mkdir(parents=True)
    (smk / "locks" / "0.input.lock").write_text("x")
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl,os,sys,time;"
            f"fd=os.open({str(smk / 'rlpipe-session.lock')!r}, os.O_RDWR|os.O_CREAT);"
            "fcntl.flock(fd, fcntl.LOCK_EX); print('held', flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline().strip() == "held"
    code = (
        f"from rlpipe.smk import locks; held = locks.hold_directory({str(smk)!r}); "
        f"print(held, held and locks.clear_stale_locks({str(smk)!r}))"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1] / "src")}
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert run.stdout.split() == ["False", "False"] and (smk / "locks" / "0.input.lock").exists()
    holder.kill()
    holder.wait()
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert run.stdout.split() == ["True", "True"] and not (smk / "locks").exists()
    assert "stale Snakemake locks" in run.stderr
    fd = Path(smk / "rlpipe-session.lock").open()
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # freed when the process exited
    assert locks is not None


def test_episode_tracker_counts_whole_games_across_lives():
    tracker = EpisodeTracker(2)
    false = np.array([False, False])
    info = {"reward": np.array([1.0, 2.0]), "lives": np.array([2, 1])}
    assert tracker.update(info, np.array([1.0, 1.0]), false, false) == []
    # env 1 loses its last life: a whole game ends; env 0 loses a life: the game goes on.
    info = {"reward": np.array([0.0, 5.0]), "lives": np.array([1, 0])}
    done = tracker.update(info, np.array([0.0, 1.0]), np.array([True, True]), false)
    assert done == [(1, 7.0, 2)]
    assert tracker.returns.tolist() == [1.0, 0.0]


def test_checkpoint_load_names_a_truncated_file(tmp_path):
    torch = pytest.importorskip("torch")
    from rlpipe.runtree import checkpoint

    path = tmp_path / "step_1.pt"
    checkpoint.save(path, algo="ppo", model={"w": torch.ones(3)})
    assert checkpoint.load(path, expect_algo="ppo")["model"]["w"].sum() == 3
    with pytest.raises(ValueError, match="holds a ppo policy, expected bc"):
        checkpoint.load(path, expect_algo="bc")
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(ValueError, match=r"step_1.pt: not a readable rlpipe checkpoint"):
        checkpoint.load(path)


def test_summary_code_does_not_import_torch():
    code = (
        "import sys, rlpipe.results.tables, rlpipe.sweep.runs, rlpipe.sweep.config; "
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
