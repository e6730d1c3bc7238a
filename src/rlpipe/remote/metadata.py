"""Snakemake's private layout of provenance records, in one place.

``FilePersistence`` keeps one JSON record per output under ``.snakemake/metadata``, named by
the output path in urlsafe base64 (split into directories of at most 255 characters), and an
empty marker under ``.snakemake/incomplete`` while a job runs. Checked against Snakemake's own
``_record_path`` by a test, so an upstream change shows up there first.
"""

from __future__ import annotations

from base64 import urlsafe_b64decode, urlsafe_b64encode

METADATA = ".snakemake/metadata"
INCOMPLETE = ".snakemake/incomplete"
NAME_MAX = 255


def record_rel(key: str) -> str:
    """The record path of output ``key`` (both relative to the working directory)."""
    b64 = urlsafe_b64encode(key.encode()).decode()
    parts = [b64[i : i + NAME_MAX - 1] for i in range(0, len(b64), NAME_MAX - 1)]
    return "/".join([METADATA, *("@" + p for p in parts[:-1]), parts[-1]])


def key_of(rel: str) -> str:
    """Inverse of :func:`record_rel`."""
    parts = rel[len(METADATA) + 1 :].split("/")
    return urlsafe_b64decode("".join(p.lstrip("@") for p in parts)).decode()


def incomplete_marker(key: str) -> str:
    """The marker Snakemake keeps while the job writing ``key`` runs."""
    return record_rel(key).replace(METADATA, INCOMPLETE, 1)
