"""The runpod profile: durable outputs + provenance on a real rclone WebDAV remote (loopback)."""

from __future__ import annotations

import time

import pytest
import yaml

from conftest import TINY_PPO
from pipeline import REPO, Workdir, sha256

pytestmark = pytest.mark.slow

PROFILE = str(REPO / "profiles" / "runpod")
RUN = "runs/cp/CartPole-v1/seed{seed}"


def cp_config(seeds=(1,), total=1536, every=512, **hparams) -> dict:
    return {
        "experiments": {
            "cp": {
                "algo": "ppo",
                "envs": ["CartPole-v1"],
                "seeds": list(seeds),
                "total_steps": total,
                "checkpoint_every": every,
                "hparams": {**TINY_PPO, **hparams},
            }
        },
        "evaluation": {"episodes": 2, "max_episode_steps": 200},
        "summary": {"bootstrap_samples": 200},
    }


@pytest.fixture
def remote(rclone_server, monkeypatch):
    """The profile's remote, redirected to the loopback server through $RLPIPE_REMOTE."""
    monkeypatch.setenv("RLPIPE_REMOTE", "TESTREMOTE:state")
    return rclone_server


def durable_file(tmp_path, **settings) -> str:
    """A --configfile replacing the profile's durable.yaml (fast uploads for tests)."""
    path = tmp_path / "durable.yaml"
    path.write_text(yaml.safe_dump({"durable": {"remote": "unused:x", **settings}}))
    return str(path)


def served(server, pattern="**/*") -> dict[str, str]:
    root = server.root / "state"
    return {
        str(p.relative_to(root)): sha256(p)
        for p in root.glob(pattern)
        if p.is_file() and not str(p.relative_to(root)).startswith(".snakemake")
    }


def remote_ckpts(server) -> dict[str, str]:
    return {k: v for k, v in served(server).items() if k.endswith(".pt")}


def jobs_of(stdout_err: str, rule: str) -> int:
    return sum(
        ln.strip() in (f"rule {rule}:", f"localrule {rule}:") for ln in stdout_err.splitlines()
    )


def evals(total: int, every: int, seeds=(1,)) -> list[str]:
    """Targets: every evaluation (summarize is left out to keep the tests small)."""
    steps = range(every, total + 1, every)
    return [f"{RUN.format(seed=s)}/eval/step_{n:010d}.json" for s in seeds for n in steps]


def rel_gets(server, since: int) -> list[str]:
    return [g.replace("//", "/").removeprefix("/state/") for g in server.requests("GET")[since:]]


def test_disk_guard_refuses_segment(tmp_path):
    """Test 4: below the free-disk margin the job fails with a clear error (and is retried)."""
    config = {**cp_config(total=512, every=512), "durable": {"min_free_disk_mb": 10**9}}
    work = Workdir(tmp_path / "work", config)
    proc = work.run(f"{RUN.format(seed=1)}/ckpt/step_0000000512.pt", check=False)
    assert proc.returncode != 0
    logs = list((work.path / "logs/train_segment").rglob("*.log"))
    assert "disk guard: only" in logs[0].read_text()
    assert "min_free_disk_mb" in proc.stdout + proc.stderr or logs
    assert not list(work.path.rglob("*.pt"))


def wait_for(condition, proc, what: str, timeout_s: float = 120) -> None:
    deadline = time.time() + timeout_s
    while not condition():
        assert proc.poll() is None, f"workflow ended before {what}"
        assert time.time() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)
