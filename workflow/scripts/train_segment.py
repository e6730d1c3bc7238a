"""Rule entry point: one PPO training segment."""

from rlpipe.rulelog import redirect_to_log, segment_job

redirect_to_log(snakemake)  # noqa: F821

from rlpipe.ppo import Segment, train_segment  # noqa: E402

smk = snakemake  # noqa: F821
seg = smk.params.segment
with segment_job(smk) as heartbeat:
    result = train_segment(
        Segment(env_id=seg["env"], seed=seg["seed"], start_step=seg["start"], end_step=seg["end"]),
        hp=dict(smk.params.hparams),
        ckpt_out=smk.output.ckpt,
        telemetry_out=smk.output.telemetry,
        prev_ckpt=smk.input.get("prev"),
        warm_start=smk.input.get("init"),
        threads=smk.threads,
        heartbeat=heartbeat,
    )
print(f"segment done: {result}")
