"""Q-learning segments on EnvPool: determinism across processes, resume, warm start, eval."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import rlpipe
from rlpipe.algos import hparams
from rlpipe.algos.qlearn import qtable
from rlpipe.algos.qlearn.params import QLearnParams
from rlpipe.algos.qlearn.train import train_segment
from rlpipe.rollouts.evaluate import evaluate_checkpoint
from rlpipe.runtree.span import Segment
from rlpipe.runtree.telemetry import read_jsonl

SRC = Path(rlpipe.__file__).resolve().parents[1]  # the rlpipe under test, for the subprocess
SMALL = {"num_envs": 8, "epsilon_decay_steps": 4000, "log_every_steps": 1000}
VARIANTS = {
    "uniform": {"env": "CartPole-v1", **SMALL},
    # adaptive fitting spans the segment boundary (6000 states at 8 per step), replay on
    "adaptive+replay": {
        "env": "Acrobot-v1",
        **SMALL,
        "indexer": "adaptive",
        "bins": 4,
        "adaptive_fit_states": 6000,
        "replay_size": 1500,
        "replay_batch": 16,
        "replay_updates_per_step": 2,
    },
}


def segment(tmp, name, variant, start, end, init=None, warm_start=False, seed=3):
    spec = dict(VARIANTS[variant])
    env = spec.pop("env")
    out = Path(tmp) / f"{name}.npz"
    train_segment(
        Segment(env, seed, start, end),
        hparams.typed(QLearnParams, spec, end),
        out,
        Path(tmp) / f"{name}.jsonl",
        prev_ckpt=None if warm_start else init,
        warm_start=init if warm_start else None,
    )
    return out


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_resumed_in_fresh_process_equals_straight_run(tmp_path, variant):
    first = segment(tmp_path, "s1", variant, 0, 4000)
    straight = segment(tmp_path, "s2", variant, 4000, 8000, init=first)
    code = (
        "import sys; sys.path[:0] = [sys.argv[1], sys.argv[2]];"
        "from test_qlearn_train import segment;"
        "segment(sys.argv[3], 'r2', sys.argv[4], 4000, 8000, init=sys.argv[5])"
    )
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    tests_dir = str(Path(__file__).parent)
    subprocess.run(
        [sys.executable, "-c", code, str(SRC), tests_dir, str(tmp_path), variant, str(first)],
        check=True,
        env=env,
    )
    assert (tmp_path / "r2.npz").read_bytes() == straight.read_bytes()
    again = segment(tmp_path, "again", variant, 0, 4000)
    assert again.read_bytes() == first.read_bytes()

    table = qtable.load(straight)
    assert table.global_step == 8000 and table.indexer.fitted
    if variant == "uniform":  # segment 2 continued segment 1's RNG stream: 500 steps x (2, 8)
        rng = np.random.default_rng()
        rng.bit_generator.state = qtable.load(first).rng_state
        rng.random((500, 2, 8))
        assert table.rng_state == rng.bit_generator.state
    if variant == "adaptive+replay":
        assert table.indexer.kind == "adaptive"
        assert int(table.replay["meta"][1]) == 1500  # ring buffer wrapped
        first_table = qtable.load(first)
        assert not first_table.indexer.fitted and len(first_table.indexer.buffer) == 4000
        assert first_table.updates == 0 and first_table.epsilon_step == 0


def test_telemetry_and_junk_transitions_not_learned(tmp_path):
    out = segment(tmp_path, "s", "uniform", 0, 8000)
    table = qtable.load(out)
    records = read_jsonl(tmp_path / "s.jsonl")
    assert [r["global_step"] for r in records] == list(range(1000, 8001, 1000))
    for key in (
        "charts/episodic_return",
        "charts/epsilon",
        "charts/coverage",
        "losses/td_error_mean",
        "charts/updates_per_second",
        "charts/SPS",
    ):
        assert key in records[-1], key
    assert records[-1]["charts/epsilon"] == pytest.approx(0.01)
    assert 0 < records[-1]["charts/coverage"] == table.coverage <= 1
    # Every done is followed by one junk (reset) step, unless it fell on the last step.
    junk_steps = table.global_step - table.updates
    assert table.episodes - 8 <= junk_steps <= table.episodes
    assert table.episodes > 100


def test_replay_stats_in_telemetry(tmp_path):
    segment(tmp_path, "s", "adaptive+replay", 0, 8000)
    last = read_jsonl(tmp_path / "s.jsonl")[-1]
    assert last["replay/size"] == 1500
    assert 0 < last["replay/priority_mean"] <= last["replay/priority_max"]


def test_warm_start_keeps_table_resets_schedule(tmp_path):
    source = segment(tmp_path, "src", "uniform", 0, 4000)
    warm = segment(tmp_path, "warm", "uniform", 0, 800, init=source, warm_start=True, seed=5)
    src_table, table = qtable.load(source), qtable.load(warm)
    assert table.global_step == 800 and table.epsilon_step == 800
    assert table.updates <= 800  # counters restarted
    changed = np.flatnonzero(table.visits)
    untouched = np.setdiff1d(np.arange(len(table.q)), changed)
    np.testing.assert_array_equal(table.q[untouched], src_table.q[untouched])
    assert np.abs(table.q).sum() > 0
    first_epsilon = read_jsonl(tmp_path / "warm.jsonl")[0]["charts/epsilon"]
    assert first_epsilon > 0.5  # schedule restarted, not at the source's 0.01


def test_bad_segment_inputs(tmp_path):
    first = segment(tmp_path, "s1", "uniform", 0, 800)
    with pytest.raises(ValueError, match="ends at step 800, segment starts at 1600"):
        segment(tmp_path, "x", "uniform", 1600, 2400, init=first)
    with pytest.raises(ValueError, match="starts at 800 but has no previous table"):
        segment(tmp_path, "x", "uniform", 800, 1600)
    with pytest.raises(ValueError, match=r"s1.npz \(CartPole-v1\): indexer has 4 .* env has 6"):
        segment(tmp_path, "x", "adaptive+replay", 800, 1600, init=first)


def test_greedy_eval_record(tmp_path):
    out = segment(tmp_path, "s", "uniform", 0, 4000)
    record = evaluate_checkpoint(str(out), episodes=5, seed=11, max_steps=40)
    assert record["algo"] == "qlearn" and record["env"] == "CartPole-v1"
    assert record["step"] == 4000 and record["eval_seed"] == 11 and record["episodes"] == 5
    assert len(record["returns"]) == len(record["lengths"]) == 5
    assert record["returns"] == [float(n) for n in record["lengths"]]  # CartPole: 1 per step
    assert max(record["lengths"]) <= 40
    assert record["mean_return"] == pytest.approx(np.mean(record["returns"]))
    assert json.loads(json.dumps(record)) == record
    assert evaluate_checkpoint(str(out), episodes=5, seed=11, max_steps=40) == record


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_cartpole_learns_with_defaults(tmp_path, seed):
    hp = hparams.typed(QLearnParams, {}, 400_000)
    out = tmp_path / "q.npz"
    train_segment(Segment("CartPole-v1", seed, 0, 400_000), hp, out, tmp_path / "t.jsonl")
    assert (
        evaluate_checkpoint(str(out), episodes=10, seed=1000003, max_steps=500)["mean_return"]
        >= 195
    )


def test_greedy_evaluation_of_a_qtable_does_not_import_torch(tmp_path):
    out = tmp_path / "q.npz"
    hp = hparams.typed(QLearnParams, {"num_envs": 4}, 400)
    train_segment(Segment("CartPole-v1", 1, 0, 400), hp, out, tmp_path / "t.jsonl")
    code = (
        "import sys; from rlpipe.rollouts.evaluate import evaluate_checkpoint;"
        f"evaluate_checkpoint({str(out)!r}, 2, 1, 50); print('torch' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"
