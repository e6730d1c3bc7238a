"""Rule entry point: publish a recorded dataset to its rclone remote."""

from rlpipe.smk.job import redirect_to_log

redirect_to_log(snakemake)  # noqa: F821

from pathlib import Path  # noqa: E402

from rlpipe.replays.fetch import public_source  # noqa: E402
from rlpipe.replays.publish import publish_dataset  # noqa: E402
from rlpipe.runtree import atomic  # noqa: E402

smk = snakemake  # noqa: F821
published = publish_dataset(
    Path(smk.input[0]).parent, smk.params.remote, dataset=smk.wildcards.dataset
)
receipt = {
    "dataset": smk.wildcards.dataset,
    "remote": public_source(smk.params.remote),
    "files": len(published["files"]),
    "remote_fingerprint": published.get("remote_fingerprint"),
}
atomic.write_json(smk.output[0], receipt)
print(f"published {receipt['files']} files to {receipt['remote']}")
