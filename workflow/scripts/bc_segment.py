"""Rule entry point: one behaviour-cloning segment."""

from rlpipe.rulelog import redirect_to_log, segment_job

redirect_to_log(snakemake)  # noqa: F821

from pathlib import Path  # noqa: E402

from rlpipe.bc import train_segment  # noqa: E402
from rlpipe.ppo import Segment  # noqa: E402

smk = snakemake  # noqa: F821
seg = smk.params.segment
with segment_job(smk) as heartbeat:
    result = train_segment(
        Segment(env_id=seg["env"], seed=seg["seed"], start_step=seg["start"], end_step=seg["end"]),
        hp=dict(smk.params.hparams),
        dataset_dir=str(Path(smk.input.dataset).parent),
        ckpt_out=smk.output.ckpt,
        telemetry_out=smk.output.telemetry,
        prev_ckpt=smk.input.get("prev"),
        threads=smk.threads,
        heartbeat=heartbeat,
    )
print(f"segment done: {result}")
