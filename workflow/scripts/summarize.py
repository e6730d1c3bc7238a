"""Rule entry point: summary tables, curves, statistics and job benchmarks (no torch)."""

from rlpipe.smk.job import redirect_to_log

redirect_to_log(snakemake)  # noqa: F821

from rlpipe.results import figures, tables  # noqa: E402
from rlpipe.runtree import atomic  # noqa: E402

smk = snakemake  # noqa: F821
out = smk.output
n_boot, seed = smk.params.summary["bootstrap_samples"], smk.params.summary["bootstrap_seed"]
evals = tables.load_evals(smk.input.evals)
per_run, per_exp = tables.summarize(
    evals, tables.load_telemetry(smk.input.telemetry), n_boot=n_boot, seed=seed
)
tables.write_tables(per_run, per_exp, out.csv, out.runs_csv, out.md)
figures.plot_curves(evals, out.curves, n_boot=n_boot, seed=seed)
aggregate = tables.aggregate(per_run, n_boot=n_boot, seed=seed)
atomic.write_text(out.aggregate, aggregate.to_csv(index=False, float_format="%.4g"))
figures.plot_performance_profiles(per_run, out.profiles, n_boot=n_boot, seed=seed)
bench = tables.load_job_benchmarks(smk.input.benchmarks)
atomic.write_text(out.jobs_csv, bench.to_csv(index=False, float_format="%.4g"))
figures.plot_job_benchmarks(bench, out.jobs_png)
print(per_exp.to_string())
print(aggregate.to_string())
