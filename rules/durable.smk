# Durable state on an rclone remote (profiles/runpod, src/rlpipe/remote/durable.py). Off unless
# config durable.remote (or $RLPIPE_REMOTE) is set. While the Snakefile is parsed (also for
# -n), the run that holds this directory restores what this config needs from the remote.
# While jobs run, a background thread uploads completed outputs, their companions and their
# provenance. The end of the run flushes them synchronously; if they cannot be uploaded, the
# run fails loudly, also when there was nothing to do.
# A shard (--config shard=I/N, rlpipe.remote.shards) claims its owner record on the remote first, and
# keeps its heartbeat while it runs. A run without a shard on a sharded remote builds results
# only: it trains nothing and names the runs that are not finished.
import atexit
import os
import signal
import sys
import time

from rlpipe.remote import durable, probe, shards
from rlpipe.smk import invocation, plan_block
from rlpipe.storage.rclone import RemoteError
from rlpipe.sweep.runs import ConfigError

if probe.active():
    atexit.register(probe.dump, workflow, companion_dirs)

elif DURABLE is not None and MAIN_RUN:

    def _durable_runs():
        every = DURABLE.keep_every
        return [
            durable.RunFiles(
                steps=list(run.steps),
                ckpts=[ckpt_path(run, s) for s in run.steps],
                evals=[run.path("eval", s) for s in run.steps],
                pinned={
                    ckpt_path(run, s) for s in run.steps if every and s % every == 0
                },
            )
            for run in SHARD_RUNS.values()
        ]

    def _probe():
        """A dry run of this invocation's targets and config (rlpipe.remote.probe)."""
        return probe.run(
            workflow.main_snakefile,
            WORKDIR,
            config,
            invocation.targets(),
            invocation.force_args(),
            WORKDIR / ".snakemake" / "rlpipe-probe",
        )

    _t0 = time.monotonic()
    try:
        MIRROR = durable.Mirror(DURABLE, _durable_runs(), WORKDIR)
        if SHARD is not None and HOLDS_DIRECTORY and not invocation.dry_run():
            OWNER = shards.Owner(
                MIRROR.remote,
                SHARD,
                WORKDIR,
                shards.OwnerSettings(DURABLE.owner_timeout_s, DURABLE.owner_wait_s),
            )
            OWNER.claim(say=lambda line: print(line, file=sys.stderr))
            atexit.register(OWNER.release)  # runs last: after the final upload

            def _lost(why):
                print(
                    f"rlpipe shards: error: {why}; stopping this run", file=sys.stderr
                )
                os.kill(os.getpid(), signal.SIGTERM)

            OWNER.start_heartbeat(_lost)
            _t0 = (
                time.monotonic()
            )  # the restore's own time, after any wait for the owner
        if HOLDS_DIRECTORY:
            _restored = MIRROR.restore(_probe)
        else:
            _restored = []
            MIRROR.refresh()
            print(
                "rlpipe durable: another rlpipe run holds this directory; restoring nothing",
                file=sys.stderr,
            )
    except shards.ShardBusy as err:
        raise WorkflowError(str(err)) from None
    except (RemoteError, RuntimeError) as err:
        raise WorkflowError(f"durable restore failed: {err}") from None
    print(
        f"rlpipe durable: {DURABLE.remote}: {len(MIRROR.state)} remote files; restored "
        f"{len(_restored)} ({sum(MIRROR.state[p]['Size'] for p in _restored):,} bytes) with "
        f"{MIRROR.remote.calls} rclone calls in {time.monotonic() - _t0:.1f}s",
        file=sys.stderr,
    )
    UPLOADER = durable.Uploader(MIRROR)

    # A sharded sweep (its assignment on the remote) seen without a shard: results only.
    SWEEP_SHARDS = None
    if SHARD is None and shards.ASSIGNMENT_REL in MIRROR.state:
        try:
            SWEEP_SHARDS = shards.Assignment.from_json(
                shards.read_replaced(MIRROR.remote, shards.ASSIGNMENT_REL),
                shards.ASSIGNMENT_REL,
            )
        except (ConfigError, RemoteError) as err:
            raise WorkflowError(f"shards: {err}") from None
        MIRROR.runs = []  # retention is each shard's business

    def check_results_only():
        """On a sharded sweep without a shard: refuse to train or evaluate, naming the runs
        (and their shards) that are not finished."""
        if SWEEP_SHARDS is None:
            return
        dag = workflow.dag
        keys = sorted(
            {
                (job.wildcards["exp"], job.wildcards["env"], int(job.wildcards["seed"]))
                for job in dag.needrun_jobs(exclude_finished=False)
                if job.rule.name in plan_block.PLANNED_RULES
            }
        )
        if not keys:
            return
        names = [shards.run_name(k) for k in keys]
        where = [
            f"{n} (shard {SWEEP_SHARDS.runs.get(n, '?')}/{SWEEP_SHARDS.count})"
            for n in names
        ]
        raise WorkflowError(
            f"this remote holds a sweep split into {SWEEP_SHARDS.count} shards and this run "
            f"has no shard, so it builds results only and trains nothing. Not finished yet "
            f"(or made by other code or config): {', '.join(where)}. Rerun when their shards "
            f"are done, or pass --config shard=I/{SWEEP_SHARDS.count} to build one."
        )

    def _follow_dag():
        """Tell the mirror each output's companions and which outputs this run remakes."""
        companions = {}
        for job in workflow.dag.jobs:
            extra = [str(job.benchmark)] if job.benchmark else []
            extra += companion_dirs(job)
            for out in job.output:
                companions.setdefault(str(out), []).extend(extra)
        MIRROR.companions = lambda key: companions.get(key, [])
        MIRROR.stale = {
            str(f) for job in workflow.dag.needrun_jobs() for f in job.output
        }

    def _upload_left_over():
        """At exit of a real run (also one with nothing to do, when Snakemake runs no
        hooks): upload what is still local-only; failing that, exit non-zero."""
        if workflow.executor_plugin is None or workflow.dryrun or workflow.dag is None:
            return
        if MIRROR.failed:  # the end-of-run flush already failed the run
            return
        if not UPLOADER.is_alive() and UPLOADER.ident is None:
            _follow_dag()
        try:
            before = len(MIRROR.pending())
            MIRROR.flush_until_deadline()
        except (RuntimeError, OSError) as err:
            print(f"rlpipe durable: error: {err}", file=sys.stderr)
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(1)  # atexit cannot change the exit status otherwise
        if before:
            print(
                f"rlpipe durable: uploaded {before} outputs left local-only",
                file=sys.stderr,
            )

    atexit.register(_upload_left_over)

    def _warn_results_only():
        """-n runs no onstart: say there what a real run would refuse."""
        if workflow.dryrun and workflow.dag is not None:
            try:
                check_results_only()
            except WorkflowError as err:
                print(f"\nrlpipe shards: a real run would stop: {err}")

    atexit.register(_warn_results_only)

    onstart:
        check_results_only()
        _follow_dag()
        UPLOADER.start()

    onsuccess:
        UPLOADER.stop.set()
        MIRROR.flush_until_deadline()

    onerror:
        UPLOADER.stop.set()
        MIRROR.flush_until_deadline()
