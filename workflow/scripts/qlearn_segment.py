"""Rule entry point: one tabular Q-learning segment."""

from rlpipe.rulelog import redirect_to_log

redirect_to_log(snakemake)  # noqa: F821

from rlpipe.atomic import remove_stale_temps  # noqa: E402
from rlpipe.durable import guard_disk  # noqa: E402
from rlpipe.qlearn.train import train_segment  # noqa: E402
from rlpipe.watchdog import Watchdog  # noqa: E402

smk = snakemake  # noqa: F821
seg = smk.params.segment
guard_disk(smk)  # free disk >= durable.min_free_disk_mb + checkpoint size, else retry later
remove_stale_temps(smk.output.qtable)
stall_timeout = smk.config["experiments"][smk.wildcards.exp]["stall_timeout"]
warm_start = smk.input.get("init")
with Watchdog(stall_timeout, smk.output.qtable) as watchdog:
    result = train_segment(
        seg["env"],
        seg["seed"],
        dict(smk.params.hparams),
        start_step=seg["start"],
        end_step=seg["end"],
        init_path=smk.input.get("prev") or warm_start,
        out_path=smk.output.qtable,
        telemetry_path=smk.output.telemetry,
        threads=smk.threads,
        warm_start=warm_start is not None,
        heartbeat=watchdog.beat,
    )
print(f"segment done: {result}")
