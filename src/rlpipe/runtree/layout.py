"""The run tree, in one place: where each file of a run lives, and reading a path back.

``runs/{exp}/{env}/seed{seed}/<kind's file>``, steps written with 10 digits. Rules take
:func:`pattern` (Snakemake wildcards exp, env, seed, step), code :func:`path`, and
:func:`parse` reads any such path back, under whatever directory holds the tree (torch-free).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import NamedTuple

STEP_WIDTH = 10
ROOT = "runs"
RUN = "{exp}/{env}/seed{seed}"
FILES = {
    "ckpt": "ckpt/step_{step}.pt",
    "qtable": "qtable/step_{step}.npz",
    "telemetry": "telemetry/step_{step}.jsonl",
    "eval": "eval/step_{step}.json",
    "train_benchmark": "benchmark/train_step_{step}.tsv",
    "eval_benchmark": "benchmark/eval_step_{step}.tsv",
    "tensorboard_benchmark": "benchmark/tensorboard_step_{step}.tsv",
    "wandb_benchmark": "benchmark/wandb_step_{step}.tsv",
    "tensorboard": "tb/events.out.tfevents.{step}.rlpipe",
    "wandb": "wandb/step_{step}.json",
}


class Artifact(NamedTuple):
    """One file of the run tree."""

    exp: str
    env: str
    seed: int
    kind: str  # a key of FILES
    step: int

    @property
    def run(self) -> str:
        """The run's key, ``exp/env/seedN`` (what telemetry and evaluation records carry)."""
        return run_name(self.exp, self.env, self.seed)


def fmt_step(step: int) -> str:
    return f"{int(step):0{STEP_WIDTH}d}"


def run_dir(exp: str, env: str, seed: int, root: str | os.PathLike = ROOT) -> str:
    return f"{Path(root).as_posix()}/{RUN.format(exp=exp, env=env, seed=seed)}"


def path(kind: str, exp: str, env: str, seed: int, step: int, root=ROOT) -> str:
    return f"{run_dir(exp, env, seed, root)}/{FILES[kind].format(step=fmt_step(step))}"


def pattern(kind: str) -> str:
    """The Snakemake pattern of a kind's files (wildcards exp, env, seed, step)."""
    return f"{ROOT}/{RUN}/{FILES[kind]}"


def log_pattern(rule: str) -> str:
    """The Snakemake log pattern of a per-segment rule."""
    return f"logs/{rule}/{RUN}/step_{{step}}.log"


def run_name(exp: str, env: str, seed: int, sep: str = "/") -> str:
    """A run's label, ``exp/env/seedN`` (``sep`` between the parts)."""
    return sep.join(RUN.format(exp=exp, env=env, seed=seed).split("/"))


def _regex(template: str) -> str:
    groups = {"exp": r"(?P<exp>[^/\s]+)", "env": r"(?P<env>[^/\s]+)"}
    groups |= {"seed": r"(?P<seed>\d+)", "step": r"(?P<step>\d+)"}
    parts = re.split(r"\{(\w+)\}", template)  # text, name, text, name, ..., text
    return "".join(groups[p] if i % 2 else re.escape(p) for i, p in enumerate(parts))


_RUN_DIR = re.compile(rf"(?:^|/){_regex(RUN)}$")
_IN_RUN = re.compile(rf"(?:^|/){_regex(RUN)}/(?P<file>[^/]+/[^/]+)$")
_FILE = {kind: re.compile(_regex(f)) for kind, f in FILES.items()}


def parse(file: str | os.PathLike) -> Artifact | None:
    """The run-tree file at ``file`` (any directory may hold the tree), else None."""
    found = _IN_RUN.search(Path(file).as_posix())
    if found is None:
        return None
    for kind, regex in _FILE.items():
        step = regex.fullmatch(found["file"])
        if step:
            return Artifact(found["exp"], found["env"], int(found["seed"]), kind, int(step["step"]))
    return None


def of_kind(paths: Iterable[str | os.PathLike], kind: str) -> list[tuple[Artifact, Path]]:
    """The run-tree files of ``kind`` among ``paths``, parsed, in order."""
    parsed = ((parse(p), Path(p)) for p in paths)
    return [(a, p) for a, p in parsed if a is not None and a.kind == kind]


def parse_run_dir(directory: str | os.PathLike) -> tuple[str, str, int] | None:
    """(exp, env, seed) of a run directory ``.../{exp}/{env}/seed{seed}``, else None."""
    found = _RUN_DIR.search(Path(directory).as_posix())
    return None if found is None else (found["exp"], found["env"], int(found["seed"]))
