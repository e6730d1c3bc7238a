"""Fetch a replay dataset from an rclone remote, verified, with MANIFEST.json written last.

Protocol (what a crash at any point leaves behind):

1. the local manifest is removed first: from here on the dataset counts as absent;
2. one recursive listing of the remote (names, sizes, hashes or modtimes);
3. ``rclone copy`` into ``.<dest>.partial`` next to ``dest_dir`` (kept on failure, so a rerun
   resumes: rclone skips files already there with the same size and modtime);
4. every file is checked against the listing (size, and md5/sha1/sha256 where the remote has
   them) and against the remote's own MANIFEST.json when it has one (sha256); bad files are
   deleted so the rerun fetches them again;
5. the partial directory replaces ``dest_dir`` and MANIFEST.json is written (atomically) LAST.

``remote_fingerprint`` hashes the same listing, so a Snakemake param built from it changes
whenever the remote dataset changes; ``fingerprint_or_stored`` falls back to the fingerprint in
the existing manifest when the remote cannot be reached.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import sys
from collections.abc import Iterable
from pathlib import Path

from rlpipe.storage import manifest as mf
from rlpipe.storage.rclone import RcloneRemote, RemoteError, RemoteNotFound, scrub

log = logging.getLogger("rlpipe.replays")

LOCAL_HASHES = ("md5", "sha1", "sha256")  # rclone hash names hashlib can compute


class FetchError(RuntimeError):
    """The remote dataset is absent, incomplete, or did not download intact."""


def _patterns(include: str | Iterable[str] | None) -> list[str]:
    if include is None:
        return []
    patterns = [include] if isinstance(include, str) else list(include)
    for p in patterns:
        if not p or "\n" in p:
            raise ValueError(f"include pattern {p!r} is empty or has a newline")
    return patterns


def listing_filters(include: str | Iterable[str] | None = None) -> list[str]:
    """rclone filter rules for the listing: the included files plus the remote manifest."""
    patterns = _patterns(include)
    if not patterns:
        return []
    return [f"+ /{mf.MANIFEST_NAME}", *(f"+ {p}" for p in patterns), "- **"]


def copy_filters(include: str | Iterable[str] | None = None) -> list[str]:
    """rclone filter rules for the download: the included files, never the remote manifest."""
    patterns = _patterns(include)
    rules = [f"- /{mf.MANIFEST_NAME}", *(f"+ {p}" for p in patterns)]
    return rules + ["- **"] if patterns else rules


def listing_fingerprint(entries: list[dict]) -> str:
    """A stable hash of a listing: path, size and hashes (modtime where there are none)."""
    rows = []
    for e in sorted(entries, key=lambda e: e["Path"]):
        if e["Path"] == mf.MANIFEST_NAME:
            continue
        hashes = e.get("Hashes") or {}
        rows.append([e["Path"], e["Size"], sorted(hashes.items()) or e.get("ModTime")])
    return "sha256:" + hashlib.sha256(json.dumps(rows).encode()).hexdigest()


def public_source(remote: str) -> str:
    """The remote path as it may be written down: no credentials."""
    return scrub(remote)


def remote_fingerprint(
    remote: str, include: str | Iterable[str] | None = None, timeout_s: float = 10.0
) -> str | None:
    """Fingerprint of the remote dataset's listing, or None when the remote cannot be reached."""
    client = RcloneRemote(remote, retries=1, timeout_s=timeout_s)
    if not client.reachable(timeout_s):
        return None
    try:
        return listing_fingerprint(client.list(listing_filters(include)))
    except RemoteNotFound:
        return listing_fingerprint([])
    except RemoteError as exc:
        log.info("%s", exc)
        return None


def fingerprint_or_stored(
    remote: str,
    include: str | Iterable[str] | None,
    manifest_path: str | Path,
    timeout_s: float = 10.0,
) -> str:
    """For a Snakemake param: the live fingerprint, else the one in the existing manifest.

    Offline, prints "remote could not be checked" to stderr and returns the stored fingerprint
    (so nothing is refetched); with no manifest either it returns "unreachable" (the fetch job
    will then run and fail with the real error).
    """
    live = remote_fingerprint(remote, include, timeout_s)
    if live is not None:
        return live
    stored = mf.stored_fingerprint(manifest_path)
    note = f"using the fingerprint in {manifest_path}" if stored else "no local manifest either"
    print(
        f"rlpipe: {public_source(remote)}: remote could not be checked within {timeout_s:g}s; "
        f"{note}",
        file=sys.stderr,
    )
    return stored or "unreachable"


def _local_hashes(path: Path, names: Iterable[str]) -> dict[str, str]:
    hashers = {n: hashlib.new(n) for n in names}
    with open(path, "rb") as fh:
        while chunk := fh.read(mf.CHUNK):
            for h in hashers.values():
                h.update(chunk)
    return {n: h.hexdigest() for n, h in hashers.items()}


def _verify(tmp: Path, expected: dict[str, dict], published: dict[str, dict]) -> list[dict]:
    """Check downloaded files; delete strays and bad files; return manifest entries."""
    for path in sorted(tmp.rglob("*"), reverse=True):  # rclone leftovers, files gone remotely
        rel = path.relative_to(tmp).as_posix()
        if path.is_file() and rel not in expected:
            path.unlink()
    problems, entries = [], []
    for rel, entry in sorted(expected.items()):
        path = tmp / rel
        if not path.is_file():
            problems.append(f"{rel}: not downloaded")
            continue
        size = path.stat().st_size
        remote_hashes = {k: v for k, v in (entry.get("Hashes") or {}).items() if v}
        names = {"sha256", *(n for n in remote_hashes if n in LOCAL_HASHES)}
        local = _local_hashes(path, names)
        bad = [n for n in names if n in remote_hashes and local[n] != remote_hashes[n].lower()]
        pub = published.get(rel)
        if size != entry["Size"]:
            problems.append(f"{rel}: size {size}, remote listing says {entry['Size']}")
        elif bad:
            problems.append(f"{rel}: {'/'.join(bad)} differs from the remote listing")
        elif pub and (pub["size"], pub["sha256"]) != (size, local["sha256"]):
            problems.append(f"{rel}: differs from the remote {mf.MANIFEST_NAME}")
        else:
            entries.append({"path": rel, "size": size, "sha256": local["sha256"]})
            continue
        path.unlink()
    if problems:
        raise FetchError("downloaded files failed verification: " + "; ".join(problems))
    return entries


def _published(client: RcloneRemote, listing: list[dict], whole: bool) -> dict[str, dict] | None:
    """The remote's own MANIFEST.json by path, or None when it has none."""
    if not any(e["Path"] == mf.MANIFEST_NAME for e in listing):
        return None
    where = f"{public_source(client.remote)}/{mf.MANIFEST_NAME}"
    published = {f["path"]: f for f in mf.parse(client.cat(mf.MANIFEST_NAME), where)["files"]}
    listed = {e["Path"] for e in listing}
    missing = sorted(set(published) - listed)
    if whole and missing:
        raise FetchError(f"{where} lists files the remote does not have: {missing[:5]}")
    return published


def _swap_in(tmp: Path, dest: Path) -> None:
    """Replace ``dest`` by ``tmp`` (two renames; the old copy is deleted afterwards)."""
    old = dest.with_name(f".{dest.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if dest.exists():
        dest.rename(old)
    tmp.rename(dest)
    shutil.rmtree(old, ignore_errors=True)


def fetch_dataset(
    remote: str,
    include: str | Iterable[str] | None,
    dest_dir: str | Path,
    manifest_path: str | Path | None = None,
    *,
    dataset: str | None = None,
    require_remote_manifest: bool = False,
    client: RcloneRemote | None = None,
) -> dict:
    """Download ``remote`` (files matching rclone ``include`` patterns, all if None) into
    ``dest_dir`` and write ``manifest_path`` (default ``dest_dir/MANIFEST.json``) last.

    Returns the manifest. Raises FetchError / RemoteError; after a failure there is no
    manifest and the partial download is kept next to ``dest_dir`` for the rerun to resume.
    """
    dest = Path(dest_dir)
    manifest_path = Path(manifest_path) if manifest_path else dest / mf.MANIFEST_NAME
    client = client or RcloneRemote(remote)
    source = public_source(remote)
    manifest_path.unlink(missing_ok=True)
    try:
        listing = client.list(listing_filters(include))
    except RemoteNotFound:
        raise FetchError(f"{source}: no such remote directory") from None
    published = _published(client, listing, whole=not _patterns(include))
    if published is None and require_remote_manifest:
        raise FetchError(f"{source}: no {mf.MANIFEST_NAME} (dataset absent or being published)")
    expected = {e["Path"]: e for e in listing if e["Path"] != mf.MANIFEST_NAME}
    if not expected:
        raise FetchError(f"{source}: no files match include={_patterns(include)}")

    tmp = dest.with_name(f".{dest.name}.partial")
    tmp.mkdir(parents=True, exist_ok=True)
    log.info("fetching %s (%d files) into %s", source, len(expected), tmp)
    client.copy_down(tmp, copy_filters(include))
    entries = _verify(tmp, expected, published or {})
    _swap_in(tmp, dest)
    manifest = mf.build(dataset or dest.name, source, entries, listing_fingerprint(listing))
    mf.write(manifest_path, manifest)
    log.info("fetched %s: %d files, manifest %s", source, len(entries), manifest_path)
    return manifest
