"""Ask Snakemake which restored outputs are current and what the planned jobs will read.

A new pod has the provenance records of the remote (``.snakemake/metadata``) but not the
outputs. Before it downloads anything, restore runs a *probe*: a dry run of the same targets
and the same resolved config in a subprocess (``RLPIPE_PROBE`` set, so it restores nothing
itself). When that dry run exits, :func:`dump` walks its DAG, which holds every job the targets
depend on whether or not its outputs exist, and writes for each job:

- ``current``: every output has a record whose params and input set equal what the job would
  get now (Snakemake's own comparison), and every job it depends on is current too. An output
  of a job that is not current must never be restored: after a config change it would be
  mixed into the new results.
- ``outputs`` and ``companions``: the job's benchmark file and the directories the workflow's
  ``companion_dirs(job)`` names (a dataset's files). These travel with the outputs.
- ``needed``: the files that jobs which will run read (their inputs), and the requested
  targets. A large output is restored only if something needs it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

from rlpipe.runtree.atomic import write_json, write_text

ENV_PROBE = "RLPIPE_PROBE"  # set in the probe: the JSON file to write
ENV_PROBE_CONFIG = "RLPIPE_PROBE_CONFIG"  # the resolved config the probe must use


@dataclass(frozen=True)
class ProbeJob:
    outputs: tuple[str, ...]
    companions: tuple[str, ...]  # file paths, or directory prefixes ending in "/"
    current: bool


@dataclass(frozen=True)
class ProbeResult:
    jobs: list[ProbeJob]
    needed: frozenset[str]

    def current_outputs(self) -> set[str]:
        return {o for job in self.jobs if job.current for o in job.outputs}


def active() -> bool:
    """True inside a probe process."""
    return ENV_PROBE in os.environ


def resolved_config() -> dict | None:
    """Inside a probe: the config of the run being probed (replaces the parsed one)."""
    path = os.environ.get(ENV_PROBE_CONFIG)
    return yaml.safe_load(Path(path).read_text()) if path else None


def dump(workflow, companion_dirs) -> None:
    """At exit of a probe: write the DAG's jobs with their currency (see module docstring)."""
    dag = workflow.dag
    if dag is None:
        return  # the DAG could not be built; the probe's stderr says why
    persistence = workflow.persistence
    current: dict = {}
    jobs, needed = [], set()
    for level in dag.toposorted():
        for job in level:
            outputs = [str(f) for f in job.output]
            ok = (
                bool(outputs)
                and persistence.has_metadata(job)
                and not persistence.has_outdated_metadata(job)
                and not persistence.params_changed(job)
                and not any(persistence.input_changed(job))
                and all(current.get(dep, False) for dep in dag.dependencies[job])
            )
            current[job] = ok
            if not ok:
                needed.update(str(f) for f in job.input)
            if not outputs:
                continue
            companions = [str(job.benchmark)] if job.benchmark else []
            companions += companion_dirs(job)
            jobs.append({"outputs": outputs, "companions": companions, "current": ok})
    for job in dag.targetjobs:
        needed.update(str(f) for f in (job.output or job.input))
    write_json(os.environ[ENV_PROBE], {"jobs": jobs, "needed": sorted(needed)})


def run(
    snakefile: str | Path,
    workdir: str | Path,
    config: dict,
    targets: list[str],
    extra_args: list[str],
    scratch: Path,
) -> ProbeResult:
    """Run the probe (a dry run in a subprocess) and read its result."""
    scratch.mkdir(parents=True, exist_ok=True)
    config_path, out_path = scratch / "probe-config.yaml", scratch / "probe.json"
    write_text(config_path, yaml.safe_dump(config, sort_keys=False))
    out_path.unlink(missing_ok=True)
    cmd = [sys.executable, "-m", "snakemake", *targets, "--snakefile", str(snakefile)]
    cmd += ["--directory", str(workdir), "--dry-run", "--nolock", "--cores", "1"]
    cmd += ["--workflow-profile", "none", *extra_args, "--quiet", "all"]
    env = {**os.environ, ENV_PROBE: str(out_path), ENV_PROBE_CONFIG: str(config_path)}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=str(workdir))
    if proc.returncode != 0 or not out_path.is_file():
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
        raise RuntimeError(f"the restore probe (snakemake --dry-run) failed:\n{tail}")
    data = json.loads(out_path.read_text())
    jobs = [
        ProbeJob(tuple(j["outputs"]), tuple(j["companions"]), j["current"]) for j in data["jobs"]
    ]
    return ProbeResult(jobs, frozenset(data["needed"]))
