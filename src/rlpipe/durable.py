"""Durable state on an rclone remote for ephemeral pods (the ``runpod`` profile).

The remote mirrors the working directory: every completed output (a file with a Snakemake
metadata record and no incomplete marker) at its relative path, plus its record under
``.snakemake/metadata/``. A record is uploaded only after its output's upload is verified, and
restore trusts only outputs that have a record, so a partial upload is never taken for a
complete one. Restore (at parse time) lists the remote once and downloads, in one batched call,
every missing output except checkpoints that are not the latest of their run; mtimes are kept,
so Snakemake sees the outputs up to date and the records keep param/code changes detectable.
Retention deletes old checkpoints locally and remotely once their successors are durable.
"""

from __future__ import annotations

import glob
import logging
import os
import shutil
import sys
import tempfile
import threading
import time
from base64 import urlsafe_b64decode, urlsafe_b64encode
from dataclasses import dataclass, field
from pathlib import Path

from rlpipe.storage.rclone import RcloneRemote, RemoteError, RemoteNotFound

log = logging.getLogger("rlpipe.durable")

METADATA = ".snakemake/metadata"
INCOMPLETE = ".snakemake/incomplete"
NAME_MAX = 255
REMOTE_ENV = "RLPIPE_REMOTE"


def record_rel(key: str) -> str:
    """Snakemake's FilePersistence record path of output ``key`` (relative to the workdir)."""
    b64 = urlsafe_b64encode(key.encode()).decode()
    parts = [b64[i : i + NAME_MAX - 1] for i in range(0, len(b64), NAME_MAX - 1)]
    return "/".join([METADATA, *("@" + p for p in parts[:-1]), parts[-1]])


def key_of(rel: str) -> str:
    """Inverse of :func:`record_rel`."""
    parts = rel[len(METADATA) + 1 :].split("/")
    return urlsafe_b64decode("".join(p.lstrip("@") for p in parts)).decode()


@dataclass
class Settings:
    """The ``durable:`` config section; $RLPIPE_REMOTE replaces a configured remote."""

    remote: str
    keep_last: int | None = None
    keep_every: int | None = None
    min_free_disk_mb: float = 0
    upload_retries: int = 3
    upload_deadline_s: float = 600
    upload_interval_s: float = 30

    @classmethod
    def from_config(cls, section: dict | None) -> Settings | None:
        section = dict(section or {})
        if section.get("remote") and os.environ.get(REMOTE_ENV):
            section["remote"] = os.environ[REMOTE_ENV]
        return cls(**section) if section.get("remote") else None


@dataclass
class RunFiles:
    """One run's checkpoints and evals, in step order (from rules/common.smk)."""

    steps: list[int]
    ckpts: list[str]
    evals: list[str]
    pinned: set[str] = field(default_factory=set)


class Mirror:
    """Restore from, upload to and prune the remote copy of one working directory."""

    def __init__(self, settings: Settings, runs: list[RunFiles], workdir: str | Path = "."):
        self.settings, self.runs, self.workdir = settings, runs, Path(workdir)
        self.remote = RcloneRemote(settings.remote, retries=settings.upload_retries)
        self.state: dict[str, dict] | None = None  # remote rel path -> lsjson entry
        self.failed: list[str] = []
        self._lock = threading.Lock()
        self._ckpt_run = {c: r for r in runs for c in r.ckpts}

    # -- remote state --------------------------------------------------------------------

    def refresh(self) -> dict[str, dict]:
        """One batched recursive listing of the remote."""
        try:
            entries = self.remote.list(refresh=True)
        except RemoteNotFound:
            entries = []
        self.state = {e["Path"]: e for e in entries}
        return self.state

    def _durable_on_remote(self) -> set[str]:
        """Outputs on the remote whose record is there too."""
        state = self.state or {}
        keys = {key_of(p) for p in state if p.startswith(METADATA + "/")}
        return {k for k in keys if k in state}

    # -- restore -------------------------------------------------------------------------

    def restore(self) -> list[str]:
        """Download all records and the outputs a fresh directory needs; returns their paths."""
        self.refresh()
        durable = self._durable_on_remote()
        latest = {}
        for run in self.runs:
            present = [c for c in run.ckpts if c in durable]
            if present:
                latest[id(run)] = present[-1]
        wanted = []
        for key in sorted(durable):
            run = self._ckpt_run.get(key)
            if run is not None and latest.get(id(run)) != key:
                continue  # an intermediate checkpoint: nothing downstream needs it
            if _is_checkpoint(key) and run is None:
                continue  # a checkpoint of a run not in this config
            if not (self.workdir / key).exists():
                wanted.append(key)
        records = [p for p in self.state if p.startswith(METADATA + "/")]
        wanted += [p for p in records if not (self.workdir / p).exists()]
        # Snakemake migrates a metadata dir that has no incomplete dir: create it first.
        (self.workdir / INCOMPLETE).mkdir(parents=True, exist_ok=True)
        if wanted:  # filter rules, not --files-from: rclone lists per directory, not per file
            self._files_op("copy", self.remote.remote, str(self.workdir), wanted, "--include-from")
        log.info("restored %d files from %s", len(wanted), self.remote.remote)
        return wanted

    # -- upload --------------------------------------------------------------------------

    def completed_local(self) -> dict[str, str]:
        """Local outputs of finished jobs -> their record path."""
        root = self.workdir / METADATA
        done = {}
        for dirpath, _, names in os.walk(root):
            for name in names:
                rel = str((Path(dirpath) / name).relative_to(self.workdir))
                try:
                    key = key_of(rel)
                except ValueError:
                    continue
                marker = self.workdir / record_rel(key).replace(METADATA, INCOMPLETE, 1)
                if (self.workdir / key).is_file() and not marker.exists():
                    done[key] = rel
        return done

    def pending(self) -> dict[str, str]:
        """Completed local outputs not (or not identically) on the remote."""
        state = self.state if self.state is not None else self.refresh()
        out = {}
        for key, rec in self.completed_local().items():
            st = (self.workdir / key).stat()
            entry = state.get(key)
            same = (
                entry
                and entry["Size"] == st.st_size
                and abs(_mtime(entry["ModTime"]) - st.st_mtime) < 1.0
            )
            if not same or rec not in state:
                out[key] = rec
        return out

    def flush(self) -> int:
        """Upload pending outputs (verified), then their records, then prune. Returns count."""
        with self._lock:
            todo = self.pending()
            if todo:
                stale = [rec for key, rec in todo.items() if rec in self.state]
                if stale:  # an output being replaced: drop its old record first
                    self._files_op("delete", None, self.remote.remote, stale)
                self._files_op("copy", str(self.workdir), self.remote.remote, sorted(todo))
                self._files_op("check", str(self.workdir), self.remote.remote, sorted(todo))
                self._files_op("copy", str(self.workdir), self.remote.remote, sorted(todo.values()))
                self.refresh()
            self.prune()
            return len(todo)

    def flush_or_defer(self) -> int:
        """:meth:`flush`, but a remote error (or a local file that changed under it, e.g. a
        job rewriting an output) is only reported: the next flush retries."""
        try:
            return self.flush()
        except (RemoteError, OSError) as exc:
            _report_deferred(exc)
            return 0

    def flush_until_deadline(self) -> None:
        """Final synchronous flush with retries; raises RuntimeError if files stay local only."""
        deadline = time.monotonic() + self.settings.upload_deadline_s
        delay = 2.0
        while True:
            try:
                self.flush()
                self.failed = []
                return
            except RemoteError as exc:
                self.failed = [str(exc)]
                if time.monotonic() + delay > deadline:
                    break
                _report_deferred(exc, f"; retrying in {delay:.0f}s")
                time.sleep(delay)
                delay = min(delay * 2, 30.0)
        raise RuntimeError(
            f"rlpipe durable: outputs could not be uploaded to {self.remote.remote} within "
            f"{self.settings.upload_deadline_s:.0f}s ({self.failed[-1]}). They are still on "
            "local disk; rerun the same command to retry."
        )

    # -- retention -----------------------------------------------------------------------

    def doomed(self) -> list[str]:
        """Checkpoints to delete: superseded, durable, not among the kept or pinned ones."""
        keep = self.settings.keep_last
        if not keep:
            return []
        durable = self._durable_on_remote()
        out = []
        for run in self.runs:
            done = [i for i, c in enumerate(run.ckpts) if c in durable]
            kept = set(done[-keep:]) | {len(run.ckpts) - 1}
            for i in done:
                if i in kept or run.ckpts[i] in run.pinned or run.evals[i] not in durable:
                    continue
                if i + 1 < len(run.ckpts) and run.ckpts[i + 1] in durable:
                    out.append(run.ckpts[i])
        return out

    def prune(self) -> list[str]:
        doomed = self.doomed()
        on_remote = [c for c in doomed if c in (self.state or {})]
        if on_remote:
            self._files_op("delete", None, self.remote.remote, on_remote)
            for c in on_remote:
                self.state.pop(c, None)
        for c in doomed:
            (self.workdir / c).unlink(missing_ok=True)
        if doomed:
            log.info("retention: deleted %d checkpoints", len(doomed))
        return doomed

    # -- rclone --------------------------------------------------------------------------

    def _files_op(
        self, op: str, src: str | None, dst: str, files: list[str], how: str = "--files-from"
    ) -> None:
        """One rclone call over a list of relative paths (``--files-from`` or anchored rules)."""
        if how == "--include-from":
            files = ["/" + glob.escape(f) for f in files]
        with tempfile.NamedTemporaryFile("w", suffix=".files", delete=False) as fh:
            fh.write("\n".join(files) + "\n")
        args = [op, *([src] if src else []), dst, how, fh.name]
        if op == "copy":
            args += ["--transfers", str(self.remote.transfers)]
        if op == "check":
            args += ["--one-way"]
        args += self.remote._flags()
        try:
            self.remote._attempt(op, dst, lambda: self.remote._run(op, dst, args))
        finally:
            os.unlink(fh.name)


class Uploader(threading.Thread):
    """Background flushes in the main Snakemake process; errors are logged and retried."""

    def __init__(self, mirror: Mirror):
        super().__init__(name="rlpipe-durable-uploader", daemon=True)
        self.mirror, self.stop = mirror, threading.Event()

    def run(self) -> None:
        while not self.stop.wait(self.mirror.settings.upload_interval_s):
            self.mirror.flush_or_defer()


def _report_deferred(exc: Exception, then: str = "") -> None:
    """The one user-visible line of a failed upload round (Snakemake shows stderr)."""
    print(f"rlpipe durable: upload deferred: {exc}{then}", file=sys.stderr)


def _is_checkpoint(rel: str) -> bool:
    return "/ckpt/step_" in rel or "/qtable/step_" in rel


def _mtime(text: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def check_free_disk(out_path: str, prev_ckpt: str | None, min_free_mb: float) -> None:
    """Refuse to start a segment when free disk < margin + expected checkpoint size."""
    if not min_free_mb:
        return
    need = min_free_mb * 2**20 + (os.path.getsize(prev_ckpt) if prev_ckpt else 0)
    target = Path(out_path).parent
    target.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(target).free
    if free < need:
        raise RuntimeError(
            f"disk guard: only {free / 2**20:.0f} MiB free under {target}, need "
            f"{need / 2**20:.0f} MiB (durable.min_free_disk_mb={min_free_mb} plus the previous "
            "checkpoint's size); the job fails now and Snakemake retries it later"
        )


def guard_disk(smk) -> None:
    """The one-line disk guard of the training scripts (``smk`` is Snakemake's object)."""
    margin = (smk.config.get("durable") or {}).get("min_free_disk_mb", 0)
    check_free_disk(smk.output[0], smk.input.get("prev"), margin)
