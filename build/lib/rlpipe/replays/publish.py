"""Publish a local replay dataset to an rclone remote, MANIFEST.json last.

Order: remove the remote MANIFEST.json (readers now see the dataset as absent), ``rclone
sync`` the episode files (the remote directory becomes equal to ``local_dir``), ``rclone
check`` them, then upload MANIFEST.json. A reader that finds no manifest treats the dataset
as absent (``fetch_dataset(..., require_remote_manifest=True)``), so it never takes a
half-written upload for a dataset.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

from rlpipe.replays.fetch import listing_filters, listing_fingerprint, public_source
from rlpipe.storage import manifest as mf
from rlpipe.storage.rclone import RcloneRemote, RemoteError, RemoteNotFound

log = logging.getLogger("rlpipe.replays")

# the remote manifest is written separately; hidden files are local temp files
UPLOAD_FILTERS = [f"- /{mf.MANIFEST_NAME}", "- .*", "- .*/**"]


class PublishError(RuntimeError):
    """The uploaded files do not match the local dataset."""


def publish_dataset(
    local_dir: str | Path,
    remote: str,
    *,
    dataset: str | None = None,
    download_check: bool = False,
    client: RcloneRemote | None = None,
) -> dict:
    """Upload ``local_dir`` to ``remote`` and return the manifest written there last.

    ``download_check`` makes ``rclone check`` compare bytes (for remotes without hashes,
    where it otherwise compares sizes only). A local MANIFEST.json, if present, is verified
    first so a corrupted local copy is never published.
    """
    local_dir = Path(local_dir)
    if (local_dir / mf.MANIFEST_NAME).exists():
        mf.verify(mf.load(local_dir / mf.MANIFEST_NAME), local_dir)
    files = mf.dataset_files(local_dir)
    if not files:
        raise ValueError(f"{local_dir}: no dataset files to publish")
    entries = [mf.file_entry(local_dir, rel) for rel in files]
    client = client or RcloneRemote(remote)
    source = public_source(remote)

    try:
        had_manifest = any(e["Path"] == mf.MANIFEST_NAME for e in client.list())
    except RemoteNotFound:
        had_manifest = False
    if had_manifest:
        client.delete(mf.MANIFEST_NAME)
    log.info("publishing %s (%d files) to %s", local_dir, len(files), source)
    client.sync_up(local_dir, UPLOAD_FILTERS)
    diffs = client.check(local_dir, UPLOAD_FILTERS, download=download_check)
    if diffs:
        shown = ", ".join(f"{sym} {path}" for sym, path in diffs[:10])
        raise PublishError(f"{source}: uploaded files differ from {local_dir}: {shown}")

    try:
        fingerprint = listing_fingerprint(client.list(listing_filters(None), refresh=True))
    except RemoteError as exc:
        raise PublishError(f"{source}: could not list the uploaded files: {exc}") from None
    manifest = mf.build(dataset or local_dir.name, source, entries, fingerprint)
    with tempfile.TemporaryDirectory(prefix="rlpipe-publish-") as tmp:
        mf.write(Path(tmp, mf.MANIFEST_NAME), manifest)
        client.copy_file_up(Path(tmp, mf.MANIFEST_NAME), mf.MANIFEST_NAME)
    log.info("published %s: %d files, manifest uploaded last", source, len(entries))
    return manifest
