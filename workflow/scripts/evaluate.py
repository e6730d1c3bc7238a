"""Rule entry point: greedy evaluation of one checkpoint."""

from rlpipe.rulelog import redirect_to_log

redirect_to_log(snakemake)  # noqa: F821

from rlpipe import atomic  # noqa: E402
from rlpipe.evaluate import evaluate_checkpoint  # noqa: E402

smk = snakemake  # noqa: F821
ev = smk.params.evaluation
record = evaluate_checkpoint(
    smk.input.ckpt,
    episodes=ev["episodes"],
    seed=ev["seed"],
    max_steps=ev["max_episode_steps"],
    threads=smk.threads,
)
atomic.write_json(smk.output[0], record)
print(f"mean return {record['mean_return']:.2f} over {record['episodes']} episodes")
