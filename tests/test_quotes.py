"""Every claim carries the paper's own words: its quote occurs verbatim (up to whitespace) in its seed."""

import re
from pathlib import Path

import pytest

from attnverify.registry import load_claims


def _seeds() -> Path | None:
    """../shared/seeds next to the checkout (as tests/test_engine.py finds CLAIMS.md), also from a worktree."""
    here = Path(__file__).resolve()
    for up in here.parents:
        if (up / "shared" / "seeds").is_dir():
            return up / "shared" / "seeds"
    return None


SEEDS = _seeds()
CLAIMS = load_claims()


def _norm(text: str) -> str:
    return " ".join(text.split())


def test_every_claim_has_a_quote_with_location():
    missing = [c.id for c in CLAIMS if c.quote is None or not c.quote.text.strip() or not c.quote.location.strip()]
    assert not missing, f"claims without a quote (source, location, text): {missing}"


@pytest.mark.skipif(SEEDS is None, reason="../shared/seeds not found next to the checkout")
@pytest.mark.parametrize("claim", CLAIMS, ids=[c.id for c in CLAIMS])
def test_quote_is_verbatim_in_its_seed(claim):
    seed = SEEDS / claim.quote.source
    assert seed.is_file(), f"{claim.id}: quote source {claim.quote.source} is not a seed file"
    assert _norm(claim.quote.text) in _norm(seed.read_text()), f"{claim.id}: quote not found verbatim in {seed.name}"


@pytest.mark.skipif(SEEDS is None, reason="../shared/seeds not found next to the checkout")
def test_an_altered_quote_is_caught():
    """The test can fail: one changed word, or our formalisation passed off as the paper's, is not in the seed."""
    text = _norm((SEEDS / "004_830fd89135933577.txt").read_text())
    assert _norm("As Fig 4 indicates, $\\boldsymbol{\\lambda}^*$ almost coincides") in text
    assert _norm("As Fig 4 indicates, $\\boldsymbol{\\lambda}^*$ nearly coincides") not in text
    assert "0.1 in every layer and every head" not in text


def test_reading_is_one_sentence():
    """`reading` says in one sentence what our reading adds (no paragraph smuggled in)."""
    long = [c.id for c in CLAIMS if c.reading and (len(c.reading) > 400 or "\n" in c.reading.strip())]
    assert not long, f"readings longer than one sentence: {long}"


QUOTED = re.compile(r"(?:^|[\s(])'([^']+?)'(?=[\s,.;:)]|$)")


def _quoted_fragments(text: str) -> list[str]:
    """Words our readings and part titles put in quotes: each piece (split at '...') must be the paper's."""
    return [piece.strip() for frag in QUOTED.findall(text) for piece in frag.split("...") if piece.strip()]


@pytest.mark.skipif(SEEDS is None, reason="../shared/seeds not found next to the checkout")
@pytest.mark.parametrize("claim", CLAIMS, ids=[c.id for c in CLAIMS])
def test_words_put_in_quotes_are_the_papers(claim):
    """A reading or a part title that quotes the paper quotes it verbatim (case aside): our words are never
    shown as the paper's."""
    seed = _norm((SEEDS / claim.quote.source).read_text()).lower()
    texts = [claim.reading] + [p.title for p in claim.parts]
    bad = [f for t in texts for f in _quoted_fragments(t) if _norm(f).lower() not in seed]
    assert not bad, f"{claim.id}: quoted but not in {claim.quote.source}: {bad}"


def test_the_quoted_fragment_finder():
    assert _quoted_fragments("'Unique' is made precise; the paper's words") == ["Unique"]
    assert _quoted_fragments("Sec 7's 'by setting u ... equivalent to' (x)") == ["by setting u", "equivalent to"]
