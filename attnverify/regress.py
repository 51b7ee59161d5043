"""Compare a fresh run with the committed baseline ``docs/results.json`` (``make regress``).

What counts as a regression, claim by claim (matched by ID) and check by check (matched by
name, and by order among checks of the same name):

* the claim's status changed, or a claim of the baseline is no longer registered;
* a check stopped passing, started passing, or is no longer recorded;
* a check's tolerance changed (loosening a bound is exactly what a regression check must see);
* a check's value moved: a number by more than its drift tolerance (:func:`drift_tolerance`,
  which states it for each check from the check's own record: its value, tolerance and method,
  and whether the baseline was made in the same numerical environment), anything else (a
  symbolic residual, a count, a text) at all;
* an erratum appeared or disappeared; a figure the claim attached is no longer attached.

Not compared, by design: everything under ``run`` (wall time, versions, platform, what was
cached), each claim's ``wall_time_s``, and prose (``reason``, ``why``, ``metric``, step text),
which may be reworded without changing a result. A claim or check that is new (not in the
baseline) is listed but is not a failure: the baseline grows by re-running ``make verify``.

Why a small differ and not ``pytest-regressions`` (``num_regression``/``data_regression``):
those store their own baseline files next to a test module, compare equal-length numeric
columns (num) or the whole structure exactly (data), and run only inside pytest. Here the
baseline is the report's own ``results.json``, whose rows are heterogeneous (symbolic residuals
as text, floats, integers, tolerances like ``"1 ± 0.05"``), whose set of claims grows, and which
``make regress`` must compare outside pytest with a diff naming claim and check. Matching by
claim ID and check name and applying one drift rule is about a hundred lines.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass

from .evidence import slug

# -- the drift rule ----------------------------------------------------------------------------
# Same seed, same pinned versions, one BLAS thread (attnverify.cli pins it) and the same CPU: a
# rerun performs the same float64 operations in the same order, so a value is reproduced bit for
# bit (measured: two runs agree in every stored digit). What remains is (i) rounding: results.json
# stores 7 significant digits (Check.as_dict), so a value on a rounding boundary may flip its last
# digit, and (ii) for values that ARE round-off (a duality gap of 3e-16 held to 1e-12), a few ulps
# of the quantities they were computed from.
DRIFT_REL = 1e-6  # (i): two units of the 7th significant digit
DRIFT_OF_TOL = 1e-3  # (ii): a thousandth of the check's own tolerance: far above round-off
# residuals, far below anything the check itself can register (its whole scale is the tolerance)
#
# On another CPU (another fingerprint in run.environment: other SIMD loops and BLAS kernels, or
# other versions) round-off differs, and an iterative solver that stops at a tolerance
# (SciPy's minimisers, CVXPY/Clarabel) turns that into a different stopping point: measured by
# forcing another OpenBLAS kernel, EOT-KKT's SciPy distance ratio moved from 0.19 to 0.03 and
# FD-MEM's radius error by 3e-5, while every Newton, quadrature, closed-form and symbolic value
# kept all its digits. So, across environments only, the value of a check whose method names such
# a solver may move by its check's tolerance (the accuracy the check grants that solver); its
# `passed` and everything else are compared as on the same machine.
SOLVER_LIMITED = re.compile(r"scipy|cvxpy|clarabel|\bscs\b|osqp|ecos|highs|slsqp|l-?bfgs|minimi[sz]|"
                            r"sinkhorn|\bpot\b|\bsgd\b|adam", re.I)
_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def tolerance_scale(tol) -> float:
    """The size of a check's tolerance: the number itself, or for text such as ``"1 ± 0.05"`` or
    ``">= -1"`` the smallest non-zero number in it (0 for ``"exact"`` or ``"> 0"``)."""
    if _is_number(tol):
        return abs(float(tol)) if math.isfinite(tol) else 0.0
    nums = [abs(float(x)) for x in _NUMBER.findall(str(tol))]
    nums = [x for x in nums if x > 0 and math.isfinite(x)]
    return min(nums) if nums else 0.0


def drift_tolerance(check: dict, same_environment: bool = True) -> tuple[float | None, str]:
    """How far a check's numeric value may move from the baseline before it is a regression, and
    the rule that gave it. None means "must be equal": integers, booleans and text (symbolic
    residuals) are exact. Same environment: ``max(DRIFT_REL |old|, DRIFT_OF_TOL tolerance)``;
    another environment and a solver-limited method: the check's tolerance (inf if it has none)."""
    v = check.get("value")
    if not isinstance(v, float):
        return None, "must be equal (exact value)"
    scale = tolerance_scale(check.get("tolerance"))
    tight = max(DRIFT_REL * abs(v), DRIFT_OF_TOL * scale)
    if not same_environment and SOLVER_LIMITED.search(str(check.get("method", ""))):
        allowed = max(tight, scale) if scale else math.inf
        return allowed, (f"allowed drift {allowed:.2g} = the tolerance: {check.get('method')} stops at a "
                         "tolerance and the baseline was made in another environment")
    return tight, (f"allowed drift {tight:.2g} = max({DRIFT_REL:g} x |old|, {DRIFT_OF_TOL:g} x tolerance "
                   f"{_show(check.get('tolerance'))})")


# -- the comparison ----------------------------------------------------------------------------
@dataclass
class Change:
    claim: str
    what: str  # "status", a check's name, "errata", "figures", "claim"
    field: str  # "status", "passed", "value", "tolerance", "present", ...
    old: object
    new: object
    tolerance: str = ""  # for a value: the allowed drift and where it comes from
    failure: bool = True

    def line(self) -> str:
        where = self.claim if self.what in ("status", "claim") else f"{self.claim} | {self.what}"
        text = f"{where} | {self.field}: {_show(self.old)} -> {_show(self.new)}"
        return text + (f" | {self.tolerance}" if self.tolerance else "")


def _show(v) -> str:
    if isinstance(v, bool):
        return "yes" if v else "NO"
    if isinstance(v, float):
        return f"{v:.7g}"
    s = str(v)
    return s if len(s) <= 120 else s[:117] + "..."


def _keyed_checks(checks: list[dict]) -> dict[tuple[str, int], dict]:
    """Checks keyed by (key, k), so rewording a check's name is no regression. A baseline written
    before checks had keys is keyed by the slug of the name (what Check derived then); k counts
    repeats, which only such an old baseline can have."""
    seen, out = Counter(), {}
    for ch in checks:
        key = ch.get("key") or slug(ch["name"])
        out[(key, seen[key])] = ch
        seen[key] += 1
    return out


def _values_differ(old: dict, new: dict, same_environment: bool) -> tuple[bool, str]:
    tol, why = drift_tolerance(old, same_environment)
    a, b = old.get("value"), new.get("value")
    if tol is not None and _is_number(b):
        return abs(float(b) - a) > tol, why
    return a != b or type(a) is not type(b), "must be equal (exact value)"


def compare_claim(old: dict, new: dict, same_environment: bool = True) -> list[Change]:
    cid, out = old["id"], []
    if old["status"] != new["status"]:
        out.append(Change(cid, "status", "status", old["status"], new["status"]))
    o, n = _keyed_checks(old.get("checks", [])), _keyed_checks(new.get("checks", []))
    for k, och in o.items():
        name = och["name"] + (f" (#{k[1] + 1})" if k[1] else "")
        nch = n.get(k)
        if nch is None:
            out.append(Change(cid, name, "check", "recorded", "no longer recorded"))
            continue
        if bool(och["passed"]) != bool(nch["passed"]):
            out.append(Change(cid, name, "passed", bool(och["passed"]), bool(nch["passed"])))
        if och.get("tolerance") != nch.get("tolerance"):
            out.append(Change(cid, name, "tolerance", och.get("tolerance"), nch.get("tolerance")))
        differ, why = _values_differ(och, nch, same_environment)
        if differ:
            out.append(Change(cid, name, "value", och.get("value"), nch.get("value"), why))
    for k in n.keys() - o.keys():
        out.append(Change(cid, n[k]["name"], "check", "absent", "new check", failure=False))
    oe = {_erratum_key(e) for e in old.get("errata", [])}
    ne = {_erratum_key(e) for e in new.get("errata", [])}
    for e in sorted(oe - ne):
        out.append(Change(cid, "errata", "erratum", f"{e[0]} {e[1]}: {e[2]} -> {e[3]}", "no longer found"))
    for e in sorted(ne - oe):
        out.append(Change(cid, "errata", "erratum", "absent", f"{e[0]} {e[1]}: {e[2]} -> {e[3]}"))
    of = {f["path"] for f in old.get("figures", [])}
    nf = {f["path"] for f in new.get("figures", [])}
    for f in sorted(of - nf):
        out.append(Change(cid, "figures", "figure", f, "no longer attached"))
    return out


def _erratum_key(e: dict) -> tuple:
    return (e.get("source", ""), e.get("equation", ""), e.get("printed", ""), e.get("corrected", ""))


def _with_errata(res: dict) -> dict[str, dict]:
    """Claims by ID, each with its errata (results.json keeps errata in one list, tagged by claim)."""
    claims = {c["id"]: dict(c, errata=[]) for c in res.get("claims", [])}
    for e in res.get("errata", []):
        if e.get("claim") in claims:
            claims[e["claim"]]["errata"].append(e)
    return claims


def same_environment(baseline: dict, fresh: dict) -> bool:
    fp = baseline.get("run", {}).get("environment")
    return fp is not None and fp == fresh.get("run", {}).get("environment")


def compare(baseline: dict, fresh: dict, ran: set[str] | None = None, registered: set[str] | None = None
            ) -> list[Change]:
    """All changes from ``baseline`` to ``fresh`` (both results.json dicts).

    ``ran``: the claim IDs the fresh run was asked to run (None = all); baseline claims outside it
    are not compared. ``registered``: the IDs in the registry now, to tell a removed claim apart
    from one that was merely not selected."""
    old, new = _with_errata(baseline), _with_errata(fresh)
    same, out = same_environment(baseline, fresh), []
    for cid, oc in old.items():
        if cid in new:
            out += compare_claim(oc, new[cid], same)
        elif registered is not None and cid not in registered:
            out.append(Change(cid, "claim", "claim", "in the baseline", "no longer registered"))
        elif ran is None or cid in ran:
            out.append(Change(cid, "claim", "claim", "in the baseline", "not reported by this run"))
    for cid in new.keys() - old.keys():
        out.append(Change(cid, "claim", "claim", "absent", f"new claim ({new[cid]['status']})", failure=False))
    return out


def n_checks(res: dict, ids) -> int:
    return sum(len(c.get("checks", [])) for c in res.get("claims", []) if c["id"] in ids)


def render(changes: list[Change], baseline_name: str, n_claims: int, n_checked: int,
           same: bool = True) -> str:
    fails = [c for c in changes if c.failure]
    notes = [c for c in changes if not c.failure]
    head = (f"regress: {len(fails)} regression{'s' * (len(fails) != 1)} against {baseline_name} "
            f"({n_claims} claims, {n_checked} checks compared)")
    lines = [head]
    if not same:
        lines.append("note: the baseline was made in another numerical environment (run.environment "
                     "differs: CPU, versions or BLAS settings), so values of solver-limited checks "
                     "(SciPy, CVXPY, ...) may move within their tolerance; everything else is compared as usual")
    if fails:
        lines += ["", "claim | check | field: old -> new | tolerance"] + ["  " + c.line() for c in fails]
        lines += ["", "If the change is intended, regenerate the baseline with `make verify` and commit docs/."]
    if notes:
        lines += ["", "not in the baseline (not a failure; `make verify` adds them):"]
        lines += ["  " + c.line() for c in notes]
    return "\n".join(lines)
