"""Glue that knows Snakemake's internals (its DAG, persistence and command line).

Everything else in rlpipe is plain Python that Snakemake calls; what here reads Snakemake's
objects is pinned to the Snakemake version in ``pyproject.toml``.
"""
