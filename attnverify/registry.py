"""The claim registry: ``claims.toml`` names each claim and the functions that decide it.

An entry::

    [[claim]]
    id = "FD-13"
    title = "..."
    seed = "004_830fd89135933577.txt"
    equation = "(13), footnote 5"
    statement = '''\\lambda^* = \\alpha (I + \\alpha\\Sigma)^{-1} z'''
    reading = "what our reading adds to the paper's words, and why (one sentence)"
    derivations = ["attnverify.derivations.cumulant:quadratic_cumulant_solution"]
    checks = ["attnverify.checks.closed_forms:order_of_13"]
    # or, for a claim that makes no checkable statement:
    # status = "not-checkable"
    # reason = "..."

    [claim.quote]                 # the paper's own words (verbatim, up to whitespace; tests/test_quotes.py)
    source = "004_830fd89135933577.txt"
    location = "Sec 6, (13)"
    text = '''verbatim words'''

    [[claim.part]]                # a compound claim, split (CLAIMS.md, "What a claim's status judges")
    id = "FD-13/part"
    title = "..."
    statement = '''...'''
    checks = ["key-1", "key-2"]   # keys of the claim's checks that decide this part
    # status = "not-checkable"    # a part that makes no precise statement, with its reason
    # reason = "..."

Keys go before the sub-tables (TOML). ``statement`` is our reading ("made precise as"); ``quote``
is what the paper says. Adding a claim = one derivation function, one check function, one entry here.

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
FIXED_STATUSES = ("not-checkable",)


@dataclass
class Quote:
    """The paper's own words: ``text`` occurs verbatim (up to whitespace) in ``source``."""

    source: str
    location: str
    text: str


@dataclass
class Part:
    """One assertion of a compound claim, decided by the claim's checks named in ``checks`` (keys).

    A part with no checks is ``inconclusive`` ("not checked yet"); ``status`` fixes a part as
    ``not-checkable`` (then ``reason`` says why)."""

    id: str
    title: str
    statement: str
    checks: list[str] = field(default_factory=list)
    status: str | None = None
    reason: str = ""


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
    reading: str = ""  # what our reading (``statement``) adds to the paper's words
    quote: Quote | None = None
    parts: list[Part] = field(default_factory=list)

    @property
    def functions(self) -> list[str]:
        return self.derivations + self.checks


def _claim(entry: dict) -> Claim:
    entry = dict(entry)
    where = entry.get("id", "?")
    quote = entry.pop("quote", None)
    parts = entry.pop("part", [])
    try:
        c = Claim(**entry)
        c.quote = Quote(**quote) if quote is not None else None
        c.parts = [Part(**p) for p in parts]
    except TypeError as e:  # a missing or unknown field
        raise RegistryError(f"claims.toml, claim {where}: {e}") from None
    if c.parts and c.status:
        raise RegistryError(f"claims.toml, claim {c.id}: a claim with parts takes its status from them; "
                         "fix the status on the part instead")
    pids = [p.id for p in c.parts]
    for p in c.parts:
        if not p.id.startswith(c.id + "/"):
            raise RegistryError(f"claims.toml, claim {c.id}: part ID {p.id!r} must start with '{c.id}/'")
        if pids.count(p.id) > 1:
            raise RegistryError(f"claims.toml, claim {c.id}: duplicate part ID {p.id!r}")
        if p.status is not None and p.status not in FIXED_STATUSES:
            raise RegistryError(f"claims.toml, part {p.id}: a fixed status must be one of {FIXED_STATUSES}")
    for s in [c.status] + [p.status for p in c.parts]:
        if s is not None and s not in FIXED_STATUSES:
            raise RegistryError(f"claims.toml, claim {c.id}: a fixed status must be one of {FIXED_STATUSES}")
    return c


def load_claims(path: Path | None = None) -> list[Claim]:
    """The claims of ``path`` (default :data:`REGISTRY`), every ref checked; RegistryError if one is bad."""
    path = Path(path or REGISTRY)
    data = tomllib.loads(path.read_text())
    claims = [_claim(entry) for entry in data["claim"]]
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
