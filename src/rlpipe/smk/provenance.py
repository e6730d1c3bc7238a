"""Content-based code provenance for rule scripts (torch-free; used while the DAG is built).

Snakemake reruns a ``script:`` job when the script file is newer than its outputs, so a fresh
``git clone`` (every file at checkout time) looks like a code change everywhere, while an edit
to a library module the script imports is not noticed at all. rlpipe turns that trigger off
(``rerun-triggers`` in ``profiles/default``) and gives every rule a ``code`` param instead: the
hash of its script and of every ``rlpipe`` module the script imports, directly or through
other rlpipe modules (function-level imports included, and the modules of the job functions
it hands to the warm worker by name, ``"rlpipe.algos.ppo.train:segment_job"``, whether the
script spells the name or the rule passes it: ``modules``). A param change is an ordinary
Snakemake rerun reason, and ``snakemake -n`` shows which file's hash changed.

Hashes are of the parsed code without comments, formatting or docstrings, so editing those
reruns nothing; any other change reruns exactly the jobs whose code it touches. Parsing every
module is most of a dry run's own time, so results are kept across runs in a per-user file
(:func:`use_disk_cache`, :func:`user_cache_path`) keyed by the sha256 of each file's bytes:
reading and hashing a file costs microseconds, parsing it milliseconds, and a new directory or
a fresh clone of code seen before parses nothing.
"""

from __future__ import annotations

import ast
import atexit
import hashlib
import json
import os
import re
from collections.abc import Iterable
from functools import cache
from pathlib import Path

PACKAGE = "rlpipe"
JOB_TARGET = re.compile(r"rlpipe(\.\w+)+:\w+_job")  # e.g. "rlpipe.algos.ppo.train:segment_job"
HASH_CHARS = 12


def _strip_docstrings(tree: ast.AST) -> ast.AST:
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (
            isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
            and body
            and isinstance(body[0], ast.Expr)
            and isinstance(body[0].value, ast.Constant)
            and isinstance(body[0].value.value, str)
        ):
            node.body = body[1:] or [ast.Pass()]
    return tree


@cache
def _parsed(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), filename=str(path))


def source_hash(path: str | Path) -> str:
    """Hash of a Python file's code, ignoring comments, formatting and docstrings."""
    return _source_hash(Path(path).resolve())


class _DiskCache:
    """{key: result} kept in a JSON file between processes; a key starts with the sha256 of
    the file's bytes, so any checkout or directory with the same file shares the entry."""

    MAX_ENTRIES = 4096  # the oldest go first (many versions of the code pass through)

    def __init__(self):
        self.path: Path | None = None
        self.entries: dict[str, object] = {}
        self.dirty = False

    def load(self, path: Path) -> None:
        self.path = path
        try:
            entries = json.loads(path.read_text())
        except (OSError, ValueError):
            entries = {}
        self.entries = entries if isinstance(entries, dict) else {}

    def get(self, key: str):
        return self.entries.get(key)

    def put(self, key: str, value) -> None:
        if self.path is not None:
            self.entries.pop(key, None)
            self.entries[key] = value
            self.dirty = True

    def save(self) -> None:
        """Write the file (atomically); a cache that cannot be written is only slower."""
        if self.path is None or not self.dirty:
            return
        from rlpipe.runtree import atomic

        keep = list(self.entries.items())[-self.MAX_ENTRIES :]
        try:
            atomic.write_json(self.path, dict(keep))
        except OSError:
            pass
        self.dirty = False


_DISK = _DiskCache()


def user_cache_path() -> Path:
    """The per-user cache file: ``$XDG_CACHE_HOME/rlpipe/code-hashes.json`` (~/.cache)."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base, "rlpipe", "code-hashes.json")


def use_disk_cache(path: str | Path) -> None:
    """Keep parse results in ``path`` across processes (see the module docstring); what this
    process adds is written once, when it exits."""
    if _DISK.path is None:
        atexit.register(_DISK.save)
    _DISK.load(Path(path))


@cache
def _content_key(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@cache  # once per file and process: every rule's closure shares most modules
def _source_hash(path: Path) -> str:
    key = f"{_content_key(path)}#code"
    digest = _DISK.get(key)
    if not isinstance(digest, str):
        tree = _strip_docstrings(ast.parse(path.read_text(), filename=str(path)))
        digest = hashlib.sha256(ast.dump(tree).encode()).hexdigest()[:HASH_CHARS]
        _DISK.put(key, digest)
    return digest


def _module_file(name: str, src_root: Path) -> Path | None:
    """The file of an ``rlpipe`` module (package ``__init__`` or ``.py``), if it exists."""
    base = src_root.joinpath(*name.split("."))
    for candidate in (base / "__init__.py", base.with_suffix(".py")):
        if candidate.is_file():
            return candidate
    return None


@cache
def _imported_modules(path: Path, module: str | None) -> frozenset[str]:
    """Absolute names of the rlpipe modules a file imports (anywhere in the file)."""
    key = f"{_content_key(path)}#imports-of-{module}"
    known = _DISK.get(key)
    if isinstance(known, list):
        return frozenset(known)
    names = _scan_imports(path, module)
    _DISK.put(key, sorted(names))
    return names


def _scan_imports(path: Path, module: str | None) -> frozenset[str]:
    names = set()
    package = module.rsplit(".", 1)[0] if module else None
    if module and path.name == "__init__.py":
        package = module
    for node in ast.walk(_parsed(path)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                if package is None:
                    continue
                parts = package.split(".")
                parts = parts[: len(parts) - node.level + 1]
                base = ".".join(filter(None, [*parts, base]))
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            if JOB_TARGET.fullmatch(node.value):  # a job handed to the worker by name
                names.add(node.value.split(":", 1)[0])
    return frozenset(n for n in names if n == PACKAGE or n.startswith(PACKAGE + "."))


def code_files(
    script: str | Path, src_root: str | Path, modules: Iterable[str] = ()
) -> dict[str, Path]:
    """The script plus the transitive closure of rlpipe modules it imports, and of
    ``modules`` (those it runs by a name given at run time): {label: path}.

    Labels are the script's file name and the modules' paths relative to ``src_root``.
    """
    src_root = Path(src_root)
    script = Path(script)
    files = {script.name: script}
    todo = [(script, None)]
    seen: set[str] = set()
    for mod in modules:
        file = _module_file(mod, src_root)
        if file is None:
            raise ValueError(f"{mod}: no such module under {src_root}")
        seen.add(mod)
        files[str(file.relative_to(src_root))] = file
        todo.append((file, mod))
    while todo:
        path, module = todo.pop()
        for name in sorted(_imported_modules(path, module)):
            # `from rlpipe.x import y` may name a module y or an attribute of x
            parents = [".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 2)]
            for mod in parents:
                if mod in seen:
                    continue
                file = _module_file(mod, src_root)
                if file is None:
                    continue
                seen.add(mod)
                files[str(file.relative_to(src_root))] = file
                todo.append((file, mod))
    return files


def code_version(
    script: str | Path, src_root: str | Path, modules: Iterable[str] = ()
) -> dict[str, str]:
    """``{file: hash}`` of a rule script and the rlpipe modules it runs (a Snakemake param)."""
    files = code_files(script, src_root, modules)
    return {label: source_hash(path) for label, path in sorted(files.items())}


def data_version(path: str | Path) -> str:
    """Content hash of a data file a rule reads from the repository (a Snakemake param: an
    edit reruns the rule, a fresh checkout's new mtime does not)."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:HASH_CHARS]
