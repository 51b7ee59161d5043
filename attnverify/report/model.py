"""The report as a structured document: pages of blocks (headings, paragraphs, tables, maths,
figures, details) made of inline runs (text, maths, code, links).

:mod:`attnverify.report.build` fills it from a results dict once; the Markdown and the HTML
templates render the same document, so the two reports cannot say different things.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

# ---------------------------------------------------------------- inline runs


@dataclass
class Text:
    text: str
    kind: str = "text"


@dataclass
class Math:
    latex: str
    kind: str = "math"

    @property
    def wide(self) -> bool:
        """Long enough to be wider than a phone's screen: HTML lets it scroll on its own."""
        return len(self.latex) > 60


@dataclass
class Code:
    text: str
    kind: str = "code"


@dataclass
class Strong:
    children: list
    kind: str = "strong"


@dataclass
class Link:
    """A link to a page of the site (``page`` a page key, ``anchor`` an id on it) or to a file
    beside the report (``href``)."""

    children: list
    page: str = ""
    anchor: str = ""
    href: str = ""
    kind: str = "link"


@dataclass
class Badge:
    status: str
    kind: str = "badge"


@dataclass
class Note:
    """A footnote reference (the paper's file name, given once at the foot of the page)."""

    number: int
    label: str = ""  # stable across pages (the seed's number, and which abstract): Markdown's footnote label
    kind: str = "note"


# ---------------------------------------------------------------- blocks


@dataclass
class Heading:
    level: int
    children: list
    anchor: str = ""
    kind: str = "heading"


@dataclass
class Para:
    children: list
    cls: str = ""
    anchor: str = ""
    kind: str = "para"


@dataclass
class MathBlock:
    latex: str
    kind: str = "mathblock"


@dataclass
class Row:
    cells: list  # each a list of inline runs
    cls: str = ""  # "fail", "part" (indented under its claim)
    anchor: str = ""
    kind: str = "row"


@dataclass
class Table:
    header: list  # each a list of inline runs
    rows: list  # of Row
    cls: str = ""
    caption: list = field(default_factory=list)
    anchor: str = ""
    kind: str = "table"

    def __post_init__(self):
        for r in self.rows:
            if len(r.cells) != len(self.header):
                raise ValueError(f"table row has {len(r.cells)} cells for {len(self.header)} columns")


@dataclass
class Items:
    items: list  # each a list of blocks
    ordered: bool = False
    cls: str = ""
    kind: str = "items"


@dataclass
class Figure:
    path: str  # relative to the docs folder
    caption: list
    present: bool = True
    kind: str = "figure"


@dataclass
class Details:
    """Collapsed content: ``summary`` shown, ``blocks`` behind a "show" toggle."""

    summary: list
    blocks: list
    kind: str = "details"


@dataclass
class Quote:
    blocks: list
    cite: list = field(default_factory=list)
    kind: str = "quote"


@dataclass
class Box:
    """A labelled block ("made precise as", the verdict)."""

    label: str
    blocks: list
    cls: str = ""
    anchor: str = ""
    kind: str = "box"


@dataclass
class MarkdownSource:
    """A Markdown page kept as written (docs/README.md): HTML renders it with markdown-it."""

    text: str
    kind: str = "markdown"


@dataclass
class Page:
    key: str  # "index", "claim:FD-7", "guide"
    title: str
    blocks: list
    badge: str = ""  # the claim's status, for the sidebar
    notes: list = field(default_factory=list)  # footnotes: lists of inline runs
    anchor: str = ""  # the id of the page's section (a claim's, "fd-7")


@dataclass
class Site:
    pages: list  # index first, then claims in order, then the guide

    def page(self, key: str) -> Page:
        return next(p for p in self.pages if p.key == key)


# ---------------------------------------------------------------- text with LaTeX in it

_INLINE = re.compile(r"\$\$(.+?)\$\$|\$([^$]+)\$", re.S)
CMD = re.compile(r"\\[A-Za-z]+\*?")
# what may sit between two LaTeX commands of one formula: symbols, digits, single letters
# ("\langle t_i, v\rangle"), but no word of two letters or more (which is prose)
_GAP = re.compile(r"(?:[\s\d+\-*/=<>,.;:()\[\]|!'^_~]|(?<![A-Za-z])[A-Za-z](?![A-Za-z]))*")
# control characters (a "\a" written in a non-raw string becomes BEL): shown, never passed on
CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def clean(s: str) -> str:
    """Text with any control character replaced by U+FFFD, visibly (the source is the bug)."""
    return CONTROL.sub("\ufffd", s.replace("\r\n", "\n"))


def _group_end(s: str, i: int) -> int:
    """Index after the brace group opening at s[i] == '{' (or len(s) if unbalanced)."""
    depth = 0
    for j in range(i, len(s)):
        depth += {"{": 1, "}": -1}.get(s[j], 0)
        if depth == 0:
            return j + 1
    return len(s)


def _extend(s: str, j: int) -> int:
    """Extend a LaTeX run past its arguments: {...} groups and _x / ^{...} scripts."""
    while j < len(s):
        if s[j] == "{":
            j = _group_end(s, j)
        elif s[j] in "_^" and j + 1 < len(s):
            j = _group_end(s, j + 1) if s[j + 1] == "{" else j + 2
        else:
            return j
    return j


def _latex_runs(s: str) -> list[tuple[int, int]]:
    r"""Spans of prose that are LaTeX written without $...$ (e.g. "M(\lambda) of (8)"): from a
    command through its arguments, merged with the next command across a formula-like gap, and
    widened to the whole brace group (with its base, as in e^{- \nu_0}) if it sits inside one."""
    runs, i = [], 0
    while (m := CMD.search(s, i)) is not None:
        start, end = m.start(), _extend(s, m.end())
        open_at = []
        for j, ch in enumerate(s[:start]):  # inside an unclosed {...}? take the whole group
            if ch == "{":
                open_at.append(j)
            elif ch == "}" and open_at:
                open_at.pop()
        if open_at:
            g = open_at[0]
            start = g
            while start > 0 and (s[start - 1].isalnum() or s[start - 1] in "_^"):
                start -= 1
            end = max(end, _extend(s, _group_end(s, g)))
        while (nxt := CMD.search(s, end)) is not None and _GAP.fullmatch(s[end:nxt.start()]) \
                and nxt.start() - end <= 24:
            end = _extend(s, nxt.end())
        if runs and start < runs[-1][1]:
            start = runs[-1][0]
            runs.pop()
        runs.append((start, end))
        i = end
    return runs


def _prose(s: str) -> list:
    out, last = [], 0
    for a, b in _latex_runs(s):
        if s[last:a]:
            out.append(Text(s[last:a]))
        out.append(Math(s[a:b]))
        last = b
    if s[last:]:
        out.append(Text(s[last:]))
    return out


_CODE = re.compile(r"`([^`\n]+)`")


def text(s) -> list:
    """Inline runs of a text: `...` spans become code; $...$ spans, and LaTeX written into prose
    without delimiters, become maths; the rest stays text."""
    s = clean(str(s))
    out, last = [], 0
    for m in _CODE.finditer(s):
        out += _maths(s[last:m.start()])
        out.append(Code(m.group(1)))
        last = m.end()
    return out + _maths(s[last:])


def _maths(s: str) -> list:
    out, last = [], 0
    for m in _INLINE.finditer(s):
        out += _prose(s[last:m.start()])
        out.append(Math((m.group(1) or m.group(2)).strip()))
        last = m.end()
    return out + _prose(s[last:])


_DISPLAY = re.compile(r"\$\$(.+?)\$\$", re.S)


def paragraphs(s) -> list:
    """Blocks of a text that may hold $$...$$ displays (a quotation of the seed): paragraphs of
    inline runs, with each display as display maths between them."""
    from_ = clean(str(s))
    out, last = [], 0
    for m in _DISPLAY.finditer(from_):
        if from_[last:m.start()].strip():
            out.append(Para(text(from_[last:m.start()].strip())))
        out.append(MathBlock(m.group(1).strip()))
        last = m.end()
    if from_[last:].strip() or not out:
        out.append(Para(text(from_[last:].strip())))
    return out


def plain(s) -> list:
    """Inline runs of a text taken literally (names, file names, identifiers)."""
    return [Text(clean(str(s)))]


_CALL = re.compile(r"^(\w+)\((.*)\)$", re.S)
_SYMPY_STR = re.compile(r"\*\*|[A-Za-z_]\w*\(|\w\*\w")


def formula(s: str) -> list:
    """A metric or value: 'simplify(LaTeX)' (as ev.identity wrote it before sides were kept) or
    bare LaTeX is maths, SymPy's plain str() is code, anything else is text."""
    s = clean(s)
    m = _CALL.match(s)
    if m and CMD.search(m.group(2)) and "$" not in s:
        return [Text(m.group(1) + "("), Math(m.group(2)), Text(")")]
    if CMD.search(s) and "$" not in s and not re.search(r"[A-Za-z]{2,}\s+[A-Za-z]{2,}", CMD.sub("", s)):
        return [Math(s)]
    return text(s)


def fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.3g}"
    return str(v)


def value(v) -> list:
    """A measured value or a tolerance."""
    if isinstance(v, str):
        if CMD.search(v):
            return formula(v)
        if v != "0" and _SYMPY_STR.search(v):
            return [Code(clean(v))]
    return plain(fmt(v))


# ---------------------------------------------------------------- long expressions


def shorten(latex: str, limit: int = 160) -> str | None:
    r"""A valid shorter form of a long LaTeX expression, or None if it is short enough.

    The expression is cut between top-level terms (at a ``+``, ``-`` or ``=`` outside every
    brace group and ``\left...\right`` pair), so what is kept is still well-formed, and ``\cdots``
    marks the cut. If the first term alone is longer than ``limit``, ``"\cdots"`` is returned:
    the full form is then behind the toggle. None too where the cut would save nothing.
    """
    if len(latex) <= limit:
        return None
    depth, cut, i = 0, 0, 0
    while i < len(latex):
        ch = latex[i]
        if latex.startswith("\\left", i) and not latex[i + 5:i + 6].isalpha():
            depth += 1
            i += 5
            continue
        if latex.startswith("\\right", i) and not latex[i + 6:i + 7].isalpha():
            depth -= 1
            i += 6
            continue
        if ch == "\\":  # a command or an escaped character: skip it whole
            m = CMD.match(latex, i)
            i = m.end() if m else i + 2
            continue
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
        elif depth == 0 and ch in "+-=" and i > 0:
            if i > limit:
                break
            cut = i
        i += 1
    short = (latex[:cut + 1] + " \\cdots") if cut else "\\cdots"
    return short if len(short) < len(latex) else None  # a cut that saves nothing is no shortening
