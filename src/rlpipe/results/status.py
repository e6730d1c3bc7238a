"""Live status of every run from its telemetry (``telemetry/`` of each run directory of
rlpipe.runtree.layout).

Works on the local run tree or on a copy synced from a remote. Finished segments have
``step_N.jsonl``; the running one appends to ``step_N.jsonl.live`` (see rlpipe.runtree.telemetry).
States: DONE (last segment's telemetry exists), RUNNING (a ``.live`` file with a recent
heartbeat), STALLED (a ``.live`` file whose last line is older than the stall timeout: the job
hangs or was killed), PENDING (nothing running; waiting for Snakemake to schedule a segment).
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from rlpipe.runtree import layout, telemetry
from rlpipe.runtree.telemetry import LIVE_SUFFIX
from rlpipe.sweep.runs import expand_runs

DEFAULT_STALL_S = 600.0
_TAIL_BYTES = 65536

RunKey = tuple[str, str, int]


@dataclass(frozen=True)
class RunStatus:
    exp: str
    env: str
    seed: int
    state: str
    step: int
    total: int | None
    sps: float | None
    episodes_per_hour: float | None
    eta_s: float | None
    heartbeat_age_s: float | None
    gpu_mem_mb: float | None
    gpu_slot: int | None = None
    cuda_visible_devices: str | None = None


def totals_from_config(config: dict) -> dict[RunKey, int]:
    """{(exp, env, seed): total_steps} for every run of a validated config."""
    return {key: run.total_steps for key, run in expand_runs(config).items()}


def last_record(path: str | os.PathLike) -> dict | None:
    """Last complete JSON line of a telemetry file (a line being written is skipped)."""
    with open(path, "rb") as fh:
        fh.seek(0, os.SEEK_END)
        fh.seek(max(0, fh.tell() - _TAIL_BYTES))
        lines = fh.read().splitlines()
    for line in reversed(lines):
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict):
            return record
    return None


def discover(runs_dir: str | os.PathLike) -> list[RunKey]:
    """Run keys of the run directories (rlpipe.runtree.layout) under ``runs_dir``."""
    keys = []
    for run_dir in Path(runs_dir).glob("*/*/*"):
        key = layout.parse_run_dir(run_dir)
        if key and run_dir.is_dir():
            keys.append(key)
    return keys


def _telemetry_step(path: Path) -> tuple[int, bool] | None:
    """(step, whether a live file ``<file>.<attempt>.live``) of a segment's telemetry file."""
    live = path.name.endswith(LIVE_SUFFIX)
    if live:  # step_N.jsonl.<attempt>.live, the attempt being host-pid
        path = path.with_name(path.name.partition(".jsonl")[0] + ".jsonl")
    artifact = layout.parse(path)
    return (artifact.step, live) if artifact and artifact.kind == "telemetry" else None


def _number(record: dict | None, key: str) -> float | None:
    value = (record or {}).get(key)
    return float(value) if isinstance(value, int | float) else None


def run_status(
    run_dir: Path, key: RunKey, total: int | None, now: float, stall_timeout_s: float
) -> RunStatus:
    """Status of one run from the telemetry files in ``run_dir/telemetry``."""
    done: dict[int, Path] = {}
    live: dict[int, Path] = {}
    tel_dir = run_dir / "telemetry"
    for path in tel_dir.iterdir() if tel_dir.is_dir() else ():
        found = _telemetry_step(path)
        if found and found[1]:  # the newest attempt's live file of a step
            step = found[0]
            if step not in live or path.stat().st_mtime > live[step].stat().st_mtime:
                live[step] = path
        elif found:
            done[found[0]] = path
    last_done = max(done, default=0)
    record, heartbeat = None, None
    if live:
        path = live[max(live)]
        record = last_record(path)
        heartbeat = _number(record, "time") or path.stat().st_mtime
    elif done:
        record = last_record(done[last_done])
        heartbeat = _number(record, "time")
    step = max(last_done, int(_number(record, "global_step") or 0))
    age = now - heartbeat if heartbeat is not None else None

    if total is not None and last_done >= total:
        state = "DONE"
    elif live:
        state = "STALLED" if age is not None and age > stall_timeout_s else "RUNNING"
    else:
        state = "PENDING"
    sps = _number(record, telemetry.SPS)
    eta = None
    if state in ("RUNNING", "PENDING") and total is not None and sps:
        eta = max(0, total - step) / sps
    return RunStatus(
        *key,
        state=state,
        step=step,
        total=total,
        sps=sps,
        episodes_per_hour=_number(record, telemetry.EPISODES_PER_HOUR),
        eta_s=eta,
        heartbeat_age_s=age,
        gpu_mem_mb=_number(record, telemetry.GPU_MEMORY_MB),
        gpu_slot=(record or {}).get("gpu_slot"),
        cuda_visible_devices=(record or {}).get("cuda_visible_devices"),
    )


def collect(
    runs_dir: str | os.PathLike,
    totals: Mapping[RunKey, int] | None = None,
    stall_timeout_s: float | Mapping[str, float] = DEFAULT_STALL_S,
    now: float | None = None,
) -> list[RunStatus]:
    """Status of every configured run and every run directory found; sorted by key.

    ``stall_timeout_s`` is one number or a mapping experiment -> seconds.
    """
    totals = dict(totals or {})
    now = time.time() if now is None else now
    keys = sorted(set(totals) | set(discover(runs_dir)))
    out = []
    for exp, env, seed in keys:
        if isinstance(stall_timeout_s, Mapping):
            timeout = float(stall_timeout_s.get(exp, DEFAULT_STALL_S))
        else:
            timeout = float(stall_timeout_s)
        run_dir = Path(layout.run_dir(exp, env, seed, root=runs_dir))
        out.append(
            run_status(run_dir, (exp, env, seed), totals.get((exp, env, seed)), now, timeout)
        )
    return out


def fmt_duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"


def _fmt(value: float | None, spec: str = ".0f") -> str:
    return "-" if value is None else format(value, spec)


def text_table(header: list, rows: list[list]) -> str:
    """Columns padded to their widest cell, two spaces apart."""
    cells = [[str(c) for c in row] for row in [header, *rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells
    )


def render(statuses: list[RunStatus]) -> str:
    """Plain-text table, one line per run, plus a count per state."""
    header = ["run", "state", "step / total", "%", "SPS", "eps/h", "ETA", "heartbeat"]
    header += ["slot", "GPU", "GPU MB"]
    rows = []
    for s in statuses:
        pct = 100.0 * s.step / s.total if s.total else None
        rows.append(
            [
                layout.run_name(s.exp, s.env, s.seed),
                s.state,
                f"{s.step:,} / {'?' if s.total is None else format(s.total, ',')}",
                _fmt(pct, ".1f"),
                _fmt(s.sps),
                _fmt(s.episodes_per_hour),
                fmt_duration(s.eta_s),
                "-" if s.heartbeat_age_s is None else fmt_duration(s.heartbeat_age_s) + " ago",
                "-" if s.gpu_slot is None else s.gpu_slot,
                s.cuda_visible_devices or "-",
                _fmt(s.gpu_mem_mb),
            ]
        )
    counts = Counter(s.state for s in statuses)
    totals = ", ".join(f"{n} {state}" for state, n in sorted(counts.items())) or "no runs"
    return text_table(header, rows) + "\n" + totals
