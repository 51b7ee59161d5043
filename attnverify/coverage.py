"""results.json's ``coverage`` and ``abstracts``: every display of 004 (and 003) and every checkable
sentence of the abstracts of 000 and 002, accounted for against the run (issue 16).

The data are ``coverage.toml`` (one ``[[display]]`` per numbered equation (1)-(44) of 004, per unnumbered
display of its Secs 3-9 and Appx A-D, per condition the errata pass found, and per display of 003, in
paper order) and ``abstracts.toml`` (one ``[[sentence]]`` per sentence of the abstracts).  They are
*claims about the run*, so :func:`build_coverage` and :func:`build_abstracts` hold them to it and raise
:class:`CoverageError` when they disagree:

* a ``checked`` display names check keys that exist, among the checks of its claims in this run, and
  passed (a failing check means the display is an erratum or the entry is stale);
* an ``erratum`` display matches an erratum of the run (by its ``erratum`` field, default its
  ``equation``) recorded by one of its claims;
* a ``not-checked`` display gives its reason (``why_not``), and so does a ``not-checkable`` sentence;
* a ``mapped`` sentence names claims (or parts ``CLAIM/part``) that exist in the run.

An entry whose claims did not run (``verify --only``) is left out: the run cannot vouch for it.
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

HERE = Path(__file__).parent
COVERAGE = HERE / "coverage.toml"
ABSTRACTS = HERE / "abstracts.toml"
STATUSES = ("checked", "erratum", "not-checked")
SENTENCE_STATUSES = ("mapped", "not-checkable")
NUMBERED_SOURCE = "004_830fd89135933577.txt"
NUMBERED = range(1, 45)  # (1)-(44) of 004


class CoverageError(ValueError):
    """coverage.toml or abstracts.toml disagrees with the run (or is malformed)."""


# -- loading and schema ---------------------------------------------------------------------------
def load_displays(path: Path = COVERAGE) -> list[dict]:
    entries = tomllib.loads(path.read_text())["display"]
    problems = []
    for k, e in enumerate(entries):
        where = f"{path.name} entry {k + 1} ({e.get('equation', '?')})"
        for field in ("source", "equation", "printed", "status"):
            if not str(e.get(field, "")).strip():
                problems.append(f"{where}: empty {field}")
        st = e.get("status")
        if st not in STATUSES:
            problems.append(f"{where}: status {st!r} not in {STATUSES}")
        if st == "not-checked" and not e.get("why_not", "").strip():
            problems.append(f"{where}: not-checked without a reason (why_not)")
        if st == "checked" and not (e.get("checks") and e.get("claims")):
            problems.append(f"{where}: checked but names no claim or no check")
        if st == "erratum" and not e.get("claims"):
            problems.append(f"{where}: erratum without a claim")
    missing = missing_numbered(entries)
    if missing:
        problems.append(f"{path.name}: no entry for ({'), ('.join(map(str, sorted(missing)))}) of {NUMBERED_SOURCE}")
    if problems:
        raise CoverageError("; ".join(problems))
    return entries


def numbers_of(equation: str) -> set[int]:
    """Equation numbers an entry names at its start: "(12)" -> {12}, "(19), BERT" -> {19}."""
    m = re.match(r"\s*\((\d+)\)", equation)
    return {int(m.group(1))} if m else set()


def missing_numbered(entries: list[dict]) -> set[int]:
    have = set().union(*(numbers_of(e["equation"]) for e in entries if e["source"] == NUMBERED_SOURCE))
    return set(NUMBERED) - have


def load_sentences(path: Path = ABSTRACTS) -> list[dict]:
    entries = tomllib.loads(path.read_text())["sentence"]
    problems = []
    for k, e in enumerate(entries):
        where = f"{path.name} entry {k + 1}"
        if not e.get("sentence", "").strip() or not e.get("source", "").strip():
            problems.append(f"{where}: empty sentence or source")
        st = e.get("status")
        if st not in SENTENCE_STATUSES:
            problems.append(f"{where}: status {st!r} not in {SENTENCE_STATUSES}")
        if st == "mapped" and not e.get("claims"):
            problems.append(f"{where}: mapped to no claim")
        if st == "not-checkable" and not e.get("why_not", "").strip():
            problems.append(f"{where}: not-checkable without a reason (why_not)")
    if problems:
        raise CoverageError("; ".join(problems))
    return entries


# -- against the run ------------------------------------------------------------------------------
def _claims(results: dict) -> dict[str, dict]:
    return {c["id"]: c for c in results["claims"]}


def build_coverage(results: dict, entries: list[dict] | None = None, strict: bool = True) -> list[dict]:
    """The ``coverage`` list for this run; raises CoverageError where an entry and the run disagree.

    With ``strict=False`` (a verify or regress run) a disagreement does not stop the run: a check that
    fails, or an erratum the derivation no longer finds, is what a broken closed form looks like, and
    the run must still report it. Each such entry carries ``disagrees`` (what disagrees) instead, and
    the checks themselves fail in the results, where regress and the report see them."""
    entries = load_displays() if entries is None else entries
    claims = _claims(results)
    errata = {(e["claim"], e["equation"]) for e in results.get("errata", [])}
    out, problems = [], []
    for e in entries:
        ids = list(e.get("claims", []))
        if any(i not in claims for i in ids):
            continue  # not in this run
        where = f"coverage {e['equation']!r}"
        mine = len(problems)
        checks = {}
        for i in ids:
            checks.update({c["key"]: c for c in claims[i]["checks"]})
        named = list(e.get("checks", []))
        absent = [k for k in named if k not in checks]
        if absent:
            problems.append(f"{where}: no check {absent} among the checks of {ids}")
        if e["status"] == "checked":
            failed = [k for k in named if k in checks and not checks[k]["passed"]]
            if failed:
                problems.append(f"{where}: marked checked but {failed} failed in this run")
        if e["status"] == "erratum":
            eq = e.get("erratum") or e["equation"]
            if not any((i, eq) in errata for i in ids):
                problems.append(f"{where}: no erratum {eq!r} recorded by {ids} in this run")
        out.append({"source": e["source"], "equation": e["equation"], "printed": e["printed"].strip(),
                    "status": e["status"], "claims": ids, "checks": named, "how": e.get("how", ""),
                    "why_not": e.get("why_not", "")})
        if len(problems) > mine:
            out[-1]["disagrees"] = "; ".join(problems[mine:])
    if problems and strict:
        raise CoverageError("; ".join(problems))
    return out


def _part_ids(claim: dict) -> set[str]:
    parts = claim.get("parts") or []
    return {p["id"] for p in parts}


def build_abstracts(results: dict, entries: list[dict] | None = None, registry: list | None = None) -> list[dict]:
    """The ``abstracts`` list for this run; a mapped sentence must name claims/parts of the run.
    ``registry``: the run's claims (attnverify.registry.Claim), read from claims.toml if not given."""
    from .registry import load_claims

    entries = load_sentences() if entries is None else entries
    claims = _claims(results)
    registry_parts = {c.id: {p.id for p in c.parts} for c in (load_claims() if registry is None else registry)}
    out, problems = [], []
    for e in entries:
        refs = list(e.get("claims", []))
        ids = [r.split("/")[0] for r in refs]
        unregistered = [i for i in ids if i not in registry_parts]
        if unregistered:  # named by the catalogue (CLAIMS.md) but not (yet) in claims.toml: say so, do not hide it
            out.append({"source": e["source"], "sentence": e["sentence"].strip(), "claims": refs,
                        "status": "not-checkable",
                        "why_not": f"maps to {', '.join(unregistered)}, which is not in the claim registry of this run"})
            continue
        if any(i not in claims for i in ids):
            continue  # registered but not run (verify --only)
        for r, i in zip(refs, ids):
            if "/" in r:
                known = _part_ids(claims[i]) | registry_parts.get(i, set())
                if known and r not in known:
                    problems.append(f"abstracts: {r} is not a part of {i} (parts: {sorted(known)})")
        out.append({"source": e["source"], "sentence": e["sentence"].strip(), "claims": refs, "status": e["status"],
                    "why_not": e.get("why_not", "")})
    if problems:
        raise CoverageError("; ".join(problems))
    return out


def attach(results: dict, registry: list | None = None) -> dict:
    """Add ``coverage`` and ``abstracts`` to results.json's dict (in place; returned for chaining)."""
    results["coverage"] = build_coverage(results, strict=False)
    for e in results["coverage"]:
        if e.get("disagrees"):
            print(f"attnverify: warning: {e['disagrees']}", file=sys.stderr)
    results["abstracts"] = build_abstracts(results, registry=registry)
    return results
