"""Rule entry point: one behaviour-cloning segment, run by the warm worker (rlpipe.worker)."""

import sys
from pathlib import Path

from rlpipe.smk.job import redirect_to_log, segment_spec

redirect_to_log(snakemake)  # noqa: F821

from rlpipe import worker  # noqa: E402

smk = snakemake  # noqa: F821
spec = {**segment_spec(smk), "dataset": str(Path(smk.input.dataset).parent)}
sys.exit(worker.run("rlpipe.bc:segment_job", spec, smk.params.code, smk.log[0]))
