rule ppo_segment:
    """One PPO segment: continue from the previous checkpoint, write the next one."""
    input:
        unpack(segment_inputs),
    output:
        ckpt=layout.pattern("ckpt"),
        telemetry=layout.pattern("telemetry"),
    log:
        layout.log_pattern("ppo_segment"),
    benchmark:
        layout.pattern("train_benchmark")
    wildcard_constraints:
        exp=experiments_of("ppo"),
    priority: run_priority
    conda:
        "../envs/rlpipe.yaml"
    threads: run_resource("threads")
    resources:
        gpu=run_resource("gpu"),
        mem_mb=run_resource("mem_mb"),
        runtime=run_resource("runtime"),
    params:
        code=code_version("ppo_segment.py"),
        segment=segment_params,
        hparams=lambda wildcards: run_of(wildcards).hparams,
    script:
        "../workflow/scripts/ppo_segment.py"


rule bc_segment:
    """Behaviour-cloning gradient steps on a fetched replay dataset."""
    input:
        unpack(bc_inputs),
    output:
        ckpt=layout.pattern("ckpt"),
        telemetry=layout.pattern("telemetry"),
    log:
        layout.log_pattern("bc_segment"),
    benchmark:
        layout.pattern("train_benchmark")
    wildcard_constraints:
        exp=experiments_of("bc"),
    priority: run_priority
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
