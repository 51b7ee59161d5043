"""Run the registered claims and collect their results (the engine's core loop)."""

from __future__ import annotations

import os
import platform
import sys
import time
import traceback
from importlib import metadata

from . import context
from .cache import fingerprint, inputs
from .evidence import DuplicateKey, Evidence, Inconclusive
from .registry import Claim, load_claims, resolve

STATUSES = ("verified", "refuted", "inconclusive", "not-checkable")
NOT_IMPLEMENTED = "not implemented yet"


def decide(claim: Claim, ev: Evidence, problems: list[str]) -> tuple[str, str]:
    """The status rule of CLAIMS.md, applied to what the functions recorded."""
    if claim.status:
        return claim.status, claim.reason
    if not claim.functions:
        return "inconclusive", NOT_IMPLEMENTED
    failed = ev.failed()
    if failed:
        return "refuted", "failing checks: " + ", ".join(failed)
    if problems:
        return "inconclusive", "; ".join(problems)
    if not ev.checks:
        return "inconclusive", "the claim's functions recorded no checks"
    return "verified", f"all {len(ev.checks)} checks ran and passed"


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
        except DuplicateKey as e:  # two checks the report, regress and the tests could not tell apart
            problems.append(f"claim {claim.id}: {ref}: {e}")
            crashed = True
        except Exception as e:  # a crash leaves the claim undecided, and says where
            problems.append(f"{ref} raised {type(e).__name__}: {e}")
            crashed = True
            traceback.print_exc(file=sys.stderr)
        log(f"    {ref} ({time.perf_counter() - t1:.1f} s)")
    status, reason = decide(claim, ev, problems)
    return {
        "id": claim.id,
        "title": claim.title,
        "family": claim.family,
        "source": {"seed": claim.seed, "equation": claim.equation},
        "statement": claim.statement.strip(),
        "decided_by": list(claim.functions),  # the registry refs whose evidence decided the status
        "status": status,
        "reason": reason,
        "finding": ev.finding,
        "checks": [c.as_dict() for c in ev.checks],
        "derivation": [{"text": s.text, "latex": s.latex} for s in ev.steps],
        "figures": [{"path": f.path, "caption": f.caption} for f in ev.figures],
        "tables": [{"caption": t.caption, "header": t.header, "rows": t.rows} for t in ev.tables],
        "notes": ev.notes,
        "errata": [e.__dict__ for e in ev.errata],
        "wall_time_s": round(time.perf_counter() - t0, 2),
        "_crashed": crashed,  # not written out: tells the cache not to keep this result
    }


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
