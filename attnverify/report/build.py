"""The report's content, built once from a results dict as a :class:`~.model.Site`.

Every field of results.json this round is rendered when present (issues 15, 16, 20, 21, 22),
and a results dict from before (no ``quote``, ``parts``, ``latex``, ...) renders without them.
"""

from __future__ import annotations

import re
from pathlib import Path

from ..evidence import slug
from . import papers
from .model import (CMD, Badge, Box, Code, Details, Figure, Heading, Items, Link, MarkdownSource, Math, MathBlock, Note,
                    Page, Para, Quote, Row, Site, Strong, Table, Text, clean, fmt, formula, paragraphs, plain, shorten,
                    text, value)

# strongest first (issue 22): a proof for general n, ball arithmetic on instances, floating point
# with an error argument, sampling
EVIDENCE_ORDER = ("proof", "certificate", "float", "statistical")
# characters of LaTeX shown before a long formula is shortened: in a table cell (which cannot hold
# a toggle), and as display maths (about a line; the full form behind "show full")
LONG_CELL, LONG = 160, 400


def anchor(cid: str) -> str:
    return cid.lower().replace("/", "-")


def claim_key(cid: str) -> str:
    return "claim:" + cid


def strongest(kinds) -> str:
    ks = [k for k in kinds if k in EVIDENCE_ORDER]
    return min(ks, key=EVIDENCE_ORDER.index) if ks else ""


class _Notes:
    """Footnotes of one page: the file name of each paper cited, numbered on first use."""

    def __init__(self):
        self.labels: list[str] = []
        self.items: list[dict] = []  # {"label", "runs"}

    def ref(self, seed: str, location: str = "") -> list:
        p = papers.lookup(seed, location)
        label = p.label if p else seed[:3]
        if label not in self.labels:
            self.labels.append(label)
            self.items.append({"label": label, "runs": [Code(seed)] + (
                [Text(f", {p.abstract} abstract")] if p and p.abstract else [])})
        return [Note(self.labels.index(label) + 1, label)]


def cite(seed: str, location: str, notes: _Notes, link: bool = True, short: bool = False) -> list:
    """A paper by name, linked to its bibliography entry, the file name in a footnote."""
    p = papers.lookup(seed, location)
    name = (p.short or p.cite()) if (p and short) else p.cite() if p else seed
    runs = [Link(plain(name), page="index", anchor=p.anchor)] if (p and link) else plain(name)
    return runs + notes.ref(seed, location)


# ---------------------------------------------------------------- per claim


def _checks_of(c: dict, keys) -> list[dict]:
    keys = set(keys or ())
    return [ch for ch in c["checks"] if ch.get("key") in keys or ch["name"] in keys]


def _behind(checks: list[dict]) -> str:
    """The strongest evidence behind a verdict: of the failing checks if any failed (a refutation
    rests on them), else of all."""
    failed = [ch for ch in checks if not ch["passed"]]
    return strongest(ch.get("evidence", "") for ch in (failed or checks))


def evidence_by_part(c: dict) -> dict[str, str]:
    """The strongest kind of evidence behind the claim and each of its parts: the claim's own
    ``evidence_by_part`` where given, else computed from the checks' ``evidence``."""
    given = c.get("evidence_by_part") or {}
    out = {c["id"]: given.get(c["id"]) or _behind(c["checks"])}
    for p in c.get("parts") or []:
        out[p["id"]] = given.get(p["id"]) or _behind(_checks_of(c, p.get("checks")))
    return out


def decided(c: dict) -> list:
    """"What decided it": the claim's own line where given, else the failing parts or checks."""
    if c.get("decided"):
        return text(c["decided"])
    failed_parts = [p for p in c.get("parts") or [] if p.get("status") == c["status"] and c["status"] != "verified"]
    if failed_parts:
        return [Text(f"{c['status']} part{'s' if len(failed_parts) > 1 else ''}: ")] + _join(
            [[Link(plain(p["id"]), page=claim_key(c["id"]), anchor=anchor(p["id"]))] for p in failed_parts])
    failed = [ch for ch in c["checks"] if not ch["passed"]]
    if c["status"] == "refuted" and failed:
        return [Text("failed: ")] + _join([text(ch["name"]) for ch in failed[:3]]) + (
            [Text(f" and {len(failed) - 3} more")] if len(failed) > 3 else [])
    if c["status"] == "verified":
        return [Text(_passed(len(c["checks"])))]
    return text(c.get("reason", ""))


def _passed(n: int) -> str:
    return "the check passed" if n == 1 else f"all {n} checks passed"


def _join(runs: list[list], sep: str = ", ") -> list:
    out = []
    for i, r in enumerate(runs):
        out += ([Text(sep)] if i else []) + r
    return out


def _sensitivity(ch: dict) -> list:
    """A judgement check's range: the parameter, the declared range (and nominal value), and
    whether the verdict is stable over it or where it flips."""
    s = ch.get("sensitivity")
    if ch.get("threshold_kind") != "judgement":
        return []
    if not s:
        return [Strong(plain("Judgement call")), Text(" (no sensitivity recorded). ")]
    lo, hi = (list(s.get("declared_range") or []) + [None, None])[:2]
    nominal = f", nominal {fmt(s['nominal'])}" if s.get("nominal") is not None else ""
    # the parameter is report text (it may hold $...$ maths): parsed like the other texts
    runs = ([Strong(plain("Judgement call")), Text(" over ")] + text(s.get("parameter", "?"))
            + [Text(f" in [{fmt(lo)}, {fmt(hi)}]{nominal}: ")])
    if s.get("verdict_over_range") == "flips" or s.get("flips_at") is not None:
        runs.append(Strong(plain(f"flips at {fmt(s.get('flips_at'))}")))
    else:
        runs.append(Text(s.get("verdict_over_range") or "stable"))
    return runs + [Text(". ")]


def _why(ch: dict) -> list:
    """Why the tolerance: a judgement check's sensitivity first (next to the check), then the
    reason, then why the range was declared so."""
    runs = _sensitivity(ch) + text(ch.get("why", ""))
    s = ch.get("sensitivity") or {}
    if s.get("why_this_range"):
        runs += [Text(" "), Strong(plain("Range:")), Text(" ")] + text(s["why_this_range"])
    return runs


_TEXT_GROUP = re.compile(r"\\(?:text|textrm|mathrm|operatorname|mbox)\{[^{}]*\}")
_WORDS = re.compile(r"(?:\b[A-Za-z]{3,}\b[\s,;:]+){3}[A-Za-z]{3,}")


def statement(s: str) -> list:
    """A statement: LaTeX as display maths, or, if it is prose (a run of four words outside any
    \\text{...} and command, or $...$ inside), a paragraph with its maths inline."""
    s = s or ""
    if "$" in s or _WORDS.search(CMD.sub(" ", _TEXT_GROUP.sub(" ", s))):
        return [Para(text(s))]
    return [MathBlock(s)]


def _check_slug(c: dict, ch: dict) -> str:
    """The check's key (its name's slug in results from before keys), numbered if repeated."""
    bases = [x.get("key") or slug(x["name"]) for x in c["checks"]]
    i = next(j for j, x in enumerate(c["checks"]) if x is ch)
    n = bases[:i].count(bases[i])
    return bases[i] + (f"-{n + 1}" if n else "")


def _check_anchor(c: dict, ch: dict) -> str:
    return f"{anchor(c['id'])}-check-{_check_slug(c, ch)}"


def _check_cell(ch: dict) -> list:
    runs = text(ch["name"])
    if ch.get("key"):
        runs += [Text(" "), Code(ch["key"])]
    return runs


def _metric(c: dict, ch: dict) -> list:
    if ch.get("latex") and ch["metric"].startswith("simplify("):
        return [Text("left side − right side, "),
                Link(plain("compared below"), page=claim_key(c["id"]), anchor=_sym_anchor(c, ch))]
    runs = formula(ch["metric"])
    return _short_runs(runs)


def _short_runs(runs: list) -> list:
    """A table cell cannot hold a toggle: a long formula in a cell is cut to a valid shorter form."""
    out = []
    for r in runs:
        if isinstance(r, Math) and (s := shorten(r.latex, LONG_CELL)) is not None:
            out += [Math(s), Text(f" (shortened from {len(r.latex)} characters)")]
        else:
            out.append(r)
    return out


def _sym_anchor(c: dict, ch: dict) -> str:
    return f"{anchor(c['id'])}-sym-{_check_slug(c, ch)}"


def _math_or_details(latex: str, what: str) -> list:
    """Display maths; a long expression shortened, with the full form behind "show full"."""
    s = shorten(latex, LONG)
    if s is None:
        return [MathBlock(latex)]
    head = Para(plain("(too long to show whole)"), cls="placeholder") if s == "\\cdots" else MathBlock(s)
    return [head, Details(plain(f"show full {what} ({len(latex)} characters of LaTeX)"), [MathBlock(latex)])]


def _symbolic(c: dict) -> list:
    rows = [ch for ch in c["checks"] if ch.get("latex")]
    if not rows:
        return []
    items = []
    for ch in rows:
        lx = ch["latex"]
        blocks = [Para([Strong(text(ch["name"]))] + ([Text(" "), Code(ch["key"])] if ch.get("key") else []),
                       cls="anchored", anchor=_sym_anchor(c, ch))]
        blocks += [Para(plain("left side"), cls="side")] + _math_or_details(lx.get("lhs", ""), "left side")
        blocks += [Para(plain("right side"), cls="side")] + _math_or_details(lx.get("rhs", ""), "right side")
        blocks += [Para(plain("residual"), cls="side")] + _math_or_details(lx.get("residual", ""), "residual")
        items.append(blocks)
    return [Heading(3, plain("What the symbolic checks compared"), anchor=anchor(c["id"]) + "-symbolic"),
            Para(plain("For each symbolic identity, the two sides as they were compared, and the residual "
                       "(left side − right side) as SymPy reduced it: the identity holds when the residual is 0."),
                 cls="legend"),
            Items(items, cls="symbolic")]


def _parts_table(c: dict, ev: dict) -> list:
    parts = c.get("parts") or []
    if not parts:
        return []
    rows = []
    for p in parts:
        keys = p.get("checks") or []
        rows.append(Row([[Strong(plain(p["id"]))], text(p.get("title", "")), [Badge(p.get("status", ""))],
                         _join([[Link([Code(k)], page=claim_key(c["id"]), anchor=_check_anchor(c, ch))]
                                if (ch := next(iter(_checks_of(c, [k])), None)) else [Code(k)] for k in keys], " "),
                         text(p.get("finding", "")),
                         plain(ev.get(p["id"], ""))],
                        cls="fail" if p.get("status") == "refuted" else "", anchor=anchor(p["id"])))
    return [Heading(2, plain("Parts"), anchor=anchor(c["id"]) + "-parts"),
            Table([plain("part"), plain("statement"), plain("status"), plain("checks"), plain("finding"),
                   plain("strongest evidence")], rows, cls="parts")] + [
        Box("part " + p["id"], statement(p["statement"]), cls="partstmt") for p in parts if p.get("statement")]


def _invariance(c: dict) -> list:
    invs = c.get("invariance") or []
    if not invs:
        return []
    out = [Heading(2, plain("Invariance"), anchor=anchor(c["id"]) + "-invariance")]
    for inv in invs:
        par = inv.get("parameter", "parameter")
        rows = [Row([value(v.get("parameter")), value(v.get("metric"))]) for v in inv.get("values") or []]
        cap = [Strong(text(inv.get("transformation", "")))]
        if inv.get("leaves_unchanged"):
            cap += [Text("; leaves unchanged: ")] + text(inv["leaves_unchanged"])
        out.append(Table([text(par), text(inv.get("metric") or "metric")], rows, cls="invariance", caption=cap))
        if inv.get("conclusion"):
            out.append(Para([Strong(plain("Conclusion.")), Text(" ")] + text(inv["conclusion"])))
    return out


def claim_page(c: dict, docs: Path) -> Page:
    """One claim's page: its source and statement, the verdict, the parts, the finding, the derivation,
    the checks and the numeric evidence, in that order."""
    cid, a = c["id"], anchor(c["id"])
    notes = _Notes()
    ev = evidence_by_part(c)
    blocks: list = [Heading(1, plain(f"{cid}: {c['title']}") + [Text(" "), Badge(c["status"])])]
    blocks += _source_and_statement(c, notes)
    blocks.append(_verdict_box(c, ev))
    blocks += _parts_table(c, ev)
    if c.get("finding"):
        blocks.append(Para([Strong(plain("Finding.")), Text(" ")] + text(c["finding"])))
    blocks += _invariance(c)
    blocks += _derivation(c)
    blocks += _checks_table(c)
    blocks += _numeric_evidence(c, docs)
    return Page(claim_key(cid), f"{cid}: {c['title']}", blocks, badge=c["status"], notes=notes.items, anchor=a)


def _source_and_statement(c: dict, notes: _Notes) -> list:
    """The paper cited, its words (where quoted), the statement as formalised and what the reading adds."""
    src = c.get("source") or {}
    blocks = [Para([Text("Source: ")] + cite(src.get("seed", ""), src.get("equation", ""), notes)
                   + [Text(f", {src.get('equation', '')}")], cls="source")]
    q = c.get("quote")
    if q:
        qsrc = q.get("source", src.get("seed", ""))
        blocks.append(Quote(paragraphs(q.get("text", "")),
                            cite=[Text("The paper's words: ")] + cite(qsrc, q.get("location", src.get("equation", "")), notes)
                            + [Text(f", {q.get('location', '')}")]))
    blocks.append(Box("made precise as" if q else "statement (our formalisation)", statement(c["statement"]),
                      cls="stmt", anchor=anchor(c["id"]) + "-statement"))
    if c.get("reading"):
        blocks.append(Para([Strong(plain("What our reading adds.")), Text(" ")] + text(c["reading"])))
    return blocks


def _verdict_box(c: dict, ev: dict) -> Box:
    """The status with its reason, what decided it, the functions that decide it and the strongest evidence."""
    cid = c["id"]
    verdict = [Para([Badge(c["status"]), Text(" ")] + text(c.get("reason", "")))]
    verdict.append(Para([Strong(plain("What decided it:")), Text(" ")] + decided(c)))
    if c.get("decided_by"):
        verdict.append(Para([Text("decided by: ")] + _join([[Code(f)] for f in c["decided_by"]])))
    if ev.get(cid):
        verdict.append(Para([Text("strongest evidence: "), Strong(plain(ev[cid]))]))
    return Box("verdict", verdict, cls="verdict", anchor=anchor(cid) + "-verdict")


def _derivation(c: dict) -> list:
    """The SymPy derivation's steps, each with its display maths."""
    if not c.get("derivation"):
        return []
    return [Heading(2, plain("Derivation (SymPy)"), anchor=anchor(c["id"]) + "-derivation"),
            Items([[Para(text(s["text"]))] + ([MathBlock(s["latex"])] if s.get("latex") else [])
                   for s in c["derivation"]], ordered=True, cls="derivation")]


def _checks_table(c: dict) -> list:
    """The checks, one row each (a column no check fills is left out), then what the symbolic ones compared."""
    if not c["checks"]:
        return []
    cols = [("check", _check_cell),
            ("method", lambda ch: plain(ch["method"] + (f" · {ch['numerical_class']}"
                                                        if ch.get("numerical_class") else ""))),
            ("metric", lambda ch: _metric(c, ch)),
            ("value", lambda ch: [Math(ch["latex"]["residual"])] if (ch.get("latex") or {}).get("residual")
             else _short_runs(value(ch["value"]))),
            ("tolerance", lambda ch: value(ch["tolerance"]) + (
                [Text(" (judgement)")] if ch.get("threshold_kind") == "judgement" else [])),
            ("evidence", lambda ch: plain(ch["evidence"]) if ch.get("evidence") else []),
            ("passed", lambda ch: plain("yes") if ch["passed"] else [Strong(plain("NO"))]),
            ("why this tolerance", _why)]
    # a column no check fills (results from before a field existed) is left out
    cols = [(h, f) for h, f in cols if h != "evidence" or any(f(ch) for ch in c["checks"])]
    rows = [Row([f(ch) for _, f in cols], cls="" if ch["passed"] else "fail", anchor=_check_anchor(c, ch))
            for ch in c["checks"]]
    return [Heading(2, plain("Checks"), anchor=anchor(c["id"]) + "-checks"),
            Table([plain(h) for h, _ in cols], rows, cls="checks")] + _symbolic(c)


def _numeric_evidence(c: dict, docs: Path) -> list:
    """The claim's tables, its figures (marked absent where the file is missing) and its notes."""
    blocks = []
    if c.get("tables"):
        blocks.append(Heading(2, plain("Numeric evidence"), anchor=anchor(c["id"]) + "-evidence"))
        for t in c["tables"]:
            blocks.append(Table([text(h) for h in t["header"]],
                                [Row([value(v) for v in r]) for r in t["rows"]], cls="evidence",
                                caption=text(t["caption"])))
    for f in c.get("figures") or []:
        blocks.append(Figure(f["path"], text(f["caption"]), present=(docs / f["path"]).is_file()))
    if c.get("notes"):
        blocks.append(Items([[Para(text(n))] for n in c["notes"]]))
    return blocks


# ---------------------------------------------------------------- the index


def _summary(res: dict, notes: _Notes) -> Table:
    rows = []
    for c in res["claims"]:
        ev = evidence_by_part(c)
        src = c.get("source") or {}
        rows.append(Row([[Link(plain(c["id"]), page=claim_key(c["id"]))], text(c["title"]),
                         cite(src.get("seed", ""), src.get("equation", ""), notes, link=False, short=True)
                         + [Text(", " + src.get("equation", ""))],
                         [Badge(c["status"])], decided(c), plain(ev.get(c["id"], ""))],
                        cls="claim", anchor="summary-" + anchor(c["id"])))
        for p in c.get("parts") or []:
            rows.append(Row([[Text("↳ "), Link(plain(p["id"]), page=claim_key(c["id"]), anchor=anchor(p["id"]))],
                             text(p.get("title", "")), [], [Badge(p.get("status", ""))],
                             text(p.get("finding", "")) if p.get("status") != "verified" else
                             [Text(_passed(len(p.get("checks") or [])))],
                             plain(ev.get(p["id"], ""))], cls="part"))
    return Table([plain(h) for h in ("ID", "claim", "paper", "status", "what decided it", "strongest evidence")],
                 rows, cls="summary")


def _errata(res: dict, notes: _Notes) -> list:
    if not res.get("errata"):
        return [Para(plain("None found."))]
    rows = [Row([cite(e["source"], e.get("equation", ""), notes, short=True) + [Text(", " + e["equation"] + " (found by ")]
                 + [Link(plain(e["claim"]), page=claim_key(e["claim"])), Text(")")],
                 [Math(e["printed"])], [Math(e["corrected"])], text(e.get("note", ""))]) for e in res["errata"]]
    return [Para(plain("Printed equations that differ from what the derivation gives (computed, not transcribed).")),
            Table([plain(h) for h in ("where", "printed", "corrected", "note")], rows,
                  cls="errata")]


def _claim_links(ids) -> list:
    return _join([[Link(plain(i), page=claim_key(i.split("/")[0]),
                        anchor=anchor(i) if "/" in i else "")] for i in ids or []])


def _coverage(res: dict, notes: _Notes) -> list:
    cov = res.get("coverage")
    if not cov:
        return []
    seeds = list(dict.fromkeys(e.get("source", "") for e in cov))  # papers in order, each row as given
    rows = []
    for s in seeds:
        for e in (e for e in cov if e.get("source", "") == s):
            rows.append(Row([cite(s, e.get("equation", ""), notes, link=False, short=True), plain(e.get("equation", "")),
                             [Math(e["printed"])] if e.get("printed") else [],  # always LaTeX (coverage.toml)
                             [Badge(e.get("status", ""))], _claim_links(e.get("claims")),
                             text(e.get("how") or e.get("why_not") or "")],
                            cls="fail" if e.get("status") == "not-checked" else ""))
    counts = {k: sum(e.get("status") == k for e in cov) for k in ("checked", "erratum", "not-checked")}
    return [Heading(2, plain("Coverage"), anchor="coverage"),
            Para(plain(f"The papers' equations and displayed statements, in the papers' order: "
                       f"{counts['checked']} checked, {counts['erratum']} errata, {counts['not-checked']} not checked.")),
            Table([plain(h) for h in ("paper", "equation", "printed", "status", "checked by", "how, or why not")],
                  rows, cls="coverage")]


def _abstracts(res: dict, notes: _Notes) -> list:
    ab = res.get("abstracts")
    if not ab:
        return []
    where = {c["id"]: (c.get("source") or {}).get("equation", "") for c in res["claims"]}

    def location(e):  # which abstract of a seed: the one its claims cite ("second abstract")
        return next((where[i.split("/")[0]] for i in e.get("claims") or [] if i.split("/")[0] in where), "")

    rows = [Row([cite(e.get("source", ""), location(e), notes, link=False, short=True), text(e.get("sentence", "")),
                 [Badge(e.get("status", ""))], _claim_links(e.get("claims")), text(e.get("why_not", ""))])
            for e in ab]
    return [Heading(2, plain("Abstracts"), anchor="abstracts"),
            Para(plain("Each sentence of the abstracts, and the claims that check it.")),
            Table([plain(h) for h in ("paper", "sentence", "status", "claims", "why not")], rows, cls="abstracts")]


def _papers(res: dict, notes: _Notes) -> list:
    used = sorted({(c["source"]["seed"], c["source"].get("equation", "")) for c in res["claims"] if c.get("source")})
    seen, items = set(), []
    for p in papers.load():
        if p.anchor in seen:
            continue
        seen.add(p.anchor)
        runs = [Strong(plain(p.cite())), Text(f" ({p.kind}). Authors: {p.authors}; year: {p.year}; "
                                              f"identifier: {p.identifier}; file: "), Code(p.seed)]
        runs += ([Text(f", {p.abstract} abstract")] if p.abstract else []) + [Text(".")]
        if p.see:
            runs += [Text(" See: " + p.see + ".")]
        items.append([Para(runs, cls="anchored", anchor=p.anchor)])
    cited = {papers.lookup(s, e).label for s, e in used if papers.lookup(s, e)}
    missing = [s for s, e in used if papers.lookup(s, e) is None]
    out = [Heading(2, plain("Papers"), anchor="papers"),
           Para(plain(f"The works the claims come from ({len(cited)} cited), as their own text names them "
                      "(attnverify/papers.toml); a field the text does not give says so."))]
    if missing:
        out.append(Para(plain("No bibliography entry for: " + ", ".join(sorted(set(missing)))), cls="fail"))
    return out + [Items(items, cls="papers")]


def _run(run: dict) -> Table:
    rows = []
    for k, v in run.items():
        if isinstance(v, dict):
            v = ", ".join(f"{a} {b}" for a, b in v.items() if b is not None)
        elif isinstance(v, list):
            v = ", ".join(map(str, v)) or "none"
        rows.append(Row([plain(k.replace("_", " ")), plain(v)]))
    return Table([plain("field"), plain("value")], rows, cls="meta")


def index_page(res: dict) -> Page:
    notes = _Notes()
    run = res["run"]
    counts = [[Badge(k), Text(f" {v}")] for k, v in res["summary"].items()]
    blocks = [Heading(1, plain("attnverify report")),
              Para([Text(f"{len(res['claims'])} claims: ")] + _join(counts, " · ")
                   + [Text(f". Seed {run.get('seed')}, wall time {run.get('wall_time_s')} s; see "),
                      Link(plain("Run"), page="index", anchor="run"), Text(" for versions and timing.")]),
              Para([Strong(plain("verified")), Text(": every check ran and passed its stated tolerance; "),
                    Strong(plain("refuted")), Text(": a check ran and the claim as printed is false (the failing "
                                                   "part is named); "),
                    Strong(plain("inconclusive")), Text(": could not be decided, or a judgement call flips inside "
                                                        "its declared range; "),
                    Strong(plain("not-checkable")), Text(": no precise statement.")], cls="legend"),
              Para([Text("Related pages: "), Link(plain("how to read this report"), page="guide"), Text(" · "),
                    Link(plain("solver benchmark"), href="bench.md"), Text(" ("), Code("make bench"), Text(") · "),
                    Link(plain("mutation testing"), href="mutate.md"), Text(" ("), Code("make mutate"), Text(") · "),
                    Link(plain("the Section 8 sweep"), href="sweep.md"), Text(".")]),
              Heading(2, plain("Summary"), anchor="summary"),
              Para(plain("Each claim, then its parts indented under it; the paper is named in full under "
                         "Papers."), cls="legend"),
              _summary(res, notes),
              Heading(2, plain("Errata"), anchor="errata")]
    blocks += _errata(res, notes)
    blocks += _coverage(res, notes)
    blocks += _abstracts(res, notes)
    blocks += _papers(res, notes)
    blocks += [Heading(2, plain("Run"), anchor="run"), _run(run)]
    return Page("index", "attnverify report", blocks, notes=notes.items)


def guide_page(docs: Path) -> Page:
    """docs/README.md as the page "How to read this report" (the project's copy if the output
    folder has none)."""
    for readme in (docs / "README.md", Path(__file__).resolve().parents[2] / "docs" / "README.md"):
        if readme.is_file():
            return Page("guide", "How to read this report", [MarkdownSource(clean(readme.read_text(encoding="utf-8")))])
    return Page("guide", "How to read this report",
                [MarkdownSource("# How to read this report\n\nThis page is the project's `docs/README.md`, "
                                "which was not found when the report was written.\n")])


def site(res: dict, docs: Path) -> Site:
    return Site([index_page(res)] + [claim_page(c, docs) for c in res["claims"]] + [guide_page(docs)])
