"""Plan/cost estimator against a hand-computed example."""

import dataclasses
import json
import re

import pytest

from rlpipe.results import plan
from rlpipe.runtime import gpu_slots
from rlpipe.smk import plan_block
from rlpipe.sweep.runs import ConfigError, expand_runs

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


def bench(runs_dir, exp, env, seed, name, seconds):
    path = runs_dir / exp / env / f"seed{seed}" / "benchmark" / f"{name}.tsv"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"s\th:m:s\tmax_rss\n{seconds}\t0:00:00\t1.0\n")


def evaluated(runs_dir, exp, env, seed, step):
    path = runs_dir / exp / env / f"seed{seed}" / "eval" / f"step_{step:010d}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("{}")


def local(cores=4, gpus=1, jobs_per_gpu=2, gpu_resource=None):
    settings = gpu_slots.GpuSettings(gpus, jobs_per_gpu, "config gpus.count")
    return plan.Allocation.local(cores, settings, gpu_resource)


def hand_example(tmp_path):
    config = make_config()
    config["planning"]["eval_s"] = 5
    telemetry(tmp_path, "a", "Pong-v5", 1, 500, 50.0)  # a/seed1 segment 1 done, 50 SPS
    evaluated(tmp_path, "a", "Pong-v5", 1, 500)
    return config, plan.remaining_jobs(expand_runs(config), tmp_path)


def test_remaining_jobs_are_segments_and_evaluations(tmp_path):
    _, jobs = hand_example(tmp_path)
    a = [(j.kind, j.seed, j.start, j.end) for j in jobs if j.exp == "a"]
    assert a == [
        ("train", 1, 500, 1000), ("eval", 1, 500, 1000),
        ("train", 2, 0, 500), ("eval", 2, 0, 500),
        ("train", 2, 500, 1000), ("eval", 2, 500, 1000),
    ]  # fmt: skip
    assert len([j for j in jobs if j.exp == "b"]) == 6 + 6


def test_hand_computed_plan_on_a_gpu_machine(tmp_path):
    """Local: 4 cores, 1 GPU x 2 jobs per GPU. Jobs hold gpu/jobs_per_gpu GPUs."""
    config, jobs = hand_example(tmp_path)
    got = plan.estimate(config, jobs, local(), usd_per_gpu_hour=2.0, runs_dir=tmp_path)
    a, b = got.experiments
    # a: measured 50 SPS -> 500/50 + 10 = 20 s per segment, 3 segments; 3 evals of 5 s.
    assert (a.train_jobs, a.eval_jobs, a.runs, a.env_steps) == (3, 3, 2, 1500)
    assert a.duration_source == "SPS measured 50; eval 5 s"
    assert a.job_hours == pytest.approx(75 / 3600)
    assert a.gpu_hours == pytest.approx(75 * 1 / 2 / 3600)  # gpu: 1, 2 jobs per GPU
    # b: default 20 SPS -> 100/20 + 10 = 15 s x 6 segments, 6 evals x 5 s; gpu: 2.
    assert b.duration_source == "SPS default 20 (ppo/classic); eval 5 s"
    assert b.job_hours == pytest.approx(120 / 3600)
    assert b.gpu_hours == pytest.approx(120 * 2 / 2 / 3600)
    assert got.usd == pytest.approx(2.0 * 157.5 / 3600)
    # On 2 GPU slots: runs [40 (a2), 30, 30, 30, 20 (a1)] and 9 evals of 5 s, longest first:
    # 40 | 30+30 -> 70 | 60+20 -> 70 | 80, then the evals even out at 100 | 95.
    assert got.wall_hours == pytest.approx(100 / 3600)
    text = plan.render(got)
    lines = text.splitlines()
    assert lines[0].split()[:5] == ["experiment", "algo", "train", "eval", "runs"]
    assert lines[3].split()[:5] == ["TOTAL", "9", "9", "5", "2,100"]
    assert "a pod of 1 GPU(s) for that time: $0.06" in lines[-1]  # 100 s x 1 GPU x $2


def test_hand_computed_plan_under_slurm(tmp_path):
    """SLURM, 3 jobs at once: a gpu: N job is billed N whole GPUs (no sharing)."""
    config, jobs = hand_example(tmp_path)
    got = plan.estimate(config, jobs, plan.Allocation.slurm(3), 2.0, runs_dir=tmp_path)
    a, b = got.experiments
    assert a.gpu_hours == pytest.approx(75 / 3600) and b.gpu_hours == pytest.approx(240 / 3600)
    # [40, 30, 30 | 30 -> 60 | 20 -> 50 | nine 5 s evals] on 3 slots: 65 | 65 | 65
    assert got.wall_hours == pytest.approx(65 / 3600)
    assert "a pod" not in plan.render(got)


def test_cpu_jobs_bill_no_gpu_and_use_cores_by_threads(tmp_path):
    config, jobs = hand_example(tmp_path)
    for spec in config["experiments"].values():
        spec["resources"] = {"gpu": 0, "threads": 2}
    got = plan.estimate(config, jobs, local(cores=4), 2.0, runs_dir=tmp_path)
    assert got.gpu_hours == 0 and got.usd == 0
    # 4 cores / 2 threads = 2 slots: the same packing as the 2 GPU slots above.
    assert got.wall_hours == pytest.approx(100 / 3600)
    one_slot = plan.estimate(config, jobs, local(cores=2), None, runs_dir=tmp_path)
    assert one_slot.wall_hours == pytest.approx(195 / 3600)  # every job in turn
    # The run's start-up (parse, DAG) comes before the first job: it adds to the wall time
    # and to no job's hours.
    started = dataclasses.replace(local(cores=4), startup_s=7.0)
    later = plan.estimate(config, jobs, started, 2.0, runs_dir=tmp_path)
    assert later.wall_hours == pytest.approx(107 / 3600) and later.job_hours == got.job_hours
    assert "wall time 0.0297 h, 7 s of it Snakemake's start-up" in plan.render(later)


def test_measured_job_times_come_from_benchmark_files(tmp_path):
    """After a run, a job's time is its own benchmark's wall time (start-up included):
    30 s for 500 steps -> 0.06 s per step; evaluations 8 s."""
    config, jobs = hand_example(tmp_path)
    bench(tmp_path, "a", "Pong-v5", 1, "train_step_0000000500", 30)
    bench(tmp_path, "a", "Pong-v5", 1, "eval_step_0000000500", 8)
    got = plan.estimate(config, jobs, local(), None, runs_dir=tmp_path)
    a = got.experiments[0]
    assert a.duration_source == "eval measured (1 jobs); train measured (1 jobs)"
    assert a.job_hours == pytest.approx((3 * 30 + 3 * 8) / 3600)


def test_other_jobs_add_their_time_on_no_gpu(tmp_path):
    """The summary and replay jobs: measured seconds where an earlier run's benchmark file
    has them, else the built-in figure by rule; they add to the job-hours and, after the
    runs, to the wall time, and bill no GPU."""
    config, jobs = hand_example(tmp_path)
    base = plan.estimate(config, jobs, local(), 2.0, runs_dir=tmp_path)
    others = [plan.OtherJob("summarize"), plan.OtherJob("fetch_replays", measured_s=3.0)]
    assert [o.seconds for o in others] == [plan.DEFAULT_OTHER_S["summarize"], 3.0]
    assert plan.OtherJob("record_replays").seconds == plan.DEFAULT_OTHER_JOB_S
    got = plan.estimate(config, jobs, local(), 2.0, tmp_path, others=others)
    extra = plan.DEFAULT_OTHER_S["summarize"] + 3.0
    assert got.job_hours == pytest.approx(base.job_hours + extra / 3600)
    assert got.wall_hours == pytest.approx(base.wall_hours + extra / 3600)
    assert (got.gpu_hours, got.usd) == (base.gpu_hours, base.usd)
    row = next(line for line in plan.render(got).splitlines() if line.startswith("other"))
    assert "2: fetch_replays, summarize" in row and "measured; built-in" in row
    bench_file = tmp_path / "summarize.tsv"
    bench_file.write_text("s\th:m:s\n1.5\t0:00:01\n")
    assert plan.bench_seconds(bench_file) == 1.5
    assert plan.bench_seconds(tmp_path / "missing.tsv") is None
    assert plan.bench_seconds(None) is None


def test_later_checkpoint_marks_earlier_segments_done(tmp_path):
    config = make_config()
    runs = expand_runs(config)
    ckpt = tmp_path / "b" / "CartPole-v1" / "seed3" / "ckpt" / "step_0000000200.pt"
    ckpt.parent.mkdir(parents=True)
    ckpt.touch()  # final checkpoint kept, the first one deleted by retention
    jobs = plan.remaining_jobs(runs, tmp_path)
    assert not [j for j in jobs if j.run == ("b", "CartPole-v1", 3) and j.kind == "train"]


def test_parse_jobs_from_dry_run_text():
    runs = expand_runs(make_config())
    text = """
rule ppo_segment:
    input: runs/a/Pong-v5/seed2/ckpt/step_0000000500.pt
    output: runs/a/Pong-v5/seed2/ckpt/step_0000001000.pt,
        runs/a/Pong-v5/seed2/telemetry/step_0000001000.jsonl
rule evaluate:
    output: runs/b/CartPole-v1/seed1/eval/step_0000000100.json
rule ppo_segment:
    output: runs/b/CartPole-v1/seed1/ckpt/step_0000000100.pt
"""
    got = plan.parse_jobs(text, runs)
    assert got == [
        plan.Job("a", "Pong-v5", 2, "train", 0, 500),
        plan.Job("a", "Pong-v5", 2, "train", 500, 1000),
        plan.Job("b", "CartPole-v1", 1, "eval", 0, 100),
        plan.Job("b", "CartPole-v1", 1, "train", 0, 100),
    ]
    with pytest.raises(ConfigError, match="not a segment boundary"):
        plan.parse_jobs("runs/a/Pong-v5/seed2/ckpt/step_0000000700.pt", runs)
    with pytest.raises(ConfigError, match="no run"):
        plan.parse_jobs("runs/zz/Pong-v5/seed2/ckpt/step_0000000500.pt", runs)


def test_default_sps_lookup_order_and_errors():
    planning = {"default_sps": {"ppo": 7, "ppo/Pong-v5": 300}}
    assert plan.default_sps(planning, "ppo", "Pong-v5") == (300.0, "ppo/Pong-v5")
    assert plan.default_sps(planning, "ppo", "Breakout-v5") == (1585.0, "ppo/atari")  # built in
    assert plan.default_sps(planning, "ppo", "Hopper-v5") == (7.0, "ppo")
    assert plan.default_sps({}, "qlearn", "CartPole-v1") == (100000.0, "qlearn")  # built in
    # a run without a GPU: "/cpu" keys first, built in or the config's, then the others
    assert plan.default_sps({}, "ppo", "Pong-v5", cpu=True) == (250.0, "ppo/atari/cpu")
    assert plan.default_sps({}, "ppo", "CartPole-v1", cpu=True) == (3500.0, "ppo/classic")
    mine = {"default_sps": {"ppo/Pong-v5/cpu": 90}}
    assert plan.default_sps(mine, "ppo", "Pong-v5", cpu=True) == (90.0, "ppo/Pong-v5/cpu")
    assert plan.default_sps(mine, "ppo", "Pong-v5") == (1585.0, "ppo/atari")
    with pytest.raises(ConfigError, match="'ppo/mujoco'"):
        plan.default_sps({}, "ppo", "Hopper-v5")
    with pytest.raises(ConfigError, match="planning.default_sps.ppo: must be a number"):
        plan.default_sps({"default_sps": {"ppo": "fast"}}, "ppo", "Hopper-v5")


def test_built_in_gpu_throughput_follows_the_jobs_sharing_a_gpu(monkeypatch):
    """Measured on an H200 (Atari PPO, 2 threads): 1,585 env steps/s alone, 1,129 each at 3
    jobs per GPU, 792 at 6; the config's own figures and CPU runs are taken as given."""
    monkeypatch.delenv("RLPIPE_JOBS_PER_GPU", raising=False)
    at = {n: plan.default_sps({}, "ppo", "Pong-v5", jobs_per_gpu=n) for n in (1, 2, 3, 6, 12)}
    assert at[1] == (1585.0, "ppo/atari")
    assert at[3] == (pytest.approx(1129.0), "ppo/atari at 3 jobs per GPU")
    assert at[6] == (pytest.approx(792.0), "ppo/atari at 6 jobs per GPU")
    assert 1129 < at[2][0] < 1585 and at[12][0] == pytest.approx(792 / 2)
    mine = {"default_sps": {"ppo/Pong-v5": 300}}
    assert plan.default_sps(mine, "ppo", "Pong-v5", jobs_per_gpu=6) == (300.0, "ppo/Pong-v5")
    assert plan.default_sps({}, "ppo", "Pong-v5", cpu=True, jobs_per_gpu=6)[0] == 250.0
    config = make_config()
    config["gpus"] = {"jobs_per_gpu": 6}
    assert plan.Durations(config, "runs").jobs_per_gpu == 6
    monkeypatch.setenv("RLPIPE_JOBS_PER_GPU", "3")
    assert plan.Durations(config, "runs").jobs_per_gpu == 3


def test_no_price_reads_as_a_sentence(monkeypatch):
    monkeypatch.delenv("RLPIPE_USD_PER_GPU_HOUR", raising=False)
    assert plan.usd_per_gpu_hour({}) == (
        None, "no price set (planning.usd_per_gpu_hour or $RLPIPE_USD_PER_GPU_HOUR)"
    )  # fmt: skip


def test_warm_started_runs_queue_behind_their_source(tmp_path):
    config = make_config()
    config["experiments"]["c"] = {**config["experiments"]["a"], "init_from": "a"}
    config["experiments"]["c"]["seeds"] = [1]
    runs = expand_runs(config)
    jobs = [j for j in plan.remaining_jobs(runs, tmp_path) if j.exp in ("a", "c")]
    jobs = [j for j in jobs if j.kind == "train"]
    got = plan.estimate(config, jobs, local(cores=8, jobs_per_gpu=4), runs_dir=tmp_path)
    # Pong has no measurement -> built-in 1585 SPS: 500/1585 + 10 s per segment, two per run.
    # a/seed1 then c/seed1 are serial; a/seed2 runs beside them.
    assert got.wall_hours == pytest.approx(4 * (500 / 1585 + 10) / 3600)


def test_lpt_makespan():
    assert plan.lpt_makespan([3, 3, 2, 2, 2], 2) == 7  # 3+2+2 | 3+2
    assert plan.lpt_makespan([], 3) == 0
    assert plan.lpt_makespan([5, 1], 8) == 5
    with pytest.raises(ValueError):
        plan.lpt_makespan([1], 0)


def test_jobs_sharing_a_gpu_divide_gpu_hours(tmp_path):
    config, jobs = hand_example(tmp_path)
    whole = plan.estimate(config, jobs, local(jobs_per_gpu=1, gpu_resource=2), runs_dir=tmp_path)
    shared = plan.estimate(config, jobs, local(jobs_per_gpu=4, gpu_resource=2), runs_dir=tmp_path)
    assert shared.gpu_hours == pytest.approx(whole.gpu_hours / 4)
    assert shared.wall_hours == pytest.approx(whole.wall_hours)  # slots, not GPUs, bound time


def test_dry_run_ends_with_the_plan_block(tmp_path):
    """`snakemake -n` itself prints the plan, on the slots the run would have."""
    from pipeline import Workdir

    config = make_config()
    del config["experiments"]["a"]  # CartPole only: the Workdir is never run for real
    config["planning"].update(usd_per_gpu_hour=3.0, eval_s=5)
    work = Workdir(tmp_path / "w", config)
    out = work.run("-n", "--resources", "gpu=3").stdout  # Workdir runs with --cores 2
    block = out[out.index("rlpipe plan:") :].splitlines()
    assert block[0].startswith("rlpipe plan: 2 cores; 3 GPU slot(s) (resources gpu);")
    row = dict(zip(block[1].split()[:6], block[2].split()[:6], strict=True))
    assert row == {"experiment": "b", "algo": "ppo", "train": "6", "eval": "6", "runs": "3"} | {
        "env": "600"
    }
    # The summary is the one other job: 2 s built in, on no GPU.
    other = block[3].split()
    assert other[:5] == ["other", "jobs", "1:", "summarize", "built-in"]
    assert other[-3:] == ["0.000556", "0", "0.00"]
    # 6 x (100/20 + 10) s + 6 x 5 s + 2 s = 122 job-s; training and evaluation x 2 GPUs (not
    # shared) = 240 GPU-s -> $0.20.
    total = block[4].split()
    assert total[0] == "TOTAL" and total[-3:] == ["0.0339", "0.0667", "0.20"]
    # The wall time starts with this dry run's own start-up (the real run parses and builds
    # the DAG again). 3 GPU slots but 2 cores: runs of 30 s and six 5 s evaluations on 2
    # slots -> 60 s, then the summary's 2 s.
    wall = re.search(r"wall time ([\d.]+) h, (\d+) s of it Snakemake's start-up", block[-2])
    startup = int(wall[2])
    assert 0 < startup < 60 and "$3.00/GPU-hour" in block[-2]
    assert float(wall[1]) * 3600 == pytest.approx(60 + 2 + startup, abs=1)
    # Split across pods (shard=I/N), which build no summary: 2 pods -> 2 runs on one (30 s
    # chains side by side, then four 5 s evaluations on 2 slots: 40 s); 4 or 8 pods -> one
    # run each (30 s); every pod pays the start-up.
    head, _, pods = block[-1].partition(": ")
    assert head == "on N pods like this one (--config shard=I/N)"
    got = {
        int(n): float(h.removesuffix(" h")) * 3600
        for n, h in (p.split(": ") for p in pods.split(", "))
    }
    assert got == pytest.approx(
        {n: s + startup for n, s in {1: 60, 2: 40, 4: 30, 8: 30}.items()}, abs=1
    )

    # Without a configured price, the environment can give one (nested --config values reach
    # the workflow as strings, so the README uses the variable).
    del config["planning"]["usd_per_gpu_hour"]
    work.write_config(config)
    out = work.run("-n", env={"RLPIPE_USD_PER_GPU_HOUR": "0.5"}).stdout
    assert "$0.5 per GPU-hour ($RLPIPE_USD_PER_GPU_HOUR)" in out and "$0.50/GPU-hour" in out
    assert (
        "rlpipe plan: error: RLPIPE_USD_PER_GPU_HOUR='x'"
        in work.run("-n", env={"RLPIPE_USD_PER_GPU_HOUR": "x"}).stdout
    )

    # Telemetry of the same experiment replaces the config default, and the block says so.
    for seed in (1, 2, 3):
        telemetry(work.path / "runs", "b", "CartPole-v1", seed, 100, 50.0)
    assert "SPS measured 50" in work.run("-n").stdout


def test_the_plan_takes_the_workflows_runs_instead_of_expanding_the_config(tmp_path, monkeypatch):
    config, jobs = hand_example(tmp_path)
    runs = expand_runs(config)

    def again(_config):
        raise AssertionError("the config was expanded again")

    monkeypatch.setattr(plan, "expand_runs", again)
    outputs = [f"runs/b/CartPole-v1/seed1/ckpt/step_{100:010d}.pt"]
    block = plan_block.dry_run_block(config, outputs, local(), tmp_path, runs=runs)
    assert block.splitlines()[1].split()[:3] == ["experiment", "algo", "train"]
    assert plan.Durations(config, tmp_path, runs).runs is runs
