"""Rule entry point: record greedy episodes of a checkpoint into a dataset (warm worker)."""

import sys

from rlpipe.smk.job import redirect_to_log, stall_timeout

redirect_to_log(snakemake)  # noqa: F821

from rlpipe.warm import worker  # noqa: E402

smk = snakemake  # noqa: F821
spec = {
    "ckpt": smk.input.ckpt,
    "manifest": smk.output[0],
    "dataset": smk.wildcards.dataset,
    "episodes": smk.params.record["episodes"],
    "seed": smk.params.record["seed"],
    "max_steps": smk.params.max_steps,
    "threads": smk.threads,
    "stall_timeout": stall_timeout(smk, smk.input.ckpt),
}
sys.exit(worker.run("rlpipe.rollouts.record:record_job", spec, smk.params.code, smk.log[0]))
