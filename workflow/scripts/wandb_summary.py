"""Rule entry point: log the summary tables to the W&B summary run."""

from rlpipe.smk.job import redirect_to_log

redirect_to_log(snakemake)  # noqa: F821

from pathlib import Path  # noqa: E402

from rlpipe.runtree import atomic  # noqa: E402
from rlpipe.tracking.wb import log_tables  # noqa: E402

smk = snakemake  # noqa: F821
wb = smk.params.wandb
tables = {"summary": smk.input.summary, "runs": smk.input.runs}
receipt = log_tables(wb["settings"], wb["id"], tables, Path(smk.output[0]).with_suffix(""))
atomic.write_json(smk.output[0], receipt)
print(f"W&B run {receipt['id']}: {receipt['rows']}")
