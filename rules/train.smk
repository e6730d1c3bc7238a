rule train_segment:
    """One PPO segment: continue from the previous checkpoint, write the next one."""
    input:
        unpack(segment_inputs),
    output:
        ckpt="runs/{exp}/{env}/seed{seed}/ckpt/step_{step}.pt",
        telemetry="runs/{exp}/{env}/seed{seed}/telemetry/step_{step}.jsonl",
    log:
        "logs/train_segment/{exp}/{env}/seed{seed}/step_{step}.log",
    benchmark:
        "runs/{exp}/{env}/seed{seed}/benchmark/train_step_{step}.tsv"
    wildcard_constraints:
        exp=experiments_of("ppo"),
    priority: longest_first
    conda:
        "../envs/rlpipe.yaml"
    threads: run_resource("threads")
    resources:
        gpu=run_resource("gpu"),
        mem_mb=run_resource("mem_mb"),
        runtime=run_resource("runtime"),
    params:
        code=code_version("train_segment.py"),
        segment=segment_params,
        hparams=lambda wildcards: run_of(wildcards).hparams,
    script:
        "../workflow/scripts/train_segment.py"


rule bc_segment:
    """Behaviour-cloning gradient steps on a fetched replay dataset."""
    input:
        unpack(bc_inputs),
    output:
        ckpt="runs/{exp}/{env}/seed{seed}/ckpt/step_{step}.pt",
        telemetry="runs/{exp}/{env}/seed{seed}/telemetry/step_{step}.jsonl",
    log:
        "logs/bc_segment/{exp}/{env}/seed{seed}/step_{step}.log",
    benchmark:
        "runs/{exp}/{env}/seed{seed}/benchmark/train_step_{step}.tsv"
    wildcard_constraints:
        exp=experiments_of("bc"),
    priority: longest_first
    conda:
        "../envs/rlpipe.yaml"
    threads: run_resource("threads")
    resources:
        gpu=run_resource("gpu"),
        mem_mb=run_resource("mem_mb"),
        runtime=run_resource("runtime"),
    params:
        code=code_version("bc_segment.py"),
        segment=segment_params,
        hparams=lambda wildcards: run_of(wildcards).hparams,
    script:
        "../workflow/scripts/bc_segment.py"
