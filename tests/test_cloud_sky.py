"""The SkyPilot task and `rlpipe launch`, checked with SkyPilot's own loader (no cloud, no
credentials). SkyPilot goes into a venv of its own (the pin of the `cloud` extra): it pins
click<8.2 where snakefmt, a test tool, needs click>=8.2."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tomllib
import venv
from pathlib import Path

import pytest

from pipeline import REPO

pytestmark = pytest.mark.slow

TASK = REPO / "cloud/sky/rlpipe.yaml"
SECRET = "s3cr3t-value-never-printed"
LOAD = """
import json, sys, yaml, sky
for spec in json.load(sys.stdin):  # one task per spec, one JSON line each (sky imports once)
    task = sky.Task.from_yaml_config(
        yaml.safe_load(open(spec["task"])), [tuple(e) for e in spec["envs"]],
        [tuple(s) for s in spec["secrets"]],
    )
    res = sorted(task.resources, key=str)
    print(json.dumps({
        "envs": task.envs, "secrets": sorted(task.secrets), "setup": task.setup,
        "run": task.run, "workdir": task.workdir, "spot": [r.use_spot for r in res],
        "accelerators": [r.accelerators for r in res], "recovery": res[0].job_recovery,
    }))
"""


def sky_load(python: str, specs: list[dict]) -> tuple[subprocess.CompletedProcess, list[dict]]:
    """SkyPilot's own loader on each spec (task file, --env and --secret pairs), in one
    process: the tasks it loaded, in order, and the process (its stderr if it refused one)."""
    proc = subprocess.run([python, "-c", LOAD], input=json.dumps(specs), capture_output=True,
                          text=True)  # fmt: skip
    tasks = [json.loads(ln) for ln in proc.stdout.splitlines() if ln.startswith("{")]
    return proc, tasks


def skypilot_pin() -> str:
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    (pin,) = [d for d in extras["optional-dependencies"]["cloud"] if d.startswith("skypilot")]
    return pin


@pytest.fixture(scope="session")
def sky_python(tmp_path_factory) -> str:
    """A venv with the `cloud` extra's SkyPilot, cached per pin across test runs."""
    pin = skypilot_pin()
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    root = cache / "rlpipe-tests" / re.sub(r"[^A-Za-z0-9.]", "-", pin)
    python = root / "bin" / "python"
    if not (root / ".installed").is_file():
        venv.create(root, with_pip=True, clear=True)
        proc = subprocess.run(  # no byte-compiling of every file: imports compile what they use
            [str(python), "-m", "pip", "install", "-q", "--no-compile", pin],
            capture_output=True, text=True,
        )  # fmt: skip
        if proc.returncode:
            pytest.skip(f"{pin} cannot be installed here: {proc.stderr.strip()[-500:]}")
        (root / ".installed").write_text(pin)
    return str(python)


def launch(tmp_path, *args, environ=None) -> tuple[subprocess.CompletedProcess, list[list[str]]]:
    """`rlpipe launch` with a stand-in `sky` on PATH that records its argv."""
    bindir = tmp_path / "bin"
    bindir.mkdir(exist_ok=True)
    record = tmp_path / "sky-calls.jsonl"
    (bindir / "sky").write_text(
        f"#!{sys.executable}\nimport json, sys\n"
        f"open({str(record)!r}, 'a').write(json.dumps(sys.argv[1:]) + '\\n')\n"
    )
    (bindir / "sky").chmod(0o755)
    env = {**os.environ, **(environ or {}), "PATH": f"{bindir}:{os.environ['PATH']}"}
    env["PYTHONPATH"] = str(REPO / "src")
    cmd = [sys.executable, "-m", "rlpipe.cli", "launch", *args]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    calls = [json.loads(ln) for ln in record.read_text().splitlines()] if record.exists() else []
    return proc, calls


def overrides(argv: list[str], environ: dict) -> tuple[list, list]:
    """--env / --secret of a `sky jobs launch` argv as (name, value) pairs, a bare name
    taking its value from the launching environment, as the sky CLI does."""
    envs, secrets = [], []
    for flag, value in zip(argv, argv[1:], strict=False):
        if flag in ("--env", "--secret"):
            name, _, val = value.partition("=")
            pair = (name, val if "=" in value else environ[name])
            (envs if flag == "--env" else secrets).append(pair)
    return envs, secrets


def test_launch_runs_one_managed_job_per_shard_and_skypilot_loads_each(sky_python, tmp_path):
    environ = {
        "RLPIPE_REMOTE": "b2:my-bucket/sweep",
        "RCLONE_CONFIG_B2_TYPE": "b2",
        "RCLONE_CONFIG_B2_KEY": SECRET,
        "RCLONE_CONFIG_OTHER_KEY": "not-this-remote",
    }
    proc, calls = launch(
        tmp_path, "--shards", "3", "--config", "config/atari10.yaml", environ=environ
    )
    assert proc.returncode == 0, proc.stderr
    assert SECRET not in proc.stdout + proc.stderr and SECRET not in json.dumps(calls)
    assert len(calls) == 3
    specs = []
    for i, argv in enumerate(calls, start=1):
        assert argv[:3] == ["jobs", "launch", "cloud/sky/rlpipe.yaml"]
        assert argv[argv.index("-n") + 1] == f"rlpipe-shard-{i}-of-3"
        envs, secrets = overrides(argv, environ)
        specs.append({"task": str(TASK), "envs": envs, "secrets": secrets})
    loaded, tasks = sky_load(sky_python, specs)
    assert loaded.returncode == 0 and len(tasks) == 3, loaded.stderr[-3000:]
    for i, task in enumerate(tasks, start=1):
        assert task["envs"]["RLPIPE_SHARD"] == f"{i}/3"
        assert task["envs"]["RLPIPE_REMOTE"] == "b2:my-bucket/sweep"
        assert task["envs"]["RLPIPE_CONFIG"] == "config/atari10.yaml"
        assert task["secrets"] == ["RCLONE_CONFIG_B2_KEY", "RCLONE_CONFIG_B2_TYPE"]
        assert all(task["spot"]) and all(task["accelerators"])
        assert task["recovery"]["strategy"] == "FAILOVER"
        assert task["setup"].strip() == "make install"  # the README's install
        assert "snakemake --profile runpod" in task["run"]  # the README's pod command
        assert 'shard="$RLPIPE_SHARD"' in task["run"] and task["workdir"] == "."


def test_the_task_needs_its_remote(sky_python):
    """RLPIPE_REMOTE is required: SkyPilot refuses the task without it, naming it."""
    loaded, tasks = sky_load(sky_python, [{"task": str(TASK), "envs": [], "secrets": []}])
    assert loaded.returncode != 0 and "RLPIPE_REMOTE" in loaded.stderr and not tasks


def test_launch_without_a_remote_is_one_clear_line(tmp_path):
    proc, calls = launch(tmp_path, "--shards", "2", environ={"RLPIPE_REMOTE": ""})
    assert proc.returncode == 2 and not calls
    assert "rlpipe launch: error: RLPIPE_REMOTE is not set" in proc.stderr
