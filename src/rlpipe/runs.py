"""Expand validated config into runs (experiment x env x seed) and their segment steps.

Torch-free: imported by ``rules/common.smk`` while the DAG is built.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from rlpipe import hparams as hp_defaults

STEP_WIDTH = 10
RUN_DIR = "runs/{exp}/{env}/seed{seed}"


class ConfigError(ValueError):
    """A config problem, worded for the user: names the key and what is wrong."""


def fmt_step(step: int) -> str:
    return f"{int(step):0{STEP_WIDTH}d}"


@dataclass(frozen=True)
class Run:
    exp: str
    env: str
    seed: int
    algo: str
    total_steps: int
    checkpoint_every: int
    hparams: dict = field(hash=False)
    init_from: str | None = None
    dataset: str | None = None

    @property
    def dir(self) -> str:
        return RUN_DIR.format(exp=self.exp, env=self.env, seed=self.seed)

    @property
    def steps(self) -> list[int]:
        """End step of every segment, the last one equal to total_steps."""
        return segment_steps(self.total_steps, self.checkpoint_every)

    def previous_step(self, step: int) -> int | None:
        steps = self.steps
        i = steps.index(step)
        return steps[i - 1] if i else None


def segment_steps(total: int, every: int) -> list[int]:
    steps = list(range(every, total, every))
    return steps + [total]


def expand_runs(config: dict) -> dict[tuple[str, str, int], Run]:
    """All runs keyed by (exp, env, seed); raises ConfigError on inconsistent settings."""
    experiments = config["experiments"]
    runs: dict[tuple[str, str, int], Run] = {}
    for exp, spec in experiments.items():
        where = f"experiments.{exp}"
        algo = spec["algo"]
        every = int(spec["checkpoint_every"])
        budgets = _budgets(spec, where)
        dataset = spec.get("dataset")
        if (algo == "bc") != (dataset is not None):
            raise ConfigError(f"{where}.dataset: required for algo bc and only for it")
        if dataset is not None and dataset not in config.get("datasets", {}):
            raise ConfigError(
                f"{where}.dataset: no dataset named {dataset!r} under `datasets` "
                f"(known: {sorted(config.get('datasets', {}))})"
            )
        init_from = spec.get("init_from")
        if init_from is not None:
            if init_from not in experiments:
                raise ConfigError(
                    f"{where}.init_from: no experiment named {init_from!r} "
                    f"(known: {sorted(experiments)})"
                )
            source = experiments[init_from]
            missing_envs = sorted(set(spec["envs"]) - set(source["envs"]))
            missing_seeds = sorted(set(spec["seeds"]) - set(source["seeds"]))
            if missing_envs or missing_seeds:
                raise ConfigError(
                    f"{where}.init_from: {init_from!r} has no run for envs {missing_envs} "
                    f"seeds {missing_seeds}; warm starts pair runs by env and seed"
                )
        for env in spec["envs"]:
            total = budgets.get(env, budgets.get("default"))
            hparams = _checked_hparams(spec, where, algo, total, every)
            for seed in spec["seeds"]:
                runs[(exp, env, int(seed))] = Run(
                    exp=exp,
                    env=env,
                    seed=int(seed),
                    algo=algo,
                    total_steps=total,
                    checkpoint_every=every,
                    hparams=hparams,
                    init_from=init_from,
                    dataset=dataset,
                )
    _check_recordings(config, runs)
    return runs


def _budgets(spec: dict, where: str) -> dict:
    """total_steps as {env or "default": steps}; a plain integer applies to every env."""
    total = spec["total_steps"]
    budgets = {"default": total} if isinstance(total, int) else dict(total)
    unknown = sorted(set(budgets) - {"default", *spec["envs"]})
    if unknown:
        raise ConfigError(f"{where}.total_steps: {unknown} are not among this experiment's envs")
    missing = [e for e in spec["envs"] if e not in budgets] if "default" not in budgets else []
    if missing:
        raise ConfigError(f"{where}.total_steps: no budget for {missing} (add them or 'default')")
    return budgets


def _checked_hparams(spec: dict, where: str, algo: str, total: int, every: int) -> dict:
    try:
        hparams = hp_defaults.resolve(algo, spec.get("hparams"), total)
    except KeyError as err:
        raise ConfigError(f"{where}.hparams: {err.args[0]}") from None
    if every > total:
        raise ConfigError(f"{where}.checkpoint_every: {every} exceeds total_steps {total}")
    unit = hp_defaults.steps_per_update(algo, hparams)
    for key, value in (("checkpoint_every", every), ("total_steps", total)):
        if value % unit:
            raise ConfigError(
                f"{where}.{key}: {value} is not a multiple of the {unit} env steps one "
                f"{algo} update takes (num_envs x num_steps)"
            )
    return hparams


def _check_recordings(config: dict, runs: dict) -> None:
    for name, spec in config.get("datasets", {}).items():
        rec = spec.get("record")
        if rec and (rec["experiment"], rec["env"], rec["run_seed"]) not in runs:
            raise ConfigError(
                f"datasets.{name}.record: no run {rec['experiment']}/{rec['env']}/"
                f"seed{rec['run_seed']} to record from"
            )
