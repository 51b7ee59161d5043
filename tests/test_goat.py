"""Tests for GOAT-PRIOR, GOAT-UNIFORM, GOAT-SINK and the mask derivation of EOT-SDPA (derivations.goat,
checks.goat_torch).  Must-fail cases: the prior with the wrong scale (tau log pi), a non-distribution
"uniform" prior, a wrong flat-score attention, mass left off the support."""

import time

import numpy as np
import pytest
import sympy as sp

from attnverify.derivations import goat
from attnverify.derivations.eot import tau

DERIVATIONS = [goat.prior, goat.uniform, goat.sink, goat.masked_support]


@pytest.mark.parametrize("fn", DERIVATIONS, ids=lambda f: f.__name__)
def test_derivation_passes(fn):
    t0 = time.time()
    ev = fn()
    assert time.time() - t0 < 10
    assert ev.steps and all(s.text for s in ev.steps)
    assert ev.checks and ev.failed() == []
    assert ev.finding == ""
    assert fn.__doc__ and "Source:" in fn.__doc__


def test_prior_with_wrong_scale_detected():
    wrong = lambda k: goat.biased_softmax(lambda a: tau * sp.log(goat.pi[a]), k)  # noqa: E731
    ev = goat._prior_evidence(candidate=wrong)
    assert "p-softmax-s-tau-log-pi-the-claim-general-n" in ev.failed() and ev.finding


def test_sdpa_mask_tau_log_pi_detected():
    ev = goat._prior_evidence(mask=lambda a: tau * sp.log(goat.pi[a]))
    assert "softmax-s-tau-attn-mask-kappa-goat-p-for-attn" in ev.failed()


def test_uniform_not_a_distribution_detected():
    ev = goat._uniform_evidence(uniform=lambda n: 1 / (n + 1))
    assert {"tau-kl-p-1-n-tau-h-p-tau-log-n-on-the-simplex", "min-values-tau-log-sum-l-1-n-e-s-l-tau-tau-lse-s"} & set(ev.failed())


def test_sink_wrong_flat_attention_detected():
    ev = goat.sink(flat_value=lambda a: 1 / goat.n)
    assert ev.failed() and ev.finding


def test_mask_mass_off_support_detected():
    ev = goat._support_evidence(off_support_mass=lambda: sp.Integer(1))
    assert ev.failed()


# ---------------------------------------------------------------- numeric (torch)


@pytest.fixture(scope="module")
def gt():
    pytest.importorskip("torch")
    from attnverify.checks import goat_torch

    return goat_torch


@pytest.mark.parametrize("name", ["prior_against_solvers", "prior_sdpa", "learnable_prior", "uniform_numeric",
                                  "sink_numeric"])
def test_numeric_checks_pass(gt, name):
    t0 = time.time()
    ev = getattr(gt, name)()
    assert time.time() - t0 < 15
    assert ev.checks and ev.failed() == []
    assert all(c.why for c in ev.checks)


def test_sdpa_mask_with_wrong_scale_detected(gt):
    ev = gt.prior_sdpa(mask_fn=lambda logpi, t: t * logpi)
    failed = ev.failed()
    assert {f"torch-sdpa-{be}-with-attn-mask-log-pi-scale-1-tau-equals" for be in ("math", "flash")} <= set(failed)


def test_solvers_reject_wrong_closed_form(gt):
    wrong = lambda s, t, pi: gt.goat_closed_form(s, t, pi ** t)  # noqa: E731  the prior tempered by tau
    assert gt.prior_against_solvers(closed=wrong).failed()


def test_sink_flat_scores_uniform_detected(gt):
    ev = gt.sink_numeric(flat_target=lambda pi: np.full_like(pi, 1 / len(pi)))
    assert "flat-scores-sdpa-with-attn-mask-log-pi-returns-p" in ev.failed()
