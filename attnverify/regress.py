r"""Compare a fresh run with the committed baseline (``make regress``).

**The baseline.** In a git checkout the baseline is the committed ``docs/results.json``
(``git show HEAD:docs/results.json``), never the working-tree file, which ``make verify`` rewrites
(a regress right after a verify would otherwise compare a run with itself). ``--baseline FILE``
names another; outside git the working-tree file is used, and the run says so.

**What is compared**, claim by claim (matched by ID) and check by check (matched by the check's
stable ``key``; a record without keys falls back to its name and order among equal names):

* the claim's status (and each part's), or a claim of the baseline that is no longer registered;
* whether each check passed, and whether it is still recorded;
* each check's value and tolerance, by the drift rule of its ``numerical_class`` (below);
* errata that appeared or disappeared, figures no longer attached.

Not compared, by design: everything under ``run`` (wall time, versions, platform, what was
cached), each claim's ``wall_time_s``, and prose (``reason``, ``why``, ``metric``, step text),
which may be reworded without changing a result. A claim or check that is new (not in the
baseline) is listed but is not a failure: the baseline grows by committing a new ``make verify``.

**Drift rules, one per numerical class.** Every check declares its class (``Check.numerical_class``);
regress never guesses it from the method's name. Within one numerical environment (the same
``run.environment`` fingerprint: pinned versions, CPU model and flags, BLAS settings) a rerun
performs the same float operations in the same order, so every class is held as tightly as the
stored digits allow. Across environments each class has one rule, with the argument for it:

``exact``
    symbolic residuals, integers, counts, exact rationals, text. Exact arithmetic does not depend
    on the machine: must be equal, everywhere.
``roundoff``
    a float that is itself round-off (a gap of :math:`3 \cdot 10^{-16}`, a ratio of an error to its bound) held to a
    bound from error analysis. Another CPU sums in another order (other SIMD loops, other BLAS
    kernels), so the round-off is another number below the same bound: the value may move by up
    to the check's tolerance. What can change the verdict is caught by ``passed``, compared as
    always. A tolerance computed at run time from round-off (:math:`k\epsilon\|x\|`) is itself a float
    computed from the data: it follows the same-environment rule, relative :math:`10^{-6}`, on any machine.
``iterative``
    depends on where an iterative method stopped (SciPy's minimisers, CVXPY/Clarabel, Newton,
    Sinkhorn, power iteration, adaptive quadrature, training): round-off moves the stopping point
    anywhere inside the method's tolerance, which is what the check grants it, so the value may
    move by the check's tolerance. A tolerance derived from where the solver stopped (a strong-
    convexity bound :math:`\alpha\|\nabla D\|`) may move by its own size.
``statistical``
    an estimate over random draws with a known error: the draws are seeded and the same on every
    machine; only the round-off of the estimator changes, within the error the tolerance allows:
    the value may move by the check's tolerance.
``measured``
    a timing or anything bound to the environment: excluded from regress (value, tolerance and
    ``passed``), since no rerun reproduces it.

The same-environment rule, for every class but ``exact`` and ``measured``: a value may move by

.. math::
    \max(\mathtt{DRIFT\_REL}\,|v_{\mathrm{old}}|,\ \mathtt{DRIFT\_OF\_TOL} \times \mathrm{tolerance}):

(i) results.json stores 7 significant digits (``Check.as_dict``), so a value on a rounding boundary may
flip its last digit; (ii) a value that is round-off may differ by a few ulps of the quantities it was
computed from, far below its tolerance. A computed tolerance may move by ``DRIFT_REL`` relative. A check
without a class (a baseline from before classes existed) is held to the same-environment rule.

Why a small differ and not ``pytest-regressions`` (``num_regression``/``data_regression``):
those store their own baseline files next to a test module, compare equal-length numeric
columns (num) or the whole structure exactly (data), and run only inside pytest. Here the
baseline is the report's own ``results.json``, whose rows are heterogeneous, whose set of claims
grows, and which ``make regress`` must compare outside pytest with a diff naming claim and check.
"""

from __future__ import annotations

import json
import math
import re
import subprocess
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

DRIFT_REL = 1e-6  # (i): two units of the 7th significant digit
DRIFT_OF_TOL = 1e-3  # (ii): a thousandth of the check's own tolerance: far above round-off
# residuals, far below anything the check itself can register (its whole scale is the tolerance)
CLASSES = ("exact", "roundoff", "iterative", "statistical", "measured")
MOVES_BY_TOLERANCE = ("roundoff", "iterative", "statistical")  # across environments
_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")
BASELINE_PATH = "docs/results.json"


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


def numerical_class(check: dict) -> str:
    """The check's declared class; "" for a record from before classes existed."""
    c = check.get("numerical_class") or ""
    return c if c in CLASSES else ""


def drift_tolerance(check: dict, same_environment: bool = True) -> tuple[float | None, str]:
    """How far a check's value may move from the baseline before it is a regression, and the rule
    that gave it (see the module docstring). None means "must be equal"."""
    v, cls = check.get("value"), numerical_class(check)
    if cls == "exact" or not isinstance(v, float):
        return None, "must be equal (exact value)"
    scale = tolerance_scale(check.get("tolerance"))
    tight = max(DRIFT_REL * abs(v), DRIFT_OF_TOL * scale)
    if not same_environment and cls in MOVES_BY_TOLERANCE:
        allowed = max(tight, scale) if scale else math.inf
        return allowed, (f"{cls}, other environment: allowed drift {allowed:.2g} = the check's tolerance")
    label = f"{cls}, same environment" if cls else "unclassified: same-environment rule"
    return tight, (f"{label}: allowed drift {tight:.2g} = max({DRIFT_REL:g} x |old|, {DRIFT_OF_TOL:g} x "
                   f"tolerance {_show(check.get('tolerance'))})")


def tolerance_drift(check: dict, same_environment: bool = True) -> tuple[float | None, str]:
    """How far a numeric tolerance computed at run time may move: it follows its check's class
    (never a bare ``!=``). Text tolerances (``"exact"``, ``"1 ± 0.05"``) must be equal."""
    t, cls = check.get("tolerance"), numerical_class(check)
    if not isinstance(t, float) or cls == "exact":
        return None, "must be equal (declared tolerance)"
    if not same_environment and cls in ("iterative", "statistical"):
        return abs(t), f"{cls} tolerance, other environment: may move by its own size {abs(t):.2g}"
    return DRIFT_REL * abs(t), f"computed tolerance: allowed drift {DRIFT_REL * abs(t):.2g} = {DRIFT_REL:g} x |old|"


# -- the comparison ----------------------------------------------------------------------------
KINDS = ("status", "passed", "drift", "record")  # the order in which the diff lists changes


@dataclass
class Change:
    claim: str
    what: str  # "status", a check's key, "errata", "figures", "claim", a part's ID
    field: str  # "status", "passed", "value", "tolerance", "check", "erratum", "figure", "claim"
    old: object
    new: object
    tolerance: str = ""  # for a value: the allowed drift and the rule it comes from
    failure: bool = True

    @property
    def kind(self) -> str:
        """status: a verdict changed; passed: a check's verdict changed; drift: a value or a
        tolerance moved beyond its rule; record: a check, erratum, figure or claim appeared or left."""
        if self.field in ("status", "passed"):
            return self.field
        return "drift" if self.field in ("value", "tolerance") else "record"

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


def _keyed_checks(checks: list[dict], by_name: bool = False) -> dict[str, dict]:
    """Checks by key; with ``by_name`` (one side is a record from before keys existed) by name and
    order among equal names."""
    seen, out = Counter(), {}
    for ch in checks:
        k = ch["name"] if by_name or not ch.get("key") else ch["key"]
        out[k + (f" (#{seen[k] + 1})" if seen[k] else "")] = ch
        seen[k] += 1
    return out


def _moved(old, new, tol: float | None) -> bool:
    if tol is not None and _is_number(new) and _is_number(old):
        return abs(float(new) - float(old)) > tol
    return old != new or type(old) is not type(new)


def compare_check(cid: str, key: str, och: dict, nch: dict, same_environment: bool) -> list[Change]:
    if numerical_class(och) == "measured" or numerical_class(nch) == "measured":
        return []  # a timing: no rerun reproduces it
    out = []
    if bool(och["passed"]) != bool(nch["passed"]):
        out.append(Change(cid, key, "passed", bool(och["passed"]), bool(nch["passed"])))
    tol, why = tolerance_drift(och, same_environment)
    if _moved(och.get("tolerance"), nch.get("tolerance"), tol):
        out.append(Change(cid, key, "tolerance", och.get("tolerance"), nch.get("tolerance"), why))
    tol, why = drift_tolerance(och, same_environment)
    if _moved(och.get("value"), nch.get("value"), tol):
        out.append(Change(cid, key, "value", och.get("value"), nch.get("value"), why))
    return out


def compare_claim(old: dict, new: dict, same_environment: bool = True) -> list[Change]:
    cid, out = old["id"], []
    if old["status"] != new["status"]:
        out.append(Change(cid, "status", "status", old["status"], new["status"]))
    oparts = {p["id"]: p for p in old.get("parts") or []}
    nparts = {p["id"]: p for p in new.get("parts") or []}
    for pid, op in oparts.items():
        if pid in nparts and op.get("status") != nparts[pid].get("status"):
            out.append(Change(cid, pid, "status", op.get("status"), nparts[pid].get("status")))
        elif pid not in nparts:
            out.append(Change(cid, pid, "part", "recorded", "no longer recorded"))
    by_name = not all(ch.get("key") for ch in old.get("checks", []) + new.get("checks", []))
    o, n = _keyed_checks(old.get("checks", []), by_name), _keyed_checks(new.get("checks", []), by_name)
    for k, och in o.items():
        nch = n.get(k)
        if nch is None:
            out.append(Change(cid, k, "check", "recorded", "no longer recorded"))
            continue
        out += compare_check(cid, k, och, nch, same_environment)
    for k in n.keys() - o.keys():
        out.append(Change(cid, k, "check", "absent", "new check", failure=False))
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


def moved_within_rule(baseline: dict, fresh: dict) -> int:
    """How many numeric values differ at all from the baseline while staying inside their rule:
    shows that a run in another environment really changed bits."""
    old, new = _with_errata(baseline), _with_errata(fresh)
    k = 0
    for cid, oc in old.items():
        if cid not in new:
            continue
        n = _keyed_checks(new[cid].get("checks", []))
        for key, och in _keyed_checks(oc.get("checks", [])).items():
            nch = n.get(key)
            if nch is not None and isinstance(och.get("value"), float) and och.get("value") != nch.get("value"):
                k += 1
    return k


def n_checks(res: dict, ids) -> int:
    return sum(len(c.get("checks", [])) for c in res.get("claims", []) if c["id"] in ids)


def summary_line(changes: list[Change], baseline_name: str) -> str:
    fails = [c for c in changes if c.failure]
    count = Counter(c.kind for c in fails)
    return (f"regress: {len(fails)} regression{'s' * (len(fails) != 1)} ({count['status']} status, "
            f"{count['passed']} passed, {count['drift']} drift"
            + (f", {count['record']} record" if count["record"] else "") + f") against {baseline_name}")


def render(changes: list[Change], baseline_name: str, n_claims: int, n_checked: int,
           same: bool = True, moved: int | None = None) -> str:
    """The diff, grouped by claim: verdict changes first (status, then passed), then records that
    appeared or left, drift last; then the notes; the closing line counts them."""
    fails = [c for c in changes if c.failure]
    notes = [c for c in changes if not c.failure]
    lines = [f"compared {n_claims} claims, {n_checked} checks against {baseline_name}"]
    if not same:
        lines.append("note: the baseline was made in another numerical environment (run.environment "
                     "differs: CPU, versions or BLAS settings): roundoff, iterative and statistical values "
                     "may move within their check's tolerance; exact values and every verdict are compared as usual"
                     + (f"; {moved} values moved within their rule" if moved is not None else ""))
    if fails:
        order = {"status": 0, "passed": 1, "record": 2, "drift": 3}
        by_claim: dict[str, list[Change]] = {}
        for c in fails:
            by_claim.setdefault(c.claim, []).append(c)
        ranked = sorted(by_claim.items(), key=lambda kv: (min(order[c.kind] for c in kv[1]), kv[0]))
        lines += ["", "claim | check | field: old -> new | rule"]
        for cid, cs in ranked:
            lines += ["  " + c.line() for c in sorted(cs, key=lambda c: order[c.kind])]
        lines += ["", "If the change is intended, regenerate the baseline with `make verify` and commit docs/."]
    if notes:
        lines += ["", "not in the baseline (not a failure; `make verify` adds them):"]
        lines += ["  " + c.line() for c in notes]
    lines.append(summary_line(changes, baseline_name))
    return "\n".join(lines)


# -- the baseline --------------------------------------------------------------------------------
class BaselineError(Exception):
    """The baseline cannot be read: the message is one line naming it."""


def load_baseline(path: str | None, root: Path) -> tuple[dict, str]:
    """The baseline results and a description of where they came from.

    ``path`` given: that file. Otherwise, in a git checkout, ``HEAD:docs/results.json`` (the
    committed baseline, whatever ``make verify`` wrote since); outside git, ``root/docs/results.json``."""
    if path is None:
        try:
            top = subprocess.run(["git", "-C", str(root), "rev-parse", "--show-toplevel"], capture_output=True,
                                 text=True, timeout=30)
            if top.returncode == 0:
                rel = (root / BASELINE_PATH).resolve().relative_to(Path(top.stdout.strip()).resolve())
                shown = subprocess.run(["git", "-C", str(root), "show", f"HEAD:{rel.as_posix()}"],
                                       capture_output=True, text=True, timeout=60)
                head = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
                                      capture_output=True, text=True, timeout=30).stdout.strip()
                if shown.returncode != 0:
                    raise BaselineError(f"HEAD:{rel.as_posix()}: not committed ({shown.stderr.strip()}); commit a "
                                        "baseline made by `make verify`, or name one with --baseline FILE")
                return _parse(shown.stdout, f"HEAD:{rel.as_posix()}"), f"HEAD:{rel.as_posix()} (commit {head})"
        except (OSError, ValueError, subprocess.SubprocessError):
            pass
        file = root / BASELINE_PATH
        desc = f"{file} (not a git checkout: the working-tree file)"
    else:
        file = Path(path)
        desc = str(file)
    try:
        text = file.read_text()
    except OSError as e:
        raise BaselineError(f"{file}: cannot read the baseline ({e.strerror}); make one with `make verify`")
    return _parse(text, str(file)), desc


def _parse(text: str, name: str) -> dict:
    try:
        res = json.loads(text)
    except json.JSONDecodeError as e:
        raise BaselineError(f"{name}: not valid JSON ({e.msg} at line {e.lineno})")
    if not isinstance(res, dict) or not isinstance(res.get("claims"), list):
        raise BaselineError(f"{name}: not a results file (no list of claims)")
    return res
