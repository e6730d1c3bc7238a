"""Helpers to run the real rlpipe workflow in a temporary working directory."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).parent / "snakemake")
JOB_LINE = re.compile(r"^(?:local)?rule (\w+):$")
WILDCARDS = re.compile(r"^\s+wildcards: (.*)$")


class Workdir:
    """A working directory with its own config/config.yaml, driven through snakemake."""

    def __init__(self, path: Path, config: dict, snakefile: Path = REPO / "Snakefile"):
        self.path = Path(path)
        self.snakefile = Path(snakefile)
        self.path.mkdir(parents=True, exist_ok=True)
        self.write_config(config)

    def write_config(self, config: dict) -> None:
        (self.path / "config").mkdir(exist_ok=True)
        (self.path / "config" / "config.yaml").write_text(yaml.safe_dump(config))

    def command(self, *args: str) -> list[str]:
        return [
            SNAKEMAKE,
            "-s",
            str(self.snakefile),
            "--directory",
            str(self.path),
            "--cores",
            "2",
            *args,
        ]

    def run(
        self, *args: str, check: bool = True, env: dict | None = None
    ) -> subprocess.CompletedProcess:
        proc = subprocess.run(
            self.command(*args),
            capture_output=True,
            text=True,
            env=subprocess_env() | (env or {}),
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"snakemake {args} failed:\n{proc.stdout}\n{proc.stderr}")
        return proc

    def planned_jobs(self, *args: str) -> list[tuple[str, dict]]:
        """(rule, wildcards) of every job a dry run would execute."""
        out = self.run("-n", *args).stdout
        jobs, rule = [], None
        for line in out.splitlines():
            if m := JOB_LINE.match(line):
                rule = m.group(1)
                jobs.append((rule, {}))
            elif (m := WILDCARDS.match(line)) and jobs:
                jobs[-1] = (rule, dict(kv.split("=", 1) for kv in m.group(1).split(", ")))
        return [(r, w) for r, w in jobs if r != "all"]

    def checkpoints(self) -> dict[str, str]:
        """sha256 of every checkpoint / Q-table under runs/, keyed by relative path."""
        files = sorted(
            p for p in (self.path / "runs").rglob("step_*") if p.suffix in (".pt", ".npz")
        )
        return {str(p.relative_to(self.path)): sha256(p) for p in files}


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def subprocess_env() -> dict:
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def live_telemetry(run_dir: Path, step: int) -> Path | None:
    """The live telemetry file of a segment that is training (one per attempt), if any."""
    return next(Path(run_dir, "telemetry").glob(f"step_{step:010d}.jsonl.*.live"), None)


def live_lines(run_dir: Path, step: int) -> int:
    """Lines a training segment has logged so far (0 before it starts)."""
    path = live_telemetry(run_dir, step)
    try:
        return path.read_text().count("\n") if path else 0
    except FileNotFoundError:  # renamed into place in between
        return 0
