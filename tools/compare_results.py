"""Compare two results.json files on every field they share.

Usage: ``python tools/compare_results.py OLD NEW [--ignore FIELD,FIELD...]``

Claims are matched by ``id``; a claim's checks by position and name (the i-th check of a claim
in OLD against the i-th in NEW, which must carry the same name); its tables by caption (a table
added in NEW shifts no other) and its notes as a multiset (a removed or added note is listed). Every field present in both
entries is compared exactly (values as written, tolerance texts included); fields present in
only one file (new fields such as ``key``) are counted, not compared. Wall times and the run's
environment block differ from run to run and are left out. Prints one line per difference and
a summary line; exit status 1 if anything differs, 0 otherwise.
"""

from __future__ import annotations

import json
import sys
from collections import Counter

VOLATILE = {"wall_time_s"}  # per-claim timing: differs on every run
TOP_VOLATILE = {"run", "summary"}  # environment and run timing; summary is recomputed from the claims


IGNORE: set[str] = set()


def _compare(path: str, old, new, out: list[str]) -> None:
    if isinstance(old, dict) and isinstance(new, dict):
        for k in (old.keys() & new.keys()) - IGNORE:
            _compare(f"{path}.{k}", old[k], new[k], out)
    elif isinstance(old, list) and isinstance(new, list):
        if len(old) != len(new):
            out.append(f"{path}: {len(old)} entries -> {len(new)}")
        for i, (a, b) in enumerate(zip(old, new)):
            _compare(f"{path}[{i}]", a, b, out)
    elif old != new or type(old) is not type(new):
        out.append(f"{path}: {old!r} -> {new!r}")


def compare(old: dict, new: dict) -> tuple[list[str], dict]:
    diffs, stats = [], Counter()
    only_new = Counter()
    for k in (old.keys() & new.keys()) - TOP_VOLATILE - {"claims"}:
        _compare(k, old[k], new[k], diffs)
    oc = {c["id"]: c for c in old.get("claims", [])}
    nc = {c["id"]: c for c in new.get("claims", [])}
    for cid in sorted(oc.keys() - nc.keys()):
        diffs.append(f"{cid}: claim missing from NEW")
    for cid in sorted(nc.keys() - oc.keys()):
        diffs.append(f"{cid}: claim only in NEW")
    for cid in sorted(oc.keys() & nc.keys()):
        a, b = oc[cid], nc[cid]
        stats["claims"] += 1
        for k in (a.keys() & b.keys()) - VOLATILE - IGNORE - {"checks", "tables", "notes"}:
            _compare(f"{cid}.{k}", a[k], b[k], diffs)
        if "tables" in a and "tables" in b and "tables" not in IGNORE:  # tables by caption: one added shifts none
            ta, tb = ({t["caption"]: t for t in x["tables"]} for x in (a, b))
            for cap in ta.keys() - tb.keys():
                diffs.append(f"{cid}.tables: {cap!r} no longer written")
            for cap in tb.keys() - ta.keys():
                stats["tables only in NEW"] += 1
                only_new[f"claim.tables[{cap[:40]}...]"] += 1
            for cap in ta.keys() & tb.keys():
                _compare(f"{cid}.tables[{cap[:40]!r}]", ta[cap], tb[cap], diffs)
        if "notes" in a and "notes" in b and "notes" not in IGNORE:  # notes as a multiset (order is not a value)
            na, nb = Counter(a["notes"]), Counter(b["notes"])
            for t in sorted((na - nb).elements()):
                diffs.append(f"{cid}.notes: {t[:120]!r} no longer written")
            for t in sorted((nb - na).elements()):
                diffs.append(f"{cid}.notes: {t[:120]!r} new")
        only_new.update(f"claim.{k}" for k in b.keys() - a.keys())
        ca, cb = a.get("checks", []), b.get("checks", [])
        if len(ca) != len(cb):
            diffs.append(f"{cid}.checks: {len(ca)} checks -> {len(cb)}")
        for i, (x, y) in enumerate(zip(ca, cb)):
            where = f"{cid}.checks[{i}] {x.get('name', '')!r}"
            if x.get("name") != y.get("name"):
                diffs.append(f"{where}: name differs: {y.get('name')!r}")
                continue
            stats["checks"] += 1
            shared = (x.keys() & y.keys()) - IGNORE
            stats["check fields"] += len(shared)
            for k in shared:
                _compare(f"{where}.{k}", x[k], y[k], diffs)
            only_new.update(f"check.{k}" for k in y.keys() - x.keys())
    stats["only in NEW"] = dict(only_new)
    return diffs, stats


def read_pair(paths, prog: str):
    """The two results.json files as dicts, or None after a one-line error naming the file (exit status 2)."""
    try:
        return tuple(json.load(open(p)) for p in paths)
    except (OSError, json.JSONDecodeError) as e:
        print(f"{prog}: cannot read {e}", file=sys.stderr)
        return None


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--ignore" in argv:
        i = argv.index("--ignore")
        if i + 1 >= len(argv):
            print("compare_results: --ignore needs a comma-separated list of fields", file=sys.stderr)
            return 2
        IGNORE.update(f for f in argv[i + 1].split(",") if f)
        del argv[i:i + 2]
    if len(argv) != 2:
        print("usage: python tools/compare_results.py OLD NEW [--ignore FIELD,FIELD...]", file=sys.stderr)
        return 2
    pair = read_pair(argv, "compare_results")
    if pair is None:
        return 2
    old, new = pair
    diffs, st = compare(old, new)
    for d in diffs:
        print(d)
    extra = ", ".join(f"{k} ({n})" for k, n in sorted(st["only in NEW"].items())) or "none"
    print(f"compared {st['claims']} claims, {st['checks']} checks ({st['check fields']} shared check fields): "
          f"{len(diffs)} difference(s); fields only in NEW: {extra}"
          + (f"; ignored: {','.join(sorted(IGNORE))}" if IGNORE else ""))
    return 1 if diffs else 0


if __name__ == "__main__":
    sys.exit(main())
