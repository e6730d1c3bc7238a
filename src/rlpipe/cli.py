"""``rlpipe`` command line: live run status, the plan/cost estimate and the shard launcher
(torch-free)."""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rlpipe.remote import shards
from rlpipe.results import plan, status
from rlpipe.runtime import gpu_slots
from rlpipe.runtree import layout
from rlpipe.sweep import config as rlconfig
from rlpipe.sweep.runs import ConfigError, expand_runs

# Package data (a link to workflow/schemas/ in the repository; a copy in a wheel).
SCHEMA = Path(__file__).parent / "data" / "config.schema.yaml"
DEFAULT_CONFIG = "config/config.yaml"
CLEAR = "\x1b[H\x1b[2J"  # cursor home + clear screen


def load_config(path: str | None) -> dict | None:
    """The validated config; None if no --config was given and the default is absent."""
    if path is None:
        if not Path(DEFAULT_CONFIG).exists():
            return None
        path = DEFAULT_CONFIG
    if not Path(path).is_file():
        raise ConfigError(f"{path}: config file not found")
    return rlconfig.load(path, SCHEMA)


def sync_telemetry(remote: str, dest: str | Path) -> None:
    """Copy the telemetry of every run under ``remote`` (a runs/ directory) into ``dest``."""
    from rlpipe.storage.rclone import RcloneRemote, RemoteError

    try:
        RcloneRemote(remote, retries=1).copy_down(dest, ["+ */telemetry/**", "- **"])
    except RemoteError as err:
        raise RuntimeError(str(err)) from None


def sharded_sweep(client) -> shards.Assignment | None:
    """The shard assignment when ``client``'s remote is the mirror of a sharded sweep."""
    from rlpipe.storage.rclone import RemoteError, RemoteNotFound

    try:
        text = shards.read_replaced(client, shards.ASSIGNMENT_REL)
    except RemoteNotFound:
        return None
    except RemoteError as err:
        raise RuntimeError(str(err)) from None
    return shards.Assignment.from_json(text, client.path(shards.ASSIGNMENT_REL))


def shard_view(client, sweep: shards.Assignment, config: dict | None, runs_dir) -> str:
    """The shard table of a sharded sweep's mirror (owners read from the remote)."""
    from rlpipe.remote.durable import Settings

    owners = shards.read_owners(client, sweep.count)
    durable_segments = {
        shards.run_name(key): len(
            layout.of_kind(
                Path(layout.run_dir(*key, root=runs_dir)).glob("telemetry/*"), "telemetry"
            )
        )
        for key in status.discover(runs_dir)
    }
    totals = {}
    if config:
        totals = {shards.run_name(k): len(r.steps) for k, r in expand_runs(config).items()}
    section = (config or {}).get("durable") or {}
    timeout = float(section.get("owner_timeout_s", Settings.owner_timeout_s))
    return shards.status_table(sweep, owners, durable_segments, totals, timeout, time.time())


def cmd_status(args) -> int:
    from rlpipe.storage.rclone import RcloneRemote

    config = load_config(args.config)
    totals = status.totals_from_config(config) if config else {}
    runs_dir = args.runs_dir
    tmp = tempfile.mkdtemp(prefix="rlpipe-status-") if args.remote else None
    client = RcloneRemote(args.remote, retries=1) if args.remote else None
    sweep = sharded_sweep(client) if client else None
    runs_remote = f"{args.remote.rstrip('/')}/runs" if sweep else args.remote
    try:
        while True:
            if args.remote:
                sync_telemetry(runs_remote, tmp)
                runs_dir = tmp
            table = status.render(status.collect(runs_dir, totals, args.stall_timeout))
            if sweep:
                table = shard_view(client, sweep, config, runs_dir) + "\n\n" + table
            if not args.watch:
                print(table)
                return 0
            where = args.remote or args.runs_dir
            stamp = time.strftime("%Y-%m-%d %H:%M:%S")
            head = f"rlpipe status  {where}  {stamp}  (every {args.watch:g} s; Ctrl-C stops)"
            sys.stdout.write(f"{CLEAR}{head}\n\n{table}\n")
            sys.stdout.flush()
            time.sleep(args.watch)
    except KeyboardInterrupt:
        return 0
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)


def cmd_plan(args) -> int:
    config = load_config(args.config)
    if config is None:
        raise ConfigError(f"{DEFAULT_CONFIG}: config file not found (pass --config)")
    runs = expand_runs(config)
    if args.jobs_from:
        src = args.jobs_from
        text = sys.stdin.read() if src == "-" else Path(src).read_text()
        jobs = plan.parse_jobs(text, runs)
    else:
        jobs = plan.remaining_jobs(runs, args.runs_dir)
    if args.slurm_jobs:
        allocation = plan.Allocation.slurm(args.slurm_jobs)
    else:
        gpus = gpu_slots.settings(config.get("gpus"))
        allocation = plan.Allocation.local(args.cores or os.cpu_count() or 1, gpus, args.gpu_slots)
    price = args.usd_per_gpu_hour
    if price is None:
        price, _ = plan.usd_per_gpu_hour(config.get("planning") or {})
    seconds = plan.Durations(config, args.runs_dir, runs)
    print(plan.render(plan.estimate(config, jobs, allocation, price, args.runs_dir, seconds)))
    return 0


SKY_TASK = "cloud/sky/rlpipe.yaml"


def launch_commands(shards_n: int, task: str, config: str, environ=os.environ) -> list[list[str]]:
    """``sky jobs launch`` per shard: the shard and the remote as env vars, every
    ``RCLONE_CONFIG_<REMOTE>_*`` variable set here as a secret passed by name (so no value
    appears on a command line, in a log, or in the job's YAML)."""
    remote = environ.get("RLPIPE_REMOTE")
    if not remote:
        raise ValueError("RLPIPE_REMOTE is not set: export the durable remote every shard uses")
    name = remote.split(":", 1)[0].upper()
    secrets = sorted(k for k in environ if name and k.startswith(f"RCLONE_CONFIG_{name}_"))
    out = []
    for i in range(1, shards_n + 1):
        cmd = ["sky", "jobs", "launch", task, "-n", f"rlpipe-shard-{i}-of-{shards_n}", "-y", "-d"]
        cmd += ["--env", f"RLPIPE_SHARD={i}/{shards_n}", "--env", "RLPIPE_REMOTE"]
        cmd += ["--env", f"RLPIPE_CONFIG={config}"]
        for key in secrets:
            cmd += ["--secret", key]
        out.append(cmd)
    return out


def cmd_launch(args) -> int:
    if args.shards < 1:
        raise ValueError(f"--shards {args.shards}: must be >= 1")
    commands = launch_commands(args.shards, args.task, args.config)
    for cmd in commands:
        print(" ".join(cmd), flush=True)
        if not args.dry_run:
            if not shutil.which("sky"):
                raise FileNotFoundError("sky not found: pip install -e '.[cloud]' (SkyPilot)")
            subprocess.run(cmd, check=True)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rlpipe", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    st = sub.add_parser("status", help="live status table of every run")
    st.add_argument("--runs-dir", default="runs", help="run tree (default: runs)")
    st.add_argument("--config", help=f"config giving total steps (default: {DEFAULT_CONFIG})")
    st.add_argument(
        "--remote",
        help="rclone REMOTE:path of a runs/ tree, or of a durable mirror (durable.remote): its "
        "telemetry is copied to a temp dir; a sharded sweep's mirror also shows every shard",
    )
    st.add_argument("--watch", type=float, metavar="SECONDS", help="redraw every SECONDS")
    st.add_argument(
        "--stall-timeout",
        type=float,
        default=status.DEFAULT_STALL_S,
        metavar="SECONDS",
        help="a running segment without a telemetry line for this long is STALLED",
    )
    st.set_defaults(func=cmd_status)

    pl = sub.add_parser(
        "plan",
        help="jobs left, job-hours, GPU-hours, wall time and cost",
        description="By default the jobs left are the segments after each run's last segment "
        "whose telemetry or checkpoint exists under --runs-dir, and the evaluations not yet "
        "there. With --jobs-from, they are the outputs named in that text, e.g. `snakemake "
        "-n` output. Local by default (this machine's cores, the config's GPU slots).",
    )
    pl.add_argument("--config", help=f"workflow config (default: {DEFAULT_CONFIG})")
    pl.add_argument("--runs-dir", default="runs", help="run tree (default: runs)")
    pl.add_argument("--cores", type=int, help="cores (default: this machine's)")
    pl.add_argument("--gpu-slots", type=int, help="GPU jobs at once (default: config gpus)")
    pl.add_argument("--slurm-jobs", type=int, help="plan for SLURM, this many jobs at once")
    pl.add_argument("--usd-per-gpu-hour", type=float, help="price (default: config, env)")
    pl.add_argument("--jobs-from", metavar="FILE", help="text naming outputs ('-': stdin)")
    pl.set_defaults(func=cmd_plan)

    la = sub.add_parser(
        "launch",
        help="launch N shards of the sweep as SkyPilot managed jobs (docs/sharding.md)",
        description="Runs `sky jobs launch` once per shard with the task file, "
        "RLPIPE_SHARD=I/N and RLPIPE_REMOTE; the remote's RCLONE_CONFIG_* variables go as "
        "secrets. SkyPilot relaunches a preempted shard; the relaunch resumes from the remote.",
    )
    la.add_argument("--shards", type=int, required=True, help="N: how many pods")
    la.add_argument("--task", default=SKY_TASK, help=f"SkyPilot task (default: {SKY_TASK})")
    la.add_argument("--config", default=DEFAULT_CONFIG, help="the sweep's config file")
    la.add_argument("--dry-run", action="store_true", help="print the commands only")
    la.set_defaults(func=cmd_launch)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (ConfigError, FileNotFoundError, RuntimeError, ValueError) as err:
        print(f"rlpipe {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
