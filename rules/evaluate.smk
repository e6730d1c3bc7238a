rule evaluate:
    """Greedy evaluation of one checkpoint on the fixed evaluation seeds."""
    input:
        ckpt=eval_input,
    output:
        layout.pattern("eval"),
    log:
        layout.log_pattern("evaluate"),
    benchmark:
        layout.pattern("eval_benchmark")
    conda:
        "../envs/rlpipe.yaml"
    threads: 1
    resources:
        gpu=run_resource("gpu"),
    params:
        code=code_version("evaluate.py"),
        evaluation=config["evaluation"],
    script:
        "../workflow/scripts/evaluate.py"
