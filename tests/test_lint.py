"""Static checks: ruff, snakefmt, snakemake --lint, and conda pins == Python project pins."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import yaml

from pipeline import REPO

BIN = Path(sys.executable).parent


def _run(*cmd):
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)


def test_ruff_clean():
    paths = ["src", "tests", "workflow", "benchmarks"]
    check = _run(str(BIN / "ruff"), "check", *paths)
    assert check.returncode == 0, check.stdout
    fmt = _run(str(BIN / "ruff"), "format", "--check", *paths)
    assert fmt.returncode == 0, fmt.stdout


def test_snakefmt_clean():
    proc = _run(str(BIN / "snakefmt"), "--check", "Snakefile", "rules")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_snakemake_lint_clean():
    proc = _run(str(BIN / "snakemake"), "--lint", "--cores", "1")
    assert proc.returncode == 0 and "Lints for" not in proc.stdout, proc.stdout + proc.stderr


def test_conda_env_pins_match_pyproject():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    env = yaml.safe_load((REPO / "envs/rlpipe.yaml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    conda_pins = {p for p in pip_section if "==" in p}
    assert conda_pins == set(project)


def test_tracking_env_pins_match_tracking_extra():
    """envs/tracking.yaml (the tracking rules' conda env) pins the `tracking` extra."""
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    tracking = extras["optional-dependencies"]["tracking"]
    env = yaml.safe_load((REPO / "envs/tracking.yaml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert set(pip_section) == set(tracking)
    assert "rlpipe[tracking]" in extras["optional-dependencies"]["test"]


def test_dockerfile_runs_the_readme_pod_setup():
    """The image installs with `make install` (the README's tested pod set-up) and starts
    the README's pod command."""
    docker = (REPO / "docker/Dockerfile").read_text()
    runs = [line for line in docker.splitlines() if line.startswith("RUN ")]
    assert "RUN make install" in runs
    assert 'CMD ["snakemake", "--profile", "runpod"]' in docker
    readme = (REPO / "README.md").read_text()
    assert "make install && . .venv/bin/activate" in readme
    assert "snakemake --profile runpod" in readme
