"""Rule entry point: one behaviour-cloning segment."""

from rlpipe.rulelog import redirect_to_log

redirect_to_log(snakemake)  # noqa: F821

from pathlib import Path  # noqa: E402

from rlpipe.atomic import remove_stale_temps  # noqa: E402
from rlpipe.bc import train_segment  # noqa: E402
from rlpipe.durable import guard_disk  # noqa: E402
from rlpipe.ppo import Segment  # noqa: E402
from rlpipe.watchdog import Watchdog  # noqa: E402

smk = snakemake  # noqa: F821
seg = smk.params.segment
guard_disk(smk)  # free disk >= durable.min_free_disk_mb + checkpoint size, else retry later
remove_stale_temps(smk.output.ckpt)
stall_timeout = smk.config["experiments"][smk.wildcards.exp]["stall_timeout"]
with Watchdog(stall_timeout, smk.output.ckpt) as watchdog:
    result = train_segment(
        Segment(env_id=seg["env"], seed=seg["seed"], start_step=seg["start"], end_step=seg["end"]),
        hp=dict(smk.params.hparams),
        dataset_dir=str(Path(smk.input.dataset).parent),
        ckpt_out=smk.output.ckpt,
        telemetry_out=smk.output.telemetry,
        prev_ckpt=smk.input.get("prev"),
        threads=smk.threads,
        heartbeat=watchdog.beat,
    )
print(f"segment done: {result}")
