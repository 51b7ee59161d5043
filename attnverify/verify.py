"""Run the registered claims and collect their results (the engine's core loop)."""

from __future__ import annotations

import fnmatch
import os
import platform
import sys
import time
import traceback
from dataclasses import asdict, dataclass, field
from importlib import metadata

from . import context
from .atomic import WriteError
from .cache import fingerprint, inputs
from .evidence import Check, DuplicateKey, Evidence, Inconclusive, sensitivity_problem
from .registry import Claim, load_claims, resolve
from .strength import evidence_by_part

STATUSES = ("verified", "refuted", "inconclusive", "not-checkable")
NOT_IMPLEMENTED = "not implemented yet"
NOT_CHECKED_YET = "not checked yet"
# worst first: a claim is the worst of its parts. A not-checkable part keeps a claim from being
# verified (its statement as a whole was not checked) but does not outweigh a refuted or undecided one.
WORST_FIRST = ("refuted", "inconclusive", "not-checkable", "verified")


@dataclass
class Decision:
    """A claim's (or a part's) status, the reason, and one line on what decided it."""

    status: str
    reason: str
    decided: str
    parts: list[dict] = field(default_factory=list)


def _fmt(v) -> str:
    return f"{v:.3g}" if isinstance(v, (float, int)) and not isinstance(v, bool) else str(v)


def _flip_line(c: Check) -> str:
    s = c.sensitivity
    lo, hi = s["declared_range"]
    return (f"judgement check `{c.key}` flips at {s['parameter']} = {_fmt(s['flips_at'])} inside its declared "
            f"range [{_fmt(lo)}, {_fmt(hi)}] (at the nominal {_fmt(s.get('nominal', c.tolerance))} it "
            f"{'passes' if c.passed else 'fails'})")


def _group(label: str, keys: list[str], by_key: dict[str, list[Check]], problems: list[str]) -> Decision:
    """The status rule of CLAIMS.md over the checks named by ``keys`` (one part, or a whole claim).

    refuted: a check failed whose verdict does not rest on an unsettled judgement call; else
    inconclusive: a named check did not run, or a judgement check flips inside its declared range (or
    has no sensitivity: an engine error); else verified."""
    if not keys:
        return Decision("inconclusive", NOT_CHECKED_YET, f"{label}: {NOT_CHECKED_YET}")
    matched = {k: _matching(k, by_key) for k in keys}
    present = list({id(c): c for k in keys for m in matched[k] for c in by_key[m]}.values())
    missing = [k for k in keys if not matched[k]]
    broken = {id(c): sensitivity_problem(c) for c in present if sensitivity_problem(c)}
    flipping = [c for c in present if id(c) not in broken and c.threshold_kind == "judgement"
                and c.sensitivity["verdict_over_range"] == "flips"]
    undecidable = set(broken) | {id(c) for c in flipping}
    failed = [c for c in present if not c.passed and id(c) not in undecidable]
    if failed:
        c = failed[0]
        stable = ""
        if c.threshold_kind == "judgement":  # says that moving the judgement within its range changes nothing
            lo, hi = c.sensitivity["declared_range"]
            stable = f"; a judgement call that fails over its whole declared range [{_fmt(lo)}, {_fmt(hi)}]"
        return Decision("refuted", "failing checks: " + ", ".join(dict.fromkeys(x.key for x in failed)),
                        f"{label} refuted by check `{c.key}` (value {_fmt(c.value)}, tolerance {_fmt(c.tolerance)}"
                        f"{stable})")
    if missing:
        why = "checks did not run: " + ", ".join(missing) + ("; " + "; ".join(problems) if problems else "")
        return Decision("inconclusive", why, f"{label}: {why}")
    if broken:
        why = "engine error: " + "; ".join(broken.values())
        return Decision("inconclusive", why, f"{label}: {why}")
    if flipping:
        lines = [_flip_line(c) for c in flipping]
        return Decision("inconclusive", "; ".join(lines), f"{label}: {lines[0]}")
    n, j = len(present), sum(c.threshold_kind == "judgement" for c in present)
    tail = f" ({j} judgement {'call' if j == 1 else 'calls'} stable over {'its' if j == 1 else 'their'} declared range" \
           f"{'' if j == 1 else 's'})" if j else ""
    return Decision("verified", f"all {n} checks ran and passed", f"all {n} checks of {label} passed{tail}")


def _matching(pattern: str, by_key: dict) -> list[str]:
    """The check keys a part names: a key, or a shell pattern ("layer-*-weights") for a family of keys."""
    if any(ch in pattern for ch in "*?["):
        return [k for k in by_key if fnmatch.fnmatchcase(k, pattern)]
    return [pattern] if pattern in by_key else []


def _worst(ds: list[Decision]) -> Decision:
    return min(ds, key=lambda d: WORST_FIRST.index(d.status))


def judge(claim: Claim, ev: Evidence, problems: list[str]) -> Decision:
    """The status rule of CLAIMS.md, applied to what the functions recorded, part by part.

    A claim without parts is one group of all its checks. A claim with parts is the worst of its
    parts (refuted, then inconclusive, then not-checkable, then verified); a check in no part still
    counts for the claim, and so does a function that could not decide."""
    if claim.status and not claim.parts:
        return Decision(claim.status, claim.reason, f"{claim.status}: {claim.reason}")
    if not claim.functions and not claim.parts:
        return Decision("inconclusive", NOT_IMPLEMENTED, f"{claim.id}: {NOT_IMPLEMENTED}")
    by_key: dict[str, list[Check]] = {}
    for c in ev.checks:
        by_key.setdefault(c.key, []).append(c)
    if not claim.parts:
        if not ev.checks:
            why = "; ".join(problems) or "the claim's functions recorded no checks"
            return Decision("inconclusive", why, f"{claim.id}: {why}")
        d = _group(claim.id, list(by_key), by_key, [])
        if d.status == "verified" and problems:
            why = "; ".join(problems)
            return Decision("inconclusive", why, f"{claim.id}: {why}")
        return d
    parts, ds = [], []
    for p in claim.parts:
        if p.status:
            d = Decision(p.status, p.reason, f"{p.id} {p.status}: {p.reason}")
        else:
            d = _group(p.id, list(p.checks), by_key, problems)
        ds.append(d)
        finding = ev.part_findings.get(p.id, "")
        parts.append({"id": p.id, "title": p.title, "statement": p.statement.strip(), "status": d.status,
                      "checks": [m for k in p.checks for m in (_matching(k, by_key) or [k])],
                      "finding": finding or d.decided})
    named = {m for p in claim.parts for k in p.checks for m in _matching(k, by_key)}
    loose = [k for k in by_key if k not in named]
    if loose:
        ds.append(_group(f"{claim.id} (checks in no part)", loose, by_key, []))
    if problems:
        ds.append(Decision("inconclusive", "; ".join(problems), f"{claim.id}: " + "; ".join(problems)))
    w = _worst(ds)
    if w.status == "verified":
        n = len(ev.checks)
        ids = ", ".join(p.id for p in claim.parts)
        tail = f" (and {len(loose)} {'check' if len(loose) == 1 else 'checks'} in no part)" if loose else ""
        j = sum(c.threshold_kind == "judgement" for c in ev.checks)
        tail += f"; {j} judgement {'call' if j == 1 else 'calls'} stable over {'its' if j == 1 else 'their'} " \
                f"declared range{'' if j == 1 else 's'}" if j else ""
        return Decision("verified", f"all {n} checks ran and passed", f"all {n} checks of parts {ids} passed{tail}",
                        parts)
    reason = "; ".join(f"{pd['id']}: {d.reason}" for pd, d in zip(parts, ds) if d.status == w.status)
    extra = [d.reason for d in ds[len(parts):] if d.status == w.status]
    reason = "; ".join([r for r in [reason] + extra if r])
    others = sum(d.status == w.status for d in ds) - 1
    decided = w.decided + (f" (and {others} more {w.status})" if others else "")
    return Decision(w.status, reason, decided, parts)


def decide(claim: Claim, ev: Evidence, problems: list[str]) -> tuple[str, str]:
    """(status, reason) of :func:`judge`."""
    d = judge(claim, ev, problems)
    return d.status, d.reason


def run_claim(claim: Claim, log=print) -> dict:
    """Run the claim's functions; the dict is one entry of results.json's "claims" (plus its errata)."""
    ev, problems, crashed = Evidence(), [], False
    t0 = time.perf_counter()
    for ref in claim.functions:
        t1 = time.perf_counter()
        try:
            ev.extend(resolve(ref)())
        except Inconclusive as e:
            problems.append(f"{ref}: {e}")
        except WriteError:  # a full disk or read-only folder, not the claim: stop (the CLI says it in one line)
            raise
        except DuplicateKey as e:  # two checks the report, regress and the tests could not tell apart
            problems.append(f"claim {claim.id}: {ref}: {e}")
            crashed = True
        except Exception as e:  # a crash leaves the claim undecided, and says where
            problems.append(f"{ref} raised {type(e).__name__}: {e}")
            crashed = True
            traceback.print_exc(file=sys.stderr)
        log(f"    {ref} ({time.perf_counter() - t1:.1f} s)")
    broken = [sensitivity_problem(c) for c in ev.checks if sensitivity_problem(c)]
    for b in broken:
        log(f"    engine error: {b}")
    crashed |= bool(broken)  # not cached: the check must be fixed
    d = judge(claim, ev, problems)
    out = {
        "id": claim.id,
        "title": claim.title,
        "family": claim.family,
        "source": {"seed": claim.seed, "equation": claim.equation},
    }
    if claim.quote is not None:
        out["quote"] = asdict(claim.quote)
        out["quote"]["text"] = " ".join(claim.quote.text.split())
    if claim.reading:
        out["reading"] = claim.reading.strip()
    out.update({
        "statement": claim.statement.strip(),
        "decided_by": list(claim.functions),  # the registry refs whose evidence decided the status
        "status": d.status,
        "reason": d.reason,
        "decided": d.decided,
    })
    if d.parts:
        out["parts"] = d.parts
    out.update({
        # a refuted claim says what is true instead: its own finding, else that of its refuted parts
        "finding": ev.finding or " ".join(f"{p['id']}: {p['finding']}" for p in d.parts
                                          if p["status"] == "refuted" and p["id"] in ev.part_findings),
        "checks": [c.as_dict() for c in ev.checks],
        "derivation": [{"text": s.text, "latex": s.latex} for s in ev.steps],
        "figures": [{"path": f.path, "caption": f.caption} for f in ev.figures],
        "tables": [{"caption": t.caption, "header": t.header, "rows": t.rows} for t in ev.tables],
        "notes": ev.notes,
        "invariance": ev.invariance,
        "errata": [e.__dict__ for e in ev.errata],
        "wall_time_s": round(time.perf_counter() - t0, 2),
        "_crashed": crashed,  # not written out: tells the cache not to keep this result
    })
    return out


def _versions() -> dict:
    out = {"python": platform.python_version()}
    for pkg in ("attnverify", "numpy", "scipy", "sympy", "cvxpy", "clarabel", "matplotlib", "pot", "torch",
                "transformers"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = None
    return out


def run_all(select=None, log=print, cache=None) -> dict:
    """Run every claim (or those for which ``select(claim)`` is true); returns results.json's dict.

    With a :class:`attnverify.cache.Cache`, a claim whose code, registry entry, seed and
    environment are unchanged (and whose figures are still in place) is taken from the cache.
    """
    t0 = time.perf_counter()
    claims = load_claims()
    results, reused = [], []
    for i, claim in enumerate(claims, 1):
        if select is not None and not select(claim):
            continue
        r = None
        if cache is not None:
            inp = inputs(claim, context.SEED)
            r = cache.get(claim, inp)
        if r is not None:
            reused.append(claim.id)
            log(f"[{i:2d}/{len(claims)}] {claim.id}: {claim.title} (cached) -> {r['status']}")
        else:
            why = f" (recomputing: {cache.why[claim.id]})" if cache is not None and claim.id in cache.why else ""
            log(f"[{i:2d}/{len(claims)}] {claim.id}: {claim.title}{why}")
            r = run_claim(claim, log=log)
            log(f"    -> {r['status']}" + (f" ({r['reason']})" if r["status"] != "verified" else ""))
            if cache is not None and not r["_crashed"]:
                cache.put(claim, inp, {k: v for k, v in r.items() if k != "_crashed"})
        r = dict(r)
        r.pop("_crashed", None)
        r["evidence_by_part"] = evidence_by_part(r)  # after parts are known; also for cached entries
        results.append(r)
    errata = [dict(e, claim=r["id"]) for r in results for e in r.pop("errata")]
    summary = {s: sum(r["status"] == s for r in results) for s in STATUSES}
    run = {
        "seed": context.SEED,
        "versions": _versions(),
        "platform": f"{platform.system()} {platform.machine()}",
        "blas_threads": os.environ.get("OPENBLAS_NUM_THREADS"),
        # same fingerprint = same float operations; `attnverify regress` compares solver outputs
        # bit-tight only then (see attnverify/regress.py)
        "environment": fingerprint(),
        "wall_time_s": round(time.perf_counter() - t0, 1),
    }
    if cache is not None:
        run["cached"] = reused
    out = {"schema": 1, "summary": summary, "claims": results, "errata": errata, "run": run}
    # issue 16: every display of 004/003 and every abstract sentence accounted for, held to this run
    from .coverage import attach

    return attach(out, claims)
