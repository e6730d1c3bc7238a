rule qlearn_segment:
    """One tabular Q-learning segment: continue from the previous Q-table, write the next."""
    input:
        unpack(segment_inputs),
    output:
        qtable=layout.pattern("qtable"),
        telemetry=layout.pattern("telemetry"),
    log:
        layout.log_pattern("qlearn_segment"),
    benchmark:
        layout.pattern("train_benchmark")
    wildcard_constraints:
        exp=experiments_of("qlearn"),
    priority: run_priority
    conda:
        "../envs/rlpipe.yaml"
    threads: run_resource("threads")
    resources:
        mem_mb=run_resource("mem_mb"),
        runtime=run_resource("runtime"),
    params:
        code=code_version("qlearn_segment.py"),
        segment=segment_params,
        hparams=lambda wildcards: run_of(wildcards).hparams,
    script:
        "../workflow/scripts/qlearn_segment.py"
