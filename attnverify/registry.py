"""The claim registry: ``claims.toml`` names each claim and the functions that decide it.

An entry::

    [[claim]]
    id = "FD-13"
    title = "..."
    seed = "004_830fd89135933577.txt"
    equation = "(13), footnote 5"
    statement = '''\\lambda^* = \\alpha (I + \\alpha\\Sigma)^{-1} z'''
    reading = "what our reading adds to the paper's words, and why (one sentence)"
    derivations = ["derivations.cumulant:quadratic_cumulant_solution"]
    checks = ["checks.closed_forms:order_13"]
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
"""

from __future__ import annotations

import importlib
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

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
        raise ValueError(f"claims.toml, claim {where}: {e}") from None
    if c.parts and c.status:
        raise ValueError(f"claims.toml, claim {c.id}: a claim with parts takes its status from them; "
                         "fix the status on the part instead")
    pids = [p.id for p in c.parts]
    for p in c.parts:
        if not p.id.startswith(c.id + "/"):
            raise ValueError(f"claims.toml, claim {c.id}: part ID {p.id!r} must start with '{c.id}/'")
        if pids.count(p.id) > 1:
            raise ValueError(f"claims.toml, claim {c.id}: duplicate part ID {p.id!r}")
        if p.status is not None and p.status not in FIXED_STATUSES:
            raise ValueError(f"claims.toml, part {p.id}: a fixed status must be one of {FIXED_STATUSES}")
    for s in [c.status] + [p.status for p in c.parts]:
        if s is not None and s not in FIXED_STATUSES:
            raise ValueError(f"claims.toml, claim {c.id}: a fixed status must be one of {FIXED_STATUSES}")
    return c


def load_claims(path: Path = REGISTRY) -> list[Claim]:
    data = tomllib.loads(path.read_text())
    claims = [_claim(entry) for entry in data["claim"]]
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
