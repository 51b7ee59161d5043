"""Write docs/results.json, docs/report.md and the HTML site (docs/report.html, docs/claims/,
docs/guide.html) from a results dict.

The content is built once (:mod:`.build`, a :class:`~.model.Site`) and rendered twice
(:mod:`.render`): report.md in one file for a code host ($ maths, GFM tables), and a small
offline HTML site, an index and one page per claim (MathML, which browsers lay out natively:
no script, no network). Figures stay in docs/figures and are linked, not copied.
"""

from __future__ import annotations

import json
from pathlib import Path

from .. import atomic
from . import build, papers
from .model import clean
from .render import STATUS_COLOUR, TEMPLATES, html_pages, markdown as _markdown

__all__ = ["STATUS_COLOUR", "write_all", "markdown", "html_site", "with_papers"]


def with_papers(results: dict) -> dict:
    """The results with the works they cite by name: each claim's ``source.paper`` and a
    top-level ``papers`` list (from attnverify/papers.toml); the input is not changed."""
    res = dict(results)
    res["claims"] = []
    for c in results["claims"]:
        c = dict(c)
        src = dict(c.get("source") or {})
        p = papers.lookup(src.get("seed", ""), src.get("equation", ""))
        if p:
            src["paper"] = p.cite()
        c["source"] = src
        res["claims"].append(c)
    res["papers"] = [papers.as_dict(p) for p in papers.load()]
    return res


def cleaned(obj):
    """A copy with every control character in its strings replaced by U+FFFD (visibly: a "\\a"
    written in a non-raw string is a BEL, and the fix belongs in the source, which the lint test
    checks); the results stay valid JSON text without escapes a reader cannot see."""
    if isinstance(obj, str):
        return clean(obj)
    if isinstance(obj, dict):
        return {cleaned(k): cleaned(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [cleaned(v) for v in obj]
    return obj


def markdown(results: dict, docs: Path = Path("docs")) -> str:
    site = build.site(results, Path(docs))
    return _markdown(site)


def html_site(results: dict, docs: Path = Path("docs")) -> dict[str, str]:
    """{path relative to docs: HTML} for every page of the site."""
    return html_pages(build.site(results, Path(docs)))


def write_all(results: dict, docs: Path = Path("docs")) -> None:
    """Write results.json, report.md and the HTML site into ``docs``.

    Everything is rendered before anything is written, and each file is replaced atomically
    (:mod:`attnverify.atomic`): a failure while rendering leaves the previous files whole.
    """
    docs = Path(docs)
    res = with_papers(cleaned(results))
    site = build.site(res, docs)
    files = {"results.json": json.dumps(res, indent=1, ensure_ascii=False) + "\n", "report.md": _markdown(site)}
    files.update(html_pages(site))
    files["report.css"] = (TEMPLATES / "report.css").read_text(encoding="utf-8")
    for rel, text in files.items():
        atomic.write_text(docs / rel, text)
    for old in (docs / "claims").glob("*.html"):  # a claim no longer reported leaves no stale page
        if f"claims/{old.name}" not in files:
            old.unlink()
