"""Rule entry point: one tabular Q-learning segment."""

from rlpipe.rulelog import redirect_to_log, segment_job

redirect_to_log(snakemake)  # noqa: F821

from rlpipe.qlearn.train import train_segment  # noqa: E402

smk = snakemake  # noqa: F821
seg = smk.params.segment
warm_start = smk.input.get("init")
with segment_job(smk) as heartbeat:
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
        heartbeat=heartbeat,
    )
print(f"segment done: {result}")
