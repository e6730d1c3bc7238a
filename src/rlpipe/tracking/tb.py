"""TensorBoard event files rebuilt from telemetry: one file per segment, in step order.

A run's ``tb/`` directory holds ``events.out.tfevents.<step>.rlpipe`` per segment; TensorBoard
reads the files of one directory in name order (the zero-padded end step) as one run, so
the segments form one continuous curve with ``global_step`` as the step.
"""

from __future__ import annotations

import re
from pathlib import Path

from tensorboard.compat.proto import event_pb2, summary_pb2
from tensorboard.summary.writer.record_writer import RecordWriter

from rlpipe.runtree import atomic
from rlpipe.tracking import Point

EVENT_FILE = re.compile(r"^events\.out\.tfevents\.(\d+)\.rlpipe$")


def temp_name(path: str | Path) -> str:
    """Temp name without "tfevents": TensorBoard never reads a half-written file."""
    return "tb-" + Path(path).name.replace("events.out.tfevents.", "")


def write_events(points: list[Point], path: str | Path) -> int:
    """Write ``points`` as scalar summaries to one event file, atomically; returns events."""
    with atomic.atomic_path(path, temp_name(path)) as tmp, open(tmp, "wb") as fh:
        writer = RecordWriter(fh)
        first = points[0].time if points else 0.0
        header = event_pb2.Event(wall_time=first, file_version="brain.Event:2")
        writer.write(header.SerializeToString())
        for point in points:
            values = [
                summary_pb2.Summary.Value(tag=tag, simple_value=value)
                for tag, value in sorted(point.metrics.items())
            ]
            event = event_pb2.Event(
                wall_time=point.time, step=point.step, summary=summary_pb2.Summary(value=values)
            )
            writer.write(event.SerializeToString())
        writer.flush()
    return len(points)


def prune_stale(tb_dir: str | Path, steps: list[int]) -> list[Path]:
    """Delete event files of segment ends the run no longer has (``checkpoint_every`` or
    ``total_steps`` changed), which TensorBoard would otherwise mix into the curve."""
    keep = set(steps)
    stale = []
    for path in Path(tb_dir).glob("events.out.tfevents.*"):
        match = EVENT_FILE.match(path.name)
        if match is None or int(match.group(1)) not in keep:
            path.unlink(missing_ok=True)
            stale.append(path)
    return stale
