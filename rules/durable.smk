# Durable state on an rclone remote (profiles/runpod, src/rlpipe/durable.py). Off unless
# config durable.remote (or $RLPIPE_REMOTE) is set. At parse time (also for -n): restore what
# this directory lacks from the remote (one listing, one batched download). While jobs run: a
# background thread uploads completed outputs and their provenance; the end of the run flushes
# them synchronously and fails the run loudly if they cannot be uploaded. At exit (not -n):
# upload what an earlier run left local-only (no hook runs when there is nothing to do).
import atexit
import sys

from snakemake.settings.types import ExecMode

from rlpipe import durable

DURABLE = durable.Settings.from_config(config.get("durable"))

if DURABLE is not None and workflow.exec_mode == ExecMode.DEFAULT:

    def _durable_runs():
        every = DURABLE.keep_every
        return [
            durable.RunFiles(
                steps=list(run.steps),
                ckpts=[ckpt_path(run, s) for s in run.steps],
                evals=[f"{run.dir}/eval/step_{fmt_step(s)}.json" for s in run.steps],
                pinned={
                    ckpt_path(run, s) for s in run.steps if every and s % every == 0
                },
            )
            for run in RUNS.values()
        ]

    MIRROR = durable.Mirror(DURABLE, _durable_runs(), WORKDIR)
    try:
        _restored = MIRROR.restore()
    except durable.RemoteError as err:
        raise WorkflowError(f"durable restore failed: {err}") from None
    print(
        f"rlpipe durable: {DURABLE.remote}: {len(MIRROR.state)} remote files, "
        f"restored {len(_restored)}, {MIRROR.remote.calls} rclone calls",
        file=sys.stderr,
    )
    UPLOADER = durable.Uploader(MIRROR)

    def _upload_left_over():
        """At exit of a run that executed jobs or found nothing to do (not -n, --report or
        --lint): upload outputs that are still local-only."""
        if workflow.executor_plugin is None or workflow.dryrun or MIRROR.failed:
            return
        uploaded = MIRROR.flush_or_defer()
        if uploaded:
            print(
                f"rlpipe durable: uploaded {uploaded} outputs an earlier run left local-only",
                file=sys.stderr,
            )

    atexit.register(_upload_left_over)

    onstart:
        UPLOADER.start()

    onsuccess:
        UPLOADER.stop.set()
        MIRROR.flush_until_deadline()

    onerror:
        UPLOADER.stop.set()
        MIRROR.flush_until_deadline()
