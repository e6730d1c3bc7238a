rule train_segment:
    """One PPO segment: continue from the previous checkpoint, write the next one."""
    input:
        unpack(segment_inputs),
    output:
        ckpt="runs/{exp}/{env}/seed{seed}/ckpt/step_{step}.pt",
        telemetry="runs/{exp}/{env}/seed{seed}/telemetry/step_{step}.jsonl",
    wildcard_constraints:
        exp=experiments_of("ppo"),
    params:
        segment=segment_params,
        hparams=lambda wildcards: run_of(wildcards).hparams,
    threads: run_resource("threads")
    resources:
        gpu=run_resource("gpu"),
        mem_mb=run_resource("mem_mb"),
        runtime=run_resource("runtime"),
    log:
        "logs/train_segment/{exp}/{env}/seed{seed}/step_{step}.log",
    benchmark:
        "runs/{exp}/{env}/seed{seed}/benchmark/train_step_{step}.tsv"
    script:
        "../workflow/scripts/train_segment.py"
