"""FD-19, FD-17, FD-FIG4: attention of a real pretrained model (and of T5) written as (16)."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from attnverify import models  # noqa: E402
from attnverify.checks import fig4, real_model, t5_identity  # noqa: E402


@pytest.fixture(scope="module")
def cap():
    return models.run_minilm(models.corpus()[:4])


def test_corpus_is_deterministic_and_large_enough():
    a = models.corpus()
    assert len(a) >= 500 and len(set(a)) == len(a)
    models.corpus.cache_clear()
    assert models.corpus() == a  # rebuilt from scratch: same sentences in the same order
    _, tok = models.load_minilm()
    lens = [len(tok.tokenize(s)) for s in a]
    assert min(lens) >= models.MIN_TOKENS and max(lens) <= models.MAX_TOKENS
    assert fig4.N_CORPUS >= 500


def test_fd19_identity_on_a_few_sentences(cap):
    assert cap.mask.min() == 0  # the batch is padded, so the mask is exercised
    for layer in range(len(cap.layers)):
        ep, ec, tp, tc = real_model.layer_errors(cap, layer)
        assert ep <= tp and ec <= tc
        assert tc < 1e-6  # a round-off bound, not a loose one


@pytest.mark.parametrize("wrong", [dict(query_bias=False), dict(scale_dim=384)])
def test_fd19_detects_a_wrong_reparameterisation(cap, wrong):
    """Dropping the query bias, or sqrt(d) in place of sqrt(d'), must fail the identity."""
    for layer in (0, 3):
        ep, ec, tp, tc = real_model.layer_errors(cap, layer, **wrong)
        assert ec > 1e3 * tc and ep > 1e3 * tp


# FD-19/T5 is false as printed (issue 15): exactly its as-printed checks fail, everything else passes
T5_AS_PRINTED = {"19-t5-as-printed-weights-sum-to-1", "19-t5-as-printed-equals-t5attention"}


def test_fd19_full_check_passes_and_finds_the_t5_erratum():
    ev = real_model.bert_identity()
    assert ev.steps and ev.checks and set(ev.failed()) == T5_AS_PRINTED, ev.failed()
    assert "FD-19/T5" in ev.part_findings and "FD-19/BERT" in ev.part_findings
    assert [e.equation for e in ev.errata] == ["(19)"]
    assert r"u_{j}" in ev.errata[0].corrected and r"u_{j}" not in ev.errata[0].printed


def test_fd17_t5_identity():
    ev = t5_identity.t5_identity()
    assert ev.steps and all(c.passed for c in ev.checks), [c.name for c in ev.checks if not c.passed]
    kinds = {a.kind for a in t5_identity.t5_capture()}
    assert kinds == {"encoder self", "decoder self", "cross"}


def test_fd17_detects_bert_scaling_and_printed_denominator():
    """BERT's setting unchanged (no sqrt(d') in z) and the printed (19) denominator are not T5."""
    a = next(a for a in t5_identity.t5_capture() if a.kind == "encoder self")
    tw, to = t5_identity.tolerances(a)
    assert np.abs(t5_identity.reparam_16(a, scale_fix=False)[0] - a.weights).max() > 1e3 * tw
    assert np.abs(t5_identity.reparam_16(a, printed_denominator=True)[1] - a.out).max() > 1e3 * to
    # dropping the mask from u (uniform over all words) must be detected too
    b = next(x for x in t5_identity.t5_capture() if x.kind == "decoder self")
    saved = b.masked
    try:
        b.masked = np.zeros_like(saved)
        assert np.abs(t5_identity.reparam_16(b)[0] - b.weights).max() > 1e3 * t5_identity.tolerances(b)[0]
    finally:
        b.masked = saved


def test_symbolic_zero_detector_can_fail():
    import sympy as sp

    d, dp = sp.symbols("d d'", integer=True, positive=True)
    K, Q = sp.MatrixSymbol("K", dp, d), sp.MatrixSymbol("Q", dp, d)
    x, y = sp.MatrixSymbol("x", d, 1), sp.MatrixSymbol("y", d, 1)
    assert not t5_identity.is_zero(sp.expand((K * x).T * (Q * y) - (x / sp.sqrt(dp)).T * (K.T * Q * y)))
    assert t5_identity.is_zero(sp.expand((K * x).T * (Q * y) - (x / sp.sqrt(dp)).T * (sp.sqrt(dp) * K.T * Q * y)))


def test_fig4_small_run():
    r = fig4.solve_corpus(3)
    assert r["counts"]["unconverged"] == 0 and r["counts"]["queries"] == len(r["full"])
    assert all(v <= t for _, v, t in r["cross"])
    # lambda* - z lies in S, so the restricted ratio is never below the full one
    assert np.all(r["restricted"] >= r["full"] * (1 - 1e-12))
    assert np.all((r["z_share"] > 0) & (r["z_share"] <= 1 + 1e-12))
