"""What a derivation or a numeric check hands back to the engine.

A derivation (``derivations/``) or a check (``checks/``) is a plain function
returning an :class:`Evidence`.  The engine merges the evidence of a claim's
functions and decides the claim's status from the checks alone:

* every check ran and passed            -> ``verified``
* a check ran and did not pass          -> ``refuted``
* a function raised :class:`Inconclusive` (or crashed) -> ``inconclusive``

So a check must be a real comparison that can fail: its ``value`` is what was
measured, its ``tolerance`` the bound it is held to, and ``why`` says why that
bound is the right one.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import sympy as sp


class Inconclusive(Exception):
    """Raised by a derivation or check that could not decide (solver failed, dependency missing)."""


@dataclass
class Check:
    name: str
    method: str  # "symbolic", "scipy", "cvxpy", "newton", "quadrature", ...
    metric: str  # what is measured, in words or as a formula
    value: Any  # the measured value (float, or "0" for a symbolic residual)
    tolerance: Any  # the bound; "exact" where no deviation is allowed (symbolic identities, counts of failures)
    passed: bool
    why: str = ""  # why the tolerance is right

    def as_dict(self) -> dict:
        d = asdict(self)
        if isinstance(d["value"], (float, np.floating)):
            v = float(d["value"])
            # JSON has no NaN/inf: a non-finite measurement is kept, as text
            d["value"] = float(f"{v:.6e}") if np.isfinite(v) else str(v)
        d["passed"] = bool(d["passed"])
        return d


@dataclass
class Step:
    """One line of a derivation: what was done, and its result as LaTeX."""

    text: str
    latex: str = ""


@dataclass
class Erratum:
    source: str  # seed file
    equation: str  # equation number / location
    printed: str  # LaTeX as printed
    corrected: str  # LaTeX as derived
    note: str = ""


@dataclass
class Figure:
    path: str  # PNG path, relative to docs/
    caption: str


@dataclass
class Table:
    caption: str
    header: list[str]
    rows: list[list[Any]]


@dataclass
class Evidence:
    checks: list[Check] = field(default_factory=list)
    steps: list[Step] = field(default_factory=list)
    errata: list[Erratum] = field(default_factory=list)
    figures: list[Figure] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    finding: str = ""  # for a refuted claim: what is true instead

    # -- building helpers -------------------------------------------------
    def step(self, text: str, expr: Any = None) -> Any:
        """Record a derivation step; ``expr`` may be a SymPy object or a LaTeX string."""
        self.steps.append(Step(text, as_latex(expr) if expr is not None else ""))
        return expr

    def failed(self) -> list[str]:
        """Names of the checks that did not pass."""
        return [c.name for c in self.checks if not c.passed]

    def check(self, name, method, metric, value, tolerance, passed, why="") -> bool:
        self.checks.append(Check(name, method, metric, value, tolerance, bool(passed), why))
        return bool(passed)

    def identity(self, name: str, lhs: Any, rhs: Any, metric: str = "", simplify=None) -> bool:
        """Symbolic check that ``lhs - rhs`` simplifies to 0; records the residual."""
        residual = (simplify or full_simplify)(sp.sympify(lhs) - sp.sympify(rhs))
        ok = residual == 0
        self.check(
            name,
            "symbolic",
            metric or f"simplify({as_latex(lhs)} - ({as_latex(rhs)}))",
            str(residual),
            "exact",
            ok,
            "a symbolic identity holds exactly or not at all",
        )
        return ok

    def extend(self, other: "Evidence") -> None:
        self.checks += other.checks
        self.steps += other.steps
        self.errata += other.errata
        self.figures += other.figures
        self.tables += other.tables
        self.notes += other.notes
        if other.finding:
            self.finding = (self.finding + " " + other.finding).strip()


def as_latex(expr: Any) -> str:
    if isinstance(expr, str):
        return expr
    if isinstance(expr, (tuple, list)) and len(expr) == 2 and not isinstance(expr[0], str):
        return f"{sp.latex(expr[0])} = {sp.latex(expr[1])}"
    if isinstance(expr, sp.Equality):
        return f"{sp.latex(expr.lhs)} = {sp.latex(expr.rhs)}"
    return sp.latex(expr)


def full_simplify(expr):
    """simplify, then expand and simplify again (catches cancellations simplify alone misses)."""
    e = sp.simplify(expr)
    if e == 0:
        return e
    e = sp.simplify(sp.expand(e))
    return e
