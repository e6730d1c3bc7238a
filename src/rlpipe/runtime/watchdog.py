"""Stall watchdog: end a training segment that stops making progress, so Snakemake retries it.

The training loop calls ``beat()`` on progress (cheap: one clock read). A daemon thread checks
the last beat; after ``stall_timeout_s`` without one it prints a message and a traceback of
every thread to stderr and calls ``os._exit`` (the main thread may be blocked inside C code,
where no exception can reach it). A hang in C code that also holds the GIL starves that
thread, so it keeps ``faulthandler``'s C-level timer armed as a backstop: if the thread itself
cannot run for ``stall_timeout_s + grace``, faulthandler dumps the tracebacks and exits (code 1).
"""

from __future__ import annotations

import faulthandler
import os
import sys
import threading
import time

EXIT_CODE = 75  # EX_TEMPFAIL: a transient failure, worth a retry
GRACE_S = 30.0  # extra time the GIL-independent backstop waits beyond the stall timeout


class Watchdog:
    """``with Watchdog(600, "runs/x/.../step_N"): ... wd.beat() ...``"""

    def __init__(self, stall_timeout_s: float, what: str, grace_s: float = GRACE_S):
        if stall_timeout_s <= 0:
            raise ValueError(f"stall_timeout_s must be > 0, got {stall_timeout_s}")
        self.stall_timeout_s = float(stall_timeout_s)
        self.what = what
        self.grace_s = float(grace_s)
        self._poll_s = min(self.stall_timeout_s / 4, 5.0)
        self._last = time.monotonic()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def beat(self) -> None:
        self._last = time.monotonic()

    def start(self) -> Watchdog:
        self.beat()
        self._stop.clear()
        self._arm_backstop()
        self._thread = threading.Thread(target=self._watch, name="rlpipe-watchdog", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        faulthandler.cancel_dump_traceback_later()

    def __enter__(self) -> Watchdog:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _arm_backstop(self) -> None:
        timeout = self.stall_timeout_s + self.grace_s
        faulthandler.dump_traceback_later(timeout, exit=True, file=sys.__stderr__.fileno())

    def _watch(self) -> None:
        while not self._stop.wait(self._poll_s):
            idle = time.monotonic() - self._last
            if idle >= self.stall_timeout_s:
                self._die(idle)
            self._arm_backstop()

    def _die(self, idle: float) -> None:
        err = sys.__stderr__
        err.write(
            f"rlpipe watchdog: no progress for {idle:.0f} s in {self.what} "
            f"(stall timeout {self.stall_timeout_s:.0f} s); exiting so Snakemake retries\n"
        )
        err.flush()
        faulthandler.dump_traceback(file=err.fileno(), all_threads=True)
        os._exit(EXIT_CODE)


def run_watched(train, stall_timeout_s: float, what: str) -> None:
    """Run one training segment, ``train(heartbeat)``, under a watchdog (how every
    algorithm's ``segment_job`` runs its trainer), and print its result to the job log."""
    with Watchdog(stall_timeout_s, what) as watchdog:
        result = train(watchdog.beat)
    print(f"segment done: {result}")
