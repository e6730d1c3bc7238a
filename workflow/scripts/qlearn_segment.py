"""Rule entry point: one tabular Q-learning segment, run by the warm worker (rlpipe.worker)."""

import sys

from rlpipe.smk.job import redirect_to_log, segment_spec

redirect_to_log(snakemake)  # noqa: F821

from rlpipe import worker  # noqa: E402

smk = snakemake  # noqa: F821
spec = {**segment_spec(smk), "init": smk.input.get("init")}
sys.exit(worker.run("rlpipe.qlearn.train:segment_job", spec, smk.params.code, smk.log[0]))
