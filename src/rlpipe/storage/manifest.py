"""MANIFEST.json: the list of a dataset's files with sizes and sha256, written LAST.

A dataset directory without a manifest is incomplete (absent); one with a manifest is complete
and can be verified file by file::

    {"format": "rlpipe-dataset-manifest/1", "dataset": "pong-expert",
     "source": "replays:datasets/pong-expert",        # remote path, never credentials
     "files": [{"path": "ep_000.npz", "size": 1234, "sha256": "..."}, ...],
     "remote_fingerprint": "sha256:..." | null}
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from rlpipe.runtree import atomic

FORMAT = "rlpipe-dataset-manifest/1"
MANIFEST_NAME = "MANIFEST.json"
CHUNK = 1 << 20


class ManifestError(ValueError):
    """A manifest is malformed, or local files do not match it."""


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def dataset_files(root: str | Path) -> list[str]:
    """Relative paths of a dataset's files: everything but the manifest and hidden temp files."""
    root = Path(root)
    return sorted(
        p.relative_to(root).as_posix()
        for p in root.rglob("*")
        if p.is_file()
        and p.name != MANIFEST_NAME
        and not any(part.startswith(".") for part in p.relative_to(root).parts)
    )


def file_entry(root: str | Path, rel: str) -> dict:
    path = Path(root, rel)
    return {"path": rel, "size": path.stat().st_size, "sha256": sha256_file(path)}


def build(dataset: str, source: str, files: list[dict], remote_fingerprint: str | None) -> dict:
    return {
        "format": FORMAT,
        "dataset": dataset,
        "source": source,
        "files": sorted(files, key=lambda f: f["path"]),
        "remote_fingerprint": remote_fingerprint,
    }


def write(path: str | Path, manifest: dict) -> None:
    """Write atomically (temp + fsync + rename)."""
    validate(manifest, str(path))
    atomic.write_json(path, manifest)


def parse(text: str, where: str) -> dict:
    try:
        manifest = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ManifestError(f"{where}: not valid JSON ({exc})") from None
    validate(manifest, where)
    return manifest


def load(path: str | Path) -> dict:
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ManifestError(f"{path}: cannot read manifest ({exc.strerror})") from None
    return parse(text, str(path))


def validate(manifest: dict, where: str) -> None:
    """Check the structure; errors name the key that is wrong."""
    if not isinstance(manifest, dict):
        raise ManifestError(f"{where}: manifest must be a JSON object")
    if manifest.get("format") != FORMAT:
        raise ManifestError(f"{where}: format is {manifest.get('format')!r}, expected {FORMAT!r}")
    for key in ("dataset", "source"):
        if not isinstance(manifest.get(key), str):
            raise ManifestError(f"{where}: key {key!r} must be a string")
    if not isinstance(manifest.get("files"), list):
        raise ManifestError(f"{where}: key 'files' must be a list")
    for i, entry in enumerate(manifest["files"]):
        ok = (
            isinstance(entry, dict)
            and isinstance(entry.get("path"), str)
            and isinstance(entry.get("size"), int)
            and isinstance(entry.get("sha256"), str)
            and len(entry["sha256"]) == 64
        )
        if not ok:
            raise ManifestError(f"{where}: files[{i}] needs path (str), size (int), sha256 (hex)")
    fp = manifest.get("remote_fingerprint")
    if fp is not None and not isinstance(fp, str):
        raise ManifestError(f"{where}: key 'remote_fingerprint' must be a string or null")


def verify(manifest: dict, root: str | Path) -> None:
    """Raise ManifestError naming every local file that is missing or differs."""
    root = Path(root)
    problems = []
    for entry in manifest["files"]:
        path = root / entry["path"]
        if not path.is_file():
            problems.append(f"{path}: missing")
        elif path.stat().st_size != entry["size"]:
            problems.append(f"{path}: size {path.stat().st_size}, manifest says {entry['size']}")
        elif sha256_file(path) != entry["sha256"]:
            problems.append(f"{path}: sha256 differs from the manifest")
    if problems:
        raise ManifestError(f"dataset {root} does not match its manifest: " + "; ".join(problems))


def stored_fingerprint(path: str | Path) -> str | None:
    """The ``remote_fingerprint`` of an existing manifest, or None (no/invalid manifest)."""
    try:
        return load(path).get("remote_fingerprint")
    except ManifestError:
        return None
