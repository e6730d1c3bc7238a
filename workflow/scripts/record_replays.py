"""Rule entry point: record greedy episodes of a checkpoint into a dataset."""

from rlpipe.rulelog import redirect_to_log

redirect_to_log(snakemake)  # noqa: F821

from pathlib import Path  # noqa: E402

from rlpipe.replays.record import record_episodes  # noqa: E402
from rlpipe.storage import manifest  # noqa: E402

smk = snakemake  # noqa: F821
spec = smk.params.record
out_dir = Path(smk.output[0]).parent
for stale in out_dir.glob("episode_*.npz"):  # a previous recording of another checkpoint
    stale.unlink()
paths = record_episodes(
    smk.input.ckpt, out_dir, spec["episodes"], spec["seed"], smk.params.max_steps, smk.threads
)
files = [manifest.file_entry(out_dir, p.name) for p in paths]
manifest.write(smk.output[0], manifest.build(smk.wildcards.dataset, smk.input.ckpt, files, None))
print(f"recorded {len(paths)} episodes from {smk.input.ckpt}")
