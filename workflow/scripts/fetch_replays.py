"""Rule entry point: fetch a dataset from its rclone remote (verified, manifest last)."""

from rlpipe.smk.job import redirect_to_log

redirect_to_log(snakemake)  # noqa: F821

from pathlib import Path  # noqa: E402

from rlpipe.replays.fetch import fetch_dataset, public_source  # noqa: E402

smk = snakemake  # noqa: F821
result = fetch_dataset(
    smk.params.remote,
    smk.params.include or None,
    Path(smk.output[0]).parent,
    smk.output[0],
    dataset=smk.wildcards.dataset,
    require_remote_manifest=smk.params.require_manifest,
)
print(f"fetched {len(result['files'])} files from {public_source(smk.params.remote)}")
