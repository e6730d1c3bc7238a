# Durable state on an rclone remote (profiles/runpod, src/rlpipe/durable.py). Off unless
# config durable.remote (or $RLPIPE_REMOTE) is set. At parse time: restore what this directory
# lacks from the remote (one listing, one batched download), then (unless -n) upload what an
# earlier run left local-only (Snakemake runs no hooks when there is nothing to do). While jobs
# run: a background thread uploads completed outputs and their provenance; the end of the run
# flushes them synchronously and fails the run loudly if they cannot be uploaded.
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

    MIRROR = durable.Mirror(DURABLE, _durable_runs())
    try:
        _restored = MIRROR.restore()
    except durable.RemoteError as err:
        raise WorkflowError(f"durable restore failed: {err}") from None
    _uploaded = 0 if workflow.dryrun else MIRROR.flush_or_defer()
    print(
        f"rlpipe durable: {DURABLE.remote}: {len(MIRROR.state)} remote files, "
        f"restored {len(_restored)}, "
        + ("" if workflow.dryrun else f"uploaded {_uploaded} pending, ")
        + f"{MIRROR.remote.calls} rclone calls",
        file=sys.stderr,
    )
    UPLOADER = durable.Uploader(MIRROR)

    onstart:
        UPLOADER.start()

    onsuccess:
        UPLOADER.stop.set()
        MIRROR.flush_until_deadline()

    onerror:
        UPLOADER.stop.set()
        MIRROR.flush_until_deadline()
