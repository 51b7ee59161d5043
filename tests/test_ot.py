"""Section 9 / Appendix D of 004: entropic OT, its conjugate, Prop 1, the OT-based attention, grouped costs.

Claims FD-20, FD-33, FD-37, FD-22, FD-G: derivations/ot.py, checks/ot_numeric.py, attnverify/ot_attention.py.
"""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp

from attnverify import ot_attention as ota
from attnverify.checks import ot_numeric as on
from attnverify.derivations import ot as dot


def _all_passed(ev):
    assert ev.checks, "no checks recorded"
    bad = [(c.name, c.value) for c in ev.checks if not c.passed]
    assert not bad, bad


# -- derivations ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("fn, n_errata", [
    (dot.entropic_ot_kkt, 0),
    (dot.conjugate, 1),  # (33): p(t) must carry the inner index
    (dot.true_preference, 0),  # (37) needs symmetric M, which footnote 9 assumes: no erratum
    (dot.ot_attention_steps, 1),  # (42): summation index
    (dot.group_cost, 1),  # "otherwise M(t,t) = oo"
])
def test_derivations_pass(fn, n_errata):
    ev = fn()
    _all_passed(ev)
    assert ev.steps and all(s.text for s in ev.steps)
    assert len(ev.errata) == n_errata
    for e in ev.errata:
        assert e.printed != e.corrected and e.source == "004_830fd89135933577.txt"


def test_erratum_33_is_the_inner_index():
    ev = dot.conjugate()
    (e,) = ev.errata
    assert e.equation == "(33)" and "p(t')" in e.corrected and "p(t) -" in e.printed


# -- must-fail: wrong closed forms are detected ----------------------------------------------------------
def test_wrong_conjugate_detected():
    H = -sp.Sum(dot.u[dot.j] * sp.log(dot.u[dot.j]), (dot.j, 1, dot.N))
    wrong = dot.conjugate_derived() - 2 * dot.gam * H  # sign of the entropy term flipped
    assert "fd-33-w-g-gamma-h-u-sum-j-u-j-log-sum-i-e-g-i-m" in dot.conjugate(candidate=wrong).failed()
    # the printed (33) itself is not the conjugate
    assert dot.conjugate(candidate=dot.conjugate_printed()).failed()


def test_wrong_column_value_detected():
    ev = dot._column_sup_evidence(column_value=lambda c, Z: dot.gam * c * (sp.log(Z) + sp.log(c)))
    assert ev.failed() == ["fd-33-column-value-gamma-c-log-sum-i-e-s-i-gamma"]


def test_printed_37_fails_without_symmetry():
    assert "fd-37-u-grad-w-0" in dot.true_preference(candidate=dot.ut_printed()).failed()


def test_symmetrisation_is_what_makes_34_hold():
    res = dot._zero()(dot.grad_printed() - dot.grad_derived())
    assert res != 0  # general M: printed (34) differs
    assert dot._zero()(dot._symmetrise(dot.grad_printed() - dot.grad_derived())) == 0


def test_sum_exchange_detects_wrong_orientation():
    a, u, M, N, gam, i, j, l = dot.a, dot.u, dot.M, dot.N, dot.gam, dot.i, dot.j, dot.l
    rows = sp.Sum(u[j] * sp.Sum(sp.exp(-M[j, i] / gam) / sp.Sum(sp.exp(-M[j, l] / gam), (l, 1, N)) * a[i], (i, 1, N)), (j, 1, N))
    mu38 = sp.Sum(dot.ut_derived(i) * a[i], (i, 1, N))
    assert dot._zero_swap(rows - mu38) != 0  # (43) as printed, non-symmetric M
    cols = sp.Sum(u[j] * sp.Sum(sp.exp(-M[i, j] / gam) / sp.Sum(sp.exp(-M[l, j] / gam), (l, 1, N)) * a[i], (i, 1, N)), (j, 1, N))
    assert dot._zero_swap(cols - mu38) == 0


def test_wrong_lambda_star_detected():
    def wrong(al, ga, Sig, z, I):
        return (I - (al / ga) * Sig).inv() * al * z  # sign flipped

    failed = dot.ot_attention_steps(candidate=wrong).failed()
    assert "fd-22-d-2-lambda-i-alpha-gamma-sigmabar-1-alpha" in failed


def test_wrong_group_weight_detected():
    assert dot.group_cost(candidate=lambda ui, G: ui / (G + 1)).failed() == ["fd-g-p-t-u-i-g"]


# -- the module: Sinkhorn, conjugate, exact solve, attention ----------------------------------------------
def _inst(seed=0, N=6, d=3, zeros=2):
    rng = np.random.default_rng(seed)
    T = rng.normal(size=(N, d)) * 0.7
    u = rng.dirichlet(np.ones(N))
    u[:zeros] = 0
    u /= u.sum()
    return T, u, rng.normal(size=d), on._sqdist(T), rng


def test_sinkhorn_matches_pot():
    ot = pytest.importorskip("ot")
    T, u, z, M, rng = _inst()
    p = rng.dirichlet(np.ones(len(u)))
    r = ota.sinkhorn_log(p, u, M, 0.2)
    c = u > 0
    P = ot.sinkhorn(p, u[c], M[:, c], 0.2, method="sinkhorn_log", stopThr=1e-13, numItermax=100_000)
    assert r.converged
    assert np.abs(r.plan[:, c] - P).max() < 1e-9
    W = float((M[:, c] * P).sum() + 0.2 * (P * np.log(P)).sum())
    assert abs(r.value - W) < 1e-10
    assert abs(r.linear - ot.sinkhorn2(p, u[c], M[:, c], 0.2, method="sinkhorn_log", stopThr=1e-13, numItermax=100_000)) < 1e-9
    assert abs(r.value - (np.dot(r.f, p) + np.dot(r.g[c], u[c]))) < 1e-10  # W = <f,p> + <g,u>


def test_sinkhorn_small_gamma_no_underflow():
    T, u, z, M, rng = _inst(1)
    p = rng.dirichlet(np.ones(len(u)))
    r = ota.sinkhorn_log(p, u, M + 5.0, 1e-3)  # exp(-M/gamma) < e^-5000
    assert r.converged and np.all(np.isfinite(r.plan))
    assert abs(r.value - ota.sinkhorn_log(p, u, M, 1e-3).value - 5.0) < 1e-9  # a constant shift of M shifts W


def test_conjugate_closed_forms():
    T, u, z, M, rng = _inst(2)
    g = rng.normal(size=len(u))
    grad = ota.ot_conjugate_grad(g, u, M, 0.3)
    assert abs(grad.sum() - 1) < 1e-14 and np.all(grad >= 0)
    h = 1e-5
    fd = [(ota.ot_conjugate(g + h * e, u, M, 0.3) - ota.ot_conjugate(g - h * e, u, M, 0.3)) / (2 * h) for e in np.eye(len(u))]
    assert np.abs(np.array(fd) - grad).max() < 1e-8
    # Fenchel-Young: W(grad W*(g)) + W*(g) = <g, grad W*(g)>
    r = ota.sinkhorn_log(grad, u, M, 0.3)
    assert r.converged, r.message
    W = r.value
    assert abs(W + ota.ot_conjugate(g, u, M, 0.3) - g @ grad) < 1e-10
    # the printed (33) is a different number
    assert abs(on._printed_33(g, u, M, 0.3) - ota.ot_conjugate(g, u, M, 0.3)) > 1e-3


def test_true_preference_is_stationary():
    T, u, z, M, rng = _inst(3, zeros=0)
    ut = ota.true_preference(u, M, 0.4)
    r = ota.sinkhorn_log(ut, u, M, 0.4)
    assert on._osc(r.f) < 1e-9  # grad_p W = f + const vanishes on the tangent space
    Mn = M.copy()
    Mn[:, 0] += 10.0  # non-symmetric: the derived u~ is shift invariant, the printed (37) is not a distribution
    assert np.allclose(ota.true_preference(u, Mn, 0.4), ut, atol=1e-14)
    assert abs(on._printed_37(u, Mn, 0.4).sum() - 1) > 1e-3


def test_solve_ot_dual_and_attention_agree_for_small_alpha_over_gamma():
    T, u, z, M, _ = _inst(4)
    sol = ota.solve_ot_dual(T, u, z, M, 1e-3, 1.0)
    assert sol.converged and abs(sol.p.sum() - 1) < 1e-14
    h, P = ota.ot_attention(T, u, z, M, 1e-3, 1.0, return_weights=True)
    assert np.abs(P - sol.p).sum() < 1e-5
    assert np.allclose(h, T.T @ P)
    assert np.all(P > 0)  # weight on every template of A, also where u = 0


def test_ot_attention_batched_equals_loop_and_shapes():
    T, u, z, M, rng = _inst(5)
    Z = rng.normal(size=(7, T.shape[1]))
    H, P = ota.ot_attention(T, u, Z, M, 0.5, 0.3, return_weights=True)
    assert H.shape == (7, T.shape[1]) and P.shape == (7, len(u))
    for k in range(7):
        hk, pk = ota.ot_attention(T, u, Z[k], M, 0.5, 0.3, return_weights=True)
        assert hk.shape == (T.shape[1],)
        assert np.allclose(pk, P[k], atol=1e-15) and np.allclose(hk, H[k], atol=1e-14)
    assert np.allclose(P.sum(1), 1, atol=1e-14)
    assert np.allclose(P, ota.ot_conjugate_grad(0.5 * Z @ T.T, u, M, 0.3), atol=1e-15)


def test_ot_attention_special_costs():
    T, u, z, M, _ = _inst(6)
    a, g_ = 0.7, 0.4
    s = a * T @ z / g_
    # constant cost: u drops out, plain softmax over all of A
    _, P = ota.ot_attention(T, u, z, np.full_like(M, 3.0), a, g_, return_weights=True)
    assert np.allclose(P, np.exp(s - s.max()) / np.exp(s - s.max()).sum(), atol=1e-15)
    # zero diagonal, +inf elsewhere: no transport, p = u
    D = np.where(np.eye(len(u)) > 0, 0.0, np.inf)
    _, P = ota.ot_attention(T, u, z, D, a, g_, return_weights=True)
    assert np.allclose(P, u, atol=1e-15)


def test_ot_attention_small_gamma_finite():
    T, u, z, M, _ = _inst(7)
    h, P = ota.ot_attention(T, u, z, M + 100.0, 1.0, 1e-4, return_weights=True)
    assert np.all(np.isfinite(P)) and abs(P.sum() - 1) < 1e-12


@pytest.mark.parametrize("kw, arg", [
    (dict(gamma=0.0), "gamma"), (dict(gamma=-1.0), "gamma"), (dict(gamma=float("nan")), "gamma"),
    (dict(alpha=0.0), "alpha"), (dict(alpha=-2.0), "alpha"), (dict(alpha=True), "alpha"),
    (dict(u=[0.5, 0.6, -0.1, 0, 0, 0]), "u"), (dict(u=[0.5, 0.6, 0, 0, 0, 0]), "u"), (dict(u=[1 / 5] * 5), "u"),
    (dict(u=[np.nan, 1, 0, 0, 0, 0]), "u"),
    (dict(T="abc"), "T"), (dict(T=np.full((6, 3), np.nan)), "T"), (dict(T=np.ones(6)), "T"),
    (dict(z=np.ones(4)), "z"), (dict(z=[np.nan, 0, 0]), "z"), (dict(z=np.ones((2, 2, 3))), "z"),
    (dict(M=np.ones((6, 5))), "M"), (dict(M=np.full((6, 6), np.nan)), "M"), (dict(M=-np.inf * np.ones((6, 6))), "M"),
    (dict(M=np.where(np.arange(6)[None, :] == 5, np.inf, 1.0) * np.ones((6, 6))), "M"),
])
def test_bad_input_raises_value_error_naming_the_argument(kw, arg):
    T, u, z, M, _ = _inst(8, zeros=0)
    args = dict(T=T, u=u, z=z, M=M, alpha=1.0, gamma=0.5)
    args.update(kw)
    with pytest.raises(ValueError) as e:
        ota.ot_attention(**args)
    msg = str(e.value)
    assert msg.startswith(f"{arg}:") and "\n" not in msg


# -- the numeric checks of the report ------------------------------------------------------------------
@pytest.mark.parametrize("fn", [on.sinkhorn_vs_pot, on.conjugate_numeric, on.true_preference_numeric,
                                on.exact_vs_22, on.grouped_cost])
def test_numeric_checks_pass(fn, tmp_path, monkeypatch):
    pytest.importorskip("ot")
    from attnverify import context

    monkeypatch.setattr(context, "FIGURE_DIR", tmp_path)
    ev = fn()
    _all_passed(ev)
    for c in ev.checks:
        assert c.why, c.name  # every tolerance is justified
