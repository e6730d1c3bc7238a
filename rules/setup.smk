# What this invocation settles while the Snakefile is parsed (rlpipe.smk.session): the
# assembled and validated config and its runs, whether this is the main run holding the
# working directory, its GPU slots, its durable remote and the runs of its shard.
import sys
from pathlib import Path

# This checkout's library, whatever rlpipe the interpreter has installed (fresh clones and
# worktrees may share one virtualenv).
sys.path.insert(0, str(Path(workflow.basedir) / "src"))

from rlpipe import tracking as rltracking
from rlpipe.remote import durable, shards
from rlpipe.smk import jobguard, provenance, session, sourcecache
from rlpipe.smk.env import export_pythonpath
from rlpipe.storage.rclone import RemoteError
from rlpipe.sweep import config as rlconfig
from rlpipe.sweep.runs import ConfigError, expand_runs

# Snakemake checks every planned job's script through a slow, pure path parser: remember its
# answers (rlpipe.smk.sourcecache).
sourcecache.remember_source_paths()

_assembled = session.assemble_config(workflow)
config.clear()
config.update(_assembled)
try:
    rlconfig.validate(
        config, workflow.source_path("../workflow/schemas/config.schema.yaml")
    )
    RUNS = expand_runs(config)
except ConfigError as err:
    raise WorkflowError(str(err)) from None

# Absolute: Snakemake has left the working directory when atexit hooks run.
WORKDIR = Path.cwd()
RUNS_DIR = WORKDIR / "runs"
provenance.use_disk_cache(provenance.user_cache_path())

MAIN_RUN = session.is_main_run(workflow)
HOLDS_DIRECTORY = MAIN_RUN and session.claim_directory(WORKDIR)
if MAIN_RUN:
    jobguard.mark_main()

try:
    GPUS = session.gpu_settings(workflow, config, MAIN_RUN)
except ValueError as err:
    raise WorkflowError(f"gpus: {err}") from None

export_pythonpath(Path(workflow.basedir) / "src")

DURABLE = durable.Settings.from_config(config.get("durable"))
try:
    SHARD = shards.Shard.parse(config.get("shard"))
except ConfigError as err:
    raise WorkflowError(str(err)) from None

if SHARD is None:
    SHARD_RUNS = RUNS
else:
    try:
        _assignment = session.shard_assignment(
            config, SHARD, DURABLE, WORKDIR, RUNS, MAIN_RUN
        )
    except (ConfigError, RemoteError) as err:
        raise WorkflowError(f"shard {SHARD}: {err}") from None
    _mine = _assignment.runs_of(SHARD.index)
    SHARD_RUNS = {k: r for k, r in RUNS.items() if shards.run_name(k) in _mine}
    print(
        f"rlpipe shards: shard {SHARD} builds {len(SHARD_RUNS)} of {len(RUNS)} runs",
        file=sys.stderr,
    )

# Tracking (rules/track.smk): TensorBoard event files and W&B runs, views of the telemetry.
TRACKING = rltracking.Settings.from_config(config.get("tracking"))
WANDB_HASHES = rltracking.config_hashes(config, RUNS) if TRACKING.wandb else {}
