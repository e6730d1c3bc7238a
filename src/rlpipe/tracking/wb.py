"""W&B logging of a segment's points and of the summary tables, one resumed run per rlpipe run.

Every segment job opens the run's deterministic id with ``resume="allow"`` and logs its
points with ``step=global_step``, so steps increase across segments, retries and pods
(online, W&B ignores steps below the resumed run's current step, so a retried job adds
no duplicates). W&B writes into a temp directory that replaces ``<final_dir>`` once the run is
finished: a killed job leaves no half-written offline run behind. The API key is never
passed or written by rlpipe: wandb reads ``WANDB_API_KEY`` from the environment.
"""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import wandb

from rlpipe.runtree import atomic
from rlpipe.tracking import Point

SETTINGS = {"console": "off", "x_disable_stats": True, "disable_git": True, "save_code": False}


def _open(settings: dict, run_id: str, directory: Path, **init):
    mode = {"mode": settings["mode"]} if settings.get("mode") else {}  # else $WANDB_MODE
    directory.mkdir(parents=True)
    return wandb.init(
        project=settings["project"],
        entity=settings.get("entity"),
        id=run_id,
        resume="allow",
        dir=directory,
        settings=wandb.Settings(**SETTINGS),
        **mode,
        **init,
    )


def _finish_into(run, tmp: Path, final_dir: Path) -> None:
    """Finish the run, then move wandb's directory from ``tmp`` to ``final_dir``."""
    run.finish()
    if final_dir.exists():
        shutil.rmtree(final_dir)
    written = tmp / "wandb"
    if written.exists():
        written.rename(final_dir)
    else:  # $WANDB_MODE=disabled: wandb wrote nothing
        final_dir.mkdir(parents=True)
    shutil.rmtree(tmp)


def _temp_dir(final_dir: Path) -> Path:
    """A fresh temp directory for ``final_dir``, after removing those killed jobs left."""
    atomic.remove_stale_temps(final_dir)
    return atomic.temp_path(final_dir)


def log_segment(
    settings: dict, run_id: str, points: list[Point], final_dir: str | Path, **init
) -> dict:
    """Log one segment's points to W&B run ``run_id``; returns the receipt to write."""
    final_dir = Path(final_dir)
    tmp = _temp_dir(final_dir)
    run = _open(settings, run_id, tmp, job_type="train", **init)
    run.define_metric("global_step")
    run.define_metric("*", step_metric="global_step")
    for point in points:
        run.log({**point.metrics, "global_step": point.step}, step=point.step)
    mode = run.settings.mode
    _finish_into(run, tmp, final_dir)
    return {
        "id": run_id,
        "project": settings["project"],
        "mode": mode,
        "first_step": points[0].step,
        "last_step": points[-1].step,
        "points": len(points),
        "dir": str(final_dir),
    }


def log_tables(
    settings: dict, run_id: str, tables: dict[str, str | Path], final_dir: str | Path
) -> dict:
    """Log CSV files as W&B tables (the summary) to run ``run_id``; returns the receipt."""
    final_dir = Path(final_dir)
    tmp = _temp_dir(final_dir)
    run = _open(settings, run_id, tmp, job_type="summary", name="summary")
    logged = {}
    for name, path in tables.items():
        with open(path, newline="") as fh:
            header, *data = list(csv.reader(fh))
        logged[name] = wandb.Table(columns=header, data=[_typed(row) for row in data])
    run.log(logged)
    rows = {name: len(table.data) for name, table in logged.items()}
    mode = run.settings.mode
    _finish_into(run, tmp, final_dir)
    return {"id": run_id, "project": settings["project"], "mode": mode, "rows": rows}


def _typed(row: list[str]) -> list:
    """CSV cells as numbers where they are numbers, so W&B can plot the columns."""
    out = []
    for cell in row:
        try:
            out.append(float(cell) if cell else None)
        except ValueError:
            out.append(cell)
    return out
