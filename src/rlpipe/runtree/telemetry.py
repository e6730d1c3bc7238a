"""JSONL telemetry with CleanRL metric names.

Lines are appended (and flushed) to ``<path>.<attempt>.live`` while a segment runs (the
attempt is host and PID, so a retry never writes into an orphan's file), and status tools can
follow progress; on ``close`` the file is renamed to ``<path>``, the Snakemake output.

Every metric a trainer may write is declared once, in :data:`METRICS` (those of every
trainer) or in its algorithm's ``params.METRICS``, which the trainer hands to the writer; the
writer refuses any other name, so a typo fails the segment instead of silently starting a new
series. A file in the run tree also carries its run's key (``run``: ``EXP/ENV/seedN``,
rlpipe.runtree.layout).
"""

from __future__ import annotations

import json
import os
import resource
import time
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType

from rlpipe.runtree import layout
from rlpipe.runtree.atomic import attempt_alive, attempt_id

LIVE_SUFFIX = ".live"

# The metrics other modules read (status, plan).
SPS = "charts/SPS"
EPISODES_PER_HOUR = "charts/episodes_per_hour"
GPU_MEMORY_MB = "gpu/memory_allocated_mb"

METRICS = {  # name: what it is (CleanRL's names where CleanRL has the metric)
    SPS: "env steps per second since the segment started (BC: gradient steps)",
    EPISODES_PER_HOUR: "training episodes finished per hour in this segment (PPO)",
    GPU_MEMORY_MB: "peak CUDA memory allocated by the process, MiB (PPO on a GPU)",
    "charts/episodic_return": "mean return of the training episodes finished since last log",
    "charts/episodic_length": "mean length of the training episodes finished since last log",
    "charts/episodes": "training episodes finished in the run so far",
    "perf/max_rss_mb": "peak resident memory of the training process, MiB",
    "perf/cpu_s": "CPU seconds of the training process",
}


class TelemetryWriter:
    """Write one JSON object per line: ``global_step``, ``time``, ``elapsed_s`` + metrics.

    ``declared``: the algorithm's own metrics (its ``params.METRICS``) beside :data:`METRICS`.
    """

    def __init__(
        self, path: str | os.PathLike, declared: Mapping[str, str] = MappingProxyType({}), **static
    ):
        self.path = Path(path)
        self.declared = METRICS.keys() | declared.keys()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for stale in self.path.parent.glob(f"{self.path.name}.*{LIVE_SUFFIX}"):
            if not attempt_alive(stale.name[len(self.path.name) + 1 : -len(LIVE_SUFFIX)]):
                stale.unlink(missing_ok=True)  # a killed attempt's
        self.live = self.path.with_name(f"{self.path.name}.{attempt_id()}{LIVE_SUFFIX}")
        self._fh = open(self.live, "w")
        self._t0 = time.time()
        artifact = layout.parse(self.path)
        if artifact is not None:
            static = {"run": artifact.run, **static}
        self._static = static

    def log(self, global_step: int, **metrics) -> None:
        undeclared = sorted(set(metrics) - self.declared)
        if undeclared:
            raise ValueError(
                f"{self.path}: metric(s) {', '.join(undeclared)} not declared in "
                "rlpipe.runtree.telemetry.METRICS or the algorithm's params.METRICS"
            )
        now = time.time()
        record = {"global_step": int(global_step), "time": now, "elapsed_s": now - self._t0}
        record.update(self._static)
        record.update({k: _plain(v) for k, v in metrics.items()})
        record.update(process_usage())
        self._fh.write(json.dumps(record) + "\n")
        self._fh.flush()

    def close(self) -> None:
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self._fh.close()
        os.replace(self.live, self.path)

    def __enter__(self) -> TelemetryWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self._fh.close()


ENV_JOB_STARTED = "RLPIPE_JOB_STARTED"


def job_started_now() -> None:
    """In a job's own process: note when the process started (wall clock), for the process
    that will train it (``startup``)."""
    ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])
    boot = next(
        float(line.split()[1])
        for line in Path("/proc/stat").read_text().splitlines()
        if line.startswith("btime ")
    )
    os.environ.setdefault(ENV_JOB_STARTED, repr(boot + ticks / os.sysconf("SC_CLK_TCK")))


def startup() -> dict:
    """``{"startup_s": seconds}`` from the job process's start to now (call it at the first
    environment step), or ``{}`` outside a job. It is what a job pays before it trains:
    process start, imports, CUDA, and the hand-over to the warm worker."""
    started = os.environ.get(ENV_JOB_STARTED)
    return {"startup_s": round(time.time() - float(started), 3)} if started else {}


def process_usage() -> dict:
    """Peak memory and CPU time of the process that trains (``perf/*``). Snakemake's
    benchmark files measure the job's own process tree, and a job handed to the warm worker
    (``rlpipe.warm.worker``) trains outside it: these are the figures of the training itself."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "perf/max_rss_mb": usage.ru_maxrss / 1024,  # KiB on Linux
        "perf/cpu_s": usage.ru_utime + usage.ru_stime,
    }


def _plain(value):
    """Numpy/torch scalars -> Python numbers so json can encode them."""
    if hasattr(value, "item"):
        return value.item()
    return value


def read_jsonl(path: str | os.PathLike) -> list[dict]:
    """Read a telemetry file; a bad line raises ValueError naming the file and line."""
    records = []
    with open(path) as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as err:
                raise ValueError(f"{path}:{lineno}: not valid JSON ({err.msg})") from err
    return records
