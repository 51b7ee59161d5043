"""Issue 15's invariance studies: FD-FIG4's gauge leaves the model unchanged (and a wrong gauge is
caught), and FD-FIG3's scaling law of (7) holds exactly and fails for a wrong alpha."""

from __future__ import annotations

import numpy as np
import pytest

from attnverify.derivations.scaling import scaling_law


def test_scaling_law_holds_and_a_wrong_law_fails():
    assert scaling_law().failed() == []
    assert set(scaling_law(alpha_scaling=lambda a, s: a / s).failed()) == {"dual-invariant", "attention-logits-invariant"}


def test_scaling_law_numerically_on_the_ensemble():
    from attnverify.checks import fig3
    from attnverify.checks import fig3_scale as fs

    assert fs.law_residual(fig3._rel_err, [0.5, 1.0], 1.7, size=5) <= 1e-8
    # the same draws rescaled are not the same problem: e changes with the scale
    T, u, z = fs.ensemble(np.random.default_rng(0), size=1)[0]
    assert abs(fig3._rel_err(2 * T, u, 2 * z, 1.0) - fig3._rel_err(T, u, z, 1.0)) > 1e-2


def _softmax(L):
    P = np.exp(L - L.max(axis=1, keepdims=True))
    return P / P.sum(axis=1, keepdims=True)


@pytest.fixture(scope="module")
def sentence():
    pytest.importorskip("torch")
    from attnverify import sweep
    from attnverify.checks.fig4 import config

    return sweep.sentences(config())[0]


def test_gauge_leaves_the_attention_output_unchanged_to_round_off(sentence):
    from attnverify.checks.fig4_gauge import GAUGES, gauge_instances

    ref = [_softmax(L) for *_, L in gauge_instances(sentence, 1.0)]
    for c in GAUGES:
        for layer, (T, u, Z, L) in enumerate(gauge_instances(sentence, c)):
            assert np.abs(_softmax(L) - ref[layer]).max() <= 64 * np.finfo(float).eps, (c, layer)
            assert np.allclose(Z @ T.T, L)


def test_a_gauge_that_changes_the_logits_is_detected(sentence):
    from attnverify.checks.fig4_gauge import gauge_instances

    ref = [_softmax(L) for *_, L in gauge_instances(sentence, 1.0)]
    bad = gauge_instances(sentence, 3.0, split=lambda T, Z, c: (c * T, Z / c**2))
    assert max(np.abs(_softmax(L) - r).max() for (*_, L), r in zip(bad, ref)) > 1e-3


def test_the_paper_gauge_matches_the_models_own_attention(sentence):
    """c = 1 is the paper's t_i = x_i/sqrt(d'), z = K^T(Q x + b_Q): softmax of its logits is BERT's attention."""
    from attnverify import models
    from attnverify.checks.fig4_gauge import gauge_instances

    cap = models.run_minilm([sentence], padding=False)
    for layer, (T, u, Z, L) in enumerate(gauge_instances(sentence, 1.0)):
        n = len(u)
        P = _softmax(L).reshape(12, n, n)
        assert np.abs(P - cap.layers[layer].probs[0]).max() < 1e-5  # the model runs in float32
