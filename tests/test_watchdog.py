"""Stall watchdog: a hung segment process exits non-zero with a clear message; healthy runs live."""

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from rlpipe.watchdog import EXIT_CODE, Watchdog

SRC = str(Path(__file__).resolve().parents[1] / "src")


def run_child(body: str, timeout: float = 60) -> tuple[subprocess.CompletedProcess, float]:
    code = "import time\nfrom rlpipe.watchdog import Watchdog\n" + textwrap.dedent(body)
    env = {**os.environ, "PYTHONPATH": SRC}
    t0 = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=timeout
    )
    return proc, time.monotonic() - t0


def test_hang_in_loop_exits_with_message():
    proc, took = run_child(
        """
        with Watchdog(1.0, "runs/e/Pong-v5/seed1 step 2048") as wd:
            for i in range(1000):
                wd.beat()
                if i == 3:
                    time.sleep(600)  # injected hang (blocks in C, GIL released)
                time.sleep(0.01)
        print("finished")
        """
    )
    assert proc.returncode == EXIT_CODE
    assert "finished" not in proc.stdout
    assert "no progress for 1 s in runs/e/Pong-v5/seed1 step 2048" in proc.stderr
    assert "exiting so Snakemake retries" in proc.stderr
    assert 'File "<string>", line 8' in proc.stderr  # the traceback shows where it hung
    assert took < 20


def test_hang_holding_the_gil_is_caught_by_backstop():
    # A catastrophic regex runs in C without releasing the GIL: the Python watchdog thread
    # cannot run, the faulthandler timer (stall timeout + grace) ends the process.
    proc, took = run_child(
        """
        import re
        with Watchdog(1.0, "gil hang", grace_s=1.0) as wd:
            wd.beat()
            re.match(r"(a+)+$", "a" * 60 + "b")
        print("finished")
        """
    )
    assert proc.returncode != 0
    assert "finished" not in proc.stdout
    assert "Timeout" in proc.stderr
    assert took < 30


def test_healthy_loop_is_not_killed_and_stop_disarms():
    proc, _ = run_child(
        """
        with Watchdog(0.5, "healthy", grace_s=0.2) as wd:
            t0 = time.monotonic()
            while time.monotonic() - t0 < 2.0:  # 4x the stall timeout, beating all along
                wd.beat()
                time.sleep(0.05)
        time.sleep(1.5)  # after the block: no watchdog, no faulthandler timer left armed
        print("finished")
        """
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "finished"
    assert "no progress" not in proc.stderr


def test_invalid_timeout():
    with pytest.raises(ValueError, match="stall_timeout_s"):
        Watchdog(0, "x")
