"""Tests for derivations.cumulant (FD-11, FD-13, FD-14) and derivations.gaussian (FD-5)."""

import sympy as sp
import pytest

from attnverify.derivations import cumulant, gaussian
from attnverify.derivations.cumulant import c, i, n, u


def _all_pass(ev):
    return ev.checks and all(ch.passed for ch in ev.checks)


@pytest.mark.parametrize(
    "fn",
    [cumulant.cumulant_expansion, cumulant.quadratic_cumulant_solution, cumulant.first_order_lambda,
     gaussian.gaussian_case],
)
def test_derivation_runs_and_passes(fn):
    ev = fn()
    assert ev.steps and all(st.text for st in ev.steps)
    assert _all_pass(ev), ev.failed()
    assert not ev.finding  # nothing refuted
    assert fn.__doc__ and "004_830fd89135933577.txt" in fn.__doc__


def test_appendix_a_errata_are_computed():
    ev = cumulant.cumulant_expansion()
    eqs = sorted(e.equation for e in ev.errata)
    assert eqs == ["(23)", "(26)"]
    e23 = next(e for e in ev.errata if e.equation == "(23)")
    assert r"\exp" in e23.corrected and r"\exp" not in e23.printed
    e26 = next(e for e in ev.errata if e.equation == "(26)")
    assert r"\log(1+x)" in e26.printed and r"\log(1+t)" in e26.corrected


def test_no_errata_where_the_paper_is_right():
    for fn in (cumulant.quadratic_cumulant_solution, cumulant.first_order_lambda, gaussian.gaussian_case):
        assert fn().errata == []


def test_predicted_orders_derived():
    pred = cumulant.predictions()
    assert {c: p.order for c, p in pred.items()} == {"FD-14": 2, "FD-13": 3, "FD-16": 2}
    assert not pred["FD-13"].coefficient.is_zero_matrix
    table = [t for t in cumulant.first_order_lambda().tables if t.caption.startswith("Error laws")]
    assert [r[:3] for r in table[0].rows] == [[p.claim, p.quantity, p.order] for p in pred.values()]


# -- MUST-FAIL: wrong closed forms are detected ------------------------------
def test_wrong_variance_detected():
    # dropped the squared mean: sum u_i c_i^2 instead of the variance along v
    ev = cumulant._directional_evidence(second=sp.Sum(u[i] * c[i] ** 2, (i, 1, n)))
    assert ev.failed() == ["fd-11-d2-ds2-log-m-sv-0-v-t-sigma-v"]


def test_wrong_mean_and_third_cumulant_detected():
    ev = cumulant._directional_evidence(first=2 * cumulant._mean_dir(), third=-cumulant._kappa3_dir())
    assert set(ev.failed()) == {"fd-11-d-ds-log-m-sv-0-mu-v", "fd-11-d3-ds3-log-m-sv-0-kappa3-v-v-v"}


def _inv(A):
    return A.inv() if isinstance(A, sp.MatrixBase) else A.I


@pytest.mark.parametrize(
    "wrong",
    [
        lambda a, S, z, I: a * _inv(I - a * S) * z,  # sign flipped
        lambda a, S, z, I: _inv(I + a * S) * z,  # factor alpha dropped
    ],
)
def test_wrong_lambda13_detected(wrong):
    ev = cumulant._quadratic_evidence(candidate=wrong)
    failed = ev.failed()
    assert "fd-13-general-d-candidate-satisfies-stationarity" in failed
    assert "fd-13-d-2-sp-solve-13" in failed


def test_wrong_a3_detected():
    ev = cumulant._exact_dual_d1_evidence(a3_candidate=lambda s2, k3, z: s2**2 * z + k3 * z**2 / 2)
    assert ev.failed() == ["fd-14-d-1-exact-dual-a3-sigma-4-z-kappa3-z-2-2"]


def test_wrong_gaussian_lambda_detected():
    ev = gaussian._dual_evidence(lam_candidate=lambda a, b, mu: a / (a + 1) * (b + mu))  # sign flipped
    failed = ev.failed()
    assert "fd-5-lambda-satisfies-stationarity-compared-with" in failed
    assert "fd-5-d-2-sp-solve-alpha-alpha-1-b-mu" in failed


def test_wrong_gaussian_mean_detected():
    wrong = lambda a, b, mu: mu / (1 + a) + b / (1 + a)  # noqa: E731  factor alpha dropped
    assert "fd-5-mean-mu-lambda-printed-mu-1-alpha-alpha-b-1" in (
        gaussian._dual_evidence(mean_candidate=wrong)).failed()
    assert "fd-5-primal-minimiser-m-mu-1-alpha-alpha-b-1" in (
        gaussian._primal_evidence(mean_candidate=wrong)).failed()


def test_mat_simplify_is_not_vacuous():
    d = sp.Symbol("d", integer=True, positive=True)
    z = sp.MatrixSymbol("z", d, 1)
    assert cumulant.mat_simplify(2 * z - z - z) == 0
    assert cumulant.mat_simplify(2 * z - z) != 0
    assert cumulant.mat_simplify(sp.Matrix([0, sp.Symbol("x")])) != 0
