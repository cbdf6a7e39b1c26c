"""The version of the code a component runs, for its cache key.

TFX names a run_fn or preprocessing_fn by import path, and the path is all its cache key sees: an
edited probe, or an upgraded package, would be served from the cache. TFX hashes a `module_file`
into the key for this reason; here the code is a package, so each component gets the hash of the
source of its entry module and of every `simsiam_tfx` module that module imports, directly or
not. Editing one module re-runs the components whose code imports it, and nothing else.
"""
from __future__ import annotations

import ast
import functools
import hashlib
import importlib.util

ROOT = "simsiam_tfx"


def _source_file(module: str) -> str | None:
    """The .py file of `module` when it is a module of this package (else None)."""
    if module != ROOT and not module.startswith(ROOT + "."):
        return None
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    return spec.origin if spec and spec.origin and spec.origin.endswith(".py") else None


def _imports(path: str, module: str) -> set[str]:
    """Modules of this package that the file imports (relative imports resolved)."""
    with open(path, "rb") as f:
        tree = ast.parse(f.read(), path)
    package = module if path.endswith("__init__.py") else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)  # `from pkg import module`
    return {name for name in found if _source_file(name)}


def _read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def sources(module: str) -> dict[str, bytes]:
    """module name -> source of `module` and of every package module (and package) it imports."""
    seen: dict[str, bytes] = {}
    todo = [module]
    while todo:
        name = todo.pop()
        path = _source_file(name)
        if name in seen or path is None:
            continue
        seen[name] = _read(path)
        parents = {name.rsplit(".", i)[0] for i in range(1, name.count(".") + 1)}  # their __init__ runs too
        todo.extend((_imports(path, name) | parents) - set(seen))
    return seen


@functools.lru_cache(maxsize=None)
def fingerprint(module: str) -> str:
    """sha256 (16 hex digits) over the source of `module` and of the package modules it imports."""
    seen = sources(module)
    if module not in seen:
        raise ValueError(f"{module} is not a module of {ROOT}")
    digest = hashlib.sha256()
    for name in sorted(seen):
        digest.update(name.encode() + b"\0" + hashlib.sha256(seen[name]).digest())
    return digest.hexdigest()[:16]
