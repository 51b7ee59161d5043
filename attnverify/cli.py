"""Command line: ``attnverify verify`` and ``attnverify solve CASE.json``."""

from __future__ import annotations

import argparse
import fnmatch
import json
import sys
from pathlib import Path

from .validate import InputError

EXIT_BAD_INPUT = 2


def _fail(msg: str) -> int:
    print(f"attnverify: error: {msg}", file=sys.stderr)
    return EXIT_BAD_INPUT


def cmd_solve(args) -> int:
    from .solve import solve_instance
    from .validate import instance

    try:
        text = Path(args.case).read_text() if args.case != "-" else sys.stdin.read()
    except OSError as e:
        return _fail(f"{args.case}: cannot read ({e.strerror})")
    try:
        case = json.loads(text)
    except json.JSONDecodeError as e:
        return _fail(f"{args.case}: not valid JSON ({e.msg} at line {e.lineno} column {e.colno})")
    if not isinstance(case, dict):
        return _fail(f"{args.case}: expected a JSON object with keys templates, z, alpha (and optional u)")
    for key in ("templates", "z", "alpha"):
        if key not in case:
            return _fail(f"{key}: missing key")
    unknown = set(case) - {"templates", "z", "alpha", "u"}
    if unknown:
        return _fail(f"{sorted(unknown)[0]}: unknown key (expected templates, z, alpha, u)")
    try:
        T, u, z, alpha = instance(case["templates"], case["z"], case["alpha"], case.get("u"))
    except InputError as e:
        return _fail(str(e))
    out = solve_instance(T, u, z, alpha)
    print(json.dumps(out))
    return 0 if out["converged"] else 1


def cmd_verify(args) -> int:
    from . import context
    from .report import write_all
    from .verify import run_all

    docs = Path(args.docs)
    context.FIGURE_DIR = docs / "figures"
    select = None
    if args.only or args.k:
        only = {i.upper() for i in args.only or []}
        select = lambda c: (c.id in only) or (args.k and (fnmatch.fnmatch(c.id, f"*{args.k}*")
                                                          or args.k.lower() in c.title.lower()))
    res = run_all(select=select, log=lambda s: print(s, flush=True))
    if select is not None and not res["claims"]:
        return _fail("no claim matches the selection")
    ran = res["summary"]  # --strict judges the claims this run decided
    if select is not None:
        res = merge_into_previous(res, docs / "results.json")
    write_all(res, docs)
    print(f"wrote {docs}/report.md, {docs}/report.html, {docs}/results.json "
          f"({res['run']['wall_time_s']} s): " + ", ".join(f"{k} {v}" for k, v in res["summary"].items()))
    if args.strict and (ran["refuted"] or ran["inconclusive"]):
        return 1
    return 0


def merge_into_previous(res: dict, path: Path) -> dict:
    """A selective run replaces only the claims it ran; the others keep their previous results."""
    from .verify import STATUSES

    try:
        old = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return res
    new = {c["id"]: c for c in res["claims"]}
    claims = [new.pop(c["id"], c) for c in old.get("claims", [])] + list(new.values())
    ran = {c["id"] for c in res["claims"]}
    errata = [e for e in old.get("errata", []) if e.get("claim") not in ran] + res["errata"]
    res = dict(res, claims=claims, errata=errata)
    res["summary"] = {s: sum(c["status"] == s for c in claims) for s in STATUSES}
    res["run"] = dict(res["run"], partial_rerun=sorted(ran))
    return res


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="attnverify", description=__doc__)
    sub = ap.add_subparsers(dest="cmd", required=True)
    v = sub.add_parser("verify", help="run the registered claims and write the report")
    v.add_argument("--strict", action="store_true", help="exit 1 if any claim is refuted or inconclusive")
    v.add_argument("-k", metavar="PATTERN", help="only claims whose ID or title contains PATTERN")
    v.add_argument("--only", nargs="+", metavar="ID", help="only these claim IDs")
    v.add_argument("--docs", default="docs", help="output folder (default: docs)")
    v.set_defaults(func=cmd_verify)
    s = sub.add_parser("solve", help="solve one instance of (3)/(7) given as JSON")
    s.add_argument("case", help="JSON file (or - for standard input)")
    s.set_defaults(func=cmd_solve)
    args = ap.parse_args(argv)
    try:
        return args.func(args)
    except InputError as e:
        return _fail(str(e))


if __name__ == "__main__":
    sys.exit(main())
