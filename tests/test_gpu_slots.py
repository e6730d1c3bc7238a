"""Exclusive GPU slots (rlpipe.runtime.gpu_slots): unit tests and real concurrent Snakemake jobs."""

import itertools
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rlpipe.runtime.gpu_slots import ENV_GPUS, acquire_slot

SRC = Path(__file__).resolve().parents[1] / "src"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for var in ("SLURM_JOB_ID", "CUDA_VISIBLE_DEVICES", ENV_GPUS, "RLPIPE_JOBS_PER_GPU"):
        monkeypatch.delenv(var, raising=False)
    for var in ("RLPIPE_GPU_SLOT", "RLPIPE_GPU_SLOT_DIR", "RLPIPE_GPU_MEMORY_FRACTION"):
        monkeypatch.delenv(var, raising=False)


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(SRC)}


def test_no_gpus_takes_no_slot(tmp_path):
    with acquire_slot(0, 2, tmp_path / "slots") as slot:
        assert (slot.index, slot.cuda_visible_devices, slot.memory_fraction) == (None, None, None)
        assert "CUDA_VISIBLE_DEVICES" not in os.environ
    assert not (tmp_path / "slots").exists()


def test_slurm_keeps_its_own_gpu_assignment(tmp_path, monkeypatch):
    monkeypatch.setenv("SLURM_JOB_ID", "42")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3")
    with acquire_slot(2, 2, tmp_path / "slots") as slot:
        assert slot.index is None and slot.cuda_visible_devices == "3"
        assert os.environ["CUDA_VISIBLE_DEVICES"] == "3"
    assert not (tmp_path / "slots").exists()


class Holders:
    """Jobs started through the CLI wrapper, each holding a slot until killed."""

    def __init__(self, slot_dir: Path, gpus: int, jobs_per_gpu: int):
        self.slot_dir, self.gpus, self.jobs_per_gpu = slot_dir, gpus, jobs_per_gpu
        self.procs: list[subprocess.Popen] = []

    def start(self) -> tuple[str, str]:
        """Start one holder; return (CUDA_VISIBLE_DEVICES, RLPIPE_GPU_SLOT) it was given."""
        ready = self.slot_dir.parent / f"ready{len(self.procs)}"
        cmd = [sys.executable, "-m", "rlpipe.runtime.gpu_slots", "--gpus", str(self.gpus)]
        cmd += ["--jobs-per-gpu", str(self.jobs_per_gpu), "--slot-dir", str(self.slot_dir)]
        script = f'echo "$CUDA_VISIBLE_DEVICES $RLPIPE_GPU_SLOT" > {ready}.tmp; '
        script += f"mv {ready}.tmp {ready}; exec sleep 60"  # the lock now lives in `sleep`
        self.procs.append(subprocess.Popen([*cmd, "--", "sh", "-c", script], env=_env()))
        deadline = time.monotonic() + 30
        while not ready.exists():
            assert self.procs[-1].poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        cuda, slot = ready.read_text().split()
        return cuda, slot

    def kill(self, i: int) -> None:
        self.procs[i].send_signal(signal.SIGKILL)
        self.procs[i].wait()

    def kill_all(self) -> None:
        for i in range(len(self.procs)):
            self.kill(i)


@pytest.fixture
def holders(tmp_path):
    made = []

    def make(gpus: int, jobs_per_gpu: int) -> Holders:
        made.append(Holders(tmp_path / "slots", gpus, jobs_per_gpu))
        return made[-1]

    yield make
    for h in made:
        h.kill_all()


def test_slots_are_exclusive_spread_over_gpus_and_freed_on_sigkill(holders, tmp_path):
    jobs = holders(2, 2)
    given = [jobs.start() for _ in range(4)]
    assert given == [("0", "0"), ("1", "2"), ("0", "1"), ("1", "3")]  # one job per GPU first
    with pytest.raises(TimeoutError, match="all 4 GPU slots"):
        with acquire_slot(2, 2, tmp_path / "slots", timeout=0.3):
            pass
    jobs.kill(1)  # SIGKILL: no cleanup code runs, the kernel drops the lock
    with acquire_slot(2, 2, tmp_path / "slots", timeout=2) as slot:
        assert (slot.index, slot.cuda_visible_devices, slot.memory_fraction) == (2, "1", 0.5)
        assert os.environ["CUDA_VISIBLE_DEVICES"] == "1"
        assert os.environ["RLPIPE_GPU_MEMORY_FRACTION"] == "0.5"
        with acquire_slot(2, 2, tmp_path / "slots", timeout=0) as nested:
            assert nested == slot  # a process holding a slot takes no second one
    assert "CUDA_VISIBLE_DEVICES" not in os.environ
    assert "RLPIPE_GPU_SLOT" not in os.environ


def test_slot_maps_into_the_devices_the_job_was_given(holders, tmp_path, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "5,7")
    assert holders(2, 1).start() == ("5", "0")
    with acquire_slot(2, 1, tmp_path / "slots") as second:
        assert second.cuda_visible_devices == "7"
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "5,7"
    with pytest.raises(ValueError, match="3 GPUs configured"):
        with acquire_slot(3, 1, tmp_path / "other"):
            pass


def test_settings_from_env_and_clear_errors(tmp_path, monkeypatch):
    monkeypatch.setenv(ENV_GPUS, "1")
    monkeypatch.setenv("RLPIPE_GPU_SLOT_DIR", str(tmp_path / "env-slots"))
    with acquire_slot() as slot:
        assert slot.index == 0 and slot.memory_fraction == 1.0
    assert (tmp_path / "env-slots" / "slot0.lock").exists()
    monkeypatch.setenv(ENV_GPUS, "two")
    with pytest.raises(ValueError, match="RLPIPE_GPUS must be an integer, got 'two'"):
        with acquire_slot():
            pass
    with pytest.raises(ValueError, match="must be >= 1, got 0"):
        with acquire_slot(1, 0, tmp_path):
            pass


def test_cli_without_gpus_just_runs_the_command(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "rlpipe.runtime.gpu_slots", "--gpus", "0", "--", "sh", "-c"]
        + ['echo "${CUDA_VISIBLE_DEVICES-unset} ${RLPIPE_GPU_SLOT-unset}"'],
        env=_env(),
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.split() == ["unset", "unset"]


# 8 jobs, 2 GPUs x 2 jobs per GPU: each records the slot it held and when.
RECORD = """
import json, os, sys, time
start = time.time()
time.sleep(1.0)
rec = {k: os.environ[k] for k in ("RLPIPE_GPU_SLOT", "CUDA_VISIBLE_DEVICES",
                                  "RLPIPE_GPU_MEMORY_FRACTION")}
rec.update(start=start, end=time.time())
open(sys.argv[1], "w").write(json.dumps(rec))
"""
SNAKEFILE = """
rule all:
    input: expand("out/job{{i}}.json", i=range(8))

rule job:
    output: "out/job{{i}}.json"
    resources: gpu=1
    shell: "{python} -m rlpipe.runtime.gpu_slots --gpus 2 --jobs-per-gpu 2 --slot-dir slots -- "
           "{python} record.py {{output}}"
"""


def test_concurrent_snakemake_jobs_never_share_a_slot(tmp_path):
    (tmp_path / "record.py").write_text(RECORD)
    (tmp_path / "Snakefile").write_text(SNAKEFILE.format(python=sys.executable))
    res = subprocess.run(
        [sys.executable, "-m", "snakemake", "--cores", "8", "--resources", "gpu=4"],
        cwd=tmp_path,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    jobs = [json.loads(p.read_text()) for p in sorted((tmp_path / "out").glob("*.json"))]
    assert len(jobs) == 8
    for job in jobs:
        assert job["CUDA_VISIBLE_DEVICES"] == str(int(job["RLPIPE_GPU_SLOT"]) // 2)
        assert float(job["RLPIPE_GPU_MEMORY_FRACTION"]) == 0.5
    overlapping = [
        (a, b)
        for a, b in itertools.combinations(jobs, 2)
        if a["start"] < b["end"] and b["start"] < a["end"]
    ]
    assert overlapping, "jobs never ran concurrently: the test proves nothing"
    for a, b in overlapping:
        assert a["RLPIPE_GPU_SLOT"] != b["RLPIPE_GPU_SLOT"], (a, b)


def test_gpu_settings_said_once_env_overrides_and_detects(monkeypatch):
    from rlpipe.runtime.gpu_slots import settings

    assert settings({"count": 2, "jobs_per_gpu": 3}).slots == 6
    monkeypatch.setenv(ENV_GPUS, "1")
    assert settings({"count": 2, "jobs_per_gpu": 3}).slots == 3  # the environment wins
    monkeypatch.delenv(ENV_GPUS)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "4,5")
    detected = settings({"jobs_per_gpu": 2})
    assert (detected.count, detected.slots, detected.count_from) == (2, 4, "CUDA_VISIBLE_DEVICES")


@pytest.mark.parametrize(
    "gpus, key", [({"count": -1}, "gpus.count"), ({"jobs_per_gpu": 0}, "gpus.jobs_per_gpu")]
)
def test_schema_accepts_gpus_and_names_bad_keys(gpus, key):
    from rlpipe.sweep import config as rlconfig
    from rlpipe.sweep.runs import ConfigError

    schema = SRC.parent / "workflow/schemas/config.schema.yaml"
    base = {"experiments": {"e": {"algo": "ppo", "envs": ["CartPole-v1"], "seeds": [1],
                                  "total_steps": 1024, "checkpoint_every": 1024}}}  # fmt: skip
    rlconfig.validate({**base, "gpus": {"count": 2, "jobs_per_gpu": 3}}, schema)
    with pytest.raises(ConfigError, match=rf"- {key}: "):
        rlconfig.validate({**base, "gpus": gpus}, schema)


@pytest.mark.slow
def test_pipeline_gpu_jobs_take_exclusive_slots_on_a_fake_two_gpu_host(tmp_path):
    """The real workflow under profiles/local on a host without CUDA, told it has 2 GPUs x 2
    jobs: 8 GPU training jobs (and their evaluations) each hold a slot; overlapping jobs never
    share one; both GPUs are used; slot and device are read back from the telemetry."""
    from conftest import TINY_PPO
    from pipeline import REPO, Workdir

    config = {
        "experiments": {
            "g": {
                "algo": "ppo",
                "envs": ["CartPole-v1"],
                "seeds": [1, 2, 3, 4],
                "total_steps": 4096,
                "checkpoint_every": 2048,
                "hparams": dict(TINY_PPO),
                "resources": {"gpu": 1},
            }
        },
        "evaluation": {"episodes": 2, "max_episode_steps": 100},
        "summary": {"bootstrap_samples": 200},
        "gpus": {"count": 2, "jobs_per_gpu": 2},
    }
    work = Workdir(tmp_path / "work", config)
    profile = ("--profile", str(REPO / "profiles/local"), "--cores", "4")
    plan = work.run("-n", *profile).stdout
    assert "rlpipe plan: 4 cores; 4 GPU slot(s) = 2 GPU(s) [config gpus.count] x 2;" in plan
    done = work.run(*profile)  # no --resources: the config says it once
    # (Snakemake 9.27 prints the limit as `gpu=Resource("gpu", 4)`)
    assert re.search(r'Provided resources: gpu=(Resource\("gpu", )?4\b', done.stdout + done.stderr)

    segments = []
    for path in sorted((work.path / "runs").rglob("telemetry/step_*.jsonl")):
        records = [json.loads(line) for line in path.read_text().splitlines()]
        first, last = records[0], records[-1]
        assert first["cuda_visible_devices"] == str(first["gpu_slot"] // 2)
        segments.append((first["gpu_slot"], first["time"] - first["elapsed_s"], last["time"]))
    assert len(segments) == 8
    assert {slot // 2 for slot, _, _ in segments} == {0, 1}, "both GPUs used"
    overlapping = [
        (a, b) for a, b in itertools.combinations(segments, 2) if a[1] < b[2] and b[1] < a[2]
    ]
    assert overlapping, "no two jobs ran at once: the test proves nothing"
    assert all(a[0] != b[0] for a, b in overlapping), overlapping
    evals = [json.loads(p.read_text()) for p in (work.path / "runs").rglob("eval/*.json")]
    assert len(evals) == 8 and all(e["gpu_slot"] in range(4) for e in evals)
