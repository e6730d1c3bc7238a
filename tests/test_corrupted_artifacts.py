"""Damaged artifacts: every reader names the file and says what to do, and the real pipeline
recovers by recomputing only what depends on the bad file once it is deleted.

Zip artifacts (.pt, .npz) are checked exhaustively: any truncation and any flipped bit either
raises or loads exactly the same content. Text artifacts (telemetry, eval JSON, manifests)
carry no checksum: damage that breaks their syntax or their internal consistency is caught.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from rlpipe.algos.bc.train import load_dataset  # noqa: E402
from rlpipe.algos.qlearn import qtable  # noqa: E402
from rlpipe.replays.format import write_episode  # noqa: E402
from rlpipe.results import tables  # noqa: E402
from rlpipe.runtree import checkpoint  # noqa: E402
from rlpipe.runtree.integrity import DamagedFile  # noqa: E402
from rlpipe.storage import manifest as mf  # noqa: E402

from conftest import tiny_config, tiny_qtable  # noqa: E402
from pipeline import Workdir, sha256  # noqa: E402

RUN = "runs/x/CartPole-v1/seed1"
ADVICE = "Delete it and rerun the same command"


def _damaged_versions(data: bytes, flips: int = 97):
    """(label, bytes): truncations at many lengths and single-bit flips across the file."""
    for n in sorted({0, 1, len(data) // 3, len(data) // 2, len(data) - 30, len(data) - 1}):
        yield f"truncated to {n} bytes", data[:n]
    for offset in np.linspace(0, len(data) - 1, flips).astype(int):
        flipped = bytearray(data)
        flipped[offset] ^= 1 << (offset % 8)
        yield f"bit flipped at byte {offset}", bytes(flipped)


def _assert_damaged(err: DamagedFile, path) -> None:
    assert str(err).startswith(f"{path}: ") and ADVICE in str(err), str(err)


def _check_zip_artifact(path, load, same):
    """Every damaged version raises DamagedFile naming ``path``, or loads ``same`` content."""
    original, reference = path.read_bytes(), load(path)
    outcomes = {"refused": 0, "identical": 0}
    for label, data in _damaged_versions(original):
        path.write_bytes(data)
        try:
            loaded = load(path)
        except DamagedFile as err:
            _assert_damaged(err, path)
            outcomes["refused"] += 1
            continue
        assert same(loaded, reference), f"{label}: loaded different content silently"
        outcomes["identical"] += 1  # e.g. a bit of a zip header field nobody reads
    assert outcomes["refused"] > 0.8 * sum(outcomes.values()), outcomes


def test_checkpoint_damage_never_loads_different_weights(tmp_path):
    path = tmp_path / RUN / "ckpt/step_0000000512.pt"
    model = {"w": torch.arange(64.0), "b": torch.ones(8)}
    checkpoint.save(path, algo="ppo", global_step=512, model=model)

    def same(a, b):
        tensors = all(torch.equal(a["model"][k], b["model"][k]) for k in b["model"])
        return tensors and a["global_step"] == b["global_step"]

    _check_zip_artifact(path, checkpoint.load, same)


def test_qtable_damage_never_loads_a_different_table(tmp_path):
    path = tmp_path / RUN / "qtable/step_0000000016.npz"
    qtable.save(path, tiny_qtable())

    def same(a, b):
        return np.array_equal(a.q, b.q) and a.rng_state == b.rng_state and a.hparams == b.hparams

    _check_zip_artifact(path, qtable.load, same)


def _eval_file(root, returns=(10.0, 30.0)):
    path = root / RUN / "eval/step_0000000512.json"
    record = {
        "algo": "ppo",
        "env": "CartPole-v1",
        "step": 512,
        "eval_seed": 3,
        "episodes": len(returns),
        "returns": list(returns),
        "lengths": [10, 30],
        "mean_return": float(np.mean(returns)),
    }
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(record, indent=2, sort_keys=True))
    return path


@pytest.mark.parametrize(
    "damage",
    [
        lambda t: t[: len(t) // 2],  # truncated
        lambda t: t.replace('"mean_return": 20.0', '"mean_return": 21.0'),  # one digit
        lambda t: t.replace("30.0\n", "70.0\n"),  # one return
        lambda t: t.replace('"step": 512', '"step": 513'),
        lambda t: t.replace('"algo"', '"alg"'),
        lambda t: t.replace("{", "\udcff", 1),  # not UTF-8 (written with surrogateescape)
        lambda t: "",
    ],
    ids=["truncated", "mean", "a-return", "step", "key", "not-utf8", "empty"],
)
def test_damaged_eval_record_is_named(tmp_path, damage):
    path = _eval_file(tmp_path)
    assert tables.load_evals([path])["mean_return"].tolist() == [20.0]
    path.write_bytes(damage(path.read_text()).encode(errors="surrogateescape"))
    with pytest.raises(DamagedFile) as err:
        tables.load_evals([path])
    _assert_damaged(err.value, path)


def _telemetry_file(root):
    path = root / RUN / "telemetry/step_0000000512.jsonl"
    path.parent.mkdir(parents=True)
    lines = [{"global_step": s, "elapsed_s": s / 100, "charts/SPS": 100.0} for s in (256, 512)]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


@pytest.mark.parametrize(
    "damage",
    [
        lambda t: t[: len(t) - 10],  # cut inside the last line
        lambda t: t[: t.index("\n") + 1],  # cut at a line boundary: the last line is gone
        lambda t: t.replace("{", "[", 1),
        lambda t: t.replace('"global_step": 512', '"global_step": 612'),
        lambda t: t.replace("}", "\udcff", 1),
        lambda t: "",
    ],
    ids=["cut-mid-line", "cut-at-line", "syntax", "step", "not-utf8", "empty"],
)
def test_damaged_telemetry_is_named(tmp_path, damage):
    path = _telemetry_file(tmp_path)
    assert tables.load_telemetry([path])["wall_time_s"].tolist() == [5.12]
    path.write_bytes(damage(path.read_text()).encode(errors="surrogateescape"))
    with pytest.raises(DamagedFile) as err:
        tables.load_telemetry([path])
    _assert_damaged(err.value, path)


def _dataset(root):
    root.mkdir(parents=True)
    for i in range(2):
        write_episode(
            root / f"episode_{i:05d}.npz",
            observations=np.zeros((4, 4), np.float32),
            actions=np.array([0, 1, 0]),
            rewards=np.ones(3),
            terminations=np.array([False, False, True]),
            truncations=np.zeros(3, bool),
            env_id="CartPole-v1",
            n_actions=2,
        )
    files = [mf.file_entry(root, rel) for rel in mf.dataset_files(root)]
    mf.write(root / mf.MANIFEST_NAME, mf.build("demo", ":local:x", files, None))
    return root / mf.MANIFEST_NAME


@pytest.mark.parametrize(
    "damage",
    [
        lambda m: m.write_text(m.read_text()[:40]),  # truncated manifest
        lambda m: m.write_text(m.read_text().replace('"sha256": "', '"sha256": "0', 1)[:-3]),
        lambda m: m.write_text(m.read_text().replace('"size": ', '"size": 1', 1)),
        lambda m: (m.parent / "episode_00001.npz").write_bytes(b"PK\x03\x04 junk"),
    ],
    ids=["truncated", "hash", "size", "episode-file"],
)
def test_damaged_dataset_is_named_before_cloning(tmp_path, damage):
    manifest = _dataset(tmp_path / "data/replays/demo")
    assert load_dataset(manifest.parent, "CartPole-v1")[0].shape == (6, 4)
    damage(manifest)
    with pytest.raises(DamagedFile) as err:
        load_dataset(manifest.parent, "CartPole-v1")
    _assert_damaged(err.value, manifest)
    assert "fetches the dataset again" in str(err.value)


# --- the real pipeline: corrupt, rerun, delete, rerun ----------------------------------------


def corpus_config(remote) -> dict:
    """PPO, Q-learning and BC (from replays PPO recorded), two segments each, one seed."""
    config = tiny_config()
    del config["experiments"]["pong"]
    config["experiments"]["cp"].update(seeds=[1], total_steps=1024)
    config["experiments"]["q"] = {
        "algo": "qlearn",
        "envs": ["CartPole-v1"],
        "seeds": [1],
        "total_steps": 2048,
        "checkpoint_every": 1024,
        "hparams": {"log_every_steps": 512},
    }
    config["experiments"]["bc"] = {
        "algo": "bc",
        "envs": ["CartPole-v1"],
        "seeds": [1],
        "total_steps": 100,
        "checkpoint_every": 50,
        "dataset": "demo",
        "hparams": {"batch_size": 32, "log_every_steps": 25},
    }
    record = {"experiment": "cp", "env": "CartPole-v1", "run_seed": 1, "episodes": 2}
    config["datasets"] = {"demo": {"remote": f":local:{remote}", "record": record}}
    return config


def _truncate(path):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _flip_middle(path):
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x04
    path.write_bytes(bytes(data))


def _flip_mean_return(path):
    record = path.read_text()
    digit = record.index('"mean_return": ') + len('"mean_return": ')
    path.write_text(record[:digit] + str((int(record[digit]) + 1) % 10) + record[digit + 1 :])


def _flip_a_hash(path):
    text = path.read_text()
    at = text.index('"sha256": "') + len('"sha256": "')
    path.write_text(text[:at] + ("0" if text[at] != "0" else "1") + text[at + 1 :])


CP1 = "runs/cp/CartPole-v1/seed1"
Q1 = "runs/q/CartPole-v1/seed1"
BC1 = "runs/bc/CartPole-v1/seed1"
BC_RUN = {("bc_segment", BC1, 50), ("bc_segment", BC1, 100), ("evaluate", BC1, 50)} | {
    ("evaluate", BC1, 100)
}
PIPELINE_CASES = {
    # artifact: (damage, the jobs that must rerun once it is deleted: (rule, run dir, step))
    f"{BC1}/ckpt/step_0000000050.pt": (_truncate, BC_RUN),
    f"{Q1}/qtable/step_0000001024.npz": (
        _flip_middle,
        {("qlearn_segment", Q1, 1024), ("qlearn_segment", Q1, 2048)}
        | {("evaluate", Q1, 1024), ("evaluate", Q1, 2048)},
    ),
    f"{Q1}/telemetry/step_0000002048.jsonl": (
        _truncate,
        {("qlearn_segment", Q1, 2048), ("evaluate", Q1, 2048)},
    ),
    f"{CP1}/eval/step_0000001024.json": (_flip_mean_return, {("evaluate", CP1, 1024)}),
    "data/replays/demo/MANIFEST.json": (_flip_a_hash, {("fetch_replays", "demo", 0)} | BC_RUN),
}
FAST = ("--retries", "0")  # the profile's 3 retries would only repeat the same error


def _job(rule, wildcards):
    if rule == "fetch_replays":
        return (rule, wildcards["dataset"], 0)
    run = f"runs/{wildcards['exp']}/{wildcards['env']}/seed{wildcards['seed']}"
    return (rule, run, int(wildcards["step"]))


def _snapshot(root) -> dict[str, tuple[str, int]]:
    """sha256 and mtime of every output the pipeline keeps (logs and provenance aside)."""
    return {
        str(p.relative_to(root)): (sha256(p), p.stat().st_mtime_ns)
        for sub in ("runs", "data", "results")
        for p in (root / sub).rglob("*")
        if p.is_file() and "benchmark" not in p.parts
    }


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """One finished run of the corpus config, and its snapshot."""
    root = tmp_path_factory.mktemp("damage")
    config = corpus_config(root / "remote")
    work = Workdir(root / "finished", config)
    work.run(*FAST)
    return work.path, config, _snapshot(work.path)


@pytest.mark.slow
@pytest.mark.parametrize("artifact", list(PIPELINE_CASES))
def test_pipeline_names_the_damaged_file_and_recovers(finished, tmp_path, artifact):
    original, config, before = finished
    damage, must_rerun = PIPELINE_CASES[artifact]
    shutil.copytree(original, tmp_path / "work", copy_function=shutil.copy2, symlinks=True)
    work = Workdir(tmp_path / "work", config)  # the same config, in a copy with its mtimes
    bad = work.path / artifact
    damage(bad)

    # The same command fails, naming the file and what to do; nothing unrelated changes.
    failed = work.run(*FAST, check=False)
    out = failed.stdout + failed.stderr
    assert failed.returncode != 0
    assert f"{artifact}: " in out and ADVICE in out, out[-3000:]
    after_failure = _snapshot(work.path)
    touched = {p for p in before if after_failure.get(p) != before[p]} - {artifact}
    assert all(_depends_on_one_of(p, must_rerun) for p in touched), touched

    # Until the file is dealt with, the same command keeps failing on it (never "done").
    assert "Nothing to be done" not in work.run("-n", *FAST).stdout

    # The one documented step: delete the file, rerun. Only its dependents are recomputed.
    bad.unlink()
    planned = {_job(rule, w) for rule, w in work.planned_jobs(*FAST) if rule != "summarize"}
    assert planned == must_rerun
    work.run(*FAST)
    after = _snapshot(work.path)
    for path, (digest, mtime) in before.items():
        if path.startswith(("runs/", "data/")) and "/telemetry/" not in path:
            assert after[path][0] == digest, f"{path} differs after recovery"
        if not _depends_on_one_of(path, must_rerun) and path != artifact:
            assert after[path][1] == mtime, f"{path} was rewritten"


OUTPUT_DIRS = {
    "ppo_segment": ("ckpt", "telemetry"),
    "bc_segment": ("ckpt", "telemetry"),
    "qlearn_segment": ("qtable", "telemetry"),
    "evaluate": ("eval",),
}


def _depends_on_one_of(path: str, jobs) -> bool:
    """Whether ``path`` is an output of one of ``jobs``, or of the summary that reads all."""
    if path.startswith("results/"):
        return True
    for rule, where, step in jobs:
        if rule == "fetch_replays":
            if path.startswith(f"data/replays/{where}/"):
                return True
            continue
        outputs = [f"{where}/{sub}/step_{step:010d}." for sub in OUTPUT_DIRS[rule]]
        if path.startswith(tuple(outputs)):
            return True
    return False
