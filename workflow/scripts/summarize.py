"""Rule entry point: summary tables and learning curves (no torch import)."""

from rlpipe.rulelog import redirect_to_log

redirect_to_log(snakemake)  # noqa: F821

from rlpipe import tables  # noqa: E402

smk = snakemake  # noqa: F821
evals = tables.load_evals(smk.input.evals)
telemetry = tables.load_telemetry(smk.input.telemetry)
per_run, per_exp = tables.summarize(
    evals,
    telemetry,
    n_boot=smk.params.summary["bootstrap_samples"],
    seed=smk.params.summary["bootstrap_seed"],
)
tables.write_tables(per_run, per_exp, smk.output.csv, smk.output.runs_csv, smk.output.md)
tables.plot_curves(evals, smk.output.curves)
print(per_exp.to_string())
