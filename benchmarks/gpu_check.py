"""make gpu-check: prove rlpipe's GPU path on the GPU at hand, every stage under a time limit.

Stages (a stage that hangs is killed at its limit and fails):
  tests      the CUDA determinism tests and the worker's GPU guards (pytest)
  pipeline   a sweep shaped like Atari-10 (Pong and Breakout x 3 seeds, 3 segments each, 6
             jobs per GPU) as a user runs it: `snakemake --configfile gpu.yaml --profile
             profiles/local` in a fresh copy of the project, the warm worker on; then one of
             its runs again with RLPIPE_WORKER=0 (a cold process per job): the same bytes
  runpod     the same sweep with `--profile runpod` against a `:local:` remote: pod A is
             killed (SIGKILL, whole process tree) mid-sweep, pod B (another fresh copy)
             resumes it; B retrains no finished segment and ends with pipeline's bytes
  throughput rlpipe PPO (as by default, env_pools 1, and with env_pools 2: half the
             environments step while the policy acts for the other half) against CleanRL's
             ppo_atari_envpool.py (CUDA, Pong, CleanRL's hyper-parameters) at 1, 3 and 6 jobs
             per GPU: aggregate env steps/s, peak GPU memory per job (nvidia-smi); on an H200
             also issue 25's figures from 1a5103f

Without a GPU the stages run on the CPU at a small size (CartPole, a slot that stands for a
GPU) and throughput is skipped: what it proves there is the job path, not the GPU. Writes
benchmarks/out/gpu.json and gpu.md.

  .venv/bin/python benchmarks/gpu_check.py            # here
  bash .gpu/install.sh && python3 benchmarks/gpu_check.py    # on a GPU machine (.gpu/ from
                                                      # ../shared/tools/gpu-bundle.py)
CleanRL's script is not on PyPI: --cleanrl DIR (or $RLPIPE_CLEANRL_DIR) names a directory
holding ppo_atari_envpool.py and, in whl/, wheels of what it needs beyond rlpipe's
dependencies (gym 0.26, tyro); without one the CleanRL column is left empty.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "benchmarks/out"
SHIM = REPO / "benchmarks/cleanrl_shim"
SNAKEMAKE = [sys.executable, "-m", "snakemake", "--scheduler", "greedy"]
TELEMETRY = "runs/*/*/seed*/telemetry/step_*.jsonl"
COPY_IGNORE = shutil.ignore_patterns(
    ".git", ".venv", ".gpu", ".snakemake", "runs", "results", "logs", "out", "__pycache__"
)


def has_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def sweep(gpu: bool) -> dict:
    """The issue's Atari-10-shaped sweep on a GPU; a CartPole stand-in on a CPU."""
    if gpu:
        exp = {
            "algo": "ppo",
            "envs": ["Pong-v5", "Breakout-v5"],
            "seeds": [1, 2, 3],
            "total_steps": 24576,
            "checkpoint_every": 8192,
            "hparams": {"num_envs": 8, "num_steps": 128, "clip_coef": 0.1,
                        "lr_anneal_steps": 10485760},
            "resources": {"threads": 2, "gpu": 1, "mem_mb": 6000, "runtime": 30},
        }  # fmt: skip
        evaluation = {"episodes": 2, "seed": 1000003, "max_episode_steps": 4000}
        return {"experiments": {"ppo-atari": exp}, "evaluation": evaluation,
                "gpus": {"count": 1, "jobs_per_gpu": 6}}  # fmt: skip
    exp = {
        "algo": "ppo",
        "envs": ["CartPole-v1"],
        "seeds": [1, 2, 3],
        "total_steps": 3 * 2048,
        "checkpoint_every": 2048,
        "hparams": {"num_envs": 4, "num_steps": 64, "num_minibatches": 2, "update_epochs": 2,
                    "lr_anneal_steps": 100000},
        "resources": {"threads": 1, "gpu": 1},
    }  # fmt: skip
    evaluation = {"episodes": 2, "seed": 1000003, "max_episode_steps": 200}
    return {"experiments": {"ppo-atari": exp}, "evaluation": evaluation,
            "gpus": {"count": 1, "jobs_per_gpu": 2}}  # fmt: skip


def fresh_copy(dest: Path, config: dict) -> Path:
    """A new copy of the project (every file a new mtime, as on a new machine) + gpu.yaml."""
    shutil.copytree(REPO, dest, ignore=COPY_IGNORE, symlinks=True)
    (dest / "gpu.yaml").write_text(yaml.safe_dump(config))
    return dest


def run(cmd: list[str], cwd: Path, limit: float, env: dict | None = None, log: Path | None = None,
        kill_when=None) -> dict:  # fmt: skip
    """Run ``cmd`` in its own session; kill its whole tree at ``limit`` s or when
    ``kill_when()`` turns true. Returns rc, seconds and whether it was killed and why."""
    log = log or cwd / "check.log"
    started = time.monotonic()
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, cwd=cwd, env={**os.environ, **(env or {})}, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
        killed = None
        while proc.poll() is None:
            if time.monotonic() - started > limit:
                killed = "time limit"
            elif kill_when is not None and kill_when():
                killed = "kill_when"
            if killed:
                os.killpg(proc.pid, signal.SIGKILL)
                break
            time.sleep(0.2)
        proc.wait()
    return {"rc": proc.returncode, "seconds": round(time.monotonic() - started, 1),
            "killed": killed, "log": str(log)}  # fmt: skip


def checkpoints(workdir: Path) -> dict[str, str]:
    import hashlib

    return {
        str(p.relative_to(workdir)): hashlib.sha256(p.read_bytes()).hexdigest()[:16]
        for p in sorted(workdir.glob("runs/*/*/seed*/ckpt/step_*.pt"))
    }


def telemetry_first_lines(workdir: Path) -> list[dict]:
    out = []
    for path in sorted(workdir.glob("runs/*/*/seed*/telemetry/step_*.jsonl")):
        lines = path.read_text().splitlines()
        if lines:
            first, last = json.loads(lines[0]), json.loads(lines[-1])
            out.append({"file": str(path.relative_to(workdir)), "startup_s": first.get(
                "startup_s"), "sps": last.get("charts/SPS"), "time": first["time"],
                "placement": first.get("cuda_visible_devices")})  # fmt: skip
    return out


def segments(cfg: dict) -> int:
    exp = cfg["experiments"]["ppo-atari"]
    return len(exp["envs"]) * len(exp["seeds"]) * (exp["total_steps"] // exp["checkpoint_every"])


def worker_log(workdir: Path) -> str:
    sys.path.insert(0, str(REPO / "src"))
    from rlpipe.warm.worker import socket_path

    path = socket_path(workdir).with_suffix(".log")
    return path.read_text() if path.exists() else ""


def stage_tests(gpu: bool, limit: float, tmp: Path) -> dict:
    tests = ["tests/test_gpu_determinism.py", "tests/test_worker_gpu.py"]
    cmd = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-n", "0", "-o",
           "addopts=", "-q", "-rs", "-m", "not slow", *tests]  # fmt: skip
    result = run(cmd, REPO, limit, log=tmp / "tests.log")
    text = Path(result["log"]).read_text()
    counts = re.findall(r"(\d+) (passed|failed|skipped|error)", text)
    result["counts"] = {k: int(n) for n, k in counts}
    result["ok"] = result["rc"] == 0 and not result["killed"]
    if gpu:
        result["ok"] &= result["counts"].get("skipped", 0) == 0
    return result


def stage_pipeline(gpu: bool, limit: float, tmp: Path, cold_run: bool = True) -> dict:
    cfg = sweep(gpu)
    pod = fresh_copy(tmp / "local", cfg)
    cmd = [*SNAKEMAKE, "--configfile", "gpu.yaml", "--profile", "profiles/local"]
    result = run(cmd, pod, limit)
    tel = telemetry_first_lines(pod)
    ckpts = checkpoints(pod)
    logs = "".join(p.read_text() for p in (pod / "logs").rglob("*.log"))
    wlog = worker_log(pod)
    result.update(
        segments=len(ckpts),
        expected=segments(cfg),
        evals=len(list(pod.glob("runs/*/*/seed*/eval/step_*.json"))),
        spares=len(re.findall(r"rlpipe spare \d+: warm", wlog)),
        spare_warmup_s=[float(s) for s in re.findall(r"warm on \w+ in ([\d.]+) s", wlog)],
        fell_back="worker: unavailable" in logs,
        telemetry=tel,
    )
    result["startup_s"] = _startup_summary(tel)
    # One run again, every job in a cold process: the same bytes, and what a cold start costs.
    cold_cfg = json.loads(json.dumps(cfg))
    exp = cold_cfg["experiments"]["ppo-atari"]
    exp["envs"], exp["seeds"] = exp["envs"][:1], exp["seeds"][:1]
    exp["total_steps"] = 2 * exp["checkpoint_every"]
    cold = fresh_copy(tmp / "cold", cold_cfg)
    result["cold"] = {"rc": 0, "startup_s": "not run (--no-cold)"}
    result["cold_same_bytes"] = None
    if cold_run:
        result["cold"] = run(cmd, cold, limit, env={"RLPIPE_WORKER": "0"})
        cold_ckpts = checkpoints(cold)
        result["cold"]["startup_s"] = [t["startup_s"] for t in telemetry_first_lines(cold)]
        result["cold_same_bytes"] = bool(cold_ckpts) and all(
            ckpts.get(k) == v for k, v in cold_ckpts.items()
        )
    result["ok"] = (
        result["rc"] == 0
        and result["cold"]["rc"] == 0
        and result["segments"] == result["expected"]
        and result["evals"] == result["expected"]
        and result["spares"] > 0
        and not result["fell_back"]
        and result["cold_same_bytes"] is not False
        and (not gpu or all(t["placement"] not in (None, "") for t in tel))
    )
    result["checkpoints"] = ckpts
    return result


def _startup_summary(tel: list[dict]) -> dict:
    """Start-up of the first wave (spares still warming) and of the later ones."""
    ordered = sorted(tel, key=lambda t: t["time"])
    values = [t["startup_s"] for t in ordered if t["startup_s"] is not None]
    if not values:
        return {}
    first = ordered[0]["time"]
    wave1 = [t["startup_s"] for t in ordered if t["time"] - first < 5 and t["startup_s"]]
    later = values[len(wave1) :]
    return {
        "first_wave_median_s": statistics.median(wave1) if wave1 else None,
        "later_median_s": statistics.median(later) if later else None,
        "later_max_s": max(later) if later else None,
        "all": values,
    }


def stage_runpod(gpu: bool, limit: float, tmp: Path, reference: dict) -> dict:
    cfg = sweep(gpu)
    remote = tmp / "remote"
    remote.mkdir()
    env = {"RLPIPE_REMOTE": f":local:{remote}"}
    cmd = [*SNAKEMAKE, "--configfile", "gpu.yaml", "--profile", "profiles/runpod"]
    pod_a = fresh_copy(tmp / "podA", cfg)
    half = segments(cfg) // 2

    def enough_durable() -> bool:  # kill once half of the segments' telemetry is uploaded
        return len(list(remote.glob(TELEMETRY))) >= half

    a = run(cmd, pod_a, limit, env=env, log=tmp / "podA.log", kill_when=enough_durable)
    # A segment is durable once its telemetry's provenance record is on the remote: records go
    # up after their outputs, verified (rlpipe.remote.durable). Retention may have pruned its
    # checkpoint since: a later one of the run is there then.
    from rlpipe.remote.metadata import record_rel

    durable = {
        rel
        for rel in (str(p.relative_to(remote)) for p in remote.glob(TELEMETRY))
        if (remote / record_rel(rel)).exists()
    }
    pod_b = fresh_copy(tmp / "podB", cfg)
    b = run(cmd, pod_b, limit, env=env, log=tmp / "podB.log")
    log_b = Path(b["log"]).read_text()
    trained_b = set(
        re.findall(r"rule ppo_segment:\n(?:.*\n)*?\s*output: .*?(runs/\S+\.jsonl)", log_b)
    )
    final = {k: v for k, v in checkpoints(pod_b).items() if k.endswith(f"step_{_last(cfg)}.pt")}
    same = bool(final) and all(reference.get(k) == v for k, v in final.items())
    return {
        "pod_a": a,
        "durable_after_kill": len(durable),
        "pod_b": b,
        "segments_trained_by_b": len(trained_b),
        "retrained_durable": sorted(trained_b & durable),
        "final_checkpoints_same_as_pipeline": same,
        "ok": a["killed"] == "kill_when"
        and b["rc"] == 0
        and 0 < len(trained_b) <= segments(cfg) - len(durable)
        and not trained_b & durable
        and same,
    }


def _last(cfg: dict) -> str:
    from rlpipe.runtree.layout import fmt_step

    return fmt_step(cfg["experiments"]["ppo-atari"]["total_steps"])


RLPIPE_RUN = """
import json, sys, tempfile
from rlpipe.algos import hparams
from rlpipe.algos.ppo.params import PPOParams
from rlpipe.algos.ppo.train import train_segment
from rlpipe.runtree.span import Segment
steps, seed, threads, hp = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
hp = hparams.typed(PPOParams, {**json.loads(hp), "lr_anneal_steps": steps}, steps)
with tempfile.TemporaryDirectory() as tmp:
    result = train_segment(Segment("Pong-v5", seed, 0, steps), hp, f"{tmp}/c.pt",
                           f"{tmp}/t.jsonl", threads=threads)
print("RLPIPE_SPS", result["sps"])
"""


class GpuMemory:
    """Peak GPU memory per process, sampled from nvidia-smi twice a second."""

    def __init__(self):
        self.peak: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def _poll(self) -> None:
        query = [
            "nvidia-smi",
            "--query-compute-apps=pid,used_memory",
            "--format=csv,noheader,nounits",
        ]
        while not self._stop.wait(0.5) and shutil.which("nvidia-smi"):
            out = subprocess.run(query, capture_output=True, text=True).stdout
            for line in out.splitlines():
                pid, mib = (x.strip() for x in line.split(","))
                self.peak[int(pid)] = max(self.peak.get(int(pid), 0.0), float(mib))

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


# rlpipe as it runs by default (env_pools 1: CleanRL's synchronous loop), rlpipe with the
# environments in two pools stepped in turns (issue 25), CleanRL
IMPLS = ("rlpipe", "rlpipe-pools2", "cleanrl")
# Issue 25's figures (one NVIDIA H200, 16 cores, rlpipe at 1a5103f, 2 threads per job, 40,960
# steps per job): rlpipe's total env steps/s at 1, 3 and 6 jobs per GPU, shown beside a new run
# on that GPU model. CleanRL alone there: 1,676.
BEFORE = {"gpu": "H200", "commit": "1a5103f", "rlpipe_total": {1: 1585, 3: 3018, 6: 4317}}


def stage_throughput(limit: float, tmp: Path, cleanrl: Path | None, steps: int) -> dict:
    sys.path.insert(0, str(REPO / "benchmarks"))
    from bench_vs_cleanrl import HPARAMS

    threads = 2
    env = {"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads),
           "OMP_WAIT_POLICY": "PASSIVE", "PYTHONPATH": str(REPO / "src")}  # fmt: skip
    clean_env = dict(env)
    if cleanrl is not None:
        cleanrl = cleanrl.resolve()
        site = tmp / "cleanrl-site"
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps",
                        "--target", str(site), *map(str, (cleanrl / "whl").glob("*.whl"))],
                       check=True)  # fmt: skip
        clean_env.update(PYTHONPATH=f"{SHIM}:{site}", BENCH_ENVPOOL_THREADS=str(threads))
    rows = []
    deadline = time.monotonic() + limit
    for impl in IMPLS:
        if impl == "cleanrl" and cleanrl is None:
            continue
        for jobs in (1, 3, 6):
            if impl != "cleanrl":
                hp = {**HPARAMS, "env_pools": 2 if impl == "rlpipe-pools2" else 1}
                args = [sys.executable, "-c", RLPIPE_RUN, str(steps), "1", str(threads),
                        json.dumps(hp)]  # fmt: skip
                penv, pattern = env, r"RLPIPE_SPS ([\d.]+)"
            else:
                args = [sys.executable, str(cleanrl / "ppo_atari_envpool.py"), "--env-id",
                        "Pong-v5", "--total-timesteps", str(steps), "--seed", "1"]  # fmt: skip
                penv, pattern = clean_env, r"^SPS: (\d+)"
            with GpuMemory() as mem:
                procs = []
                for j in range(jobs):
                    work = tmp / f"{impl}{jobs}-{j}"
                    work.mkdir()
                    procs.append(subprocess.Popen(args, cwd=work, env={**os.environ, **penv},
                                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                                  text=True))  # fmt: skip
                outs = []
                for proc in procs:
                    try:
                        outs.append(
                            proc.communicate(timeout=max(1, deadline - time.monotonic()))[0]
                        )
                    except subprocess.TimeoutExpired:
                        proc.kill()
                        outs.append(proc.communicate()[0])
            sps = []
            for out in outs:
                found = re.findall(pattern, out, re.M)
                sps.append(float(found[-1]) if found else None)
            peaks = [mem.peak.get(p.pid) for p in procs]
            rows.append({
                "impl": impl, "jobs": jobs, "sps_each": sps,
                "sps_total": sum(s for s in sps if s) if all(sps) else None,
                "gpu_mem_mib_each": peaks,
                "errors": [o[-1500:] for o, s in zip(outs, sps, strict=True) if s is None],
            })  # fmt: skip
            print(json.dumps({k: rows[-1][k] for k in ("impl", "jobs", "sps_total")}), flush=True)
    ok = all(r["sps_total"] for r in rows)
    return {"steps_per_job": steps, "threads_per_job": threads, "rows": rows, "ok": ok}


def machine() -> dict:
    import torch

    info = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpus": os.cpu_count(),
        "cpu_model": next(
            (
                line.split(":", 1)[1].strip()
                for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")
            ),
            None,
        ),  # fmt: skip
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
        info["cuda"] = torch.version.cuda
    return info


def markdown(result: dict) -> str:
    m = result["machine"]
    lines = [f"# make gpu-check on {m.get('gpu', 'no GPU (CPU only)')}",
             f"{m['cpus']} CPUs ({m['cpu_model']}), Python {m['python']}, torch {m['torch']}",
             "", "| stage | ok | seconds | what |", "|---|---|---|---|"]  # fmt: skip
    for name, stage in result["stages"].items():
        what = ""
        if name == "tests":
            what = ", ".join(f"{n} {k}" for k, n in stage.get("counts", {}).items())
        elif name == "pipeline":
            su = stage.get("startup_s", {})
            what = (f"{stage['segments']}/{stage['expected']} segments, {stage['evals']} evals, "
                    f"start-up to first env step: first wave median {su.get('first_wave_median_s')}"
                    f" s, later median {su.get('later_median_s')} s (max {su.get('later_max_s')});"
                    f" cold process {stage['cold'].get('startup_s')} s; cold bytes equal: "
                    f"{stage['cold_same_bytes']}")  # fmt: skip
        elif name == "runpod":
            what = (f"pod A killed with {stage['durable_after_kill']} segments durable; pod B "
                    f"trained {stage['segments_trained_by_b']}, final checkpoints equal "
                    f"pipeline's: {stage['final_checkpoints_same_as_pipeline']}")  # fmt: skip
        elif name == "throughput":
            what = stage.get("skipped", "see the table below")
        seconds = stage.get("seconds", "")
        lines.append(f"| {name} | {stage.get('ok')} | {seconds} | {what} |")
    tp = result["stages"].get("throughput", {})
    if tp.get("rows"):
        lines += ["", f"Pong-v5, CleanRL's Atari hyper-parameters, {tp['steps_per_job']} steps "
                  f"per job, {tp['threads_per_job']} threads per job, env steps/s:", "",
                  "| jobs per GPU | rlpipe total (env_pools 1, default) | each | rlpipe total "
                  "(env_pools 2) | each | CleanRL total | each | GPU MiB/job: rlpipe | "
                  "env_pools 2 | CleanRL |",
                  "|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
        before = BEFORE["gpu"] in m.get("gpu", "")
        if before:
            lines[-2] += f" rlpipe total at {BEFORE['commit']} on an {BEFORE['gpu']} (issue 25) |"
            lines[-1] += "---|"
        for jobs in (1, 3, 6):
            cells = []
            for impl in IMPLS:
                row = next((r for r in tp["rows"] if r["impl"] == impl and r["jobs"] == jobs), None)
                if row is None or not row["sps_total"]:
                    cells.append(("-", "-", "-"))
                    continue
                each = statistics.mean(row["sps_each"])
                mem = [m for m in row["gpu_mem_mib_each"] if m]
                cells.append((f"{row['sps_total']:.0f}", f"{each:.0f}",
                               f"{statistics.mean(mem):.0f}" if mem else "-"))  # fmt: skip
            sps = " | ".join(f"{total} | {each}" for total, each, _ in cells)
            mem = " | ".join(mib for _, _, mib in cells)
            old = f" {BEFORE['rlpipe_total'][jobs]} |" if before else ""
            lines.append(f"| {jobs} | {sps} | {mem} |{old}")
    return "\n".join(lines) + "\n"


def save(result: dict) -> None:
    """benchmarks/out/gpu.json and gpu.md, after every stage (a killed check keeps them)."""
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "gpu.json").write_text(json.dumps(result, indent=1, default=str))
    (OUT / "gpu.md").write_text(markdown(result))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stages", nargs="+",
                        default=["tests", "pipeline", "runpod", "throughput"])  # fmt: skip
    parser.add_argument("--cleanrl", type=Path, default=os.environ.get("RLPIPE_CLEANRL_DIR"))
    parser.add_argument("--steps", type=int, default=12288, help="throughput: steps per job")
    parser.add_argument("--keep", action="store_true", help="keep the work directories")
    parser.add_argument("--no-cold", action="store_true", help="pipeline: skip the cold run")
    args = parser.parse_args()
    gpu = has_cuda()
    limits = {"tests": 150, "pipeline": 200, "runpod": 200, "throughput": 300}
    tmp = Path(tempfile.mkdtemp(prefix="rlpipe-gpu-check-"))
    result = {"machine": machine(), "gpu": gpu, "stages": {}}
    print(json.dumps(result["machine"]), flush=True)
    try:
        for name in args.stages:
            started = time.monotonic()
            if name == "tests":
                stage = stage_tests(gpu, limits[name], tmp)
            elif name == "pipeline":
                stage = stage_pipeline(gpu, limits[name], tmp, not args.no_cold)
            elif name == "runpod":
                reference = result["stages"].get("pipeline", {}).get("checkpoints", {})
                stage = stage_runpod(gpu, limits[name], tmp, reference)
            elif not gpu:
                stage = {"ok": None, "skipped": "needs a GPU: still to be measured there"}
            else:
                stage = stage_throughput(limits[name], tmp, args.cleanrl, args.steps)
            stage["seconds"] = round(time.monotonic() - started, 1)
            result["stages"][name] = stage
            save(result)
            print(f"== {name}: ok={stage.get('ok')} in {stage['seconds']} s", flush=True)
            if stage.get("ok") is False:
                for key in ("log",):
                    if key in stage:
                        print(Path(stage[key]).read_text()[-4000:])
    finally:
        save(result)
        print(markdown(result))
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0 if all(s.get("ok") is not False for s in result["stages"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
