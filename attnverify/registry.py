"""The claim registry: ``claims.toml`` names each claim and the functions that decide it.

An entry::

    [[claim]]
    id = "FD-13"
    title = "..."
    seed = "004_830fd89135933577.txt"
    equation = "(13), footnote 5"
    statement = '''\\lambda^* = \\alpha (I + \\alpha\\Sigma)^{-1} z'''
    derivations = ["derivations.cumulant:quadratic_cumulant_solution"]
    checks = ["checks.closed_forms:order_13"]
    # or, for a claim that makes no checkable statement:
    # status = "not-checkable"
    # reason = "..."

Adding a claim = one derivation function, one check function, one entry here.
"""

from __future__ import annotations

import importlib
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

REGISTRY = Path(__file__).with_name("claims.toml")


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


def load_claims(path: Path = REGISTRY) -> list[Claim]:
    data = tomllib.loads(path.read_text())
    claims = [Claim(**entry) for entry in data["claim"]]
    ids = [c.id for c in claims]
    dup = {i for i in ids if ids.count(i) > 1}
    if dup:
        raise ValueError(f"duplicate claim IDs in {path.name}: {sorted(dup)}")
    for c in claims:
        c.family = c.family or c.id.split("-")[0]
    return claims


def resolve(ref: str) -> Callable:
    """'package.module:function' -> the function."""
    module, _, name = ref.partition(":")
    return getattr(importlib.import_module(module), name)
