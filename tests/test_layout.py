"""rlpipe.runtree.layout: the run tree's paths, formatted and parsed back, written in one place."""

import re
from pathlib import Path

import pytest

from rlpipe.runtree import layout

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("kind", sorted(layout.FILES))
@pytest.mark.parametrize("root", ["runs", "/tmp/copy/runs", "synced"])
def test_format_then_parse_round_trips(kind, root):
    path = layout.path(kind, "ppo_a.1", "CartPole-v1", 3, 1500, root=root)
    assert "/ppo_a.1/CartPole-v1/seed3/" in path and "0000001500" in path
    assert layout.parse(path) == layout.Artifact("ppo_a.1", "CartPole-v1", 3, kind, 1500)
    assert layout.parse(Path(path)) == layout.parse(path)


def test_pattern_is_the_default_root_path_with_wildcards():
    formatted = layout.pattern("ckpt").format(exp="e", env="Pong-v5", seed=2, step="0000000007")
    assert formatted == layout.path("ckpt", "e", "Pong-v5", 2, 7)
    assert formatted == "runs/e/Pong-v5/seed2/ckpt/step_0000000007.pt"
    assert layout.log_pattern("evaluate") == "logs/evaluate/{exp}/{env}/seed{seed}/step_{step}.log"


@pytest.mark.parametrize(
    "path",
    [
        "results/summary.csv",
        "data/replays/d/MANIFEST.json",
        "logs/evaluate/e/CartPole-v1/seed1/step_0000000100.log",
        "runs/e/CartPole-v1/seed1/telemetry/step_0000000100.jsonl.host-12.live",
        "runs/e/CartPole-v1/seedX/eval/step_0000000100.json",
        "runs/e/CartPole-v1/seed1/eval/other.json",
        "runs/e/CartPole-v1/seed1",
    ],
)
def test_other_paths_parse_to_none(path):
    assert layout.parse(path) is None


def test_run_dirs_and_names():
    assert layout.run_dir("e", "Pong-v5", 4) == "runs/e/Pong-v5/seed4"
    assert layout.parse_run_dir("/x/runs/e/Pong-v5/seed4") == ("e", "Pong-v5", 4)
    assert layout.parse_run_dir("runs/e/Pong-v5/seed4/eval") is None
    assert layout.run_name("e", "Pong-v5", 4, sep="-") == "e-Pong-v5-seed4"
    assert layout.parse("/x/runs/e/Pong-v5/seed4/eval/step_0000000012.json").run == (
        "e/Pong-v5/seed4"
    )
    assert layout.fmt_step(12) == "0000000012"


def test_of_kind_keeps_files_of_one_kind():
    paths = [layout.path(k, "e", "Pong-v5", 1, 5) for k in ("eval", "telemetry")]
    assert layout.of_kind(paths + ["x.txt"], "eval") == [
        (layout.Artifact("e", "Pong-v5", 1, "eval", 5), Path(paths[0]))
    ]


def test_the_run_tree_is_written_only_in_layout():
    hand_written = re.compile(r"seed\{|/ckpt/step_")
    files = [ROOT / "Snakefile", *ROOT.glob("rules/*.smk")]
    files += [*ROOT.glob("src/**/*.py"), *ROOT.glob("workflow/**/*.py")]
    found = [
        f"{path.relative_to(ROOT)}:{n}"
        for path in files
        if path.name != "layout.py"
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if hand_written.search(line)
    ]
    assert not found, f"run-tree paths written outside rlpipe.runtree.layout: {found}"
