"""Config checks a JSON schema cannot express; each problem names its full key path.

Divisibility (minibatches into the batch, updates into segments), budgets, references between
experiments and datasets, ``init_from`` (cycles, algorithms, envs and seeds) and the EnvPool
tasks (known ids, discrete actions, observations the agents take); an algorithm's own checks
come from its params module through the registry (rlpipe.algos). Torch-free.
"""

from __future__ import annotations

from dataclasses import dataclass

from rlpipe.algos import ALGOS, hparams
from rlpipe.sweep import envspecs
from rlpipe.sweep.runs import budgets

CNN_INPUT = (84, 84)  # the Nature CNN's frame size (rlpipe.algos.nets)


@dataclass(frozen=True)
class Problem:
    path: str  # full key path, e.g. experiments.ppo-cartpole.hparams.num_minibatches
    message: str  # what was found and what is expected


def check(config: dict, bad_paths: set[str]) -> list[Problem]:
    """Problems of a schema-checked config; keys under or above ``bad_paths`` are skipped."""
    return _Checker(config, bad_paths).run()


class _Checker:
    def __init__(self, config: dict, bad_paths: set[str]):
        self.bad = bad_paths
        self.problems: list[Problem] = []
        experiments, datasets = config.get("experiments"), config.get("datasets")
        self.experiments = experiments if isinstance(experiments, dict) else {}
        self.datasets = datasets if isinstance(datasets, dict) else {}

    def ok(self, *paths: str) -> bool:
        """No schema problem at, under or above any of ``paths``."""
        return not any(
            b == p or b.startswith(p + ".") or p.startswith(b + ".") or b == "(top level)"
            for p in paths
            for b in self.bad
        )

    def add(self, path: str, message: str) -> None:
        self.problems.append(Problem(path, message))

    def run(self) -> list[Problem]:
        for exp, spec in self.experiments.items():
            where = f"experiments.{exp}"
            if self.ok(f"{where}.algo"):
                self.budgets_and_hparams(where, spec)
                self.dataset(where, spec)
                self.init_from(exp, where, spec)
        self.cycles()
        self.recordings()
        self.env_specs()
        return self.problems

    # --- budgets and hyper-parameters ------------------------------------------------------

    def totals(self, where: str, spec: dict) -> dict[str, int]:
        """{total_steps key path: steps} per env; reports unknown and missing env keys."""
        if not self.ok(f"{where}.total_steps", f"{where}.envs"):
            return {}
        budget = budgets(spec)
        if isinstance(spec["total_steps"], int):
            return {f"{where}.total_steps": budget["default"]}
        for key in sorted(set(budget) - {"default", *spec["envs"]}):
            self.add(
                f"{where}.total_steps.{key}",
                f"{key!r} is not among this experiment's envs {spec['envs']}; "
                "expected one of them or 'default'",
            )
        missing = [e for e in spec["envs"] if e not in budget and "default" not in budget]
        if missing:
            self.add(
                f"{where}.total_steps",
                f"no budget for {missing}; expected an entry for each env, or 'default'",
            )
        return {
            f"{where}.total_steps.{key}": steps
            for key, steps in budget.items()
            if key == "default" or key in spec["envs"]
        }

    def budgets_and_hparams(self, where: str, spec: dict) -> None:
        algo = spec["algo"]
        totals = self.totals(where, spec)
        segment = {}
        if self.ok(f"{where}.checkpoint_every"):
            every = segment[f"{where}.checkpoint_every"] = spec["checkpoint_every"]
            for total_path, total in totals.items():
                if every > total:
                    self.add(
                        f"{where}.checkpoint_every",
                        f"{every} exceeds {total_path.removeprefix(where + '.')} {total}; "
                        "expected at most the run's budget",
                    )
        hp_path = f"{where}.hparams"
        given = spec.get("hparams")
        if not isinstance(given, dict):
            return  # the schema reported it
        params = ALGOS[algo].hparams
        names = hparams.fields(params)
        hp = hparams.resolve(params, {k: v for k, v in given.items() if k in names}, None)

        def usable(*keys: str) -> bool:  # checks skip values the schema found wrong
            return self.ok(*(f"{hp_path}.{key}" for key in keys))

        per_update = ALGOS[algo].update_keys
        if usable(*per_update):
            unit = ALGOS[algo].steps_per_update(hp)
            for path, value in {**totals, **segment}.items():
                if value % unit:
                    self.add(
                        path,
                        f"{value} is not a multiple of the {unit} env steps one {algo} update "
                        f"takes ({' x '.join(per_update)}); expected a multiple of {unit}",
                    )
        if (problems := ALGOS[algo].hparam_problems) is not None:
            root = hp_path.removesuffix("hparams")
            budgets = {path.removeprefix(root): steps for path, steps in totals.items()}
            for key, message in problems(hp, usable, budgets):
                self.add(f"{hp_path}.{key}", message)

    # --- datasets and init_from ------------------------------------------------------------

    def dataset(self, where: str, spec: dict) -> None:
        dataset = spec.get("dataset")
        if not self.ok(f"{where}.dataset"):
            return
        needs = ALGOS[spec["algo"]].needs_dataset
        if needs != (dataset is not None):
            expected = "the name of a dataset" if needs else "no dataset"
            self.add(
                f"{where}.dataset",
                f"got {dataset!r} for algo {spec['algo']}; expected {expected} "
                "(only bc experiments clone a dataset)",
            )
        elif dataset is not None:
            if dataset not in self.datasets:
                self.add(
                    f"{where}.dataset",
                    f"no dataset named {dataset!r} under `datasets`; expected one of "
                    f"{sorted(self.datasets)}",
                )
            elif self.ok(f"{where}.envs", f"datasets.{dataset}.record"):
                record = self.datasets[dataset].get("record")
                for i, env in enumerate(spec["envs"]):
                    if record and env != record["env"]:
                        self.add(
                            f"{where}.envs.{i}",
                            f"got {env!r}, but dataset {dataset!r} is recorded on "
                            f"{record['env']!r}; expected {record['env']!r}",
                        )

    def init_from(self, exp: str, where: str, spec: dict) -> None:
        source_name = spec.get("init_from")
        path = f"{where}.init_from"
        if source_name is None or not self.ok(path):
            return
        if source_name == exp:
            self.add(path, f"got {exp!r}, this experiment itself; expected another experiment")
            return
        if source_name not in self.experiments:
            self.add(
                path,
                f"no experiment named {source_name!r}; expected one of "
                f"{sorted(set(self.experiments) - {exp})}",
            )
            return
        source = self.experiments[source_name]
        algo = spec["algo"]
        source_where = f"experiments.{source_name}"
        if self.ok(f"{source_where}.algo") and source["algo"] not in ALGOS[algo].warm_starts_from:
            allowed = " or ".join(sorted(ALGOS[algo].warm_starts_from))
            self.add(
                path,
                f"{source_name!r} is a {source['algo']} experiment; expected "
                + (f"a {allowed} experiment" if allowed else f"none: {algo} cannot warm-start"),
            )
        if self.ok(
            f"{where}.envs", f"{where}.seeds", f"{source_where}.envs", f"{source_where}.seeds"
        ):
            missing_envs = sorted(set(spec["envs"]) - set(source["envs"]))
            missing_seeds = sorted(set(spec["seeds"]) - set(source["seeds"]))
            if missing_envs or missing_seeds:
                self.add(
                    path,
                    f"{source_name!r} has no run for envs {missing_envs} seeds "
                    f"{missing_seeds}; expected an experiment with every env and seed of this "
                    "one (warm starts pair runs by env and seed)",
                )

    def cycles(self) -> None:
        """init_from chains that lead back into themselves, each reported once."""
        in_reported_cycle: set[str] = set()
        for start in self.experiments:
            chain, source = [start], self._source(start)
            while source is not None and source not in chain:
                chain.append(source)
                source = self._source(source)
            if source is None:
                continue  # the chain ends at an experiment without init_from
            loop = chain[chain.index(source) :]
            if len(loop) == 1 or start not in loop or in_reported_cycle & set(loop):
                continue  # self-reference (see init_from), or a cycle reported already
            in_reported_cycle.update(loop)
            self.add(
                f"experiments.{start}.init_from",
                f"{' -> '.join(loop + [start])} is a cycle; expected an experiment that does "
                "not (directly or indirectly) start from this one",
            )

    def _source(self, exp: str) -> str | None:
        spec = self.experiments.get(exp)
        if not isinstance(spec, dict) or not self.ok(f"experiments.{exp}.init_from"):
            return None
        source = spec.get("init_from")
        return source if source in self.experiments else None

    def recordings(self) -> None:
        for name, spec in self.datasets.items():
            record = spec.get("record") if isinstance(spec, dict) else None
            path = f"datasets.{name}.record"
            if not record or not self.ok(path):
                continue
            exp = self.experiments.get(record["experiment"])
            if exp is None:
                self.add(
                    f"{path}.experiment",
                    f"no experiment named {record['experiment']!r}; expected one of "
                    f"{sorted(self.experiments)}",
                )
                continue
            where = f"experiments.{record['experiment']}"
            if self.ok(f"{where}.envs") and record["env"] not in exp["envs"]:
                self.add(
                    f"{path}.env",
                    f"{record['env']!r} is not an env of {record['experiment']!r}; expected "
                    f"one of {exp['envs']}",
                )
            if self.ok(f"{where}.seeds") and record["run_seed"] not in exp["seeds"]:
                self.add(
                    f"{path}.run_seed",
                    f"{record['run_seed']} is not a seed of {record['experiment']!r}; expected "
                    f"one of {exp['seeds']}",
                )

    # --- EnvPool tasks ---------------------------------------------------------------------

    def env_specs(self) -> None:
        envs = {
            f"experiments.{exp}.envs.{i}": (env, spec)
            for exp, spec in self.experiments.items()
            if self.ok(f"experiments.{exp}.algo", f"experiments.{exp}.envs")
            for i, env in enumerate(spec["envs"])
        }
        if not envs:
            return
        registry = envspecs.registry({env for env, _ in envs.values()})
        for path, (env, spec) in envs.items():
            task = registry.spec(env)
            if env in registry.errors:
                self.add(path, f"EnvPool cannot make {env!r} here: {registry.errors[env]}")
            elif task is None:
                close = registry.close_matches(env)
                hint = f" (close: {', '.join(close)})" if close else ""
                self.add(path, f"{env!r} is not an EnvPool task id; expected a registered id{hint}")
            elif problem := _agent_problem(spec["algo"], task):
                self.add(path, f"{env!r} {problem}")
            elif (problems := ALGOS[spec["algo"]].env_problems) is not None:
                hp_path = f"{path.rsplit('.envs.', 1)[0]}.hparams"

                def usable(*keys: str, hp_path=hp_path) -> bool:
                    return self.ok(*(f"{hp_path}.{key}" for key in keys))

                given = spec.get("hparams") or {}
                for key, message in problems(given, env, spec["envs"], task.obs_shape, usable):
                    self.add(f"{hp_path}.{key}", message)


def _agent_problem(algo: str, task: envspecs.EnvSpec) -> str | None:
    """Why rlpipe's ``algo`` cannot train on ``task`` (and what it needs), or None."""
    if task.n_actions is None:
        return f"has {task.action_space} actions; expected a task with discrete actions"
    shape = task.obs_shape
    if ALGOS[algo].vector_obs_only and (shape is None or len(shape) != 1):
        return f"has observations of shape {shape}; expected vector observations (D,) to bin"
    frames = (None, *CNN_INPUT)
    if shape is None or not (len(shape) == 1 or (len(shape) == 3 and shape[1:] == CNN_INPUT)):
        return (
            f"has observations of shape {shape}; expected vectors (D,) for the MLP or frames "
            f"(C, {frames[1]}, {frames[2]}) for the Nature CNN"
        )
    return None
