"""A real rclone WebDAV server on 127.0.0.1 for tests (``rclone serve webdav`` over a directory).

The server gets its user and password through its own environment (``RCLONE_USER``,
``RCLONE_PASS``), never on the command line. Clients are configured only through
``client_env()``: ``RCLONE_CONFIG_<NAME>_TYPE/_URL/_VENDOR/_USER/_PASS`` with the password
obscured by ``rclone obscure -`` (read from stdin). ``stop()`` ends exactly the server's PID
(TERM, then KILL; or KILL at once); ``start()`` again reuses the same port: an outage.
The server log (``-v``: one line per PROPFIND/GET/PUT) is kept in ``log_path`` so tests can
count the requests that really reached the server.
"""

from __future__ import annotations

import os
import re
import secrets
import signal
import socket
import subprocess
import time
from pathlib import Path

from rlpipe.storage.rclone import find_rclone

DIR_CACHE_S = 0.1  # the server's --dir-cache-time
REQUEST = re.compile(r": (?P<path>/\S*): (?P<method>[A-Z]+) from ")


def free_port() -> int:
    """A free port, from a range of its own per pytest-xdist worker: a test that stops its
    server (an outage) must not see another worker's new server take the freed port."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    base = 20000 + 4000 * int(worker.removeprefix("gw") or 0)
    for _ in range(200):
        port = base + secrets.randbelow(4000)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {base}-{base + 3999}")


def obscure(binary: str, secret: str) -> str:
    res = subprocess.run(
        [binary, "obscure", "-"], input=secret, capture_output=True, text=True, check=True
    )
    return res.stdout.strip()


class RcloneWebdavServer:
    def __init__(
        self, root: Path, log_path: Path, name: str = "TESTREMOTE", read_only: bool = False
    ):
        self.root, self.log_path, self.name = Path(root), Path(log_path), name.upper()
        self.read_only = read_only
        self.root.mkdir(parents=True, exist_ok=True)
        self.user = "rlpipe-user-" + secrets.token_hex(4)
        self.password = "rlpipe-pw-" + secrets.token_urlsafe(16)
        self.binary = find_rclone()
        self.obscured = obscure(self.binary, self.password)
        self.port = free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client_env(self) -> dict[str, str]:
        p = f"RCLONE_CONFIG_{self.name}_"
        return {
            p + "TYPE": "webdav",
            p + "URL": self.url,
            p + "VENDOR": "rclone",
            p + "USER": self.user,
            p + "PASS": self.obscured,
        }

    def start(self, timeout_s: float = 10.0) -> None:
        assert self.proc is None, "server already running"
        env = {**os.environ, "RCLONE_USER": self.user, "RCLONE_PASS": self.password}
        args = [self.binary, "serve", "webdav", str(self.root), "--addr", f"127.0.0.1:{self.port}"]
        # Tests edit the served directory directly, so listings are cached only briefly (see
        # changed()); 0s makes the server spin at full CPU (a 30-file copy never finished).
        args += ["--dir-cache-time", f"{int(DIR_CACHE_S * 1000)}ms"]
        if self.read_only:  # every write is refused (403)
            args.append("--read-only")
        with open(self.log_path, "a") as log:
            self.proc = subprocess.Popen(
                [*args, "-v"], env=env, stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"rclone serve exited with {self.proc.returncode}; see log")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"rclone serve did not listen on {self.url} within {timeout_s}s")

    def changed(self) -> None:
        """Call after editing the served directory directly: waits until the server's cached
        listings (kept DIR_CACHE_S, checked by age on each access) have expired."""
        time.sleep(3 * DIR_CACHE_S)

    def stop(self, kill: bool = False) -> None:
        """End the server's PID: TERM (then KILL after 5 s), or KILL at once (a crash)."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGCONT)  # in case it was paused
            if kill:
                self.proc.kill()
            else:
                self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self.proc = None

    def pause(self) -> None:
        """SIGSTOP: the port still accepts connections but nothing answers (a hung server)."""
        os.kill(self.proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.kill(self.proc.pid, signal.SIGCONT)

    def log_requests(self) -> list[tuple[str, str]]:
        """(HTTP method, path) of every request the server logged so far, in order."""
        text = self.log_path.read_text() if self.log_path.exists() else ""
        return [(m["method"], m["path"]) for m in REQUEST.finditer(text)]

    def requests(self, method: str) -> list[str]:
        """Paths of the logged requests with this HTTP method."""
        return [path for meth, path in self.log_requests() if meth == method]
