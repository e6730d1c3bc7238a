rule record_replays:
    """Roll out a trained checkpoint greedily into a local replay dataset."""
    input:
        ckpt=record_input,
    output:
        "data/recorded/{dataset}/MANIFEST.json",
    log:
        "logs/record_replays/{dataset}.log",
    benchmark:
        "results/benchmarks/record_replays/{dataset}.tsv"
    conda:
        "../envs/rlpipe.yaml"
    threads: 1
    resources:
        gpu=record_gpu,
    params:
        code=code_version("record_replays.py"),
        record=lambda wildcards: config["datasets"][wildcards.dataset]["record"],
        max_steps=config["evaluation"]["max_episode_steps"],
    script:
        "../workflow/scripts/record_replays.py"


rule publish_replays:
    """Upload a recorded dataset: episode files first, verified, MANIFEST.json last."""
    input:
        "data/recorded/{dataset}/MANIFEST.json",
    output:
        "data/published/{dataset}.json",
    log:
        "logs/publish_replays/{dataset}.log",
    benchmark:
        "results/benchmarks/publish_replays/{dataset}.tsv"
    conda:
        "../envs/rlpipe.yaml"
    params:
        code=code_version("publish_replays.py"),
        remote=lambda wildcards: config["datasets"][wildcards.dataset]["remote"],
    script:
        "../workflow/scripts/publish_replays.py"


rule fetch_replays:
    """Copy a dataset from its rclone remote, verify it, write MANIFEST.json last."""
    input:
        unpack(fetch_inputs),
    output:
        "data/replays/{dataset}/MANIFEST.json",
    log:
        "logs/fetch_replays/{dataset}.log",
    benchmark:
        "results/benchmarks/fetch_replays/{dataset}.tsv"
    conda:
        "../envs/rlpipe.yaml"
    params:
        code=code_version("fetch_replays.py"),
        remote=lambda wildcards: config["datasets"][wildcards.dataset]["remote"],
        include=lambda wildcards: config["datasets"][wildcards.dataset]["include"],
        require_manifest=lambda wildcards: config["datasets"][wildcards.dataset][
            "require_manifest"
        ],
        remote_state=remote_state,
    script:
        "../workflow/scripts/fetch_replays.py"
