"""Live run status from synthetic telemetry: done, running, stalled, pending runs."""

import json
import os
import time

import pytest

from rlpipe.results import status
from rlpipe.runtree.telemetry import TelemetryWriter


def write_segment(run_dir, end_step, records, live=False):
    tel = run_dir / "telemetry"
    tel.mkdir(parents=True, exist_ok=True)
    name = f"step_{end_step:010d}.jsonl" + (".live" if live else "")
    (tel / name).write_text("".join(json.dumps(r) + "\n" for r in records))
    return tel / name


def rec(step, t, sps=None, **extra):
    r = {"global_step": step, "time": t, "elapsed_s": 1.0, **extra}
    if sps is not None:
        r["charts/SPS"] = sps
    return r


@pytest.fixture
def tree(tmp_path):
    now = 1_000_000.0
    runs = tmp_path / "runs"
    done = runs / "exp" / "CartPole-v1" / "seed1"
    write_segment(done, 100, [rec(50, now - 500, 10.0), rec(100, now - 400, 12.0)])
    write_segment(done, 200, [rec(200, now - 300, 14.0)])
    running = runs / "exp" / "CartPole-v1" / "seed2"
    write_segment(running, 100, [rec(100, now - 200, 9.0)])
    live = write_segment(
        running,
        200,
        [
            rec(150, now - 10, 20.0),
            rec(
                160,
                now - 5,
                25.0,
                **{
                    "charts/episodes_per_hour": 360.0,
                    "gpu/memory_allocated_mb": 812.5,
                },
            ),
        ],
        live=True,
    )
    with open(live, "a") as fh:  # a line still being written
        fh.write('{"global_step": 170, "ti')
    stalled = runs / "exp" / "CartPole-v1" / "seed3"
    write_segment(stalled, 100, [rec(60, now - 700, 30.0)], live=True)
    between = runs / "exp" / "Pong-v5" / "seed1"
    write_segment(between, 100, [rec(100, now - 50, 20.0)])
    totals = {
        ("exp", "CartPole-v1", 1): 200,
        ("exp", "CartPole-v1", 2): 200,
        ("exp", "CartPole-v1", 3): 200,
        ("exp", "Pong-v5", 1): 300,
        ("exp", "Pong-v5", 2): 300,  # no directory yet
    }
    return runs, totals, now


def by_key(statuses):
    return {(s.exp, s.env, s.seed): s for s in statuses}


def test_states_and_figures(tree):
    runs, totals, now = tree
    got = by_key(status.collect(runs, totals, stall_timeout_s=600, now=now))
    done = got[("exp", "CartPole-v1", 1)]
    assert (done.state, done.step, done.sps, done.eta_s) == ("DONE", 200, 14.0, None)
    assert done.heartbeat_age_s == pytest.approx(300)

    run = got[("exp", "CartPole-v1", 2)]
    assert (run.state, run.step, run.total) == ("RUNNING", 160, 200)
    assert run.sps == 25.0 and run.eta_s == pytest.approx((200 - 160) / 25.0)
    assert run.heartbeat_age_s == pytest.approx(5)
    assert run.episodes_per_hour == 360.0 and run.gpu_mem_mb == 812.5

    stalled = got[("exp", "CartPole-v1", 3)]
    assert (stalled.state, stalled.step, stalled.eta_s) == ("STALLED", 60, None)
    assert stalled.heartbeat_age_s == pytest.approx(700)

    between = got[("exp", "Pong-v5", 1)]
    assert (between.state, between.step) == ("PENDING", 100)
    assert between.eta_s == pytest.approx(200 / 20.0)

    fresh = got[("exp", "Pong-v5", 2)]
    assert (fresh.state, fresh.step, fresh.sps, fresh.heartbeat_age_s) == (
        "PENDING",
        0,
        None,
        None,
    )


def test_stall_timeout_per_experiment(tree):
    runs, totals, now = tree
    got = by_key(status.collect(runs, totals, stall_timeout_s={"exp": 800}, now=now))
    assert got[("exp", "CartPole-v1", 3)].state == "RUNNING"
    got = by_key(status.collect(runs, totals, stall_timeout_s={"exp": 4}, now=now))
    assert got[("exp", "CartPole-v1", 2)].state == "STALLED"


def test_live_file_from_the_real_writer(tmp_path):
    run_dir = tmp_path / "runs" / "e" / "CartPole-v1" / "seed7"
    writer = TelemetryWriter(run_dir / "telemetry" / "step_0000001000.jsonl")
    totals = {("e", "CartPole-v1", 7): 2000}
    # Started, no line yet: heartbeat is the file's mtime.
    os.utime(writer.live, (time.time() - 30, time.time() - 30))
    (s,) = status.collect(tmp_path / "runs", totals, stall_timeout_s=600)
    assert (s.state, s.step) == ("RUNNING", 0) and s.heartbeat_age_s == pytest.approx(30, abs=2)
    writer.log(512, **{"charts/SPS": 256.0})
    (s,) = status.collect(tmp_path / "runs", totals, stall_timeout_s=600)
    assert (s.state, s.step, s.sps) == ("RUNNING", 512, 256.0)
    assert s.eta_s == pytest.approx((2000 - 512) / 256.0)
    writer.close()
    (s,) = status.collect(tmp_path / "runs", totals, stall_timeout_s=600)
    assert (s.state, s.step) == ("PENDING", 1000)  # segment done, next one not started


def test_unconfigured_run_dirs_are_listed_and_rendered(tree):
    runs, totals, now = tree
    write_segment(runs / "old" / "Pong-v5" / "seed9", 100, [rec(100, now - 60, 5.0)])
    statuses = status.collect(runs, totals, now=now)
    got = by_key(statuses)
    assert got[("old", "Pong-v5", 9)].total is None
    text = status.render(statuses)
    lines = text.splitlines()
    assert lines[0].split()[:2] == ["run", "state"]
    assert len(lines) == 1 + 6 + 1
    stalled_line = next(line for line in lines if "seed3" in line)
    assert "STALLED" in stalled_line and "11m40s ago" in stalled_line
    running_line = next(line for line in lines if "CartPole-v1/seed2" in line)
    assert "160 / 200" in running_line and "80.0" in running_line and running_line.endswith(" 812")
    assert "100 / ?" in next(line for line in lines if line.startswith("old/"))
    assert lines[-1] == "1 DONE, 3 PENDING, 1 RUNNING, 1 STALLED"


def test_totals_from_config():
    config = {
        "experiments": {
            "a": {
                "algo": "ppo",
                "envs": ["CartPole-v1"],
                "seeds": [1, 2],
                "total_steps": 4096,
                "checkpoint_every": 2048,
            }
        }
    }
    assert status.totals_from_config(config) == {
        ("a", "CartPole-v1", 1): 4096,
        ("a", "CartPole-v1", 2): 4096,
    }


def test_fmt_duration():
    assert [status.fmt_duration(x) for x in (None, 5, 65, 3720, 90000)] == [
        "-",
        "5s",
        "1m05s",
        "1h02m",
        "1d01h",
    ]


def test_gpu_slot_device_and_memory_are_shown(tmp_path):
    """A running segment's telemetry says which GPU slot and device it has
    (rlpipe.runtime.gpu_slots)
    and its GPU memory; the table shows all three."""
    now = 1_000_000.0
    run = tmp_path / "runs" / "exp" / "Pong-v5" / "seed1"
    placed = {"gpu_slot": 3, "cuda_visible_devices": "1", "gpu/memory_allocated_mb": 812.0}
    write_segment(run, 100, [rec(50, now - 1, 40.0, **placed)], live=True)
    (got,) = status.collect(tmp_path / "runs", {("exp", "Pong-v5", 1): 100}, now=now)
    assert (got.gpu_slot, got.cuda_visible_devices, got.gpu_mem_mb) == (3, "1", 812.0)
    header, row = status.render([got]).splitlines()[:2]
    assert header.split()[-4:] == ["slot", "GPU", "GPU", "MB"]
    assert row.split()[-3:] == ["3", "1", "812"]
