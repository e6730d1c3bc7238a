"""Snakemake's per-job script check parses each source path once (rlpipe.smk.sourcecache)."""

import re
import subprocess
import sys

import pytest
import snakemake.sourcecache
import yaml
from snakemake.sourcecache import LocalSourceFile

from rlpipe.smk import sourcecache

from pipeline import REPO, Workdir, subprocess_env

# Counts smart_open's parser (which snakemake.common.parse_uri asks on each call), then runs
# the snakemake command line given after it.
COUNTING_SNAKEMAKE = """
import atexit, sys, smart_open
calls = []
parse = smart_open.parse_uri
smart_open.parse_uri = lambda uri: calls.append(uri) or parse(uri)
atexit.register(lambda: print(f"parse_uri calls: {len(calls)}", file=sys.stderr))
from snakemake.cli import main
sys.argv = ["snakemake", *sys.argv[1:]]
main()
"""


@pytest.fixture
def original_parser(monkeypatch):
    """The unwrapped parser, put back after the test."""
    parse = getattr(snakemake.sourcecache.parse_uri, "__wrapped__", None)
    parse = parse or snakemake.sourcecache.parse_uri
    monkeypatch.setattr(snakemake.sourcecache, "parse_uri", parse)
    return parse


@pytest.mark.parametrize(
    "uri",
    [
        "/abs/workflow/scripts/segment.py",
        "workflow/scripts/evaluate.py",
        "file:///abs/rules/common.smk",
        "https://example.org/wrappers/v1/wrapper.py",
        "http://127.0.0.1:8000/rules/common.smk",
    ],
)
def test_remembered_answers_are_the_parsers(original_parser, uri):
    sourcecache.remember_source_paths()
    assert snakemake.sourcecache.parse_uri(uri) == original_parser(uri)
    assert snakemake.sourcecache.parse_uri(uri) == original_parser(uri)  # from memory


def test_each_path_is_parsed_once(original_parser, monkeypatch):
    calls = []
    monkeypatch.setattr(
        snakemake.sourcecache, "parse_uri", lambda uri: calls.append(uri) or original_parser(uri)
    )
    sourcecache.remember_source_paths()
    sourcecache.remember_source_paths()  # idempotent: wraps once
    for _ in range(3):  # what Snakemake does per planned job
        for path in ("/w/scripts/segment.py", "/w/scripts/evaluate.py"):
            assert LocalSourceFile(path).get_cache_path() == "file" + path
    assert calls == ["/w/scripts/segment.py", "/w/scripts/evaluate.py"]


def test_a_dry_run_parses_each_script_path_once(tmp_path):
    """The workflow turns it on: a plan of 70 script jobs asks the parser a few times in
    all, not three times per job."""
    config = yaml.safe_load((REPO / "config/config.yaml").read_text())
    work = Workdir(tmp_path, config)
    proc = subprocess.run(
        [sys.executable, "-c", COUNTING_SNAKEMAKE, *work.command("-n")[1:]],
        capture_output=True,
        text=True,
        env=subprocess_env(),
    )
    assert proc.returncode == 0, proc.stderr
    script_jobs = len(re.findall(r"^rule (?!all:)\w+:$", proc.stdout, re.M))
    calls = int(re.search(r"parse_uri calls: (\d+)", proc.stderr).group(1))
    assert script_jobs >= 70
    assert calls < 25, f"{calls} parser calls for {script_jobs} jobs"
