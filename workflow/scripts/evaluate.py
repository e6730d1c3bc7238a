"""Rule entry point: greedy evaluation of one checkpoint, run by the warm worker."""

import sys

from rlpipe.smk.job import redirect_to_log, stall_timeout

redirect_to_log(snakemake)  # noqa: F821

from rlpipe.warm import worker  # noqa: E402

smk = snakemake  # noqa: F821
ev = smk.params.evaluation
spec = {
    "ckpt": smk.input.ckpt,
    "out": smk.output[0],
    "episodes": ev["episodes"],
    "seed": ev["seed"],
    "max_steps": ev["max_episode_steps"],
    "threads": smk.threads,
    "stall_timeout": stall_timeout(smk, smk.input.ckpt),
}
sys.exit(worker.run("rlpipe.rollouts.evaluate:evaluate_job", spec, smk.params.code, smk.log[0]))
