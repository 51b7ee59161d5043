"""attnverify/papers.toml: every seed has an entry, every field is the seed's own words (or says
that the text does not give it), and every claim's source resolves to a work by name."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from attnverify.report import papers

ROOT = Path(__file__).resolve().parents[1]
SEEDS = ROOT.parent.parent / "shared" / "seeds"
if not SEEDS.is_dir():  # the integrator's checkout sits one level higher than a worktree
    SEEDS = ROOT.parent / "shared" / "seeds"


def _squash(s: str) -> str:
    return " ".join(s.split())


def test_every_entry_is_complete():
    entries = papers.load()
    assert entries
    for p in entries:
        for f in ("title", "authors", "year", "identifier", "source", "kind", "short"):
            assert getattr(p, f).strip(), f"{p.label}: {f} is empty"
        assert p.title != papers.MISSING or p.name, f"{p.label}: an untitled work needs a name"
    assert len({p.label for p in entries}) == len(entries)


@pytest.mark.skipif(not SEEDS.is_dir(), reason="the seeds (../shared/seeds) are not here")
def test_every_seed_has_an_entry_and_its_fields_are_the_seeds_words():
    seeds = sorted(p.name for p in SEEDS.glob("*.txt"))
    assert seeds
    assert {p.seed for p in papers.load()} == set(seeds)
    for p in papers.load():
        text = _squash((SEEDS / p.seed).read_text(encoding="utf-8"))
        for field in ("title", "authors", "identifier"):
            v = getattr(p, field)
            if v != papers.MISSING:
                head = re.sub(r"\s*\(.*\)$", "", v)  # an explanatory parenthesis is ours
                assert _squash(head) in text, f"{p.label}: {field} {v!r} is not in {p.seed}"
        if p.year != papers.MISSING:
            assert p.year in text, f"{p.label}: year {p.year} is not in {p.seed}"
        if p.abstract:
            n = ["first", "second", "third", "fourth"].index(p.abstract)
            assert len(re.findall(r"Abstract:", text)) > n, f"{p.label}: {p.seed} has no {p.abstract} abstract"


def test_lookup_by_abstract():
    assert papers.lookup("002_45411e362948ee22.txt", "first abstract").abstract == "first"
    assert papers.lookup("002_45411e362948ee22.txt", "Second abstract (sinks)").abstract == "second"
    assert papers.lookup("002_45411e362948ee22.txt", "") is None  # which abstract is not said
    assert papers.lookup("004_830fd89135933577.txt", "(3)").title.startswith("Deciphering Attention")
    assert papers.lookup("999_nope.txt") is None


def test_every_claim_cites_a_work_by_name():
    res = json.loads((ROOT / "docs" / "results.json").read_text(encoding="utf-8"))
    missing = [c["id"] for c in res["claims"] if papers.lookup(c["source"]["seed"], c["source"]["equation"]) is None]
    assert missing == []
