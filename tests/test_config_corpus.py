"""A corpus of malformed configs: each is refused at planning time, naming the key path.

Every config goes through the validator directly and through a real ``snakemake -n`` in its
own working directory (run in parallel, once per session): a non-zero exit, the key path in
the message, and no job planned or started.
"""

from __future__ import annotations

import copy
from concurrent.futures import ThreadPoolExecutor

import pytest

from rlpipe.sweep import config as rlconfig
from rlpipe.sweep.runs import ConfigError

from conftest import tiny_config
from pipeline import REPO, Workdir

SCHEMA = REPO / "workflow/schemas/config.schema.yaml"
SLOW = pytest.mark.slow
CP = tiny_config()["experiments"]["cp"]


def cp(**changes):
    return lambda c: c["experiments"]["cp"].update(changes)


def cp_hp(**changes):
    return lambda c: c["experiments"]["cp"]["hparams"].update(changes)


def add(name, **spec):
    return lambda c: c["experiments"].__setitem__(name, copy.deepcopy(spec))


def q(**spec):
    """A small Q-learning experiment, overridden by ``spec``."""
    base = dict(algo="qlearn", envs=["CartPole-v1"], seeds=[1], total_steps=1024)
    return add("q", **{**base, "checkpoint_every": 512, "hparams": {"num_envs": 16}, **spec})


def bc(**spec):
    base = dict(algo="bc", envs=["CartPole-v1"], seeds=[1], total_steps=200, checkpoint_every=100)
    return add("bc", **{**base, "dataset": "demo", **spec})


def dataset(**record):
    rec = {"experiment": "cp", "env": "CartPole-v1", "run_seed": 1, "episodes": 2, **record}
    return lambda c: c.setdefault("datasets", {}).__setitem__(
        "demo", {"remote": ":local:/nowhere", "record": rec}
    )


def both(*mutations):
    return lambda c: [m(c) for m in mutations]


# (id, mutation of tiny_config(), key paths the message must name)
CORPUS = [
    # hyper-parameters: types and ranges (the examples first)
    ("ppo-minibatches-zero", cp_hp(num_minibatches=0), ["experiments.cp.hparams.num_minibatches"]),
    ("ppo-epochs-negative", cp_hp(update_epochs=-1), ["experiments.cp.hparams.update_epochs"]),
    ("ppo-lr-string", cp_hp(learning_rate="fast"), ["experiments.cp.hparams.learning_rate"]),
    ("ppo-gamma-above-one", cp_hp(gamma=1.5), ["experiments.cp.hparams.gamma"]),
    ("ppo-num-envs-string", cp_hp(num_envs="8"), ["experiments.cp.hparams.num_envs"]),
    ("ppo-num-envs-float", cp_hp(num_envs=4.0), ["experiments.cp.hparams.num_envs"]),
    ("ppo-anneal-not-bool", cp_hp(anneal_lr="yes"), ["experiments.cp.hparams.anneal_lr"]),
    ("ppo-target-kl-zero", cp_hp(target_kl=0), ["experiments.cp.hparams.target_kl"]),
    ("ppo-clip-nan", cp_hp(clip_coef=float("nan")), ["experiments.cp.hparams.clip_coef"]),
    ("ppo-unknown-hparam", cp_hp(lr=0.1), ["experiments.cp.hparams.lr"]),
    # divisibility and budgets
    (
        "ppo-minibatches-indivisible",
        cp_hp(num_minibatches=3),
        ["experiments.cp.hparams.num_minibatches"],
    ),
    ("ppo-env-pools-indivisible", cp_hp(env_pools=3), ["experiments.cp.hparams.env_pools"]),
    ("segment-not-whole-updates", cp(checkpoint_every=500), ["experiments.cp.checkpoint_every"]),
    ("budget-not-whole-updates", cp(total_steps=1500), ["experiments.cp.total_steps"]),
    ("segment-beyond-budget", cp(checkpoint_every=2048), ["experiments.cp.checkpoint_every"]),
    (
        "anneal-ends-before-budget",
        cp_hp(lr_anneal_steps=1024),
        ["experiments.cp.hparams.lr_anneal_steps"],
    ),
    (
        "budget-for-unknown-env",
        cp(total_steps={"default": 1536, "Pong-v5": 256}),
        ["experiments.cp.total_steps.Pong-v5"],
    ),
    (
        "budget-missing-for-env",
        cp(total_steps={"Acrobot-v1": 1536}),
        ["experiments.cp.total_steps", "experiments.cp.total_steps.Acrobot-v1"],
    ),
    # experiment structure
    ("algo-unknown", cp(algo="dqn"), ["experiments.cp.algo"]),
    ("envs-missing", lambda c: c["experiments"]["cp"].pop("envs"), ["experiments.cp.envs"]),
    ("seeds-as-string", cp(seeds="1,2"), ["experiments.cp.seeds"]),
    ("seed-negative", cp(seeds=[1, -2]), ["experiments.cp.seeds.1"]),
    ("stall-timeout-negative", cp(stall_timeout=-5), ["experiments.cp.stall_timeout"]),
    ("threads-zero", cp(resources={"threads": 0}), ["experiments.cp.resources.threads"]),
    ("experiment-key-typo", cp(total_step=5), ["experiments.cp.total_step"]),
    ("experiment-name-space", add("bad name", **CP), ["experiments.bad name"]),
    ("top-level-typo", lambda c: c.update(experiment={}), ["experiment"]),
    (
        "evaluation-episodes-zero",
        lambda c: c["evaluation"].update(episodes=0),
        ["evaluation.episodes"],
    ),
    # environments: EnvPool's registry and what the agents can take
    ("env-unknown", cp(envs=["NoSuchGame-v5"]), ["experiments.cp.envs.0"]),
    ("env-id-malformed", cp(envs=["cartpole"]), ["experiments.cp.envs.0"]),
    ("ppo-continuous-actions", cp(envs=["Pendulum-v1"]), ["experiments.cp.envs.0"]),
    ("qlearn-on-pixels", q(envs=["Pong-v5"]), ["experiments.q.envs.0"]),
    ("qlearn-bins-length", q(hparams={"bins": [6, 6, 6]}), ["experiments.q.hparams.bins"]),
    (
        "qlearn-epsilon-above-one",
        q(hparams={"epsilon_end": 2}),
        ["experiments.q.hparams.epsilon_end"],
    ),
    ("qlearn-indexer-unknown", q(hparams={"indexer": "kmeans"}), ["experiments.q.hparams.indexer"]),
    (
        "qlearn-segment-indivisible",
        q(checkpoint_every=520, total_steps=1040),
        ["experiments.q.checkpoint_every"],
    ),
    # init_from
    ("init-from-self", cp(init_from="cp"), ["experiments.cp.init_from"]),
    (
        "init-from-cycle",
        both(cp(init_from="cp2"), add("cp2", **{**CP, "init_from": "cp"})),
        ["experiments.cp.init_from"],
    ),
    ("init-from-unknown", cp(init_from="nope"), ["experiments.cp.init_from"]),
    (
        "init-from-missing-seed",  # pong has seed 1 only
        add("p2", **{**tiny_config()["experiments"]["pong"], "seeds": [1, 2], "init_from": "pong"}),
        ["experiments.p2.init_from"],
    ),
    ("qlearn-init-from-ppo", q(init_from="cp"), ["experiments.q.init_from"]),
    # behaviour cloning and datasets
    ("bc-without-dataset", both(dataset(), bc(dataset=None)), ["experiments.bc.dataset"]),
    ("bc-unknown-dataset", both(dataset(), bc(dataset="other")), ["experiments.bc.dataset"]),
    (
        "bc-batch-zero",
        both(dataset(), bc(hparams={"batch_size": 0})),
        ["experiments.bc.hparams.batch_size"],
    ),
    ("bc-env-not-recorded", both(dataset(), bc(envs=["Acrobot-v1"])), ["experiments.bc.envs.0"]),
    ("record-seed-not-run", dataset(run_seed=7), ["datasets.demo.record.run_seed"]),
    # several at once: all listed, one line each
    (
        "several-at-once",
        both(cp_hp(num_minibatches=0), cp(init_from="cp"), add("p", **{**CP, "envs": ["No-v5"]})),
        [
            "experiments.cp.hparams.num_minibatches",
            "experiments.cp.init_from",
            "experiments.p.envs.0",
        ],
    ),
]
IDS = [case[0] for case in CORPUS]
# A snakemake process costs ~1.6 s of CPU here, mostly its own start-up: the fast tier sends
# one config per kind of check through it, the slow tier (`make test`) all of them.
THROUGH_SNAKEMAKE_ALWAYS = {
    "ppo-minibatches-zero",
    "ppo-epochs-negative",
    "ppo-lr-string",
    "ppo-gamma-above-one",
    "ppo-num-envs-string",
    "ppo-minibatches-indivisible",
    "budget-for-unknown-env",
    "top-level-typo",
    "env-unknown",
    "qlearn-bins-length",
    "init-from-self",
    "init-from-cycle",
    "bc-env-not-recorded",
    "several-at-once",
}
SNAKEMAKE_CASES = [
    pytest.param(case, id=case[0], marks=() if case[0] in THROUGH_SNAKEMAKE_ALWAYS else SLOW)
    for case in CORPUS
]


def _config(mutate) -> dict:
    cfg = copy.deepcopy(tiny_config())
    mutate(cfg)
    return cfg


def test_corpus_is_large_and_distinct():
    assert len(CORPUS) >= 30 and len(set(IDS)) == len(IDS)


@pytest.mark.parametrize("case", CORPUS, ids=IDS)
def test_validator_names_every_key(case):
    _, mutate, paths = case
    with pytest.raises(ConfigError) as err:
        rlconfig.validate(_config(mutate), SCHEMA)
    lines = str(err.value).splitlines()
    problems = [line.removeprefix("  - ") for line in lines[1:]]
    assert lines[0].startswith("invalid config") and all(line[:4] == "  - " for line in lines[1:])
    assert sorted({p.split(": ", 1)[0] for p in problems}) == sorted(paths), problems
    for problem in problems:
        assert "expected" in problem.split(": ", 1)[1], problem  # what is wanted, not just "bad"


@pytest.fixture(scope="session")
def dry_runs(request, tmp_path_factory):
    """The selected corpus configs, each as config/config.yaml of its own workdir, dry-run
    in parallel (so the whole corpus costs a few processes' time, not 47)."""
    selected = {
        item.callspec.params["case"][0]
        for item in request.session.items
        if item.originalname == "test_snakemake_refuses_before_any_job"
    }
    root = tmp_path_factory.mktemp("corpus")
    cache = {"XDG_CACHE_HOME": str(root / "cache")}
    Workdir(root / "warm", tiny_config()).run("-n", env=cache)  # fills the EnvPool cache

    def dry_run(case):
        name, mutate, _ = case
        work = Workdir(root / name, _config(mutate))
        return name, (work, work.run("-n", check=False, env=cache))

    with ThreadPoolExecutor(max_workers=3) as pool:
        return dict(pool.map(dry_run, [case for case in CORPUS if case[0] in selected]))


@pytest.mark.parametrize("case", SNAKEMAKE_CASES)
def test_snakemake_refuses_before_any_job(case, dry_runs):
    name, _, paths = case
    work, proc = dry_runs[name]
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "invalid config" in out and "WorkflowError" in out
    for path in paths:
        assert f"  - {path}: " in out, out
    assert "Building DAG" not in out and "rule ppo_segment" not in out
    assert not (work.path / "runs").exists()
