"""Snakemake's per-job script check, made cheap for big plans.

Before every run and dry run, Snakemake checks that each planned job's ``script:`` can be
read. For each job it works out the script's place in its source cache three times, each
time through ``snakemake.common.parse_uri``. That asks smart_open, and smart_open builds a
new namedtuple class on every call (about 65 us). The Atari-10 sweep's 901 jobs spend about
0.2 s of a 3 s plan there (benchmarks/bench_planning.py).

The function is pure: a path in, an immutable tuple out. So remembering its answers changes
no result. Only the source cache's own reference is wrapped; nothing else in the process
sees a change. A Snakemake without that reference is left as it is.
"""

from __future__ import annotations

import functools

import snakemake.sourcecache

MAX_PATHS = 1024  # distinct scripts and workflow files of one process: a few dozen


def remember_source_paths() -> None:
    """Remember the source cache's answers for each path (idempotent)."""
    parse = getattr(snakemake.sourcecache, "parse_uri", None)
    if parse is None or hasattr(parse, "cache_info"):
        return
    snakemake.sourcecache.parse_uri = functools.lru_cache(maxsize=MAX_PATHS)(parse)
