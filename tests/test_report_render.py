"""The report, rendered twice from one document: report.md parses as GFM with every table at its
number of columns, the HTML site carries every results.json field of this round, nothing is
concatenated unescaped, and no control character reaches a generated file.

Generated into a temporary folder from the committed docs/results.json (no solver run) and from
fake results that carry every new field (quote, reading, parts, decided, invariance, decided_by,
key, evidence, evidence_by_part, threshold_kind, sensitivity, latex, coverage, abstracts).
"""

from __future__ import annotations

import copy
import importlib
import json
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from markdown_it import MarkdownIt

from attnverify.report import build, write_all
from attnverify.report.model import CONTROL, Table, shorten

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
BEL = chr(7)
LONG_LHS = " + ".join(rf"\frac{{a_{{{i}}}}}{{1 + \left(x - {i}\right)^{{2}}}}" for i in range(40))

# escapedSplit is how markdown-it splits a table row into cells: counting cells with it counts
# what a GFM renderer sees (the parser itself pads or drops cells to the header's number)
escaped_split = importlib.import_module("markdown_it.rules_block.table").escapedSplit


def _check(name, key, passed=True, **kw):
    base = {"name": name, "key": key, "method": "scipy", "metric": "gap", "value": 1.5e-9, "tolerance": 1e-6,
            "passed": passed, "why": "strong concavity", "numerical_class": "iterative",
            "threshold_kind": "numerical", "evidence": "float"}
    base.update(kw)
    return base


def fake_results() -> dict:
    """Three claims: one with every new field, one refuted by a part and a judgement call, one as
    results were before this round (no new field at all)."""
    rich = {
        "id": "FD-19", "title": "BERT and T5 attention as (16) with alpha = 1", "family": "FD",
        "source": {"seed": "004_830fd89135933577.txt", "equation": "(19), Sec 8"},
        "quote": {"source": "004_830fd89135933577.txt", "location": "Sec 8",
                  "text": "for BERT, setting $\\alpha = 1$ yields u_i/|G| the summation $$ a = \\frac{1}{2} $$ (19)"},
        "reading": "We read (19) for both models | and check each separately.",
        "statement": r"\hat h = \sum_i t_i \frac{u_i e^{\langle t_i, z\rangle}}{\sum_j u_j e^{\langle t_j, z\rangle}}",
        "status": "refuted", "reason": "part FD-19/T5 is false as printed",
        "decided": "FD-19/T5: the T5 logits differ (check `t5-logits`)",
        "decided_by": ["attnverify.checks.t5_identity:logits", "attnverify.derivations.fd19:bert"],
        "finding": "The BERT half holds; T5 needs the bias inside the exponent.",
        "parts": [
            {"id": "FD-19/BERT", "title": "BERT as (16)", "status": "verified",
             "statement": r"the BERT layer equals (16) with $\alpha = 1$ for every input",
             "checks": ["bert-identity"], "finding": ""},
            {"id": "FD-19/T5", "title": "T5 as (16) | printed", "statement": r"c = d", "status": "refuted",
             "checks": ["t5-logits"], "finding": "printed form misses the bias"},
        ],
        "evidence_by_part": {"FD-19/BERT": "proof"},
        "invariance": [{"transformation": "t_i -> c t_i, z -> z / c", "leaves_unchanged": "the attention output",
                        "parameter": "c", "values": [{"parameter": 0.1, "metric": 0.0123},
                                                     {"parameter": 10.0, "metric": 0.456}],
                        "conclusion": "the deviation depends on the gauge c"}],
        "checks": [
            _check("BERT identity", "bert-identity", method="symbolic", metric=f"simplify({LONG_LHS} - (0))",
                   value="0", tolerance="exact", numerical_class="exact", evidence="proof",
                   latex={"lhs": LONG_LHS, "rhs": r"\sum_{i} y_{i}", "residual": "0"}),
            _check("T5 logits", "t5-logits", passed=False, value=0.111, tolerance=0.1,
                   threshold_kind="judgement", evidence="statistical",
                   sensitivity={"parameter": "threshold", "declared_range": [0.05, 0.2],
                                "why_this_range": "what 'nearly' means in this literature",
                                "flips_at": 0.111, "verdict_over_range": "flips"}),
            _check("norm with a pipe", "pipe", metric=r"\|\lambda^*\| / |G|", value=0.5, tolerance=1.0),
        ],
        "derivation": [{"text": "Set alpha = 1", "latex": r"\alpha = 1"}],
        "figures": [], "tables": [{"caption": "per-layer | deviation", "header": ["layer", "mean |d|"],
                                   "rows": [[1, 0.01], [2, "x|y"]]}],
        "notes": ["a note with u_i/|G|"], "wall_time_s": 1.0,
    }
    old = {"id": "EOT-KKT", "title": "Softmax is the minimiser <b>of</b> the one-sided problem", "family": "EOT",
           "source": {"seed": "003_e1554db561d6b2f9.txt", "equation": "§1–4"}, "statement": r"p = \mathrm{softmax}(s)",
           "status": "verified", "reason": "all checks passed", "finding": "",
           "checks": [{"name": "Lagrangian", "method": "symbolic", "metric": r"simplify(\lambda - (\lambda))",
                       "value": "0", "tolerance": "exact", "passed": True, "why": "exact"}],
           "derivation": [], "figures": [], "tables": [], "notes": [], "wall_time_s": 0.1}
    goat = {"id": "GOAT-SINK", "title": "EOT explanation of attention sinks", "family": "GOAT",
            "source": {"seed": "002_45411e362948ee22.txt", "equation": "second abstract"}, "statement": "x",
            "status": "inconclusive", "reason": "a judgement call flips inside its range", "finding": "",
            "checks": [_check("sink mass", "sink-mass", threshold_kind="judgement",
                              sensitivity={"parameter": "mass", "declared_range": [0.2, 0.5],
                                           "why_this_range": "r", "flips_at": None,
                                           "verdict_over_range": "stable"})],
            "derivation": [], "figures": [], "tables": [], "notes": [], "wall_time_s": 0.1}
    return {
        "schema": 1, "summary": {"verified": 1, "refuted": 1, "inconclusive": 1, "not-checkable": 0},
        "claims": [old, rich, goat],
        "errata": [{"source": "004_830fd89135933577.txt", "equation": "(19)", "printed": r"\|a\| = |b|",
                    "corrected": r"\|a\| \le |b|", "note": "norm | bar", "claim": "FD-19"}],
        "coverage": [
            {"source": "004_830fd89135933577.txt", "equation": "(3)", "printed": r"\min_p K(p, u)",
             "status": "checked", "claims": ["FD-19"], "how": "symbolic", "why_not": ""},
            {"source": "004_830fd89135933577.txt", "equation": "(19)", "printed": "", "status": "erratum",
             "claims": ["FD-19/T5"], "how": "numeric", "why_not": ""},
            {"source": "004_830fd89135933577.txt", "equation": "(44)", "printed": "", "status": "not-checked",
             "claims": [], "how": "", "why_not": "a restatement of (22)"},
        ],
        "abstracts": [{"source": "002_45411e362948ee22.txt", "sentence": "GOAT also provides an EOT-based "
                       "explanation of attention sinks", "claims": ["GOAT-SINK"], "status": "mapped", "why_not": ""}],
        "run": {"seed": 1, "versions": {"python": "3.11"}, "platform": "linux", "wall_time_s": 1.0},
    }


@pytest.fixture(scope="module")
def committed() -> dict:
    return json.loads((DOCS / "results.json").read_text(encoding="utf-8"))


def _write(results: dict, out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    if (DOCS / "figures").is_dir():
        shutil.copytree(DOCS / "figures", out / "figures")
    shutil.copy(DOCS / "README.md", out / "README.md")
    write_all(results, out)
    return out


@pytest.fixture(scope="module")
def docs_out(committed, tmp_path_factory) -> Path:
    return _write(committed, tmp_path_factory.mktemp("docs"))


@pytest.fixture(scope="module")
def fake_out(tmp_path_factory) -> Path:
    return _write(fake_results(), tmp_path_factory.mktemp("fake"))


# ---------------------------------------------------------------- Markdown


def _md_tables(src: str) -> list[dict]:
    """Every table markdown-it (CommonMark + GFM tables) finds: its header cells and, for each
    body row, the number of cells a GFM renderer splits its source line into."""
    lines = src.split("\n")
    tokens = MarkdownIt("commonmark").enable("table").parse(src)
    tables, cur, in_head = [], None, False
    for t in tokens:
        if t.type == "table_open":
            cur = {"header": 0, "rows": []}
        elif t.type == "thead_open":
            in_head = True
        elif t.type == "thead_close":
            in_head = False
        elif t.type == "th_open" and in_head:
            cur["header"] += 1
        elif t.type == "tr_open" and not in_head and t.map:
            cells = escaped_split(lines[t.map[0]].strip())
            cells = cells[1:] if cells and cells[0].strip() == "" else cells
            cells = cells[:-1] if cells and cells[-1].strip() == "" else cells
            cur["rows"].append(len(cells))
        elif t.type == "table_close":
            tables.append(cur)
    return tables


def _doc_tables(results: dict, docs: Path) -> list[Table]:
    site = build.site(results, docs)
    out = []

    def walk(blocks):
        for b in blocks:
            if isinstance(b, Table):
                out.append(b)
            for attr in ("blocks",):
                walk(getattr(b, attr, []) or [])
            for item in getattr(b, "items", []) if b.kind == "items" else []:
                walk(item)

    for p in site.pages:
        if p.key != "guide":
            walk(p.blocks)
    return out


@pytest.mark.parametrize("which", ["docs", "fake"])
def test_every_markdown_table_renders_with_its_columns(which, committed, docs_out, fake_out):
    results, out = (committed, docs_out) if which == "docs" else (fake_results(), fake_out)
    want = _doc_tables(results, out)
    got = _md_tables((out / "report.md").read_text(encoding="utf-8"))
    assert len(got) == len(want), "a table did not parse as a table (a pipe in its header?)"
    for g, w in zip(got, want):
        assert g["header"] == len(w.header), [c for c in w.header]
        assert g["rows"] == [len(w.header)] * len(w.rows), f"a row splits: {w.caption or w.header}"


def test_fd_g_row_keeps_its_status(docs_out, committed):
    if not any(c["id"] == "FD-G" for c in committed["claims"]):
        pytest.skip("no FD-G in docs/results.json")
    row = next(line for line in (docs_out / "report.md").read_text().split("\n") if "](#fd-g)" in line)
    cells = escaped_split(row.strip())[1:-1]
    assert len(cells) == 6 and "**verified**" in cells[3], cells


def test_a_split_row_would_be_caught():
    bad = "| a | b |\n|---|---|\n| u_i/|G| | x |\n"
    assert _md_tables(bad)[0]["rows"] == [4]


# ---------------------------------------------------------------- control characters


def _files(out: Path):
    return [p for p in out.rglob("*") if p.is_file() and p.suffix in (".md", ".html", ".json", ".css")]


def _strings(obj):
    if isinstance(obj, str):
        yield obj
    elif isinstance(obj, dict):
        for k, v in obj.items():
            yield from _strings(k)
            yield from _strings(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from _strings(v)


def test_no_control_character_in_generated_files(docs_out, tmp_path):
    res = fake_results()
    res["claims"][1]["statement"] = "\\f" + BEL + "lpha"  # what "\alpha" in a non-raw string becomes
    res["claims"][1]["checks"][1]["why"] = "a" + BEL + "b"
    fake = _write(res, tmp_path)
    for out in (docs_out, fake):
        for f in _files(out):
            bad = CONTROL.findall(f.read_text(encoding="utf-8"))
            assert bad == [], f"{f.name}: {bad[:5]!r}"
        strings = list(_strings(json.loads((out / "results.json").read_text(encoding="utf-8"))))
        assert not any(CONTROL.search(s) for s in strings), "results.json carries a control character"
    assert "\ufffd" in (fake / "claims" / "FD-19.html").read_text(), "the replaced character is not shown"


# sources: what a person edits (generated docs are checked above)
SOURCE_GLOBS = ["attnverify/**/*.py", "attnverify/**/*.toml", "attnverify/**/*.j2", "attnverify/**/*.css",
                "checks/*.py", "derivations/*.py", "mutants/*.py", "sweeps/*", "tests/*.py", "*.md",
                "docs/README.md", "Makefile", "pyproject.toml", "constraints.txt", ".ci/*"]


def control_characters(path: Path) -> list[str]:
    """Control characters in a source file: as bytes, and, in Python, inside string constants
    (a "\\a" or "\\b" in a non-raw string is a BEL or a backspace although the file is clean)."""
    import ast

    data = path.read_bytes()
    found = [f"byte 0x{b:02x} at offset {i}" for i, b in enumerate(data)
             if (b < 0x20 and b not in (0x09, 0x0A, 0x0D)) or b == 0x7F]
    if path.suffix == ".py" and not found:
        for node in ast.walk(ast.parse(data, filename=str(path))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and CONTROL.search(node.value):
                found.append(f"line {node.lineno}: string holds {CONTROL.findall(node.value)!r}")
    return found


def test_sources_hold_no_control_character():
    files = sorted({p for g in SOURCE_GLOBS for p in ROOT.glob(g) if p.is_file()})
    assert len(files) > 30
    bad = {str(p.relative_to(ROOT)): control_characters(p)[:3] for p in files if control_characters(p)}
    assert bad == {}, bad


def test_the_source_lint_would_catch_both_kinds(tmp_path):
    raw = tmp_path / "raw.py"
    raw.write_bytes(b"x = '" + bytes([7]) + b"lpha'\n")
    escaped = tmp_path / "escaped.py"
    escaped.write_text("x = '\\alpha'\ny = r'\\alpha'\n")
    assert control_characters(raw) and control_characters(escaped) == ["line 1: string holds ['\\x07']"]


# ---------------------------------------------------------------- the fields of this round


class _Text(HTMLParser):
    """The visible words of a page (a space at each block or cell boundary) and its links."""

    BLOCKS = {"p", "li", "td", "th", "tr", "div", "h1", "h2", "h3", "caption", "summary", "footer", "br"}

    def __init__(self):
        super().__init__()
        self.text, self.hrefs, self.tags = [], [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        if tag in self.BLOCKS:
            self.text.append(" ")
        self.hrefs += [v for k, v in attrs if k == "href"]

    def handle_data(self, data):
        self.text.append(data)


def _page(path: Path) -> _Text:
    p = _Text()
    p.feed(path.read_text(encoding="utf-8"))
    p.text = " ".join("".join(p.text).split())
    return p


def test_claim_page_opens_with_the_quote_then_made_precise_then_verdict(fake_out):
    p = _page(fake_out / "claims" / "FD-19.html")
    t = p.text
    i_quote, i_made, i_verdict = t.index("yields u_i/|G| the summation"), t.index("made precise as"), t.index("verdict")
    assert i_quote < i_made < i_verdict
    assert "The paper's words: Deciphering Attention Mechanisms: Optimization and Fenchel Dual Solutions" in t
    assert "What our reading adds. We read (19) for both models | and check each separately." in t
    assert "What decided it: FD-19/T5: the T5 logits differ (check t5-logits)" in t
    assert "(check <code>t5-logits</code>)" in (fake_out / "claims" / "FD-19.html").read_text()
    assert "decided by: attnverify.checks.t5_identity:logits, attnverify.derivations.fd19:bert" in t
    assert "FD-19/T5 ¶ T5 as (16) | printed refuted t5-logits printed form misses the bias statistical" in t
    assert "strongest evidence: statistical" in t  # the refutation rests on the failing check
    assert "0.1 (judgement)" in t and "Judgement call over threshold in [0.05, 0.2]: flips at 0.111. strong" in t
    assert "Range: what 'nearly' means in this literature" in t
    assert "t5-logits" in t and "statistical" in t
    assert "t_i -> c t_i, z -> z / c; leaves unchanged: the attention output" in t
    assert "0.0123" in t and "the deviation depends on the gauge c" in t
    quote = (fake_out / "claims" / "FD-19.html").read_text().split('<blockquote class="quote">')[1].split("</blockquote>")[0]
    assert quote.count('<div class="display">') == 1 and "$$" not in quote  # a display in the quotation
    old = _page(fake_out / "claims" / "EOT-KKT.html").text
    assert "statement (our formalisation)" in old and "made precise as" not in old


def test_symbolic_checks_show_both_sides_and_a_toggle_for_long_ones(fake_out):
    html = (fake_out / "claims" / "FD-19.html").read_text()
    sym = html[html.index('id="fd-19-symbolic"'):]
    assert sym.count("<details>") >= 1 and "show full left side (" in sym
    assert ">left side<" in sym and ">right side<" in sym and ">residual<" in sym
    p = _page(fake_out / "claims" / "FD-19.html")
    assert "fd-19-sym-bert-identity" in html and "#fd-19-sym-bert-identity" in p.hrefs
    md = (fake_out / "report.md").read_text()
    assert "<details><summary>show full left side" in md and LONG_LHS in md


def test_summary_parts_decided_and_evidence(fake_out):
    html = (fake_out / "report.html").read_text()
    rows = re.findall(r"<tr( class=\"[^\"]*\")?[^>]*>(.*?)</tr>", html[html.index('class="summary"'):].split("</table>")[0],
                      re.S)
    texts = [(cls, " ".join(re.sub(r"<[^>]+>", " ", r).split())) for cls, r in rows[1:]]
    assert [c for c, _ in texts] == [' class="claim"', ' class="claim"', ' class="part"', ' class="part"',
                                     ' class="claim"']
    assert "FD-19/T5: the T5 logits differ" in texts[1][1]
    assert "↳ FD-19/T5" in texts[3][1] and "refuted" in texts[3][1] and "printed form misses the bias" in texts[3][1]
    assert "↳ FD-19/BERT" in texts[2][1] and texts[2][1].endswith("proof")
    assert not re.search(r"\b\d+/\d+\b", " ".join(t for _, t in texts)), "a pass ratio is shown"


def test_refuted_without_decided_names_the_failing_part(fake_out):
    res = fake_results()
    c = res["claims"][1]
    del c["decided"]
    from attnverify.report.render import plaintext
    assert plaintext(build.decided(c)) == "refuted part: FD-19/T5"
    c["parts"] = []
    assert plaintext(build.decided(c)) == "failed: T5 logits"


def test_coverage_and_abstracts_link_to_their_claims(fake_out):
    p = _page(fake_out / "report.html")
    assert "Coverage" in p.text and "1 checked, 1 errata, 1 not checked" in p.text
    assert "claims/FD-19.html" in p.hrefs and "claims/FD-19.html#fd-19-t5" in p.hrefs
    assert "claims/GOAT-SINK.html" in p.hrefs and "a restatement of (22)" in p.text
    i = [m.start() for m in re.finditer(r"\((3|19|44)\)", p.text[p.text.index("Coverage"):])]
    assert i == sorted(i), "coverage rows are not in the paper's order"
    assert "Abstracts" in p.text and "GOAT also provides an EOT-based explanation of attention sinks" in p.text
    assert "GOAT abstract" in p.text[p.text.index("Abstracts"):]


def test_papers_are_cited_by_name_with_the_file_in_a_footnote(fake_out):
    page = (fake_out / "claims" / "FD-19.html").read_text()
    assert "Deciphering Attention Mechanisms: Optimization and Fenchel Dual Solutions" in page
    notes = page[page.index('class="notes"'):]
    assert "004_830fd89135933577.txt" in notes
    res = json.loads((fake_out / "results.json").read_text())
    assert res["claims"][1]["source"]["paper"].startswith("Deciphering Attention Mechanisms")
    assert res["claims"][2]["source"]["paper"].startswith("an abstract introducing Generalized Optimal transport")
    assert {p["seed"] for p in res["papers"]} >= {"004_830fd89135933577.txt", "002_45411e362948ee22.txt"}
    md = (fake_out / "report.md").read_text()
    assert "[^004]: `004_830fd89135933577.txt`" in md and "[^002-second]: `002_45411e362948ee22.txt`" in md


def test_old_results_render_without_the_new_columns(fake_out):
    page = (fake_out / "claims" / "EOT-KKT.html").read_text()
    head = page[page.index('class="checks"'):].split("</thead>")[0]
    assert "<th>threshold</th>" not in head and "<th>evidence</th>" not in head
    assert "<th>value</th>" in head


def test_everything_is_escaped(fake_out):
    page = (fake_out / "claims" / "EOT-KKT.html").read_text()
    assert "<b>of</b> the one-sided" not in page and "&lt;b&gt;of&lt;/b&gt; the one-sided" in page
    md = (fake_out / "report.md").read_text()
    assert r"\<b\>of\</b\> the one" in md


def test_navigation_links(fake_out):
    p = _page(fake_out / "claims" / "FD-19.html")
    assert "EOT-KKT.html" in p.hrefs and "GOAT-SINK.html" in p.hrefs  # previous, next
    assert "../report.html" in p.hrefs or "../report.html#summary-fd-19" in p.hrefs
    assert "../guide.html" in p.hrefs and "#top" in p.hrefs
    guide = (fake_out / "guide.html").read_text()
    assert "<h1>Reading the attnverify report</h1>" in guide


def test_write_all_replaces_pages_of_claims_no_longer_reported(tmp_path):
    out = _write(fake_results(), tmp_path)
    assert (out / "claims" / "GOAT-SINK.html").exists()
    res = fake_results()
    res["claims"] = res["claims"][:2]
    write_all(res, out)
    assert not (out / "claims" / "GOAT-SINK.html").exists()
    assert not list(out.rglob("*.tmp")), "a temporary file was left behind"


# ---------------------------------------------------------------- shortening long expressions


term = st.sampled_from([r"\frac{a}{b}", r"\left(x + y\right)^{2}", r"e^{-x}", r"\sqrt{z - 1}", "x_{i}", r"\alpha"])


@settings(max_examples=60, deadline=None)
@given(st.lists(term, min_size=1, max_size=40), st.sampled_from([" + ", " - ", " = "]))
def test_shortened_latex_is_still_well_formed(terms, op):
    from latex2mathml.converter import convert

    latex = op.join(terms)
    short = shorten(latex, 40)
    if len(latex) <= 40 or short is None:
        assert len(latex) <= 80 or short is not None, "a long expression was not shortened"
        return
    assert short.endswith(r"\cdots") and len(short) < len(latex)
    assert short.count("{") == short.count("}") and short.count(r"\left") == short.count(r"\right")
    convert(short)  # parses


def test_copy_is_not_changed():
    res = fake_results()
    before = copy.deepcopy(res)
    from attnverify.report import with_papers

    with_papers(res)
    assert res == before


def test_output_is_deterministic(tmp_path):
    a, b = _write(fake_results(), tmp_path / "a"), _write(fake_results(), tmp_path / "b")
    files = sorted(p.relative_to(a) for p in _files(a))
    assert files and all((a / f).read_bytes() == (b / f).read_bytes() for f in files)


def test_evidence_behind_a_refutation_is_that_of_the_failing_checks():
    c = fake_results()["claims"][1]
    c.pop("evidence_by_part")
    ev = build.evidence_by_part(c)
    assert ev["FD-19"] == "statistical"  # the failing t5-logits check, not the passing proof
    assert ev["FD-19/BERT"] == "proof" and ev["FD-19/T5"] == "statistical"


def test_part_statements_in_prose_are_paragraphs_and_keys_link_to_their_rows(fake_out):
    html = (fake_out / "claims" / "FD-19.html").read_text()
    part = html[html.index("part FD-19/BERT"):]
    assert part.index("<p>the BERT layer equals (16) with <math") < part.index("</div>")
    assert 'href="#fd-19-check-t5-logits"' in html and 'id="fd-19-check-t5-logits"' in html
    assert build.statement(r"\alpha = 1,\ \text{for any learning rate and every seed}")[0].kind == "mathblock"
