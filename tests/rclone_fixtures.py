"""Fixtures: a real rclone WebDAV server on loopback (see services/rclone_server.py).

conftest.py imports it (``from rclone_fixtures import rclone_server  # noqa: F401``), so every
test module can ask for ``rclone_server``.
"""

import pytest

from services.rclone_server import RcloneWebdavServer


@pytest.fixture
def rclone_server(tmp_path, monkeypatch):
    """A running server serving ``tmp_path/served``; the client env (``TESTREMOTE:``) is set.

    No rclone config file is read (``RCLONE_CONFIG`` points at a missing file), so the
    remote exists only through the environment variables.
    """
    server = RcloneWebdavServer(tmp_path / "served", tmp_path / "logs" / "rclone-serve.log")
    server.log_path.parent.mkdir(parents=True, exist_ok=True)
    monkeypatch.setenv("RCLONE_CONFIG", str(tmp_path / "no-rclone.conf"))
    for key, value in server.client_env().items():
        monkeypatch.setenv(key, value)
    server.start()
    try:
        yield server
    finally:
        server.stop()
