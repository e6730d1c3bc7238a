"""Rule entry point: one training segment of any algorithm (rules/train.smk), run by the warm
worker (rlpipe.warm.worker) as the job function the rule names (params.job)."""

import sys

from rlpipe.smk.job import redirect_to_log, segment_spec

redirect_to_log(snakemake)  # noqa: F821

from rlpipe.warm import worker  # noqa: E402

smk = snakemake  # noqa: F821
sys.exit(worker.run(smk.params.job, segment_spec(smk), smk.params.code, smk.log[0]))
