"""Every Python version that pyproject.toml allows resolves the pinned dependencies as wheels,
and the versions just outside the range do not (so the range is as wide as the pins allow).

GPU images ship other Pythons than this machine's (the H200's has 3.12). Asks the package
index (pip's dry run reads wheel metadata, nothing is installed); torch's Linux wheels are
CUDA builds of several GB, so for torch the index's list of versions is read instead.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

from pipeline import REPO

PLATFORMS = ["manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64"]
PROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
ALLOWED = SpecifierSet(PROJECT["requires-python"])
PINS = [
    r
    for r in PROJECT["dependencies"] + PROJECT["optional-dependencies"]["test"]
    + PROJECT["optional-dependencies"]["tracking"]
    if not r.startswith("rlpipe")
]  # fmt: skip
VERSIONS = [f"3.{minor}" for minor in range(8, 20)]


def pip(*args: str) -> subprocess.CompletedProcess:
    target = ["--python-version", args[0], "--implementation", "cp", "--only-binary=:all:"]
    platforms = [x for p in PLATFORMS for x in ("--platform", p)]
    return subprocess.run(
        [sys.executable, "-m", "pip", *args[1:], *target, *platforms],
        capture_output=True,
        text=True,
        timeout=600,
    )


def resolves(version: str, tmp_path) -> tuple[bool, str]:
    others = [r for r in PINS if Requirement(r).name != "torch"]
    dry = pip(version, "install", "--dry-run", "--ignore-installed", "--no-deps",
              "--target", str(tmp_path / version), *others)  # fmt: skip
    if "Would install" not in dry.stdout:
        return False, dry.stdout[-2000:] + dry.stderr[-2000:]
    (torch,) = [Requirement(r) for r in PINS if Requirement(r).name == "torch"]
    index = pip(version, "index", "versions", "torch")
    listed = re.search(r"Available versions: (.*)", index.stdout)
    wanted = str(next(iter(torch.specifier)).version)
    if not listed or wanted not in listed.group(1).split(", "):
        return False, f"torch {wanted} has no wheel for {version}: {index.stdout[-500:]}"
    return True, ""


@pytest.mark.slow
def test_every_allowed_python_resolves_and_the_next_ones_out_do_not(tmp_path):
    allowed = [v for v in VERSIONS if v in ALLOWED]
    assert allowed, f"requires-python {ALLOWED} allows no version"
    for version in allowed:
        ok, why = resolves(version, tmp_path)
        assert ok, f"Python {version} is allowed but does not resolve:\n{why}"
    below = f"3.{int(allowed[0].split('.')[1]) - 1}"
    above = f"3.{int(allowed[-1].split('.')[1]) + 1}"
    for version in (below, above):
        assert not resolves(version, tmp_path)[0], f"Python {version} resolves: allow it"
