"""Render a :class:`~.model.Site` as Markdown (one file, for a code host) and as HTML (a small
offline site: an index and one page per claim), with Jinja2 templates.

The HTML environment autoescapes: the only markup that is not escaped is MathML from
latex2mathml and HTML from markdown-it (for docs/README.md, raw HTML disabled). The Markdown
templates escape through the ``md`` / ``cell`` / ``math`` filters: in a table cell a ``|`` is
``\\|`` in text and ``\\vert`` in maths, so no cell can split.
"""

from __future__ import annotations

import html
import posixpath
import re
from functools import lru_cache
from pathlib import Path

import jinja2
from markupsafe import Markup

from .model import Site

TEMPLATES = Path(__file__).with_name("templates")
STATUS_COLOUR = {"verified": "#1a7f37", "refuted": "#cf222e", "inconclusive": "#9a6700",
                 "not-checkable": "#57606a", "checked": "#1a7f37", "erratum": "#9a6700",
                 "not-checked": "#57606a", "mapped": "#1a7f37"}


def page_path(key: str) -> str:
    """Where a page lives, relative to the docs folder."""
    if key == "index":
        return "report.html"
    if key.startswith("claim:"):
        return f"claims/{key[6:]}.html"
    return f"{key}.html"


# ---------------------------------------------------------------- maths
# latex2mathml 3.x passes some LaTeX through as text: \arg, and a delimiter given as a command after
# \big/\Big/... (\Big\|, \Big\{, \Big\langle). \arg is respelt before conversion; any command left
# as the text of a token afterwards becomes its symbol (or its name, upright).
_TEX_FIXES = [(re.compile(r"\\(arg)(?![A-Za-z])"), r"\\operatorname{\1}")]
_RAW_CMD = re.compile(r"<(mi|mo|mtext)((?: [^>]*)?)>\\([A-Za-z]+|[^A-Za-z<])</\1>")
_SYMBOL = {"|": "‖", "{": "{", "}": "}", "Vert": "‖", "vert": "|", "lVert": "‖", "rVert": "‖",
           "lvert": "|", "rvert": "|", "lbrace": "{", "rbrace": "}", "langle": "⟨", "rangle": "⟩",
           "lfloor": "⌊", "rfloor": "⌋", "lceil": "⌈", "rceil": "⌉"}


def _raw_token(m: re.Match) -> str:
    tag, attrs, name = m.groups()
    if name in _SYMBOL:
        return f"<{tag}{attrs}>{html.escape(_SYMBOL[name])}</{tag}>"
    return f'<mi mathvariant="normal">{html.escape(name)}</mi>'


@lru_cache(maxsize=4096)
def mathml(latex: str, display: bool = False) -> Markup:
    """LaTeX as MathML (the browser lays it out: no script, no network); LaTeX that does not
    convert stays visible as code (the browser test counts these)."""
    from latex2mathml.converter import convert

    src = latex
    for pattern, repl in _TEX_FIXES:
        src = pattern.sub(repl, src)
    try:
        out = convert(src, display="block" if display else "inline")
    except Exception:  # keep the source visible rather than drop the line
        return Markup('<code class="latex">{}</code>').format(latex)
    return Markup(_RAW_CMD.sub(_raw_token, out))


# ---------------------------------------------------------------- markdown escaping
_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>$|~])")


def md(s: str) -> str:
    """Text in Markdown: every character GFM could read as markup backslash-escaped."""
    return _MD_SPECIAL.sub(r"\\\1", s)


def md_cell(s: str) -> str:
    """Text in a Markdown table cell: escaped, on one line."""
    return md(s).replace("\n", " ")


def md_math(latex: str, cell: bool = False) -> str:
    """Inline maths; in a table cell norms and bars are spelt without a pipe (a pipe ends the cell)."""
    s = " ".join(latex.split())
    if cell:
        s = s.replace("\\|", "\\Vert ").replace("|", "\\vert ")
    return f"${s}$"


def md_code(s: str, cell: bool = False) -> str:
    """A code span: fenced with more backticks than it holds; in a cell its pipes escaped (GFM
    splits cells before it reads code spans)."""
    s = " ".join(s.split()) if cell else s
    if cell:
        s = s.replace("|", "\\|")
    fence = "`" * (max((len(m) for m in re.findall(r"`+", s)), default=0) + 1)
    pad = " " if s.startswith("`") or s.endswith("`") else ""
    return f"{fence}{pad}{s}{pad}{fence}"


def plaintext(runs) -> str:
    """The words of inline runs (alt text, summaries)."""
    out = []
    for r in runs:
        out.append(getattr(r, "text", None) or getattr(r, "latex", None) or getattr(r, "status", None)
                   or (plaintext(r.children) if hasattr(r, "children") else ""))
    return "".join(out)


def md_display(latex: str) -> str:
    return "$$\n" + latex.strip() + "\n$$"


# ---------------------------------------------------------------- environments


def _env(autoescape: bool) -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=autoescape,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                             keep_trailing_newline=True)
    env.filters.update(md=md, md_cell=md_cell, md_code=md_code, plaintext=plaintext, md_math=md_math, md_display=md_display, mathml=mathml,
                       colour=lambda s: STATUS_COLOUR.get(s, "#57606a"))
    return env


@lru_cache(maxsize=2)
def env(kind: str) -> jinja2.Environment:
    return _env(autoescape=(kind == "html"))


def _md_href(link, site: Site) -> str:
    if link.href:
        return link.href
    if link.page == "guide":
        return "README.md"
    if link.anchor:
        return "#" + link.anchor
    if link.page.startswith("claim:"):
        from .build import anchor
        return "#" + anchor(link.page[6:])
    return "#summary"


def markdown(site: Site) -> str:
    """report.md: the index, then every claim, in one file; footnotes at the end."""
    notes = {}
    for p in site.pages:
        for n in p.notes:
            notes.setdefault(n["label"], n["runs"])
    t = env("md").get_template("report.md.j2")
    out = t.render(site=site, pages=[p for p in site.pages if p.key != "guide"],
                   href=lambda link: _md_href(link, site), notes=notes)
    return re.sub(r"\n{3,}", "\n\n", out)


def _md_to_html(src: str) -> Markup:
    """A Markdown page (docs/README.md) as HTML: CommonMark with GFM tables, raw HTML escaped."""
    from markdown_it import MarkdownIt

    return Markup(MarkdownIt("commonmark", {"html": False}).enable("table").render(src))


def html_pages(site: Site) -> dict[str, str]:
    """Every page of the HTML site: {path relative to docs: text}."""
    t = env("html").get_template("page.html.j2")
    order = [p for p in site.pages if p.key.startswith("claim:")]
    sections = [(b.anchor, plaintext(b.children)) for b in site.page("index").blocks
                if getattr(b, "kind", "") == "heading" and b.level == 2 and b.anchor]
    out = {}
    for p in site.pages:
        here = page_path(p.key)

        def href(link, here=here):
            if link.href:
                return posixpath.relpath(link.href, posixpath.dirname(here) or ".")
            target = page_path(link.page)
            rel = "" if target == here else posixpath.relpath(target, posixpath.dirname(here) or ".")
            return rel + ("#" + link.anchor if link.anchor else "") if (rel or link.anchor) else "#top"

        i = order.index(p) if p in order else None
        prev = order[i - 1] if i else None
        nxt = order[i + 1] if i is not None and i + 1 < len(order) else None
        out[here] = t.render(site=site, page=p, href=href, prev=prev, next=nxt,
                             claims=order, sections=sections, page_path=lambda k, here=here: posixpath.relpath(
                                 page_path(k), posixpath.dirname(here) or "."),
                             guide_html=_md_to_html(p.blocks[0].text) if p.key == "guide" else None,
                             asset=lambda path, here=here: posixpath.relpath(path, posixpath.dirname(here) or "."))
    return out
