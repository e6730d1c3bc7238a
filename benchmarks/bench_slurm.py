"""The demo under SLURM against the demo run locally, on the same machine.

Run (root, apt; installs and starts the tests' single-node SLURM cluster, then stops it):
    .venv/bin/python benchmarks/bench_slurm.py   (writes benchmarks/out/slurm.json)

Both runs start in an empty directory with the embedded demo config: locally with
`snakemake --cores 2`, and with `snakemake --profile profiles/slurm` as a cluster user types it
(the profile's status checks, groups and settings, no extra flags). Wall time is the whole
command. Goal: SLURM <= 1.5x local.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "benchmarks/out"
SNAKEMAKE = str(Path(sys.executable).parent / "snakemake")
sys.path.insert(0, str(REPO / "tests"))

from services.slurm import SlurmCluster, ensure_installed  # noqa: E402


def timed_demo(*args: str, env: dict | None = None, log_as: str | None = None) -> float:
    """Wall time of the demo in an empty directory; ``log_as`` keeps Snakemake's log there
    (benchmarks/out/), which shows where the time went: submissions and finished jobs."""
    with tempfile.TemporaryDirectory(dir="/tmp") as tmp:
        work = Path(tmp)
        (work / "config").mkdir()
        shutil.copy(REPO / "config/config.yaml", work / "config/config.yaml")
        work.chmod(0o755)
        cmd = [SNAKEMAKE, "-s", str(REPO / "Snakefile"), "-d", str(work), *args]
        start = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
        wall = time.perf_counter() - start
        if log_as:
            OUT.mkdir(parents=True, exist_ok=True)
            (OUT / log_as).write_text(proc.stderr)
        if proc.returncode:
            raise SystemExit(f"{' '.join(args)} failed:\n{proc.stderr[-4000:]}")
        return wall


def main() -> None:
    local = timed_demo("--cores", "2", log_as="local-demo.log")
    print(f"local: {local:.1f} s", flush=True)
    ensure_installed(accounting=False)
    cluster = SlurmCluster()
    cluster.start()
    try:
        slurm = timed_demo(
            "--profile", str(REPO / "profiles/slurm"), env=cluster.env, log_as="slurm-demo.log"
        )
    finally:
        cluster.stop()
        shutil.rmtree(cluster.base, ignore_errors=True)
    result = {"local_s": local, "slurm_s": slurm, "ratio": slurm / local}
    print(json.dumps(result), flush=True)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "slurm.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
