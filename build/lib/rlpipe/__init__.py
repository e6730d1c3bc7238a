"""rlpipe: reproducible, resumable RL training as a Snakemake DAG."""

__version__ = "0.1.0"
