"""Durable state on an rclone remote for ephemeral pods (the ``runpod`` profile).

The remote mirrors the working directory. It holds every completed output at its relative
path, with its Snakemake provenance record under ``.snakemake/metadata/`` and its
*companions*: the job's benchmark file, and a dataset's files. An upload copies the files,
verifies them (``rclone check``), then copies the records. So a record on the remote means its
output and companions are there, complete. Which remote holds what is told by one recursive
listing. What this directory uploaded or restored is in a ledger
(``.snakemake/rlpipe-durable.json``: each file's size and mtime then, and the remote object's
modtime in the listing), so uploads compare local files with the ledger rather than with
remote modtimes, which some remotes cannot set. A directory uploads only what it made or
changed; a copy the remote has since replaced (another directory remade it) is fetched again
at the next restore, never uploaded over the newer version.

Restore, while the Snakefile is parsed, and only by the run that holds the directory
(``rlpipe.smk.locks``):

1. list the remote;
2. if the remote has outputs this directory lacks, download the records it lacks;
3. run the probe (``rlpipe.remote.probe``): a dry run that says which outputs are *current*
   (their records match this config and code, and so does everything upstream) and which files
   the jobs that will run read;
4. download, in one call, the current outputs that are small (``eager_restore_mb``) or read by
   a job that will run, with their companions. Each gets the mtime its record holds.

An output whose record is stale, e.g. made under an older config, is never restored and never
counted as durable by retention. Results never mix configs.

Retention (``keep_last``) deletes a checkpoint locally and remotely once it is superseded:
its evaluation and the next checkpoint are durable and current.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from rlpipe.remote.metadata import INCOMPLETE, METADATA, incomplete_marker, key_of, record_rel
from rlpipe.remote.probe import ProbeResult
from rlpipe.runtree import atomic
from rlpipe.storage.rclone import RcloneRemote, RemoteError, RemoteNotFound, ensure_configured

log = logging.getLogger("rlpipe.remote.durable")

LEDGER = ".snakemake/rlpipe-durable.json"
REMOTE_ENV = "RLPIPE_REMOTE"

Companions = Callable[[str], list[str]]  # output -> files and "dir/" prefixes travelling with it


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
    eager_restore_mb: float = 1.0
    owner_timeout_s: float = 120.0
    owner_wait_s: float = 180.0

    @classmethod
    def from_config(cls, section: dict | None) -> Settings | None:
        section = dict(section or {})
        if section.get("remote") and os.environ.get(REMOTE_ENV):
            section["remote"] = os.environ[REMOTE_ENV]
        return cls(**section) if section.get("remote") else None


@dataclass
class RunFiles:
    """One run's checkpoints and evals, in step order (from rules/durable.smk)."""

    steps: list[int]
    ckpts: list[str]
    evals: list[str]
    pinned: set[str] = field(default_factory=set)


class Ledger:
    """Files known to be on the remote as they are here: path -> [size, mtime_ns, ModTime],
    the local file's stat and the remote object's modtime from a listing, taken when the two
    matched (after an upload or a download)."""

    def __init__(self, workdir: Path):
        self.workdir, self.path = workdir, workdir / LEDGER
        try:
            self.entries: dict[str, list] = json.loads(self.path.read_text())
        except (OSError, ValueError):
            self.entries = {}  # absent or unreadable: everything is compared afresh

    def stat(self, rel: str) -> list[int] | None:
        try:
            st = (self.workdir / rel).stat()
        except OSError:
            return None
        return [st.st_size, st.st_mtime_ns]

    def same(self, rel: str) -> bool:
        """This file is unchanged since it matched the remote."""
        entry = self.entries.get(rel)
        return entry is not None and entry[:2] == self.stat(rel)

    def replaced(self, rel: str, remote: dict) -> bool:
        """The remote object ``remote`` (a listing entry) is another version than the one
        this file matched: another directory has uploaded a newer one since."""
        entry = self.entries.get(rel)
        if entry is None:
            return False
        modtime = entry[2] if len(entry) > 2 else remote.get("ModTime")
        return remote["Size"] != entry[0] or remote.get("ModTime") != modtime

    def mark(
        self,
        rels: Iterable[str],
        state: dict[str, dict],
        before: dict[str, list[int] | None] | None = None,
    ) -> None:
        """Vouch that these files match their remote objects in ``state``. With ``before``
        (their stats when an upload read them), a file that changed since is not vouched
        for, so the next flush uploads it again."""
        for rel in rels:
            stat, remote = self.stat(rel), state.get(rel)
            if stat is None or remote is None or (before is not None and before.get(rel) != stat):
                self.entries.pop(rel, None)
            else:
                self.entries[rel] = [*stat, remote.get("ModTime")]
        atomic.write_json(self.path, self.entries)

    def forget(self, rels: Iterable[str]) -> None:
        for rel in rels:
            self.entries.pop(rel, None)
        atomic.write_json(self.path, self.entries)


class Mirror:
    """Restore from, upload to and prune the remote copy of one working directory."""

    def __init__(self, settings: Settings, runs: list[RunFiles], workdir: str | Path = "."):
        ensure_configured(settings.remote, f"durable state (durable.remote or ${REMOTE_ENV})")
        self.settings, self.runs, self.workdir = settings, runs, Path(workdir)
        self.remote = RcloneRemote(settings.remote, retries=settings.upload_retries)
        self.ledger = Ledger(self.workdir)
        self.state: dict[str, dict] | None = None  # remote rel path -> lsjson entry
        self.companions: Companions = lambda key: []
        self.stale: set[str] = set()  # outputs this run found out of date, until rewritten
        self.started = time.time()
        self.failed: list[str] = []
        self._lock = threading.Lock()

    # -- remote state --------------------------------------------------------------------

    def refresh(self) -> dict[str, dict]:
        """One batched recursive listing of the remote."""
        try:
            entries = self.remote.list(refresh=True)
        except RemoteNotFound:
            entries = []
        self.state = {e["Path"]: e for e in entries}
        return self.state

    def on_remote(self, key: str) -> bool:
        """The output and its record are on the remote (its upload completed)."""
        state = self.state or {}
        return key in state and record_rel(key) in state

    def current(self, key: str) -> bool:
        """On the remote, and its record is the one this directory uploaded or restored as
        current, and this run is not about to remake it."""
        record = record_rel(key)
        if not self.on_remote(key) or not self.ledger.same(record) or self._outdated(record):
            return False
        if key in self.stale:
            return (self.workdir / record).stat().st_mtime >= self.started  # remade by this run
        return True

    def _remote_files(self, spec: str) -> list[str]:
        """A companion spec (a path, or a "dir/" prefix) as the remote files it names."""
        state = self.state or {}
        if spec.endswith("/"):
            return [p for p in state if p.startswith(spec)]
        return [spec] if spec in state else []

    def _local_files(self, spec: str) -> list[str]:
        path = self.workdir / spec
        if spec.endswith("/"):
            if not path.is_dir():
                return []
            files = (p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))
            return sorted(str(p.relative_to(self.workdir)) for p in files)
        return [spec] if path.is_file() else []

    # -- restore -------------------------------------------------------------------------

    def restore(self, probe: Callable[[], ProbeResult]) -> list[str]:
        """Bring what this config needs from the remote (module docstring); returns the
        paths downloaded, records included."""
        state = self.refresh()
        records = [p for p in state if p.startswith(METADATA + "/")]
        stale = self._stale_copies(records)
        lacking = [k for k in map(key_of, records) if k in state and not self._local(k)]
        if not lacking and not stale:
            return []
        refreshed = {key_of(r) for r in stale}
        for rel in [*stale, *refreshed]:  # fetched again below, whatever rclone would compare
            (self.workdir / rel).unlink(missing_ok=True)
        self.ledger.forget([*stale, *refreshed])
        new_records = [r for r in records if not self._local(r)]
        self._download(new_records)
        result = probe()
        eager = self.settings.eager_restore_mb * 2**20
        wanted, current_records = [], []
        for job in result.jobs:
            if not job.current:
                continue
            remade = not refreshed.isdisjoint(job.outputs)
            for key in job.outputs:
                if not self.on_remote(key):
                    continue
                current_records.append(record_rel(key))
                if self._local(key):
                    continue
                files = [key, *(f for c in job.companions for f in self._remote_files(c))]
                size = sum(state[f]["Size"] for f in files)
                if size <= eager or not result.needed.isdisjoint(files):
                    wanted += [f for f in files if self._fetch(f, remade)]
        wanted = sorted(set(wanted))
        self._download(wanted)
        restored_outputs = {k for k in wanted if record_rel(k) in state}
        for job in result.jobs:
            for key in restored_outputs.intersection(job.outputs):
                endtime = self._record_endtime(key)
                for f in [key, *(f for c in job.companions for f in self._remote_files(c))]:
                    if f in wanted:
                        os.utime(self.workdir / f, (endtime, endtime))
        self.ledger.mark([*current_records, *wanted], state)
        log.info("restored %d files from %s", len(wanted), self.remote.remote)
        return [*new_records, *wanted]

    def _fetch(self, rel: str, remade: bool) -> bool:
        """Download ``rel``: it is not here, or it is an unchanged copy of a version the
        remote has since replaced (``remade``)."""
        return not self._local(rel) or (remade and self.ledger.same(rel))

    def _stale_copies(self, records: list[str]) -> list[str]:
        """Records held here as copies of the remote that may no longer match it: a synced
        copy another directory has since replaced there, or one fetched only for an earlier
        probe (never vouched for). Outputs made or changed here keep their records."""
        out = []
        for rec in records:
            key = key_of(rec)
            if not self._local(rec) or (self._local(key) and not self.ledger.same(key)):
                continue
            if rec in self.ledger.entries:
                if self._outdated(rec):
                    out.append(rec)
            elif not self._local(key):
                out.append(rec)
        return out

    def _local(self, rel: str) -> bool:
        return (self.workdir / rel).is_file()

    def _record_endtime(self, key: str) -> float:
        record = json.loads((self.workdir / record_rel(key)).read_text())
        return float(record["endtime"])

    def _download(self, files: list[str]) -> None:
        if files:
            # Snakemake migrates a metadata dir that has no incomplete dir: create it first.
            (self.workdir / INCOMPLETE).mkdir(parents=True, exist_ok=True)
            self.remote.files_op("copy", self.remote.remote, str(self.workdir), files, True)

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
                marker = self.workdir / incomplete_marker(key)
                if self._local(key) and not marker.exists():
                    done[key] = rel
        return done

    def _synced(self, rel: str) -> bool:
        """Nothing to upload: the remote has this file, and this copy is unchanged since it
        matched the remote. Where another directory has replaced the remote object since,
        that version is the newer one: an unchanged local copy never goes over it."""
        return rel in (self.state or {}) and self.ledger.same(rel)

    def _outdated(self, rel: str) -> bool:
        """An unchanged copy here of a version the remote no longer holds (another
        directory has uploaded a newer one since)."""
        return self._synced(rel) and self.ledger.replaced(rel, self.state[rel])

    def pending(self) -> dict[str, list[str]]:
        """Completed local outputs (record path -> files) not identically on the remote."""
        if self.state is None:
            self.refresh()
        out = {}
        for key, rec in self.completed_local().items():
            if self._outdated(rec):
                continue  # an older version, remade elsewhere: the next restore fetches it
            files = [key, *(f for c in self.companions(key) for f in self._local_files(c))]
            if not all(self._synced(f) for f in [*files, rec]):
                out[rec] = files
        return out

    def flush(self) -> int:
        """Upload pending outputs (verified), then their records, then prune. Returns count."""
        with self._lock:
            todo = self.pending()
            if todo:
                files = sorted({f for group in todo.values() for f in group})
                before = {f: self.ledger.stat(f) for f in [*files, *todo]}
                stale = [rec for rec in todo if rec in self.state]
                if stale:  # an output being replaced: drop its old record first
                    self.remote.files_op("delete", None, self.remote.remote, stale)
                self.remote.files_op("copy", str(self.workdir), self.remote.remote, files)
                self.remote.files_op("check", str(self.workdir), self.remote.remote, files)
                self.remote.files_op("copy", str(self.workdir), self.remote.remote, sorted(todo))
                self.ledger.mark([*files, *todo], self.refresh(), before)
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
                if not exc.transient or time.monotonic() + delay > deadline:
                    break  # a refusal (e.g. 403) will not pass by waiting
                _report_deferred(exc, f"; retrying in {delay:.0f}s")
                time.sleep(delay)
                delay = min(delay * 2, 30.0)
        raise RuntimeError(
            f"outputs could not be uploaded to {self.remote.remote} ({self.failed[-1]}). They "
            "are on local disk only; do not delete this directory. Rerun the same command to "
            "retry once the remote accepts writes."
        )

    # -- retention -----------------------------------------------------------------------

    def doomed(self) -> list[str]:
        """Checkpoints retention deletes now (:func:`superseded` on this mirror's state)."""
        return superseded(self.runs, self.current, self.settings.keep_last)

    def prune(self) -> list[str]:
        doomed = self.doomed()
        on_remote = [c for c in doomed if c in (self.state or {})]
        if on_remote:
            self.remote.files_op("delete", None, self.remote.remote, on_remote)
            for c in on_remote:
                self.state.pop(c, None)
        for c in doomed:
            (self.workdir / c).unlink(missing_ok=True)
        if doomed:
            self.ledger.forget(doomed)
            log.info("retention: deleted %d checkpoints", len(doomed))
        return doomed


def superseded(runs: list[RunFiles], current: Callable[[str], bool], keep_last: int | None):
    """Retention, a pure function: the checkpoints to delete. A checkpoint goes once it is
    superseded (its evaluation and the next checkpoint are ``current``: durable and made by
    this config and code), unless it is among the last ``keep_last`` current ones of its run,
    the run's final one, or pinned."""
    if not keep_last:
        return []
    out = []
    for run in runs:
        ok = [current(c) for c in run.ckpts]
        done = [i for i, v in enumerate(ok) if v]
        kept = set(done[-keep_last:]) | {len(run.ckpts) - 1}
        for i in done:
            if i in kept or run.ckpts[i] in run.pinned or not current(run.evals[i]):
                continue
            if ok[i + 1]:
                out.append(run.ckpts[i])
    return out


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
