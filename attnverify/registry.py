"""The claim registry: ``claims.toml`` names each claim and the functions that decide it.

An entry::

    [[claim]]
    id = "FD-13"
    title = "..."
    seed = "004_830fd89135933577.txt"
    equation = "(13), footnote 5"
    statement = '''\\lambda^* = \\alpha (I + \\alpha\\Sigma)^{-1} z'''
    derivations = ["derivations.cumulant:quadratic_cumulant_solution"]
    checks = ["checks.closed_forms:order_of_13"]
    # or, for a claim that makes no checkable statement:
    # status = "not-checkable"
    # reason = "..."

Adding a claim = one derivation function, one check function, one entry here.

:func:`load_claims` resolves every ``module:function`` reference when it reads the file, so a typo
is a one-line :class:`RegistryError` (exit status 2 from the command line), not a claim that turns
up ``inconclusive`` at the end of a run. It finds the name in the module's source without running
the module, so loading the registry imports neither PyTorch nor any other optional dependency.
"""

from __future__ import annotations

import ast
import functools
import importlib
import importlib.util
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from .validate import InputError

REGISTRY = Path(__file__).with_name("claims.toml")


class RegistryError(InputError):
    """A claims.toml entry that cannot be used: the message names the claim, the ref and the problem."""


@dataclass
class Claim:
    id: str
    title: str
    seed: str
    equation: str
    statement: str
    derivations: list[str] = field(default_factory=list)
    checks: list[str] = field(default_factory=list)
    status: str | None = None  # a fixed status ("not-checkable") with its reason
    reason: str = ""
    family: str = ""
    part: list[dict] = field(default_factory=list)  # [[claim.part]] blocks: id, title, statement, checks (issue 15)

    @property
    def functions(self) -> list[str]:
        return self.derivations + self.checks


def load_claims(path: Path | None = None) -> list[Claim]:
    """The claims of ``path`` (default :data:`REGISTRY`), every ref checked; RegistryError if one is bad."""
    path = Path(path or REGISTRY)
    data = tomllib.loads(path.read_text())
    claims = [Claim(**entry) for entry in data["claim"]]
    ids = [c.id for c in claims]
    dup = {i for i in ids if ids.count(i) > 1}
    if dup:
        raise ValueError(f"duplicate claim IDs in {path.name}: {sorted(dup)}")
    for c in claims:
        c.family = c.family or c.id.split("-")[0]
        for ref in c.functions:
            problem = ref_problem(ref)
            if problem:
                raise RegistryError(f"{path.name}: claim {c.id}: {ref!r}: {problem}")
    return claims


@functools.cache
def _top_level_names(module: str) -> frozenset[str] | str:
    """Names a module defines or imports at top level, read from its source; or why it cannot be read."""
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError) as e:
        return f"cannot find module {module} ({e})"
    if spec is None or not spec.origin or not spec.origin.endswith(".py"):
        return f"no module {module}"
    tree = ast.parse(Path(spec.origin).read_text(), spec.origin)
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
    return frozenset(names)


def ref_problem(ref: str) -> str | None:
    """Why ``ref`` ('package.module:function') names no function, or None if it does."""
    module, sep, name = ref.partition(":")
    if not sep or not module or not name.isidentifier():
        return "not of the form 'package.module:function'"
    names = _top_level_names(module)
    if isinstance(names, str):
        return names
    if name not in names:
        return f"module {module} defines no {name}"
    return None


def resolve(ref: str) -> Callable:
    """'package.module:function' -> the function."""
    module, _, name = ref.partition(":")
    return getattr(importlib.import_module(module), name)
