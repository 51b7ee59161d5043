"""``make mutate``: run every mutant of the catalogue (package ``mutants``) through the claim registry.

Each mutant is a wrong variant of a closed form or derivation step.  It is injected into its claim
(a ``"module:function"`` reference of claims.toml replaced by a mutated one, or a module attribute
patched for the duration of the run), and the claim is run by :func:`attnverify.verify.run_claim`
with the usual status rule.  A mutant is **killed** when the claim does not come out ``verified``
*because of the mutation*: compared with a reference run of the same claim without the mutation,
a check fails that passed there, or the status of the claim or of one of its parts changes.  (For a claim that is already refuted, like
FD-MEM, "not verified" alone would prove nothing: only a new failing check or a changed status counts.)
A claim whose reference run is neither verified nor refuted cannot judge its mutants, and a patch that
is never called while the claim runs was never injected (e.g. the attribute is bound elsewhere as a
default argument): both count as survivors, so the runner cannot report a kill that did not happen.

Usage: ``python -m attnverify.mutate [--only PATTERN ...] [--docs DIR] [--no-write]``; prints one
table per family and writes DIR/mutate.md (full runs only); exits 1 if any mutant survives.

Every lru_cache of the project's modules is cleared before and after each run, so a mutation is
never hidden by (nor leaks into) a cached result; the exception is attnverify.models, whose caches
hold the pretrained MiniLM and its run on the corpus, which no mutant touches.
"""

from __future__ import annotations

import argparse  # noqa: E402
import contextlib  # noqa: E402
import dataclasses  # noqa: E402
import functools  # noqa: E402
import importlib  # noqa: E402
import io  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

from . import atomic  # noqa: E402

PACKAGES = ("attnverify",)  # attnverify.checks, .derivations and .mutants included
KEEP_CACHES = {"attnverify.models"}  # pretrained weights and their run on the corpus: no mutant touches them


def clear_caches() -> None:
    """cache_clear() every lru_cache defined in the project's modules (except KEEP_CACHES)."""
    for name, mod in list(sys.modules.items()):
        if name.split(".")[0] not in PACKAGES or name in KEEP_CACHES or mod is None:
            continue
        for obj in list(vars(mod).values()):
            if callable(getattr(obj, "cache_clear", None)) and getattr(obj, "__module__", None) == name:
                obj.cache_clear()


def _counted(fn, calls: dict, key: str):
    """fn, counting its calls in calls[key]: a patch that is never called was never injected."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        calls[key] += 1
        return fn(*args, **kwargs)

    return wrapper


@contextlib.contextmanager
def patched(patch: dict, calls: dict | None = None):
    """Set each "module:attribute" to make(original) for the duration; always restore.  Callable
    replacements count their calls in ``calls`` (an attribute bound elsewhere at import time, e.g. as
    a default argument, would never be called: the mutation would not be injected)."""
    saved = []
    calls = {} if calls is None else calls
    try:
        for target, make in patch.items():
            mod_name, _, attr = target.partition(":")
            mod = importlib.import_module(mod_name)
            orig = getattr(mod, attr)  # AttributeError: the catalogue is out of date
            saved.append((mod, attr, orig))
            new = make(orig)
            if callable(new):
                calls[target] = 0
                new = _counted(new, calls, target)
            setattr(mod, attr, new)
        yield calls
    finally:
        for mod, attr, orig in reversed(saved):
            setattr(mod, attr, orig)


def mutated_claim(mutant, claim):
    """The claim with the mutant's replacement refs (kind "ref"); the claim itself for kind "patch"."""
    stale = [old for old in mutant.replace if old not in claim.functions]
    if stale:
        raise ValueError(f"{mutant.id}: {stale[0]} is not a function of {claim.id} (catalogue out of date)")
    swap = lambda refs: [mutant.replace.get(r, r) for r in refs]  # noqa: E731
    return dataclasses.replace(claim, derivations=swap(claim.derivations), checks=swap(claim.checks))


def run_once(claim, patch=None) -> dict:
    """run_claim with fresh caches, the patch applied, tracebacks captured; the outcome in short."""
    from .verify import run_claim

    clear_caches()
    err, calls = io.StringIO(), {}
    t0 = time.perf_counter()
    try:
        with patched(patch or {}, calls), contextlib.redirect_stderr(err):
            r = run_claim(claim, log=lambda s: None)
    finally:
        clear_caches()
    return {"status": r["status"], "reason": r["reason"], "crashed": r["_crashed"],
            "failed": [c["key"] for c in r["checks"] if not c["passed"]], "checks": [c["key"] for c in r["checks"]],
            "parts": {q["id"]: q["status"] for q in r.get("parts") or []},
            "never_called": sorted(calls) if calls and not any(calls.values()) else [],
            "seconds": time.perf_counter() - t0}


def _part_changed(ref: dict, res: dict) -> str:
    """The first part whose status the mutation changed (a refuted part that now passes hides an error
    of the paper as surely as a new failing check reveals one), or ""."""
    for pid, st in (ref.get("parts") or {}).items():
        new = (res.get("parts") or {}).get(pid)
        if new is not None and new != st:
            return f"part {pid}: {st} -> {new}"
    return ""


def judge(ref: dict, res: dict) -> tuple[bool, str]:
    """(killed, how) for one mutant run against the reference run of its claim."""
    if res.get("never_called"):
        return False, f"not injected: {', '.join(res['never_called'])} was never called while the claim ran"
    if ref["status"] == "inconclusive":
        # an inconclusive reference whose checks all ran (undecided because a judgement call flips inside its
        # declared range, e.g. EOS-SHARP) still judges a mutant by a check that fails only under the mutation
        if ref["crashed"] or not ref.get("checks"):
            return False, f"cannot be judged: the unmutated claim is {ref['status']} ({ref['reason']})"
        new = [c for c in res["failed"] if c not in ref["failed"]]
        if res["status"] != "verified" and new:
            return True, f"check failed: {new[0]}" + (f" (and {len(new) - 1} more)" if len(new) > 1 else "")
        if _part_changed(ref, res):
            return True, _part_changed(ref, res)
        return False, f"no check failed that passes without the mutation (reference inconclusive: {ref['reason'][:120]})"
    # a not-checkable claim whose checks ran (GOAT-SINK: a checked corollary beside a part with no precise
    # statement) judges its mutants by its checks like a refuted one
    if ref["status"] not in ("verified", "refuted", "not-checkable") or (ref["status"] == "not-checkable"
                                                                        and not ref.get("checks")):
        return False, f"cannot be judged: the unmutated claim is {ref['status']} ({ref['reason']})"
    if res["status"] == "verified":
        return False, "the claim is still verified"
    new = [c for c in res["failed"] if c not in ref["failed"]]
    if new:
        more = f" (and {len(new) - 1} more)" if len(new) > 1 else ""
        return True, f"check failed: {new[0]}{more}"
    if res["status"] != ref["status"]:
        kind = "crash" if res["crashed"] else res["status"]
        return True, f"{kind}: {res['reason'][:160]}"
    if _part_changed(ref, res):
        return True, _part_changed(ref, res)
    return False, f"no check failed that passes without the mutation ({res['status']} as before)"


def run(mutants, log=print) -> list[dict]:
    from .registry import load_claims

    claims = {c.id: c for c in load_claims()}
    refs, out = {}, []
    for i, m in enumerate(mutants, 1):
        row = {"id": m.id, "family": m.family, "claim": m.claim, "what": m.what, "kind": m.kind,
               "injected": m.injected}
        try:
            claim = claims[m.claim]
            mc = mutated_claim(m, claim)
            if m.claim not in refs:
                refs[m.claim] = run_once(claim)
            res = run_once(mc, m.patch)
            killed, how = judge(refs[m.claim], res)
            row.update(status=res["status"], killed=killed, how=how, seconds=res["seconds"], crashed=res["crashed"])
        except (KeyError, ValueError, AttributeError, ImportError) as e:  # a stale catalogue entry survives
            row.update(status="-", killed=False, how=f"could not inject: {type(e).__name__}: {e}", seconds=0.0,
                       crashed=False)
        out.append(row)
        log(f"[{i:2d}/{len(mutants)}] {m.id}: {'killed' if row['killed'] else 'SURVIVED'} "
            f"({row['seconds']:.1f} s) - {row['how']}")
    return out


def family_table(results, families) -> list[list]:
    rows = []
    for fam in families:
        rs = [r for r in results if r["family"] == fam]
        if rs:
            k = sum(r["killed"] for r in rs)
            rows.append([fam, len(rs), k, len(rs) - k, f"{100 * k / len(rs):.0f}%"])
    k = sum(r["killed"] for r in results)
    rows.append(["all", len(results), k, len(results) - k, f"{100 * k / max(len(results), 1):.0f}%"])
    return rows


def _md(header, rows) -> str:
    esc = lambda x: str(x).replace("|", "\\|")  # noqa: E731
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(esc(x) for x in r) + " |" for r in rows])


def render(results, families, seconds) -> str:
    fam = _md(["family", "mutants", "killed", "survived", "kill rate"], family_table(results, families))
    per = _md(["mutant", "mistake", "injected", "status", "verdict", "detected by", "s"],
              [[r["id"], r["what"], r["injected"], r["status"], "killed" if r["killed"] else "**SURVIVED**", r["how"],
                f"{r['seconds']:.1f}"] for r in results])
    surv = [r for r in results if not r["killed"]]
    crashes = [r for r in results if r["killed"] and r["crashed"]]
    return "\n\n".join([
        "# Mutation testing (`make mutate`)",
        "Each mutant is a wrong variant of a closed form or derivation step, injected into its claim through the "
        "registry (a `module:function` of claims.toml replaced by a mutated one, or a module attribute the claim's "
        "functions use patched for the run), and the claim is run with the usual status rule. A mutant is killed when "
        "the claim is not `verified` because of it: against a reference run without the mutation, a check fails that "
        "passed there, or the status changes (a patch that is never called counts as a survivor). "
        "Catalogue: `mutants/`; runner: `attnverify/mutate.py`. "
        "Not mutated: FD-FIG4 (a one-minute real-model run) and FD-FIG3. The training claims (EOS-SHARP, FD-VIT, "
        "GOAT-EXTRAP, mutants/training.py) are: each of their mutants is a full training run.",
        "## Kill rate per family", fam,
        "## Survivors", "\n".join(f"- {r['id']}: {r['how']}" for r in surv) if surv else "None.",
        "## Kills by a crash rather than a failing check",
        "\n".join(f"- {r['id']}: {r['how']}" for r in crashes) if crashes else "None: every kill is a failing check.",
        "## Every mutant", per,
        f"Total run time {seconds:.0f} s (references included).",
    ]) + "\n"


def main(argv=None) -> int:
    from attnverify.mutants import FAMILIES, catalogue

    from . import context
    from .threads import limited

    ap = argparse.ArgumentParser(prog="python -m attnverify.mutate", description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", nargs="+", metavar="PATTERN", help="only mutants whose id contains one of these")
    ap.add_argument("--docs", default="docs", help="where mutate.md goes (default: docs)")
    ap.add_argument("--no-write", action="store_true", help="do not write mutate.md")
    ap.add_argument("--list", action="store_true", help="list the catalogue and exit")
    args = ap.parse_args(argv)
    mutants = catalogue()
    if args.list:
        for m in mutants:
            print(f"{m.id:45s} {m.kind:5s} {m.what}")
        return 0
    if args.only:
        mutants = [m for m in mutants if any(p.lower() in m.id.lower() for p in args.only)]
        if not mutants:
            print("attnverify.mutate: error: no mutant matches", file=sys.stderr)
            return 2
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="attnverify-mutate-") as tmp:
        context.FIGURE_DIR = Path(tmp) / "figures"  # mutated figures never reach docs/
        with limited():  # the same single-threaded BLAS as `attnverify verify` (attnverify/threads.py)
            results = run(mutants, log=lambda s: print(s, flush=True))
    seconds = time.perf_counter() - t0
    print()
    print(_md(["family", "mutants", "killed", "survived", "kill rate"], family_table(results, FAMILIES)))
    surv = [r for r in results if not r["killed"]]
    for r in surv:
        print(f"SURVIVED {r['id']}: {r['how']}")
    print(f"{len(results)} mutants, {len(results) - len(surv)} killed, {len(surv)} survived, {seconds:.0f} s")
    if not args.only and not args.no_write:
        Path(args.docs).mkdir(parents=True, exist_ok=True)
        atomic.write_text(Path(args.docs) / "mutate.md", render(results, FAMILIES, seconds))
        print(f"wrote {args.docs}/mutate.md")
    return 1 if surv else 0


if __name__ == "__main__":
    sys.exit(main())
