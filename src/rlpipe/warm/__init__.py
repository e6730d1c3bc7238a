"""The warm worker: a process per Snakemake run that starts jobs by fork or from warm spares."""
