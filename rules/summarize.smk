rule summarize:
    """Per-run and per-experiment tables plus learning curves (pandas, no torch)."""
    input:
        evals=eval_targets(),
        telemetry=telemetry_targets(),
    output:
        csv=report(
            "results/summary.csv",
            caption="../workflow/report/summary.rst",
            category="Summary",
        ),
        md="results/summary.md",
        runs_csv="results/runs.csv",
        curves=report(
            "results/curves.png",
            caption="../workflow/report/curves.rst",
            category="Learning curves",
        ),
    log:
        "logs/summarize/summary.log",
    benchmark:
        "results/benchmarks/summarize.tsv"
    conda:
        "../envs/rlpipe.yaml"
    threads: 1
    params:
        summary=config["summary"],
    script:
        "../workflow/scripts/summarize.py"
