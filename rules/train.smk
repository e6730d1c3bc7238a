# Training segments, one rule per algorithm of rlpipe.algos. PPO's rule is written out; the
# others reuse it (`use rule ... with:`) and change only what differs. Every one runs
# workflow/scripts/segment.py, which hands the segment to the algorithm's job function
# (params.job) in the warm worker.


rule ppo_segment:
    """One training segment: continue from the previous checkpoint (or warm-start from
    another experiment's), train to the next boundary, write its checkpoint and telemetry.
    """
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
    priority: RUN_PRIORITY
    conda:
        "../envs/rlpipe.yaml"
    threads: run_resource("threads")
    resources:
        gpu=run_resource("gpu"),
        mem_mb=run_resource("mem_mb"),
        runtime=run_resource("runtime"),
    params:
        **segment_job_params("ppo"),
    script:
        "../workflow/scripts/segment.py"


use rule ppo_segment as bc_segment with:
    log:
        layout.log_pattern("bc_segment"),
    wildcard_constraints:
        exp=experiments_of("bc"),
    params:
        **segment_job_params("bc"),


use rule ppo_segment as qlearn_segment with:
    output:
        qtable=layout.pattern("qtable"),
        telemetry=layout.pattern("telemetry"),
    log:
        layout.log_pattern("qlearn_segment"),
    wildcard_constraints:
        exp=experiments_of("qlearn"),
    # `with:` replaces the whole block: the same resources without `gpu` (numba on the CPU)
    resources:
        mem_mb=run_resource("mem_mb"),
        runtime=run_resource("runtime"),
    params:
        **segment_job_params("qlearn"),
