"""Plan/cost estimator against a hand-computed example."""

import json

import pytest

from rlpipe import plan
from rlpipe.runs import ConfigError, expand_runs

SMALL = {"num_envs": 1, "num_steps": 100}  # one update = 100 env steps


def make_config():
    return {
        "experiments": {
            "a": {  # 2 runs x 2 segments of 500 steps, 1 GPU per job
                "algo": "ppo",
                "envs": ["Pong-v5"],
                "seeds": [1, 2],
                "total_steps": 1000,
                "checkpoint_every": 500,
                "hparams": SMALL,
                "resources": {"gpu": 1},
            },
            "b": {  # 3 runs x 2 segments of 100 steps, 2 GPUs per job
                "algo": "ppo",
                "envs": ["CartPole-v1"],
                "seeds": [1, 2, 3],
                "total_steps": 200,
                "checkpoint_every": 100,
                "hparams": SMALL,
                "resources": {"gpu": 2},
            },
        },
        "planning": {"default_sps": {"ppo/classic": 20}, "segment_overhead_s": 10},
    }


def telemetry(runs_dir, exp, env, seed, step, sps):
    path = runs_dir / exp / env / f"seed{seed}" / "telemetry" / f"step_{step:010d}.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [
        {"global_step": step - 100, "charts/SPS": 1.0},
        {"global_step": step, "charts/SPS": sps},
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in lines))


def test_hand_computed_plan(tmp_path):
    config = make_config()
    runs = expand_runs(config)
    telemetry(tmp_path, "a", "Pong-v5", 1, 500, 50.0)  # a/seed1 segment 1 done, 50 SPS
    segments = plan.remaining_segments(runs, tmp_path)
    assert [(s.exp, s.seed, s.start, s.end) for s in segments if s.exp == "a"] == [
        ("a", 1, 500, 1000),
        ("a", 2, 0, 500),
        ("a", 2, 500, 1000),
    ]
    got = plan.estimate(config, segments, slots=2, usd_per_gpu_hour=2.0, runs_dir=tmp_path)
    a, b = got.experiments
    # a: measured 50 SPS -> 500/50 + 10 = 20 s per segment; runs take 20 s and 40 s.
    assert (a.segments, a.runs, a.env_steps) == (3, 2, 1500)
    assert a.sps_source == "measured 50 (1 segments)"
    assert a.gpu_hours == pytest.approx(60 / 3600)
    assert a.wall_hours == pytest.approx(40 / 3600)
    assert a.usd == pytest.approx(2.0 * 60 / 3600)
    # b: no telemetry -> default 20 SPS: 100/20 + 10 = 15 s per segment, 30 s per run, x2 GPUs.
    assert (b.segments, b.runs, b.env_steps) == (6, 3, 600)
    assert b.sps_source == "default 20 (ppo/classic)"
    assert b.gpu_hours == pytest.approx(6 * 15 * 2 / 3600)
    assert b.wall_hours == pytest.approx(60 / 3600)  # 30, 30 | 30 on two slots
    # all runs [40, 30, 30, 30, 20] longest-first on 2 slots: 40+30 | 30+30+20 -> 80 s
    assert got.wall_hours == pytest.approx(80 / 3600)
    assert got.gpu_hours == pytest.approx((60 + 180) / 3600)
    assert got.usd == pytest.approx(2.0 * 240 / 3600)

    text = plan.render(got)
    lines = text.splitlines()
    assert lines[0].split()[:2] == ["experiment", "algo"]
    assert lines[3].split()[:5] == ["TOTAL", "9", "5", "2,100", "0.0667"]
    assert lines[3].split()[-1] == "0.13"
    assert "$2.00/GPU-hour" in lines[-1] and "2 slots" in lines[-1]


def test_later_checkpoint_marks_earlier_segments_done(tmp_path):
    config = make_config()
    runs = expand_runs(config)
    ckpt = tmp_path / "b" / "CartPole-v1" / "seed3" / "ckpt" / "step_0000000200.pt"
    ckpt.parent.mkdir(parents=True)
    ckpt.touch()  # final checkpoint kept, first one was temp() and is gone
    segments = plan.remaining_segments(runs, tmp_path)
    assert not [s for s in segments if s.run == ("b", "CartPole-v1", 3)]
    assert len(segments) == 4 + 4


def test_parse_segments_from_dry_run_text():
    runs = expand_runs(make_config())
    text = """
rule train_segment:
    input: runs/a/Pong-v5/seed2/ckpt/step_0000000500.pt
    output: runs/a/Pong-v5/seed2/ckpt/step_0000001000.pt,
        runs/a/Pong-v5/seed2/telemetry/step_0000001000.jsonl
    wildcards: exp=a, env=Pong-v5, seed=2, step=0000001000
rule train_segment:
    output: runs/b/CartPole-v1/seed1/ckpt/step_0000000100.pt
"""
    got = plan.parse_segments(text, runs)
    assert got == [
        plan.Segment("a", "Pong-v5", 2, 0, 500),
        plan.Segment("a", "Pong-v5", 2, 500, 1000),
        plan.Segment("b", "CartPole-v1", 1, 0, 100),
    ]
    with pytest.raises(ConfigError, match="not a segment boundary"):
        plan.parse_segments("runs/a/Pong-v5/seed2/ckpt/step_0000000700.pt", runs)
    with pytest.raises(ConfigError, match="no run"):
        plan.parse_segments("runs/zz/Pong-v5/seed2/ckpt/step_0000000500.pt", runs)


def test_default_sps_lookup_order_and_errors():
    planning = {"default_sps": {"ppo": 7, "ppo/Pong-v5": 300}}
    assert plan.default_sps(planning, "ppo", "Pong-v5") == (300.0, "ppo/Pong-v5")
    assert plan.default_sps(planning, "ppo", "Breakout-v5") == (1000.0, "ppo/atari")  # built in
    assert plan.default_sps(planning, "ppo", "Hopper-v5") == (7.0, "ppo")
    assert plan.default_sps({}, "qlearn", "CartPole-v1") == (30000.0, "qlearn")  # built in
    with pytest.raises(ConfigError, match="'ppo/mujoco'"):
        plan.default_sps({}, "ppo", "Hopper-v5")
    with pytest.raises(ConfigError, match="planning.default_sps.ppo: must be a number"):
        plan.default_sps({"default_sps": {"ppo": "fast"}}, "ppo", "Hopper-v5")


def test_warm_started_runs_queue_behind_their_source(tmp_path):
    config = make_config()
    config["experiments"]["c"] = {**config["experiments"]["a"], "init_from": "a"}
    config["experiments"]["c"]["seeds"] = [1]
    runs = expand_runs(config)
    segs = [s for s in plan.remaining_segments(runs, tmp_path) if s.exp in ("a", "c")]
    got = plan.estimate(config, segs, slots=4, runs_dir=tmp_path)
    # Pong has no measurement -> built-in 1000 SPS: 500/1000 + 10 = 10.5 s per segment.
    # a/seed1 (21 s) then c/seed1 (21 s) are serial; a/seed2 (21 s) runs beside them.
    assert got.wall_hours == pytest.approx(42 / 3600)
    assert got.usd is None
    assert "no price given" in plan.render(got)


def test_lpt_makespan():
    assert plan.lpt_makespan([3, 3, 2, 2, 2], 2) == 7  # 3+2+2 | 3+2
    assert plan.lpt_makespan([], 3) == 0
    assert plan.lpt_makespan([5, 1], 8) == 5
    with pytest.raises(ValueError):
        plan.lpt_makespan([1], 0)


def test_jobs_sharing_a_gpu_divide_gpu_hours(tmp_path, monkeypatch):
    config = make_config()
    segments = plan.remaining_segments(expand_runs(config), tmp_path)
    whole = plan.estimate(config, segments, slots=2, runs_dir=tmp_path)
    config["gpus"] = {"jobs_per_gpu": 4}
    shared = plan.estimate(config, segments, slots=2, runs_dir=tmp_path)
    assert shared.gpu_hours == pytest.approx(whole.gpu_hours / 4)
    assert shared.wall_hours == pytest.approx(whole.wall_hours)  # slots, not GPUs, bound time
    monkeypatch.setenv("RLPIPE_JOBS_PER_GPU", "2")  # the environment overrides the config
    env = plan.estimate(config, segments, slots=2, runs_dir=tmp_path)
    assert env.gpu_hours == pytest.approx(whole.gpu_hours / 2)
    monkeypatch.setenv("RLPIPE_JOBS_PER_GPU", "zero")
    with pytest.raises(ValueError, match="RLPIPE_JOBS_PER_GPU must be an integer"):
        plan.estimate(config, segments, slots=2, runs_dir=tmp_path)


def test_dry_run_ends_with_the_plan_block(tmp_path):
    """`snakemake -n` itself prints the plan: slots from resources gpu, price from config."""
    from pipeline import Workdir

    config = make_config()
    del config["experiments"]["a"]  # CartPole only: the Workdir is never run for real
    config["planning"]["usd_per_gpu_hour"] = 3.0
    work = Workdir(tmp_path / "w", config)
    out = work.run("-n", "--resources", "gpu=3").stdout
    block = out[out.index("rlpipe plan:") :].splitlines()
    assert "3 job slot(s) (resources gpu)" in block[0]
    row = dict(zip(block[1].split()[:5], block[2].split()[:5], strict=True))
    assert row == {"experiment": "b", "algo": "ppo", "segments": "6", "runs": "3"} | {"env": "600"}
    # 6 segments x 15 s x 2 GPUs = 180 GPU-s = 0.05 GPU-h -> $0.15; 3 runs on 3 slots: 30 s.
    total = block[3].split()
    assert total[0] == "TOTAL" and total[-3:] == ["0.05", "0.00833", "0.15"]
    assert "$3.00/GPU-hour" in block[-1] and "3 slots" in block[-1]

    # Without a configured price, the environment can give one (nested --config values reach
    # the workflow as strings, so the README uses the variable).
    del config["planning"]["usd_per_gpu_hour"]
    work.write_config(config)
    out = work.run("-n", env={"RLPIPE_USD_PER_GPU_HOUR": "0.5"}).stdout
    assert "from RLPIPE_USD_PER_GPU_HOUR" in out and "$0.50/GPU-hour" in out
    assert (
        "rlpipe plan: error: RLPIPE_USD_PER_GPU_HOUR='x'"
        in work.run("-n", env={"RLPIPE_USD_PER_GPU_HOUR": "x"}).stdout
    )

    # Telemetry of the same experiment replaces the config default, and the block says so.
    for seed in (1, 2, 3):
        telemetry(work.path / "runs", "b", "CartPole-v1", seed, 100, 50.0)
    assert "measured 50 (3 segments)" in work.run("-n").stdout
