"""The bibliography of the seeds (attnverify/papers.toml): who wrote what the claims come from."""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

PAPERS = Path(__file__).resolve().parents[1] / "papers.toml"
MISSING = "not given in the text"


@dataclass(frozen=True)
class Paper:
    seed: str
    kind: str
    title: str
    authors: str
    year: str
    identifier: str
    source: str  # "from": where in the seed the fields were read
    see: str = ""
    abstract: str = ""
    name: str = ""  # how to call an untitled work
    short: str = ""  # for tables

    @property
    def label(self) -> str:
        """Footnote label: the seed's number, and which abstract ("002-first")."""
        return self.seed[:3] + (f"-{self.abstract}" if self.abstract else "")

    @property
    def anchor(self) -> str:
        return "paper-" + self.label

    def cite(self) -> str:
        """The work by name: its title (or, untitled, what it is), with authors and year when given."""
        head = self.title if self.title != MISSING else (self.name or self.kind)
        who = [x for x in (self.authors, self.year) if x != MISSING and x != "Anonymous authors"]
        return head + (f" ({', '.join(who)})" if who else "")


@lru_cache(maxsize=1)
def load(path: Path = PAPERS) -> tuple[Paper, ...]:
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    return tuple(Paper(seed=p["seed"], kind=p["kind"], title=p["title"], authors=p["authors"], year=p["year"],
                       identifier=p["identifier"], source=p["from"], see=p.get("see", ""),
                       abstract=p.get("abstract", ""), name=p.get("name", ""), short=p.get("short", ""))
                 for p in data["paper"])


def lookup(seed: str, location: str = "") -> Paper | None:
    """The work a claim cites: the seed's entry, or, for a seed of several abstracts, the one the
    location names ("second abstract"); None for a seed with no entry."""
    entries = [p for p in load() if p.seed == seed]
    for p in entries:
        if p.abstract and re.search(rf"\b{p.abstract}\s+abstract", location, re.I):
            return p
    whole = [p for p in entries if not p.abstract]
    return whole[0] if whole else None


def as_dict(p: Paper) -> dict:
    """The entry as results.json carries it."""
    d = {"seed": p.seed, "cite": p.cite(), "title": p.title, "authors": p.authors, "year": p.year,
         "identifier": p.identifier, "kind": p.kind}
    if p.abstract:
        d["abstract"] = p.abstract
    return d
