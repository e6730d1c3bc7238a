rule summarize:
    """Tables, learning curves, cross-task statistics and job benchmarks (pandas, no torch)."""
    input:
        evals=eval_targets(),
        telemetry=telemetry_targets(),
        benchmarks=train_benchmark_targets(),
    output:
        csv=report(
            "results/summary.csv",
            caption="../workflow/report/summary.rst",
            category="Summary",
        ),
        md="results/summary.md",
        runs_csv=report(
            "results/runs.csv",
            caption="../workflow/report/runs.rst",
            category="Summary",
        ),
        curves=report(
            "results/curves.png",
            caption="../workflow/report/curves.rst",
            category="Learning curves",
        ),
        aggregate=report(
            "results/aggregate.csv",
            caption="../workflow/report/aggregate.rst",
            category="Aggregate statistics",
        ),
        profiles=report(
            "results/performance_profile.png",
            caption="../workflow/report/profile.rst",
            category="Aggregate statistics",
        ),
        jobs_csv=report(
            "results/job_benchmarks.csv",
            caption="../workflow/report/jobs.rst",
            category="Job benchmarks",
        ),
        jobs_png=report(
            "results/job_benchmarks.png",
            caption="../workflow/report/jobs.rst",
            category="Job benchmarks",
        ),
    log:
        "logs/summarize/summary.log",
    benchmark:
        "results/benchmarks/summarize.tsv"
    conda:
        "../envs/rlpipe.yaml"
    threads: 1
    params:
        code=code_version("summarize.py"),
        # rlpipe.results.stats reads it as package data: a link to this file
        baselines=data_version("config/atari_baselines.yaml"),
        summary=config["summary"],
    script:
        "../workflow/scripts/summarize.py"
