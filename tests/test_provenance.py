"""Code provenance by content (rlpipe.smk.provenance): what reruns when code changes."""

from __future__ import annotations

import hashlib
import os
import shutil

import pytest

from rlpipe.smk import provenance

from conftest import TINY_PPO
from pipeline import REPO, Workdir

_BUILD_LITTER = shutil.ignore_patterns("__pycache__", "*.egg-info")
CODE = "import os\n\n\ndef f(x):\n    '''Doc.'''\n    return x + 1  # note\n"


def test_hash_ignores_comments_docstrings_and_formatting(tmp_path):
    a, b, c = tmp_path / "a.py", tmp_path / "b.py", tmp_path / "c.py"
    a.write_text(CODE)
    b.write_text("import os\ndef f(x):\n    '''Other doc.'''\n    return (x + 1)\n")
    c.write_text(CODE.replace("x + 1", "x + 2"))
    assert provenance.source_hash(a) == provenance.source_hash(b)
    assert provenance.source_hash(a) != provenance.source_hash(c)


def test_a_rule_script_covers_the_modules_its_job_runs():
    script = REPO / "workflow/scripts/segment.py"
    files = provenance.code_files(script, REPO / "src", ["rlpipe.algos.ppo.train"])
    assert "rlpipe/algos/ppo/train.py" in files  # the rule names the job the worker runs
    assert "rlpipe/warm/worker.py" in files and "rlpipe/runtree/checkpoint.py" in files
    # of the other algorithms only their params (the registry reads every algorithm's)
    others = {f for f in files if f.startswith(("rlpipe/algos/qlearn/", "rlpipe/algos/bc/"))}
    assert {f.rsplit("/", 1)[1] for f in others} <= {"__init__.py", "params.py"}, others
    qlearn = provenance.code_files(script, REPO / "src", ["rlpipe.algos.qlearn.train"])
    assert "rlpipe/algos/qlearn/train.py" in qlearn and "rlpipe/algos/ppo/train.py" not in qlearn
    # the one script covers no algorithm by itself: an edit to one reruns only its jobs
    trainers = {f"rlpipe/algos/{algo}/train.py" for algo in ("ppo", "bc", "qlearn")}
    assert not trainers & set(provenance.code_files(script, REPO / "src"))
    evaluate = provenance.code_files(REPO / "workflow/scripts/evaluate.py", REPO / "src")
    assert "rlpipe/rollouts/evaluate.py" in evaluate  # the script spells the job's name
    with pytest.raises(ValueError, match="rlpipe.nope: no such module"):
        provenance.code_files(script, REPO / "src", ["rlpipe.nope"])


def test_the_disk_cache_is_keyed_by_content(tmp_path, monkeypatch):
    """A file with the bytes of an entry is not parsed again, wherever it lies and whatever
    its mtime (a fresh clone, another directory); changed bytes are parsed."""

    def fresh_process():
        for memo in (provenance._source_hash, provenance._content_key):
            memo.cache_clear()

    monkeypatch.setattr(provenance, "_DISK", provenance._DiskCache())
    fresh_process()
    src = tmp_path / "a" / "m.py"
    src.parent.mkdir()
    src.write_text(CODE)
    cache_file = tmp_path / "cache" / "code-hashes.json"
    provenance.use_disk_cache(cache_file)
    real = provenance.source_hash(src)
    provenance._DISK.save()
    assert cache_file.exists()
    key = f"{hashlib.sha256(src.read_bytes()).hexdigest()}#code"
    provenance._DISK.entries[key] = "planted"
    clone = tmp_path / "b" / "m.py"  # same bytes, another path, a newer mtime
    clone.parent.mkdir()
    clone.write_text(CODE)
    fresh_process()
    assert provenance.source_hash(clone) == "planted"  # read from the cache, not parsed
    clone.write_text(CODE.replace("x + 1", "x + 2"))
    fresh_process()
    assert provenance.source_hash(clone) not in ("planted", real)  # new bytes: parsed
    fresh_process()


@pytest.mark.slow
def test_a_library_edit_reruns_exactly_its_jobs_and_a_fresh_checkout_nothing(tmp_path):
    """In a copy of the workflow: a code change to rlpipe/algos/ppo/train.py plans the PPO
    segments (and their evaluations and the summary), not Q-learning; a comment-only change
    and new mtimes on every file (what a fresh clone has) plan nothing; an edit of the Atari
    baselines plans the summary alone."""
    repo = tmp_path / "repo"
    repo.mkdir()
    for name in ("Snakefile", "rules", "workflow", "src", "profiles", "config", "envs"):
        copy = shutil.copytree if (REPO / name).is_dir() else shutil.copy2
        copy(REPO / name, repo / name)
    config = {
        "experiments": {
            "cp": {
                "algo": "ppo",
                "envs": ["CartPole-v1"],
                "seeds": [1],
                "total_steps": 512,
                "checkpoint_every": 512,
                "hparams": dict(TINY_PPO),
            },
            "ql": {
                "algo": "qlearn",
                "envs": ["CartPole-v1"],
                "seeds": [1],
                "total_steps": 2000,
                "checkpoint_every": 2000,
            },
        },
        "evaluation": {"episodes": 2, "max_episode_steps": 100},
        "summary": {"bootstrap_samples": 100},
    }
    work = Workdir(tmp_path / "work", config, snakefile=repo / "Snakefile")
    work.run()
    assert "Nothing to be done" in work.run("-n").stdout

    ppo = repo / "src/rlpipe/algos/ppo/train.py"
    ppo.write_text(ppo.read_text() + "\n# a comment only\n")
    for path in repo.rglob("*"):
        os.utime(path)  # every file newer than every output, as in a fresh clone
    assert "Nothing to be done" in work.run("-n").stdout

    ppo.write_text(ppo.read_text() + "\nPROVENANCE_TEST = 1\n")
    out = work.run("-n").stdout
    rules = sorted({r for r, _ in work.planned_jobs()})
    assert rules == ["evaluate", "ppo_segment", "summarize"], out
    assert "rlpipe/algos/ppo/train.py" in out  # the reason names the file whose hash changed

    # Data the summary reads from the repository (the Atari baselines) is tracked by content.
    ppo.write_text(ppo.read_text().replace("\nPROVENANCE_TEST = 1\n", ""))
    assert "Nothing to be done" in work.run("-n").stdout
    baselines = repo / "config/atari_baselines.yaml"
    baselines.write_text(baselines.read_text() + "\n# a comment: still a byte change\n")
    assert [r for r, _ in work.planned_jobs()] == ["summarize"]


@pytest.mark.slow
def test_a_wheel_carries_the_schema_and_baselines_it_reads(tmp_path):
    """rlpipe.cli and rlpipe.results.stats read package data (links into workflow/ and config/ in
    the repository): a built wheel holds the same bytes, so an installed rlpipe needs no
    checkout."""
    import subprocess
    import sys
    import zipfile

    # A copy of what the wheel is built from: setuptools writes build/ into its source tree.
    source = tmp_path / "source"
    shutil.copytree(REPO / "src", source / "src", symlinks=True, ignore=_BUILD_LITTER)
    for name in ("workflow/schemas", "config"):
        shutil.copytree(REPO / name, source / name)
    shutil.copy2(REPO / "pyproject.toml", source)
    cmd = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation"]
    subprocess.run([*cmd, str(source), "-w", str(tmp_path)], check=True, capture_output=True)
    (wheel,) = tmp_path.glob("rlpipe-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        for name, source in (
            ("rlpipe/data/config.schema.yaml", "workflow/schemas/config.schema.yaml"),
            ("rlpipe/data/atari_baselines.yaml", "config/atari_baselines.yaml"),
        ):
            assert zf.read(name) == (REPO / source).read_bytes(), name
