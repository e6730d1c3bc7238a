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
    params:
        summary=config["summary"],
    threads: 1
    log:
        "logs/summarize/summary.log",
    benchmark:
        "results/benchmarks/summarize.tsv"
    script:
        "../workflow/scripts/summarize.py"
