"""Rule entry point: one segment's TensorBoard event file, rebuilt from its telemetry."""

from rlpipe.smk.job import redirect_to_log

redirect_to_log(snakemake)  # noqa: F821

from pathlib import Path  # noqa: E402

from rlpipe.sweep.runs import expand_runs  # noqa: E402
from rlpipe.tracking import segment_points  # noqa: E402
from rlpipe.tracking.tb import prune_stale, write_events  # noqa: E402

smk = snakemake  # noqa: F821
seg, out = smk.params.segment, Path(smk.output[0])
points = segment_points(smk.input.telemetry, smk.input.eval, seg["start"], seg["end"])
run = expand_runs(smk.config)[(smk.wildcards.exp, smk.wildcards.env, int(smk.wildcards.seed))]
for path in prune_stale(out.parent, run.steps):
    print(f"removed {path}: not a segment end of this run any more")
print(f"{write_events(points, out)} steps, {points[0].step}..{points[-1].step} -> {out}")
