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

import re
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import sympy as sp


class Inconclusive(Exception):
    """Raised by a derivation or check that could not decide (solver failed, dependency missing)."""


SENSITIVITY_FIELDS = ("parameter", "declared_range", "why_this_range", "flips_at", "verdict_over_range")


def sensitivity_problem(check: "Check") -> str:
    """Why a judgement check's ``sensitivity`` is malformed ("" if it is fine, or the check is numerical).

    A judgement check without a declared range and its verdict over it is an engine error: its
    verdict could rest on a threshold nobody tested (CLAIMS.md, "Judgement calls")."""
    if check.threshold_kind != "judgement":
        return ""
    s = check.sensitivity
    if not isinstance(s, dict):
        return f"judgement check {check.key!r} carries no sensitivity"
    missing = [f for f in SENSITIVITY_FIELDS if f not in s]
    if missing:
        return f"judgement check {check.key!r}: sensitivity lacks {', '.join(missing)}"
    r = s["declared_range"]
    if not (isinstance(r, (list, tuple)) and len(r) == 2 and float(r[0]) < float(r[1])):
        return f"judgement check {check.key!r}: declared_range must be [lo, hi] with lo < hi"
    if s["verdict_over_range"] not in ("stable", "flips"):
        return f"judgement check {check.key!r}: verdict_over_range must be 'stable' or 'flips'"
    if (s["verdict_over_range"] == "flips") != (s["flips_at"] is not None):
        return f"judgement check {check.key!r}: flips_at must be given exactly when the verdict flips"
    if not s["why_this_range"]:
        return f"judgement check {check.key!r}: the declared range needs a reason"
    return ""


class DuplicateKey(ValueError):
    """Two checks of one claim share a key: regress, the tests and the report could not tell them apart."""


NUMERICAL_CLASSES = ("exact", "roundoff", "iterative", "statistical", "measured")
THRESHOLD_KINDS = ("numerical", "judgement")
EVIDENCE_KINDS = ("proof", "certificate", "float", "statistical")


def slug(text: str) -> str:
    """A check key from a text: lower case, runs of other characters as one '-' (at most 60)."""
    s = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return s[:60].rstrip("-") or "check"


@dataclass
class Check:
    """One comparison that can fail.

    ``key`` is the check's stable identity (a slug, unique within its claim): regress, the tests
    and the report match checks by it, so rewording ``name`` changes nothing. The class fields
    say how to read the value: ``numerical_class`` how it may drift across machines (issue 19,
    see :mod:`attnverify.regress`), ``threshold_kind`` whether the tolerance comes from error
    analysis or reads words (a judgement call, which then carries ``sensitivity``), and
    ``evidence`` how strong the support is (proof, certificate, float, statistical).
    """

    name: str
    method: str  # "symbolic", "scipy", "cvxpy", "newton", "quadrature", ...
    metric: str  # what is measured, in words or as a formula
    value: Any  # the measured value (float, or "0" for a symbolic residual)
    tolerance: Any  # the bound; "exact" where no deviation is allowed (symbolic identities, counts of failures)
    passed: bool
    why: str = ""  # why the tolerance is right
    key: str = ""
    numerical_class: str = ""  # one of NUMERICAL_CLASSES
    threshold_kind: str = "numerical"  # one of THRESHOLD_KINDS
    evidence: str = ""  # one of EVIDENCE_KINDS
    sensitivity: dict | None = None  # judgement checks: parameter, declared_range, why_this_range, flips_at, ...
    latex: dict | None = None  # symbolic checks: {"lhs", "rhs", "residual"} as LaTeX

    def __post_init__(self):
        if not self.key:
            raise ValueError(f"check {self.name!r} has no key: every check needs a stable key (a short slug)")
        if not self.numerical_class:
            self.numerical_class = "exact" if self.method == "symbolic" else ""
        if not self.evidence:
            self.evidence = "proof" if self.method == "symbolic" else ""

    def as_dict(self) -> dict:
        d = asdict(self)
        if isinstance(d["value"], (float, np.floating)):
            v = float(d["value"])
            # JSON has no NaN/inf: a non-finite measurement is kept, as text
            d["value"] = float(f"{v:.6e}") if np.isfinite(v) else str(v)
        if isinstance(d["tolerance"], np.floating):
            d["tolerance"] = float(d["tolerance"])
        d["passed"] = bool(d["passed"])
        for k in ("sensitivity", "latex"):
            if d[k] is None:
                del d[k]
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
    # empirical claims: [{"transformation", "leaves_unchanged", "parameter", "values": [{"parameter", "metric"}],
    # "conclusion"}]: a transformation that leaves the model unchanged, and the metric along it
    invariance: list[dict] = field(default_factory=list)
    finding: str = ""  # for a refuted claim: what is true instead
    part_findings: dict = field(default_factory=dict)  # part ID -> what is true of that part (issue 15)

    # -- building helpers -------------------------------------------------
    def step(self, text: str, expr: Any = None) -> Any:
        """Record a derivation step; ``expr`` may be a SymPy object or a LaTeX string."""
        self.steps.append(Step(text, as_latex(expr) if expr is not None else ""))
        return expr

    def failed(self) -> list[str]:
        """Keys of the checks that did not pass (stable across rewording of their names)."""
        return [c.key for c in self.checks if not c.passed]

    def failed_names(self) -> list[str]:
        """Names of the checks that did not pass (for messages)."""
        return [c.name for c in self.checks if not c.passed]

    def check(self, name, method, metric, value, tolerance, passed, why="", *, key, **fields) -> bool:
        """Record a check whose ``passed`` the caller decides (a compound condition, or a judgement
        call: then pass ``threshold_kind="judgement"`` and ``sensitivity``). Prefer
        :meth:`at_most`, :meth:`equal` or :meth:`within`, which compute ``passed``."""
        self._add(Check(name, method, metric, value, tolerance, bool(passed), why, key=key, **fields))
        return bool(passed)

    def _add(self, check: Check) -> None:
        if any(c.key == check.key for c in self.checks):
            raise DuplicateKey(f"duplicate check key {check.key!r} ({check.name!r}): keys must be unique within a claim")
        self.checks.append(check)

    # -- comparisons that compute ``passed`` --------------------------------------------------
    def at_most(self, key, name, value, tol, why, *, method, metric="", **fields) -> bool:
        """``value <= tol`` (a NaN value fails). A bound of 0 (no deviation allowed, e.g. a count of
        violations or an exact minimum) is recorded as "exact", the project's word for it."""
        ok = bool(np.all(np.asarray(value, dtype=float) <= tol)) if _finite_or_nan(value) else False
        shown = "exact" if isinstance(tol, (int, float)) and not isinstance(tol, bool) and tol == 0 else tol
        return self._record(key, name, method, metric, value, shown, ok, why, fields)

    def at_least(self, key, name, value, bound, why, *, method, metric="", strict=False, shown=None,
                 **fields) -> bool:
        """``value >= bound`` (``value > bound`` if ``strict``); the tolerance is recorded as
        ``">= bound"`` (``"> bound"``), or as ``shown`` where a check has always written it otherwise
        (``"> 1e-3"`` rather than ``"> 0.001"``)."""
        if _finite_or_nan(value):
            v = np.asarray(value, dtype=float)
            ok = bool(np.all(v > bound if strict else v >= bound))
        else:
            ok = False
        text = shown if shown is not None else f"{'>' if strict else '>='} {bound:g}"
        return self._record(key, name, method, metric, value, text, ok, why, fields)

    def equal(self, key, name, value, expected, why, *, method, metric="", shown="exact", **fields) -> bool:
        """``value == expected`` exactly (counts, integers, exact rationals, text); tolerance "exact"
        (or ``shown``, e.g. the expected count)."""
        ok = bool(value == expected)
        fields.setdefault("numerical_class", "exact")
        return self._record(key, name, method, metric, value, shown, ok, why, fields)

    def within(self, key, name, value, target, tol, why, *, method, metric="", shown=None, **fields) -> bool:
        """``|value - target| <= tol``; the tolerance is recorded as ``"target ± tol"`` (or ``shown``)."""
        ok = _finite_or_nan(value) and abs(float(value) - float(target)) <= tol
        text = shown if shown is not None else f"{target:g} ± {tol:g}"
        return self._record(key, name, method, metric, value, text, bool(ok), why, fields)

    def judged(self, key, name, value, threshold, why, *, parameter, declared_range, why_this_range, method,
               verdict_at=None, kind="at_most", grid=21, log=False, bisect=40, metric="", tolerance=None,
               **fields) -> bool:
        r"""A judgement call ("small", "close", a setup the paper does not fix), with its sensitivity.

        The verdict at the nominal ``threshold`` is the check's ``passed``; the verdict is also evaluated
        over ``declared_range`` = [lo, hi] (declared in the code before the run; ``why_this_range`` says
        why it is the plausible range of the judgement ``parameter``), and the check records
        ``sensitivity`` = {parameter, declared_range, why_this_range, flips_at, verdict_over_range}.

        ``verdict_at(x) -> bool`` is the verdict were the judgement parameter ``x``. By default the
        parameter is the threshold itself and the verdict is ``value <= x`` (``kind="at_most"``) or
        ``value >= x`` (``kind="at_least"``): monotone in ``x``, so the flip point is exactly ``x = value``.
        Otherwise the verdict is evaluated on ``grid`` points spanning the range (geometric if ``log``)
        plus the nominal, and each change between neighbours is located by ``bisect`` bisection steps;
        ``flips_at`` is the crossing nearest the nominal threshold (``None`` if the verdict is stable).
        ``tolerance``: what to record as the check's tolerance when the judgement parameter is not the
        bound on ``value`` itself (a setup such as a scale, with ``verdict_at``); default the threshold.
        """
        lo, hi = (float(v) for v in declared_range)
        if not (lo < hi and lo <= float(threshold) <= hi):
            raise ValueError(f"judgement check {key!r}: declared range [{lo:g}, {hi:g}] must contain the "
                             f"threshold {threshold:g}")
        if not why_this_range or not parameter:
            raise ValueError(f"judgement check {key!r}: the declared range needs its parameter and a reason")
        default = verdict_at is None
        if default:
            if kind not in ("at_most", "at_least"):
                raise ValueError(f"judgement check {key!r}: kind must be 'at_most' or 'at_least'")
            v = float(value) if _finite_or_nan(value) else float("nan")
            verdict_at = (lambda x: v <= x) if kind == "at_most" else (lambda x: v >= x)
        xs = np.geomspace(lo, hi, grid) if log else np.linspace(lo, hi, grid)
        xs = np.unique(np.append(xs, float(threshold)))
        vs = [bool(verdict_at(float(x))) for x in xs]
        crossings = []
        for a, b, va, vb in zip(xs[:-1], xs[1:], vs[:-1], vs[1:]):
            if va == vb:
                continue
            if default:  # exact: the comparison changes at x = value
                crossings.append(float(value))
                continue
            for _ in range(bisect):
                m = 0.5 * (a + b)
                if bool(verdict_at(float(m))) == va:
                    a = m
                else:
                    b = m
            crossings.append(float(0.5 * (a + b)))
        flips_at = min(crossings, key=lambda c: abs(c - float(threshold))) if crossings else None
        ok = bool(verdict_at(float(threshold)))
        sens = {"parameter": parameter, "declared_range": [lo, hi], "nominal": float(threshold),
                "why_this_range": why_this_range,
                "flips_at": float(f"{flips_at:.6e}") if flips_at is not None else None,
                "verdict_over_range": "flips" if crossings else "stable"}
        tol = threshold if kind == "at_most" or not default else f">= {threshold:g}"
        tol = tol if tolerance is None else tolerance
        fields.update(threshold_kind="judgement", sensitivity=sens)
        return self._record(key, name, method, metric, value, tol, ok, why, fields)

    def part_finding(self, part_id: str, text: str) -> None:
        """What is true of one part of a compound claim (shown in the part's row; issue 15)."""
        self.part_findings[part_id] = (self.part_findings.get(part_id, "") + " " + text).strip()

    def _record(self, key, name, method, metric, value, tol, ok, why, fields) -> bool:
        self._add(Check(name, method, metric, value, tol, ok, why, key=key, **fields))
        return ok

    def identity(self, name: str, lhs: Any, rhs: Any, metric: str = "", simplify=None, *, key: str) -> bool:
        """Symbolic check that ``lhs - rhs`` simplifies to 0; records both sides and the residual."""
        residual = (simplify or full_simplify)(sp.sympify(lhs) - sp.sympify(rhs))
        ok = residual == 0
        self._add(Check(
            name, "symbolic",
            metric or f"simplify({as_latex(lhs)} - ({as_latex(rhs)}))",
            str(residual), "exact", ok,
            "a symbolic identity holds exactly or not at all",
            key=key, numerical_class="exact", evidence="proof",
            latex={"lhs": as_latex(lhs), "rhs": as_latex(rhs), "residual": as_latex(residual)},
        ))
        return ok

    def extend(self, other: "Evidence") -> None:
        for c in other.checks:
            self._add(c)
        self.steps += other.steps
        self.errata += other.errata
        self.figures += other.figures
        self.tables += other.tables
        self.notes += other.notes
        self.invariance += other.invariance
        if other.finding:
            self.finding = (self.finding + " " + other.finding).strip()
        for pid, text in other.part_findings.items():
            self.part_finding(pid, text)


def _finite_or_nan(value) -> bool:
    """False for a NaN (which must fail a comparison, not pass it by accident)."""
    try:
        return not bool(np.any(np.isnan(np.asarray(value, dtype=float))))
    except (TypeError, ValueError):
        return False


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
