"""One sweep split across N pods: which runs a shard builds, and who may build it.

Shards (``--config shard=I/N``, 1 <= I <= N) split the sweep's *units*: groups of runs that
must train on one machine because one reads another's outputs (a warm start, ``init_from``;
a dataset recorded from a run and the runs cloning it; runs sharing a fetched dataset). Units
are balanced by planned hours (:func:`weights`), longest first onto the least loaded shard.

The assignment is stored on the durable remote (:data:`ASSIGNMENT_REL`) by the first sharded
run, and later runs extend it: a run keeps its shard forever, runs added to the config go
longest first to the least loaded shards. It is a pure function of the stored assignment and
the config, so pods starting at once compute the same file. The stored shard count is
binding: another ``N`` is refused (delete the file to re-split a sweep nobody is running).

One writer per shard: a sharded real run *claims* its shard with an owner record on the remote
(:data:`OWNER_REL`), refreshes its heartbeat while it runs, and deletes it at exit. A run that
finds a foreign owner whose heartbeat is younger than ``owner_timeout_s`` waits up to
``owner_wait_s`` for it to expire, then refuses (:class:`ShardBusy`). The owner is this host
and working directory, so restarting a run in its own directory is no takeover. Two pods
claiming at once both write and read back after ``settle_s``: the one overwritten refuses.
Clocks are compared across pods (heartbeats are wall-clock times): keep them NTP-synced.
"""

from __future__ import annotations

import heapq
import json
import os
import re
import socket
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from rlpipe.runtree import layout
from rlpipe.sweep.runs import ConfigError, Run, recording_source

ASSIGNMENT_REL = ".rlpipe/shards.json"
OWNER_REL = ".rlpipe/owners/shard-{index}-of-{count}.json"
LOCAL_COPY = ".snakemake/rlpipe-shards.json"
FORMAT = "rlpipe-shards/1"
SHARD = re.compile(r"^([1-9]\d*)/([1-9]\d*)$")

RunKey = tuple[str, str, int]


@dataclass(frozen=True)
class Shard:
    index: int  # 1-based
    count: int

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    @classmethod
    def parse(cls, value) -> Shard | None:
        """``"I/N"`` (config key ``shard``) as a Shard; None when not given."""
        if value is None:
            return None
        m = SHARD.match(str(value).strip())
        if not m or not int(m[1]) <= int(m[2]):
            raise ConfigError(f"shard: {value!r} is not I/N with 1 <= I <= N (e.g. shard=2/3)")
        return cls(int(m[1]), int(m[2]))


def run_name(key: RunKey) -> str:
    return layout.run_name(*key)


def units(runs: dict[RunKey, Run], datasets: dict) -> list[list[RunKey]]:
    """Groups of runs that read each other's outputs (connected components), sorted."""
    parent = {key: key for key in runs}

    def find(k):
        while parent[k] != k:
            parent[k] = parent[parent[k]]
            k = parent[k]
        return k

    def join(a, b):
        if a in parent and b in parent:
            parent[find(a)] = find(b)

    by_dataset: dict[str, list[RunKey]] = {}
    for key, run in runs.items():
        if run.init_from:
            join(key, (run.init_from, run.env, run.seed))
        if run.dataset:
            by_dataset.setdefault(run.dataset, []).append(key)
    for name, users in by_dataset.items():
        source = recording_source(datasets.get(name))
        if source:
            users = [*users, source]
        for other in users[1:]:
            join(users[0], other)
    groups: dict[RunKey, list[RunKey]] = {}
    for key in sorted(runs):
        groups.setdefault(find(key), []).append(key)
    return sorted(groups.values())


def weights(seconds) -> dict:
    """Planned seconds of each run's whole chain (every segment and evaluation) by
    ``seconds`` (a ``plan.Durations``), times the GPUs a job takes (at least 1): GPU-hours
    where runs use GPUs, job-hours where none do."""
    from rlpipe.results import plan

    out = {}
    for key, run in seconds.runs.items():
        gpu = run.resources.gpu
        total = 0.0
        for i, end in enumerate(run.steps):
            start = run.steps[i - 1] if i else 0
            for kind in ("train", "eval"):
                total += seconds(plan.Job(*key, kind, start, end))
        out[key] = total * max(gpu, 1)
    return out


def assign(groups: list[list[RunKey]], weight: dict, count: int, stored: dict[str, int]) -> dict:
    """Run name -> shard (1..count). Units with a stored shard keep it; the others go longest
    first (ties by name) to the least loaded shard (ties to the lowest index)."""
    loads = [[0.0, i] for i in range(1, count + 1)]
    result: dict[str, int] = {}
    fresh = []
    for group in groups:
        w = sum(weight[k] for k in group)
        known = sorted(stored[run_name(k)] for k in group if run_name(k) in stored)
        if known and 1 <= known[0] <= count:
            loads[known[0] - 1][0] += w
            result.update((run_name(k), known[0]) for k in group)
        else:
            fresh.append((-w, run_name(group[0]), group))
    heapq.heapify(loads)
    for neg_w, _, group in sorted(fresh):
        load = heapq.heappop(loads)
        result.update((run_name(k), load[1]) for k in group)
        load[0] -= neg_w
        heapq.heappush(loads, load)
    return result


@dataclass
class Assignment:
    count: int
    runs: dict[str, int]  # run name -> shard

    def to_json(self) -> str:
        body = {"format": FORMAT, "shards": self.count, "runs": dict(sorted(self.runs.items()))}
        return json.dumps(body, indent=1) + "\n"

    @classmethod
    def from_json(cls, text: str, where: str) -> Assignment:
        try:
            body = json.loads(text)
            if body.get("format") != FORMAT:
                raise ValueError(f"format {body.get('format')!r}, expected {FORMAT!r}")
            runs = {str(k): int(v) for k, v in body["runs"].items()}
            return cls(int(body["shards"]), runs)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ConfigError(
                f"{where}: not a shard assignment ({exc}); delete it to split the sweep afresh"
            ) from None

    def runs_of(self, index: int) -> set[str]:
        return {name for name, i in self.runs.items() if i == index}


def plan_assignment(
    config: dict, count: int, stored: Assignment | None, runs_dir, runs: dict | None = None
) -> Assignment:
    """The assignment for ``count`` shards: ``stored`` extended with the config's new runs
    (``runs``: the config's Runs, when the caller has them)."""
    if stored is not None and stored.count != count:
        raise ConfigError(
            f"shard: this sweep is split into {stored.count} shards ({ASSIGNMENT_REL} on the "
            f"remote), not {count}: use shard=I/{stored.count}, or delete that file once no pod "
            "runs, to split it afresh"
        )
    from rlpipe.results import plan

    seconds = plan.Durations(config, runs_dir, runs)
    groups = units(seconds.runs, config.get("datasets") or {})
    placed = assign(groups, weights(seconds), count, stored.runs if stored else {})
    return Assignment(count, {**(stored.runs if stored else {}), **placed})


def read_replaced(remote, rel: str, attempts: int = 4, pause_s: float = 0.1) -> str:
    """The text of a file that pods replace while others read it (the assignment, owner
    records; never empty when written): read again while it reads as missing or empty.

    ``replace_file`` moves a whole new file over the old one, but a server may delete the old
    one first (rclone's WebDAV server does): for a moment there is no file, and ``rclone cat``
    then either finds none or prints nothing and succeeds. After ``attempts`` reads 0.1 s
    apart, a missing file is RemoteNotFound and an empty one is returned as it is."""
    from rlpipe.storage.rclone import RemoteNotFound

    for attempt in range(attempts):
        if attempt:
            time.sleep(pause_s)
        try:
            text = remote.cat(rel)
        except RemoteNotFound:
            if attempt == attempts - 1:
                raise
            continue
        if text:
            break
    return text


# --- owner records --------------------------------------------------------------------------


class ShardBusy(RuntimeError):
    """Another live pod owns this shard."""


def owner_id(workdir: str | os.PathLike) -> str:
    """This machine and working directory (stable across restarts in place)."""
    return f"{socket.gethostname()}:{Path(workdir).resolve()}"


@dataclass
class OwnerSettings:
    timeout_s: float  # a heartbeat older than this is a dead owner
    wait_s: float  # how long a claim waits for a live owner's heartbeat to expire
    settle_s: float = 2.0  # claim write -> read back, to catch a simultaneous claim

    @property
    def heartbeat_s(self) -> float:
        return max(1.0, self.timeout_s / 4)


class Owner:
    """Claim, heartbeat and release one shard's owner record on a remote (RcloneRemote)."""

    def __init__(self, remote, shard: Shard, workdir, settings: OwnerSettings, clock=time.time):
        self.remote, self.shard, self.settings = remote, shard, settings
        self.me = owner_id(workdir)
        self.run_id = uuid.uuid4().hex[:12]
        self.rel = OWNER_REL.format(index=shard.index, count=shard.count)
        self.clock = clock
        self.started = clock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def read(self) -> dict | None:
        from rlpipe.storage.rclone import RemoteNotFound

        try:
            return json.loads(read_replaced(self.remote, self.rel))
        except RemoteNotFound:
            return None
        except ValueError:
            return None  # a torn or foreign file: treated as no owner

    def _write(self) -> None:
        body = {
            "owner": self.me,
            "run_id": self.run_id,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "shard": str(self.shard),
            "started": self.started,
            "heartbeat": self.clock(),
        }
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as fh:
            fh.write(json.dumps(body) + "\n")
        try:
            self.remote.replace_file(fh.name, self.rel)
        finally:
            os.unlink(fh.name)

    def _foreign_live(self, record: dict | None) -> bool:
        if not record or record.get("owner") == self.me:
            return False
        return self.clock() - float(record.get("heartbeat", 0)) < self.settings.timeout_s

    def describe(self, record: dict) -> str:
        age = self.clock() - float(record.get("heartbeat", 0))
        return f"{record.get('owner')} (run {record.get('run_id')}, heartbeat {age:.0f} s ago)"

    def claim(self, say: Callable[[str], None] = print, sleep=time.sleep) -> None:
        """Become the shard's owner, or raise ShardBusy (module docstring)."""
        deadline = self.clock() + self.settings.wait_s
        while True:
            record = self.read()
            if not self._foreign_live(record):
                self._write()
                sleep(self.settings.settle_s)
                record = self.read()
                if record and record.get("run_id") == self.run_id:
                    return
            if self.clock() >= deadline:
                break
            say(
                f"rlpipe shards: shard {self.shard} is owned by {self.describe(record or {})}; "
                f"waiting for its heartbeat to expire (owner_timeout_s "
                f"{self.settings.timeout_s:g})"
            )
            sleep(min(self.settings.heartbeat_s, max(0.0, deadline - self.clock())) or 0.1)
        raise ShardBusy(
            f"shard {self.shard} is owned by a live pod: {self.describe(record or {})}, "
            f"younger than durable.owner_timeout_s ({self.settings.timeout_s:g} s). Two pods "
            f"must not build one shard. If that pod is gone, rerun after its heartbeat expires, "
            f"or delete {self.remote.path(self.rel)}."
        )

    def start_heartbeat(self, on_lost: Callable[[str], None]) -> None:
        """Refresh the record every ``heartbeat_s``; call ``on_lost`` if another pod took it."""

        def beat():
            while not self._stop.wait(self.settings.heartbeat_s):
                try:
                    record = self.read()
                    if record and record.get("run_id") != self.run_id:
                        on_lost(f"shard {self.shard} was taken over by {self.describe(record)}")
                        return
                    self._write()
                except Exception as exc:  # noqa: BLE001 - a missed beat is retried
                    print(f"rlpipe shards: heartbeat deferred: {exc}", flush=True)

        self._thread = threading.Thread(target=beat, name="rlpipe-shard-heartbeat", daemon=True)
        self._thread.start()

    def release(self) -> None:
        """Stop the heartbeat and delete the record if it is still this run's."""
        self._stop.set()
        record = self.read()
        if record and record.get("run_id") == self.run_id:
            self.remote.delete(self.rel)


# --- the sweep seen from its remote (rlpipe status --remote) --------------------------------


def read_owners(remote, count: int) -> dict[int, dict]:
    """Shard index -> its owner record, for the shards that have one."""
    from rlpipe.storage.rclone import RemoteNotFound

    out = {}
    for i in range(1, count + 1):
        try:
            out[i] = json.loads(read_replaced(remote, OWNER_REL.format(index=i, count=count)))
        except (RemoteNotFound, ValueError):
            continue
    return out


def status_table(
    assignment: Assignment,
    owners: dict[int, dict],
    durable_segments: dict[str, int],
    total_segments: dict[str, int],
    timeout_s: float,
    now: float,
) -> str:
    """One line per shard: runs, durable segments / total, owner and its heartbeat, state."""
    from rlpipe.results.status import fmt_duration, text_table

    header = ["shard", "runs", "segments durable", "owner", "heartbeat", "state"]
    rows = []
    for i in range(1, assignment.count + 1):
        names = sorted(assignment.runs_of(i))
        done = sum(min(durable_segments.get(n, 0), total_segments.get(n, 0)) for n in names)
        total = sum(total_segments.get(n, 0) for n in names)
        owner = owners.get(i)
        age = now - float(owner.get("heartbeat", 0)) if owner else None
        if total and done == total:
            state = "DONE"
        elif owner and age < timeout_s:
            state = "RUNNING"
        elif owner:
            state = "OWNER LOST"  # killed without releasing: the next pod takes over
        else:
            state = "WAITING"
        rows.append(
            [
                f"{i}/{assignment.count}",
                len(names),
                f"{done} / {total}" if total_segments else f"{done} / ?",
                owner.get("owner", "?") if owner else "-",
                "-" if age is None else fmt_duration(age) + " ago",
                state,
            ]
        )
    return text_table(header, rows)
