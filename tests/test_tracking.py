"""Tracking units: points from telemetry, config hashes, TensorBoard files, W&B offline runs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from rlpipe.algos.ppo.params import METRICS as PPO_METRICS
from rlpipe.runtree.telemetry import TelemetryWriter
from rlpipe.sweep import config as rlconfig
from rlpipe.sweep.runs import ConfigError, expand_runs
from rlpipe.tracking import Settings, config_hashes, segment_points, wandb_run_id

from conftest import tiny_config
from pipeline import REPO
from tracking_fixtures import isolated_home, tb_scalars, wandb_records

SCHEMA = REPO / "workflow/schemas/config.schema.yaml"


def _segment(tmp_path: Path, name: str, steps: list[int], end: int, ret: float = 9.5):
    tel = tmp_path / f"telemetry/step_{name}.jsonl"
    with TelemetryWriter(tel, PPO_METRICS, env_id="CartPole-v1", seed=1) as writer:
        for step in steps:
            writer.log(step, **{"charts/SPS": step / 10, "losses/value_loss": 1.0 / step})
    ev = tmp_path / f"eval/step_{name}.json"
    ev.parent.mkdir(exist_ok=True)
    ev.write_text(json.dumps({"step": end, "mean_return": ret, "lengths": [9, 10]}))
    return tel, ev


def test_points_are_telemetry_metrics_then_eval_at_segment_end(tmp_path):
    tel, ev = _segment(tmp_path, "a", [256, 512], end=512)
    points = segment_points(tel, ev, 0, 512)
    assert [p.step for p in points] == [256, 512]
    logged = {k: v for k, v in points[0].metrics.items() if not k.startswith("perf/")}
    assert logged == {"charts/SPS": 25.6, "losses/value_loss": 1.0 / 256}
    assert points[0].metrics["perf/max_rss_mb"] > 0  # the writer's own resource metrics
    assert points[1].metrics["eval/mean_return"] == 9.5  # merged into the last row
    assert points[1].metrics["eval/mean_length"] == 9.5
    assert "seed" not in points[0].metrics and "elapsed_s" not in points[0].metrics


@pytest.mark.parametrize(
    "steps, start, end", [([512, 256], 0, 512), ([256, 256], 0, 512), ([256, 768], 0, 512)]
)
def test_points_refuse_steps_that_would_break_one_increasing_series(tmp_path, steps, start, end):
    tel, ev = _segment(tmp_path, "b", steps, end=end)
    with pytest.raises(ValueError, match=r"global_step .* does not follow"):
        segment_points(tel, ev, start, end)


def test_points_refuse_an_evaluation_of_another_step(tmp_path):
    tel, ev = _segment(tmp_path, "c", [256], end=256)
    with pytest.raises(ValueError, match="expected 512"):
        segment_points(tel, ev, 0, 512)


def test_tracking_config_is_validated_and_errors_name_the_key():
    config = tiny_config()
    config["tracking"] = {"tensorboard": "yes", "wandb": {"mode": "offline"}}
    with pytest.raises(ConfigError) as err:
        rlconfig.validate(config, SCHEMA)
    assert "- tracking.tensorboard: " in str(err.value)
    assert "- tracking.wandb.project: " in str(err.value)
    config["tracking"] = {"wandb": {"project": "p", "mode": "sometimes"}}
    with pytest.raises(ConfigError, match="- tracking.wandb.mode: "):
        rlconfig.validate(config, SCHEMA)


def test_tracking_defaults_to_off_and_disabled_wandb_is_off():
    config = rlconfig.validate(tiny_config(), SCHEMA)
    assert Settings.from_config(config["tracking"]) == Settings(tensorboard=False, wandb=None)
    disabled = Settings.from_config({"wandb": {"project": "p", "mode": "disabled"}})
    assert disabled.wandb is None


def _ids(config: dict) -> dict:
    config = rlconfig.validate(config, SCHEMA)
    runs = expand_runs(config)
    hashes = config_hashes(config, runs)
    return {key: wandb_run_id(run, hashes[key]) for key, run in runs.items()}


def test_wandb_ids_are_deterministic_and_follow_what_shapes_the_curve():
    base = _ids(tiny_config())
    assert base == _ids(tiny_config())
    assert base[("cp", "CartPole-v1", 1)].startswith("cp-CartPole-v1-seed1-")
    assert len(set(base.values())) == len(base)

    longer = tiny_config()
    longer["experiments"]["cp"]["total_steps"] = 2048  # extending keeps the W&B run
    assert _ids(longer) == base

    changed = tiny_config()
    changed["experiments"]["pong"]["hparams"]["ent_coef"] = 0.02
    new = _ids(changed)
    assert new[("pong", "Pong-v5", 1)] != base[("pong", "Pong-v5", 1)]
    assert new[("cp", "CartPole-v1", 1)] == base[("cp", "CartPole-v1", 1)]

    evaluated = tiny_config()
    evaluated["evaluation"]["episodes"] = 3
    assert set(_ids(evaluated).values()).isdisjoint(base.values())


def test_warm_started_runs_change_id_with_their_source():
    config = tiny_config()
    config["experiments"]["ft"] = {**config["experiments"]["cp"], "init_from": "cp"}
    base = _ids(config)
    config["experiments"]["cp"]["hparams"]["ent_coef"] = 0.02
    assert _ids(config)[("ft", "CartPole-v1", 1)] != base[("ft", "CartPole-v1", 1)]


def test_event_files_read_back_as_one_series_and_stale_files_go(tmp_path):
    from rlpipe.tracking.tb import prune_stale, write_events

    tb = tmp_path / "tb"
    for name, steps, start, end in (("0512", [256, 512], 0, 512), ("1024", [768, 1024], 512, 1024)):
        tel, ev = _segment(tmp_path, name, steps, end=end, ret=float(end))
        write_events(segment_points(tel, ev, start, end), tb / f"events.out.tfevents.{name}.rlpipe")
    stale = tb / "events.out.tfevents.0768.rlpipe"  # an old segment end
    stale.write_bytes((tb / "events.out.tfevents.0512.rlpipe").read_bytes())
    assert prune_stale(tb, [512, 1024]) == [stale]
    assert not list(tb.glob(".*")), "temp files left behind"

    series = tb_scalars(tb)
    assert [s for s, _ in series["charts/SPS"]] == [256, 512, 768, 1024]
    assert [v for _, v in series["charts/SPS"]] == pytest.approx([25.6, 51.2, 76.8, 102.4])
    assert series["eval/mean_return"] == [(512, 512.0), (1024, 1024.0)]


def test_wandb_offline_segment_replaces_a_killed_attempt_and_keeps_no_key(tmp_path):
    env = isolated_home(tmp_path) | {"WANDB_API_KEY": "k3y-" + "x" * 36}
    final = tmp_path / "run/wandb/step_0000000512"
    stale = tmp_path / "run/wandb/.step_0000000512.tmp-99999/wandb"  # a killed attempt's temp
    stale.mkdir(parents=True)
    (stale / "half.wandb").write_bytes(b"partial")
    tel, ev = _segment(tmp_path, "w", [256, 512], end=512)
    script = f"""
import json, sys
from rlpipe.tracking import segment_points
from rlpipe.tracking.wb import log_segment
points = segment_points({str(tel)!r}, {str(ev)!r}, 0, 512)
settings = {{"project": "rlpipe-test", "mode": "offline"}}
print(json.dumps(log_segment(settings, "cp-1-abc", points, {str(final)!r}, name="cp/1")))
"""
    proc = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        env=env | {"PYTHONPATH": str(REPO / "src")},
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    receipt = json.loads(proc.stdout.splitlines()[-1])
    assert receipt["id"] == "cp-1-abc" and receipt["mode"] == "offline"
    assert (receipt["first_step"], receipt["last_step"]) == (256, 512)
    assert not stale.parent.exists() and not list(final.parent.glob(".*tmp-*"))

    (wandb_file,) = final.glob("offline-run-*/run-cp-1-abc.wandb")
    records = wandb_records(wandb_file, env)
    history = [r["history"]["item"] for r in records if r["type"] == "history"]
    assert [h["_step"] for h in history] == [h["global_step"] for h in history] == [256, 512]
    assert history[-1]["eval/mean_return"] == 9.5
    for path in tmp_path.rglob("*"):
        if path.is_file() and not path.is_symlink():
            assert env["WANDB_API_KEY"].encode() not in path.read_bytes(), path


def test_workflow_helpers_import_neither_tracker():
    """What the Snakefile imports while it builds the DAG loads no tracker library."""
    code = (
        "import sys, rlpipe.tracking, rlpipe.sweep.runs, rlpipe.sweep.config, rlpipe.results.plan, "
        "rlpipe.smk.locks, rlpipe.remote.durable, rlpipe.smk.env, rlpipe.replays.fetch; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('wandb', 'tensorboard')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONPATH": str(REPO / "src")},
    ).stdout
    assert out.strip() == "[]"
