"""Pods for tests: each is a fresh ``git clone`` of this repository, with its own HOME and
process tree, running the README's pod commands exactly as written.

The clone's ``.venv`` is the test virtualenv (a symlink), as on an image with the install baked
in: ``make install`` compares pyproject.toml's content with the venv's stamp, finds it up to
date and only links the profiles into the pod's ``~/.config/snakemake``. A fresh clone gives
every file a new mtime, which is what a real new pod sees. The clone is of HEAD, so these tests
test committed code: of the commit HEAD was at when this test process made its first pod, so a
commit made while the tests run cannot change the code between one pod and the next (the new
pod would rightly retrain everything whose code changed).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
POD_SETUP = "make install && . .venv/bin/activate"  # the README's pod set-up
POD_COMMAND = "snakemake --profile runpod"  # the README's pod command
JOB_LINE = re.compile(r"^\s*(?:local)?rule (\w+):\s*$")
OUTPUT_LINE = re.compile(r"^\s*output: (.*)$")


@functools.cache
def commit() -> str:
    """The commit every pod of this test process clones (module docstring)."""
    return subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.strip()


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


class Pod:
    """One machine: a fresh clone at ``root/name`` and a home at ``root/name-home``."""

    def __init__(self, root: Path, name: str, env: dict[str, str] | None = None):
        self.root, self.name = Path(root), name
        self.dir = self.root / name
        self.home = self.root / f"{name}-home"
        self.extra_env = dict(env or {})
        self.logs: list[Path] = []
        self.procs: list[subprocess.Popen] = []
        stamp = Path(sys.prefix, ".rlpipe-installed")
        # The clone is of HEAD: its pyproject.toml must be the one the venv was installed
        # from, or the pod's `make install` would reinstall the shared venv from the clone.
        head = subprocess.run(
            ["git", "show", f"{commit()}:pyproject.toml"], cwd=REPO, capture_output=True,
            check=True,
        ).stdout  # fmt: skip
        want = hashlib.sha256(head).hexdigest()
        if not stamp.is_file() or stamp.read_text().strip() != want:
            raise AssertionError(
                f"{sys.prefix} was not installed by `make install` from HEAD's pyproject.toml: "
                "commit it and run `make install` (or `make test`) first; a pod would "
                "reinstall it otherwise"
            )
        subprocess.run(["git", "clone", "-q", str(REPO), str(self.dir)], check=True)
        subprocess.run(["git", "reset", "-q", "--hard", commit()], cwd=self.dir, check=True)
        (self.dir / ".venv").symlink_to(Path(sys.prefix))
        self.home.mkdir(parents=True, exist_ok=True)

    def env(self) -> dict[str, str]:
        drop = ("XDG_", "VIRTUAL_ENV", "RLPIPE_")
        env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
        env.update(HOME=str(self.home), PYTHONUNBUFFERED="1", **self.extra_env)
        env["PATH"] = os.pathsep.join(
            p for p in env["PATH"].split(os.pathsep) if Path(p) != Path(sys.prefix) / "bin"
        )
        return env

    def start(self, command: str = POD_COMMAND, label: str = "run") -> subprocess.Popen:
        """``POD_SETUP && command`` in its own session; output to a log file."""
        log = self.root / f"{self.name}-{label}-{len(self.logs)}.log"
        self.logs.append(log)
        with open(log, "w") as out:
            proc = subprocess.Popen(
                ["bash", "-c", f"{POD_SETUP} && {command}"],
                cwd=self.dir,
                env=self.env(),
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.procs.append(proc)
        return proc

    def run(self, command: str = POD_COMMAND, label: str = "run", timeout: float = 900) -> str:
        """Run to the end; returns the output, raising if the exit status is not 0."""
        proc = self.start(command, label)
        try:
            rc = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            kill_tree(proc)
            raise
        text = self.logs[-1].read_text()
        if rc != 0:
            raise AssertionError(f"{self.name}: `{command}` exited {rc}:\n{text[-6000:]}")
        return text

    def kill_all(self) -> None:
        """End every process tree this pod started that still runs (test teardown)."""
        for proc in self.procs:
            if proc.poll() is None:
                kill_tree(proc)

    def output(self) -> str:
        return self.logs[-1].read_text() if self.logs else ""

    def checkpoints(self) -> dict[str, str]:
        return checkpoints(self.dir)


def kill_tree(proc: subprocess.Popen) -> None:
    """SIGKILL the pod's whole process group (snakemake, its jobs, rclone)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def checkpoints(workdir: Path) -> dict[str, str]:
    """sha256 of every checkpoint / Q-table under runs/, keyed by relative path."""
    files = sorted(p for p in (workdir / "runs").rglob("step_*") if p.suffix in (".pt", ".npz"))
    return {str(p.relative_to(workdir)): sha256(p) for p in files}


def whole_json(path: Path) -> dict | None:
    """A JSON file the remote holds, once whole: None while absent or mid-upload
    (``rclone serve webdav`` writes a PUT in place, so a reader can see it empty or torn)."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def recorded(remote_root: Path) -> set[str]:
    """Outputs whose provenance record is on the remote directory ``remote_root``, whole. A
    kill during an upload can leave a torn record there (``rclone serve webdav`` keeps the
    part of a PUT it received): it records nothing, and Snakemake ignores it too."""
    from rlpipe.remote.metadata import METADATA, key_of

    out = set()
    for path in (Path(remote_root) / METADATA).rglob("*"):
        if whole_json(path) is None:
            continue  # a directory, a torn record, or one deleted meanwhile
        out.add(key_of(str(path.relative_to(remote_root))))
    return out


def durable_outputs(remote_root: Path) -> set[str]:
    """Outputs on the remote directory whose record is there too (what restore trusts)."""
    return {k for k in recorded(remote_root) if (Path(remote_root) / k).is_file()}


def durable_segments(remote_root: Path) -> set[str]:
    """Checkpoints (and Q-tables) of the segments a new pod must not train again: those whose
    job is recorded on the remote (checkpoint and telemetry records both there) and so is
    every earlier segment of the run. A kill during the upload of one round's records can
    leave a job half-recorded; that job is not durable, and its run rightly trains again
    from there (a later segment's input would change)."""
    runs: dict[str, dict[str, set[str]]] = {}
    for key in recorded(remote_root):
        m = re.match(r"(runs/.+)/(ckpt|qtable|telemetry)/(step_\d+)\.(pt|npz|jsonl)$", key)
        if m:
            runs.setdefault(m[1], {}).setdefault(m[3], set()).add(key)
    out = set()
    for steps in runs.values():
        for step in sorted(steps):
            keys = steps[step]
            ckpt = [k for k in keys if "/telemetry/" not in k]
            if len(keys) < 2 or not ckpt:
                break  # this segment's job is not fully recorded: later ones retrain too
            out.update(ckpt)
    return out


def started_jobs(log: str, rule: str) -> list[str]:
    """The output paths of the ``rule`` jobs a Snakemake log shows starting."""
    outs, pending = [], False
    for line in log.splitlines():
        if m := JOB_LINE.match(line):
            pending = m.group(1) == rule
        elif pending and (m := OUTPUT_LINE.match(line)):
            outs.append(m.group(1))
            pending = False
    return outs


def restore_line(log: str) -> str:
    return next(
        ln for ln in log.splitlines() if ln.startswith("rlpipe durable:") and "restored" in ln
    )


def wait_until(condition, timeout_s: float = 300, proc: subprocess.Popen | None = None, what=""):
    """Poll ``condition`` every 50 ms; fail if ``proc`` ends first or time runs out."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the workflow ended before {what}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


HEARTBEAT = re.compile(r'("heartbeat": )(\d+\.\d+)')


class Heartbeat:
    """What :func:`kept_alive` saw: ``taken_by``, a record that replaced the one it kept."""

    taken_by: dict | None = None


@contextmanager
def kept_alive(record: Path, scratch: Path, every_s: float = 1.0):
    """Keep a killed pod's shard owner record (a file in the served directory) live: its
    heartbeat is set to now every ``every_s``, as the pod would while it ran, so a pod started
    meanwhile sees a live owner however long its start took; on exit the record ages from
    then. The record keeps its length (same decimals) and is replaced whole (``os.replace``
    of a file written in ``scratch``, on the same filesystem), so no reader sees it torn.
    Stops beating if another run's record replaced it (``Heartbeat.taken_by``)."""
    original = json.loads(record.read_text())
    state, stop = Heartbeat(), threading.Event()

    def beat() -> bool:
        try:
            text = record.read_text()
            current = json.loads(text)
        except (OSError, ValueError) as exc:  # deleted, or torn: not the record it keeps
            current = {"error": repr(exc)}
        if current.get("run_id") != original["run_id"]:
            state.taken_by = current
            return False
        old = HEARTBEAT.search(text)
        decimals = len(old[2]) - old[2].index(".") - 1
        tmp = Path(scratch) / f".{record.name}.heartbeat"
        tmp.write_text(HEARTBEAT.sub(rf"\g<1>{time.time():.{decimals}f}", text, count=1))
        os.replace(tmp, record)
        return True

    def run():
        while not stop.wait(every_s) and beat():
            pass

    beat()  # live from the start
    thread = threading.Thread(target=run, name="kept-alive", daemon=True)
    thread.start()
    try:
        yield state
    finally:
        stop.set()
        thread.join()
