"""Stall watchdog: a hung segment process exits non-zero with a clear message; healthy runs live.

Nothing here depends on how fast the machine is: a hang is proven by how the child ended (the
watchdog's exit code and message, or faulthandler's), never by how long it took, and the
healthy loop's stall timeout is seconds long, far above any pause of a busy CPU.
"""

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from rlpipe.runtime.watchdog import EXIT_CODE, Watchdog

SRC = str(Path(__file__).resolve().parents[1] / "src")


def run_child(body: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run ``body`` in a child Python; a hang the watchdog misses ends in TimeoutExpired."""
    code = "import time\nfrom rlpipe.runtime.watchdog import Watchdog\n" + textwrap.dedent(body)
    env = {**os.environ, "PYTHONPATH": SRC}
    return subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=timeout
    )


def test_hang_in_loop_exits_with_message():
    proc = run_child(
        """
        with Watchdog(1.0, "runs/e/Pong-v5/seed1 step 2048") as wd:
            for i in range(1000):
                wd.beat()
                if i == 3:
                    time.sleep(3600)  # injected hang (blocks in C, GIL released)
                time.sleep(0.01)
        print("finished")
        """
    )
    assert proc.returncode == EXIT_CODE, proc.stderr  # the watchdog's, not the sleep's end
    assert "finished" not in proc.stdout
    # the idle time it reports is at least the timeout (more when the CPU was busy)
    assert re.search(r"no progress for \d+ s in runs/e/Pong-v5/seed1 step 2048", proc.stderr)
    assert "exiting so Snakemake retries" in proc.stderr
    assert 'File "<string>", line 8' in proc.stderr  # the traceback shows where it hung


def test_hang_holding_the_gil_is_caught_by_backstop():
    # A catastrophic regex runs in C without releasing the GIL: the Python watchdog thread
    # cannot run, the faulthandler timer (stall timeout + grace) ends the process.
    proc = run_child(
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
    assert "Timeout" in proc.stderr  # faulthandler's dump: the backstop ended it


def test_healthy_loop_is_not_killed_and_stop_disarms():
    # A stall timeout of 2 s: a busy CPU can pause a process for a fraction of a second (the
    # former 0.5 s timeout, 0.2 s grace, could fire on 2 loaded cores), not for seconds.
    proc = run_child(
        """
        with Watchdog(2.0, "healthy", grace_s=2.0) as wd:
            t0 = time.monotonic()
            while time.monotonic() - t0 < 4.0:  # 2x the stall timeout, beating all along
                wd.beat()
                time.sleep(0.05)
        time.sleep(6.0)  # after the block, past timeout + grace: no watchdog, no timer armed
        print("finished")
        """
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "finished"
    assert "no progress" not in proc.stderr


def test_invalid_timeout():
    with pytest.raises(ValueError, match="stall_timeout_s"):
        Watchdog(0, "x")
