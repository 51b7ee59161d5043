"""Tests for derivations.eot (EOT-KKT, EOT-UNIQ, EOT-LSE) and derivations.fenchel_dual (FD-7, FD-B, FD-MEM).

Each derivation must pass all its checks; each wrong closed form (sign flipped, factor dropped)
injected through the internal ``_..._evidence`` functions must make a check fail.
"""

import time

import pytest
import sympy as sp

from attnverify.evidence import Evidence
from attnverify.derivations import _sums, eot, fenchel_dual as fd

DERIVATIONS = [eot.kkt, eot.uniqueness, eot.log_sum_exp, fd.dual_problem, fd.ml_and_map, fd.mem_kkt]


@pytest.mark.parametrize("fn", DERIVATIONS, ids=lambda f: f.__name__)
def test_derivation_passes(fn):
    t0 = time.time()
    ev = fn()
    assert time.time() - t0 < 10
    assert ev.steps and all(s.text for s in ev.steps)
    assert ev.checks
    assert ev.failed() == []
    assert all(c.method == "symbolic" for c in ev.checks)
    assert ev.finding == ""
    assert fn.__doc__ and "Source:" in fn.__doc__


def test_003_printed_lines_have_no_errata():
    ev = eot.kkt()
    assert ev.errata == []
    keys = {c.key for c in ev.checks}
    for where in ("lagrangian-003-2-as-printed", "stationarity-003-3-as-printed", "tau-log-p-k-003-4-as-printed",
                  "p-k-after-exponentiating-003-4-as-printed", "z-003-4-as-printed"):
        assert where in keys


def test_fd_b_erratum_missing_square_only():
    ev = fd.ml_and_map()
    assert len(ev.errata) == 1
    e = ev.errata[0]
    assert e.source == fd.SOURCE_004 and "Appx B" in e.equation
    assert r"\|^2" in e.corrected and r"\|^2" not in e.printed


def test_fd_b_no_erratum_if_paper_fixed():
    fixed = lambda sq, eta, sigma, K: sq / (2 * eta * sigma**2) + K  # noqa: E731
    ev = fd.ml_and_map(printed_last=fixed)
    assert ev.errata == [] and ev.failed() == []


def test_mem_and_dual_have_no_errata():
    assert fd.mem_kkt().errata == [] and fd.dual_problem().errata == []


# ---- must-fail: wrong closed forms are detected ---------------------------------------------


def test_kkt_detects_sign_flip():
    wrong = lambda idx: sp.exp(-eot.s[idx] / eot.tau) / eot.partition_function()  # noqa: E731
    failed = eot._kkt_evidence(candidate=wrong).failed()
    assert "derived-minimiser-softmax-s-tau-of-003-4-the" in failed
    assert "candidate-satisfies-stationarity-with-one-lambda" in failed


def test_kkt_detects_dropped_normaliser():
    wrong = lambda idx: sp.exp(eot.s[idx] / eot.tau)  # noqa: E731
    failed = eot._kkt_evidence(candidate=wrong).failed()
    assert "candidate-sums-to-1-over-j-1-n" in failed


def test_kkt_detects_dropped_temperature():
    wrong = lambda idx: sp.exp(eot.s[idx]) / sp.Sum(sp.exp(eot.s[eot.l]), (eot.l, 1, eot.n))  # noqa: E731
    ev = eot._kkt_evidence(candidate=wrong)
    assert ev.failed() and ev.finding


def test_uniqueness_detects_wrong_second_variation():
    for wrong in (lambda pj, vj: -eot.tau * vj**2 / pj, lambda pj, vj: vj**2 / pj):
        assert eot._uniq_evidence(candidate=wrong).failed()
    # the sign flip also breaks positivity
    failed = eot._uniq_evidence(candidate=lambda pj, vj: -eot.tau * vj**2 / pj).failed()
    assert "second-variation-positive-definite-on-r-n-hence" in failed


def test_lse_detects_wrong_value():
    for wrong in (lambda: eot.tau * sp.log(eot.partition_function()), lambda: -sp.log(eot.partition_function())):
        ev = eot._lse_evidence(candidate=wrong)
        assert ev.failed() and ev.finding


def test_dual_detects_wrong_objective():
    def flipped():
        return fd._dual_printed() + 2 * fd.sqnorm(fd.lam[fd.a]) / (2 * fd.alpha)  # sign of the quadratic

    def dropped():
        return fd._dual_printed() + sp.log(fd.mgf())  # log M dropped

    for wrong in (flipped, dropped):
        ev = fd._dual_evidence(candidate=wrong)
        assert "dual-objective-7-as-printed-with-m-of-8-and-b-mu" in ev.failed()
        assert ev.finding


def test_ml_map_detects_wrong_alpha():
    failed = fd.ml_and_map(alpha_of=lambda eta, sigma: eta * sigma**2).failed()
    assert {"28-3-with-alpha-1-eta-sigma-2-as-printed", "last-line-of-the-bayesian-derivation-1-eta-first"} & set(failed)


def test_mem_detects_wrong_multiplier_relation():
    failed = fd._mem_evidence(alpha_of_nu=lambda v: v).failed()
    assert "mem-stationarity-stationarity-of-3-with-alpha-2" in failed


# ---- the helpers -----------------------------------------------------------------------------


def test_sum_normal_does_not_equate_different_sums():
    n, j, l, p, s = eot.n, eot.j, eot.l, eot.p, eot.s
    assert _sums.sum_normal(sp.Sum(p[j] * s[j], (j, 1, n)) - sp.Sum(p[l] * s[l], (l, 1, n))) == 0
    assert _sums.sum_normal(sp.Sum(p[j] * s[j], (j, 1, n)) - sp.Sum(p[j] * s[j] ** 2, (j, 1, n))) != 0
    assert _sums.sum_normal(sp.Sum(2 * p[j], (j, 1, n)) - 2 * sp.Sum(p[j], (j, 1, n))) == 0
    assert _sums.sum_normal(sp.Sum(p[j], (j, 1, n)) - sp.Sum(p[j], (j, 1, n - 1))) != 0
    i, a, t, lam = fd.i, fd.a, fd.t, fd.lam
    swapped = sp.Sum(lam[a] * sp.Sum(t[i, a] * fd.p[i], (i, 1, fd.n)), (a, 1, fd.d))
    assert _sums.sum_normal(sp.Sum(fd.p[i] * fd._dot_t(i), (i, 1, fd.n)) - swapped) == 0
    transposed = sp.Sum(lam[a] * sp.Sum(t[a, i] * fd.p[i], (i, 1, fd.n)), (a, 1, fd.d))
    assert _sums.sum_normal(sp.Sum(fd.p[i] * fd._dot_t(i), (i, 1, fd.n)) - transposed) != 0


def test_against_printed_records_erratum_for_a_typo():
    ev = Evidence()
    k, lam, tau, s, p = eot.k, eot.lam, eot.tau, eot.s, eot.p
    derived = -s[k] + tau * (1 + sp.log(p[k])) - lam
    typo = -s[k] + tau * (1 + sp.log(p[k])) + lam
    eot.against_printed(ev, "x", "x", derived, typo, eot.SOURCE_003, "§3", "printed")
    assert len(ev.errata) == 1 and ev.errata[0].equation == "§3"
    assert "differ" in ev.checks[0].metric
    ev2 = Evidence()
    eot.against_printed(ev2, "x", "x", derived, derived, eot.SOURCE_003, "§3", "printed")
    assert ev2.errata == []
