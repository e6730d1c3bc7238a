"""Rule entry point: log one segment's telemetry and evaluation to the run's W&B run."""

from rlpipe.smk.job import redirect_to_log

redirect_to_log(snakemake)  # noqa: F821

from pathlib import Path  # noqa: E402

from rlpipe.runtree import atomic  # noqa: E402
from rlpipe.tracking import segment_points  # noqa: E402
from rlpipe.tracking.wb import log_segment  # noqa: E402

smk = snakemake  # noqa: F821
seg, wb = smk.params.segment, smk.params.wandb
points = segment_points(smk.input.telemetry, smk.input.eval, seg["start"], seg["end"])
receipt = log_segment(
    wb["settings"],
    wb["id"],
    points,
    Path(smk.output[0]).with_suffix(""),  # wandb's files, next to the receipt
    name=wb["name"],
    group=wb["group"],
    config=wb["config"],
)
atomic.write_json(smk.output[0], receipt)
print(f"W&B run {receipt['id']}: steps {receipt['first_step']}..{receipt['last_step']}")
