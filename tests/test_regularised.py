"""Tests for EOT-OMEGA (derivations.regularised, checks.regularised): the template gives softmax, sparsemax and
alpha-entmax; a wrong sparsemax threshold is detected symbolically and numerically."""

import time

import numpy as np
import pytest
import sympy as sp

from attnverify.derivations import regularised as rg


def test_derivation_passes():
    t0 = time.time()
    ev = rg.omega_template()
    assert time.time() - t0 < 10
    assert ev.steps and all(s.text for s in ev.steps)
    assert ev.checks and ev.failed() == []
    assert ev.finding == ""
    assert rg.omega_template.__doc__ and "Source:" in rg.omega_template.__doc__


@pytest.mark.parametrize("thr", [
    lambda K: (sp.Sum(rg.s[rg.i], (rg.i, 1, K)) - 1) / (K + 1),  # wrong denominator
    lambda K: sp.Sum(rg.s[rg.i], (rg.i, 1, K)) / K,  # dropped the -1
], ids=["K+1", "no -1"])
def test_wrong_sparsemax_threshold_detected_symbolically(thr):
    ev = rg.omega_template(sparse_thr=thr)
    assert "sum-i-k-s-i-tau-k-1-general-k" in ev.failed() and ev.finding


def test_sparsemax_closed_form_is_projection():
    s = np.array([1.2, 0.3, 1.0, -2.0])
    from attnverify.checks.regularised import sparsemax

    p = sparsemax(s)
    assert abs(p.sum() - 1) < 1e-15 and p[3] == 0 and np.allclose(p[[0, 2]] - s[[0, 2]], p[0] - s[0])


@pytest.fixture(scope="module")
def cr():
    pytest.importorskip("torch")
    pytest.importorskip("entmax")
    from attnverify.checks import regularised

    return regularised


def test_numeric_checks_pass(cr):
    t0 = time.time()
    ev = cr.omega_numeric()
    assert time.time() - t0 < 15
    assert ev.checks and ev.failed() == []
    assert all(c.why for c in ev.checks)


@pytest.mark.parametrize("thr", [lambda cs, K: (cs - 1) / (K + 1), lambda cs, K: cs / K], ids=["K+1", "no -1"])
def test_wrong_sparsemax_threshold_detected_numerically(cr, thr):
    failed = cr.omega_numeric(sparse_thr=thr).failed()
    assert {"closed-forms-sort-threshold-tau-entmax-sparsemax", "kkt-certificate-every-closed-form-and-package"} <= set(failed)
