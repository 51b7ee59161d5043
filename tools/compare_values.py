"""Compare two results.json files on every *value*, ignoring the wording of text fields.

Usage: ``python tools/compare_values.py OLD NEW``

tools/compare_results.py compares every shared field exactly, text included; after a change of notation
(issue 21, item 9: maths in report text as LaTeX) its list is dominated by re-worded ``why``, ``metric``,
step ``text``, captions, notes and findings.  This script answers the other question: did any value change?
It compares, claim by claim and in order,
  * every field that is not free text (numbers, booleans, statuses, keys, tolerances, check names),
    recursively, including the numeric fields of ``sensitivity``, ``invariance`` and ``parts``;
  * tables by their header and rows, matched in order whatever their caption says;
  * notes as the multiset of their numbers (a re-worded note with the same numbers is the same note).
Text fields (``why``, ``metric``, ``text``, ``caption``, ``finding``, ``reason``, ``decided``, ``conclusion``,
``transformation``, ``leaves_unchanged``, ``parameter``, ``why_this_range``, ``problem``, ``note``) are compared
only as the multiset of the numbers they contain, so a changed number inside a sentence is still reported.
Prints one line per difference and a summary; exit status 1 if a value differs.
"""

from __future__ import annotations

import re
import sys
from collections import Counter

from compare_results import read_pair  # tools/ is the script's folder, first on sys.path

TEXT = {"why", "metric", "text", "caption", "finding", "reason", "decided", "conclusion", "transformation",
        "leaves_unchanged", "parameter", "why_this_range", "problem", "note", "title_latex"}
VOLATILE = {"wall_time_s", "run", "summary"}
NUMBER = re.compile(r"(?<![\w.])[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?")


POW = re.compile(r"(\d+(?:\.\d+)?)\s*(?:\\times|\\cdot|\*)\s*10\^\{?([-+]?\d+)\}?")
POW10 = re.compile(r"(?<![\w.])10\^\{?([-+]?\d+)\}?")


def numbers(text: str) -> Counter:
    """The numbers written in a text (LaTeX or ASCII), as floats: '2/\\eta' and '2/eta' both give [2.0];
    LaTeX powers of ten ('10^{-4}', '3 \\times 10^{-2}') count as the numbers 1e-4 and 3e-2."""
    text = POW.sub(lambda m: f"{m.group(1)}e{m.group(2)}", text)
    text = POW10.sub(lambda m: f"1e{m.group(1)}", text)
    return Counter(float(x) for x in NUMBER.findall(text))


def walk(path, a, b, out, text=False):
    if isinstance(a, dict) and isinstance(b, dict):
        for k in (a.keys() & b.keys()) - VOLATILE:
            if k == "tables":
                tables(path + ".tables", a[k], b[k], out)
            elif k == "notes":
                na = sum((numbers(t) for t in a[k]), Counter())
                nb = sum((numbers(t) for t in b[k]), Counter())
                if na != nb:
                    out.append(f"{path}.notes: numbers {dict(na - nb)} -> {dict(nb - na)}")
            else:
                walk(f"{path}.{k}", a[k], b[k], out, k in TEXT)
    elif isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            out.append(f"{path}: {len(a)} entries -> {len(b)}")
        for i, (x, y) in enumerate(zip(a, b)):
            walk(f"{path}[{i}]", x, y, out, text)
    elif text and isinstance(a, str) and isinstance(b, str):
        if numbers(a) != numbers(b):
            out.append(f"{path}: numbers {dict(numbers(a) - numbers(b))} -> {dict(numbers(b) - numbers(a))}")
    elif a != b or type(a) is not type(b):
        out.append(f"{path}: {a!r} -> {b!r}")


def tables(path, ta, tb, out):
    if len(ta) != len(tb):
        out.append(f"{path}: {len(ta)} tables -> {len(tb)}")
    for i, (x, y) in enumerate(zip(ta, tb)):
        walk(f"{path}[{i}]", {k: v for k, v in x.items() if k != "caption"},
             {k: v for k, v in y.items() if k != "caption"}, out)
        if numbers(x.get("caption", "")) != numbers(y.get("caption", "")):
            out.append(f"{path}[{i}].caption: its numbers differ")


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if len(argv) != 2:
        print("usage: python tools/compare_values.py OLD NEW", file=sys.stderr)
        return 2
    pair = read_pair(argv, "compare_values")
    if pair is None:
        return 2
    old, new = pair
    out: list[str] = []
    oc = {c["id"]: c for c in old.get("claims", [])}
    nc = {c["id"]: c for c in new.get("claims", [])}
    out += [f"{c}: claim missing from NEW" for c in sorted(oc.keys() - nc.keys())]
    out += [f"{c}: claim only in NEW" for c in sorted(nc.keys() - oc.keys())]
    for cid in sorted(oc.keys() & nc.keys()):
        walk(cid, oc[cid], nc[cid], out)
    for k in (old.keys() & new.keys()) - VOLATILE - {"claims"}:
        walk(k, old[k], new[k], out)
    for line in out:
        print(line)
    print(f"compare_values: {len(oc.keys() & nc.keys())} claims compared on every value (text by its numbers): "
          f"{len(out)} difference(s)")
    return 1 if out else 0


if __name__ == "__main__":
    sys.exit(main())
