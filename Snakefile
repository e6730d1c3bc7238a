from snakemake.utils import min_version

min_version("9.0")


configfile: "config/config.yaml"


report: "workflow/report/workflow.rst"


wildcard_constraints:
    exp=r"[A-Za-z0-9][A-Za-z0-9_.-]*",
    env=r"[A-Za-z0-9]+-v[0-9]+",
    seed=r"\d+",
    step=r"\d{10}",


include: "rules/setup.smk"
include: "rules/common.smk"
include: "rules/replays.smk"
include: "rules/train.smk"
include: "rules/evaluate.smk"
include: "rules/summarize.smk"
include: "rules/track.smk"
include: "rules/durable.smk"
include: "rules/plan.smk"


# On a cluster these run on the submitting machine: publishing and fetching need the network,
# and the summary and trackers are too light to queue for.
localrules:
    all,
    publish_replays,
    fetch_replays,
    summarize,
    tensorboard_segment,
    wandb_segment,
    wandb_summary,


# Every evaluation and telemetry file is requested too, not only the summary built from them:
# after a failed job (e.g. one that found a damaged input) Snakemake would otherwise treat its
# deleted outputs as intermediates and call the workflow done.
rule all:
    default_target: True
    input:
        eval_targets(SHARD_RUNS),
        telemetry_targets(SHARD_RUNS),
        summary_targets(),
        tracking_targets(),
