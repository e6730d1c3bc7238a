# The plan block that `snakemake -n` ends with: the training segments and evaluations of the
# dry run's DAG by run and its other jobs by rule, with env steps, GPU-hours, wall time on the
# profile's GPU slots (`resources: gpu=N`) and cost at config planning.usd_per_gpu_hour
# (profiles/runpod sets it). rlpipe.results.plan does the sums.
import atexit

from rlpipe.smk import plan_block

if MAIN_RUN:  # -n is known only once the DAG runs
    atexit.register(
        plan_block.print_dry_run_block, workflow, config, RUNS, SHARD, GPUS, WORKDIR
    )
