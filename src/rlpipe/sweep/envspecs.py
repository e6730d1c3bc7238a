"""EnvPool task ids and their spaces, for checking configs at planning time.

``import envpool`` costs over a second here, too much for every ``snakemake -n``. The
registry's task ids and the spaces of the tasks configs name are therefore cached in a JSON
file per EnvPool installation, ``$XDG_CACHE_HOME/rlpipe/`` (default ``~/.cache/rlpipe``); a
miss imports envpool once and extends the cache. The cache only ever holds what EnvPool
answered, so a stale or unwritable cache costs time, never a wrong answer.
"""

from __future__ import annotations

import difflib
import hashlib
import importlib.metadata
import importlib.util
import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

from rlpipe.runtree import atomic


@dataclass(frozen=True)
class EnvSpec:
    """What rlpipe's agents need to know about a task."""

    obs_shape: tuple[int, ...] | None  # None: not a single array (e.g. dict observations)
    n_actions: int | None  # None: not a discrete action space
    action_space: str  # e.g. "Discrete(6)" or "Box(-1.0, 1.0, (8,), float32)"


def cache_path() -> Path:
    """The cache file of the installed EnvPool (its version and location name it)."""
    location = importlib.util.find_spec("envpool").origin  # finds, does not import
    version = importlib.metadata.version("envpool")
    tag = hashlib.sha256(str(location).encode()).hexdigest()[:12]
    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return root / "rlpipe" / f"envpool-{version}-{tag}.json"


@dataclass(frozen=True)
class Registry:
    """EnvPool's task ids, and the specs of the tasks asked for."""

    ids: frozenset[str]
    specs: dict[str, EnvSpec]
    errors: dict[str, str]  # known ids EnvPool failed to make here (never cached)

    def spec(self, env_id: str) -> EnvSpec | None:
        """The task's spec, or None if EnvPool has no such task."""
        return self.specs.get(env_id)

    def close_matches(self, env_id: str) -> list[str]:
        return difflib.get_close_matches(env_id, sorted(self.ids), n=3)


def registry(env_ids) -> Registry:
    """EnvPool's registry with the specs of ``env_ids`` (cached; see the module docstring)."""
    path = cache_path()
    cache = _read(path)
    known = set(cache["ids"])
    missing = [e for e in set(env_ids) if e not in cache["specs"] and (not known or e in known)]
    errors: dict[str, str] = {}
    if missing or not known:
        cache, errors = _from_envpool(cache, sorted(missing))
        try:
            atomic.write_json(path, cache)
        except OSError:  # e.g. a read-only home: ask EnvPool again next time
            pass
    specs = {e: _spec(entry) for e, entry in cache["specs"].items()}
    return Registry(frozenset(cache["ids"]), specs, errors)


def _read(path: Path) -> dict:
    try:
        cache = json.loads(path.read_text())
        if isinstance(cache.get("ids"), list) and isinstance(cache.get("specs"), dict):
            return cache
    except (OSError, ValueError, AttributeError):
        pass
    return {"ids": [], "specs": {}}


def _from_envpool(cache: dict, env_ids: list[str]) -> tuple[dict, dict[str, str]]:
    """Ask EnvPool itself (imports it): the registry, the spaces of ``env_ids``, and why
    any of them cannot be made here (e.g. a missing system library)."""
    import envpool
    from gymnasium.spaces import Discrete

    ids = sorted(envpool.list_all_envs())
    specs, errors = dict(cache["specs"]), {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # gymnasium's float64 -> float32 casting notes
        for env_id in (e for e in env_ids if e in ids):
            try:
                spec = envpool.make_spec(env_id)
            except Exception as err:  # ImportError of a family's extension, ...
                errors[env_id] = f"{type(err).__name__}: {str(err).splitlines()[0]}"
                continue
            obs, act = spec.observation_space, spec.action_space
            specs[env_id] = {
                "obs_shape": list(obs.shape) if obs.shape is not None else None,
                "n_actions": int(act.n) if isinstance(act, Discrete) else None,
                "action_space": str(act),
            }
    return {"ids": ids, "specs": specs}, errors


def _spec(entry: dict) -> EnvSpec:
    shape = entry["obs_shape"]
    return EnvSpec(
        tuple(shape) if shape is not None else None, entry["n_actions"], entry["action_space"]
    )
