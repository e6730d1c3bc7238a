rule evaluate:
    """Greedy evaluation of one checkpoint on the fixed evaluation seeds."""
    input:
        ckpt=eval_input,
    output:
        "runs/{exp}/{env}/seed{seed}/eval/step_{step}.json",
    log:
        "logs/evaluate/{exp}/{env}/seed{seed}/step_{step}.log",
    benchmark:
        "runs/{exp}/{env}/seed{seed}/benchmark/eval_step_{step}.tsv"
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
