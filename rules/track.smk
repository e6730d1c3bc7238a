# Trackers as views of the telemetry (config `tracking`, default off): per segment, a
# TensorBoard event file rebuilt from its telemetry + evaluation, and a W&B job that logs them
# to the run's resumed W&B run. Training jobs never see these settings, so turning tracking on
# or off reruns no training.


rule tensorboard_segment:
    """One segment's TensorBoard event file (CleanRL names, global_step as the step)."""
    input:
        unpack(track_inputs("tensorboard")),
    output:
        layout.pattern("tensorboard"),
    log:
        layout.log_pattern("tensorboard_segment"),
    benchmark:
        layout.pattern("tensorboard_benchmark")
    conda:
        "../envs/tracking.yaml"
    threads: 1
    params:
        code=code_version("tensorboard_segment.py"),
        segment=segment_params,
    script:
        "../workflow/scripts/tensorboard_segment.py"


rule wandb_segment:
    """Log one segment's telemetry and evaluation to the run's W&B run (resume="allow")."""
    input:
        unpack(track_inputs("wandb")),
    output:
        layout.pattern("wandb"),
    log:
        layout.log_pattern("wandb_segment"),
    benchmark:
        layout.pattern("wandb_benchmark")
    conda:
        "../envs/tracking.yaml"
    threads: 1
    params:
        code=code_version("wandb_segment.py"),
        segment=segment_params,
        wandb=wandb_params,
    script:
        "../workflow/scripts/wandb_segment.py"


rule wandb_summary:
    """Log the summary tables to one W&B run of the whole config."""
    input:
        summary="results/summary.csv",
        runs="results/runs.csv",
    output:
        WANDB_SUMMARY,
    log:
        "logs/wandb_summary/summary.log",
    benchmark:
        "results/benchmarks/wandb_summary.tsv"
    conda:
        "../envs/tracking.yaml"
    threads: 1
    params:
        code=code_version("wandb_summary.py"),
        wandb=wandb_summary_params,
    script:
        "../workflow/scripts/wandb_summary.py"
