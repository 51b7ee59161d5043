"""The batched subspace solver agrees with the per-instance Newton solver on (7)."""

import numpy as np
import pytest

from attnverify import dual
from attnverify.batched import centred_basis, solve_dual_batched


@pytest.mark.parametrize("n,d,alpha", [(8, 2, 1.0), (64, 16, 0.1), (16, 64, 3.0), (128, 32, 10.0), (32, 8, 1e-3)])
def test_batched_matches_per_instance(n, d, alpha):
    rng = np.random.default_rng(n * d)
    T = rng.normal(size=(n, d)) / np.sqrt(d)
    u = rng.dirichlet(np.ones(n))
    u[: n // 4] = 0  # padding
    u /= u.sum()
    Z = rng.normal(size=(50, d))
    sol = solve_dual_batched(T, u, Z, alpha, chunk=16)
    assert sol.converged.all()
    assert sol.rank == min(int((u > 0).sum()) - 1, d)
    for k in range(0, 50, 7):
        ref = dual.solve_dual_newton(T, u, Z[k], alpha)
        # -D is (1/alpha)-strongly convex: ||lam - lam*|| <= alpha ||grad D(lam)||
        assert np.linalg.norm(sol.lam[k] - ref.lam) <= alpha * (sol.grad_norm[k] + ref.grad_norm) + 1e-12


@pytest.mark.parametrize("alpha", [1e-6, 1.0, 300.0])
def test_float32_directions_do_not_change_the_answer(monkeypatch, alpha):
    """CG directions in float32 (the default where cond(H) <= 1e3) and in float64 give the same lambda*
    up to the convergence tolerance: only the directions differ, gradient and verdict are float64."""
    import attnverify.batched as batched

    rng = np.random.default_rng(7)
    T = rng.normal(size=(48, 96)) / np.sqrt(96) * 2
    u = rng.dirichlet(np.ones(48))
    Z = rng.normal(size=(300, 96)) * 3
    kappa = 1 + alpha * np.max(np.sum(((T - T.T @ u) @ centred_basis(T, u)) ** 2, axis=1))
    assert (kappa <= batched.KAPPA_SINGLE) == (alpha < 300)  # alpha = 300 takes the float64 path itself
    single = solve_dual_batched(T, u, Z, alpha)
    monkeypatch.setattr(batched, "KAPPA_SINGLE", 0.0)  # force float64 CG
    double = solve_dual_batched(T, u, Z, alpha)
    assert single.converged.all() and double.converged.all()
    # -D is (1/alpha)-strongly convex: ||lam - lam*|| <= alpha ||grad D(lam)|| for each answer
    gap = np.linalg.norm(single.lam - double.lam, axis=1)
    assert np.all(gap <= alpha * (single.grad_norm + double.grad_norm) + 1e-13 * np.linalg.norm(double.lam, axis=1))


def test_correction_lies_in_the_centred_span():
    """lambda* - alpha z is in span{t_i - mu}: the structure the solver relies on, checked on Newton's answer."""
    rng = np.random.default_rng(1)
    T = rng.normal(size=(6, 20))  # n << d: S has dimension 5
    u = rng.dirichlet(np.ones(6))
    z = rng.normal(size=20)
    lam = dual.solve_dual_newton(T, u, z, 2.0).lam
    Q = centred_basis(T, u)
    corr = lam - 2.0 * z
    assert Q.shape[1] == 5
    assert np.linalg.norm(corr - Q @ (Q.T @ corr)) <= 1e-12 * np.linalg.norm(corr)


def test_single_template_support():
    T = np.array([[1.0, 2.0], [3.0, 4.0]])
    sol = solve_dual_batched(T, np.array([1.0, 0.0]), np.array([[0.5, -1.0]]), 2.0)
    assert sol.rank == 0 and sol.converged.all()
    assert np.allclose(sol.lam, 2.0 * np.array([[0.5, -1.0]]))


@pytest.mark.parametrize("T,u,Z,alpha,field", [
    (np.ones((3, 2)), [0.5, 0.5, 0.0], np.ones((2, 2)), 0.0, "alpha"),
    (np.ones((3, 2)), [0.5, 0.5, 0.0], np.ones((2, 2)), -1.0, "alpha"),
    (np.ones((3, 2)), [0.5, 0.5, 0.0], np.ones((2, 2)), float("nan"), "alpha"),
    (np.ones((3, 2)), [0.6, 0.5, 0.0], np.ones((2, 2)), 1.0, "u"),
    (np.ones((3, 2)), [1.5, -0.5, 0.0], np.ones((2, 2)), 1.0, "u"),
    (np.ones((3, 2)), [0.0, 0.0, 0.0], np.ones((2, 2)), 1.0, "u"),
    (np.ones((3, 2)), [0.5, 0.5], np.ones((2, 2)), 1.0, "u"),
    (np.ones((3, 2)), [0.5, 0.5, 0.0], np.ones((2, 3)), 1.0, "Z"),
    (np.ones((3, 2)), [0.5, 0.5, 0.0], [[np.nan, 1.0]], 1.0, "Z"),
    (np.full((3, 2), np.inf), [0.5, 0.5, 0.0], np.ones((2, 2)), 1.0, "T"),
    (np.ones((0, 2)), [], np.ones((2, 2)), 1.0, "T"),
    (np.ones((3, 0)), [0.5, 0.5, 0.0], np.ones((2, 0)), 1.0, "T"),
    (np.ones(3), [0.5, 0.5, 0.0], np.ones((2, 2)), 1.0, "T"),
])
def test_bad_arguments_raise_a_value_error_naming_them(T, u, Z, alpha, field):
    with pytest.raises(ValueError, match=rf"^{field}: "):
        solve_dual_batched(T, u, Z, alpha)


@pytest.mark.parametrize("seed", [0, 48, 68])
def test_rows_the_s_certificate_leaves_open_are_certified_in_full_space(seed, monkeypatch):
    """alpha = 1000, logits of size 1, ||lambda|| ~ 0.1: the S-coordinate certificate's bound on the gradient
    outside the basis (alpha ||E||, E the basis's rounding) exceeds rtol ||lambda||, so those rows stop
    uncertified although lambda is accurate.  The R^d certificate of certify_points holds for the same lambda;
    the solver keeps the smaller bound.  Without that step these seeds leave rows unconverged."""
    from attnverify import batched

    rng = np.random.default_rng(seed)
    T = rng.normal(size=(10, 14))
    u = rng.dirichlet(np.ones(10))
    Z = rng.normal(size=(3, 14))
    alpha = 1000.0
    Z *= (1.0 / (alpha * np.abs(Z @ T.T).max(axis=1)))[:, None]
    sol = batched.solve_dual_batched(T, u, Z, alpha)
    assert sol.converged.all()
    again = batched.certify_points(T, u, Z, sol.lam, alpha)  # the certificate, recomputed independently
    assert again["converged"].all() and np.all(sol.rel_bound <= 1e-10)
    monkeypatch.setattr(batched, "_recertify_in_full_space", lambda ts, o, rtol: None)
    without = batched.solve_dual_batched(T, u, Z, alpha)
    assert not without.converged.all()
    assert np.array_equal(without.lam, sol.lam)  # the answer is the same; only its certificate differs


def test_float64_floor_is_reported_not_hidden():
    """alpha = 1e3, logits up to 1e4: the float64 error bounds of the gradient alone exceed 1e-10 ||lambda||, so
    neither the batched solver nor the full-space Newton can certify rtol = 1e-10.  Both say so (converged False,
    the bound they reached, ~1.1e-10 ||lambda||), and their answers agree within the sum of the two bounds."""
    rng = np.random.default_rng(0)
    T = rng.normal(size=(4, 20))
    u = rng.dirichlet(np.ones(4))
    Z = rng.normal(size=(3, 20))
    alpha = 1e3
    Z *= (1e4 / (alpha * np.abs(Z @ T.T).max(axis=1)))[:, None]
    sol = solve_dual_batched(T, u, Z, alpha)
    for k, z in enumerate(Z):
        ref = dual.solve_dual_newton(T, u, z, alpha)
        assert not sol.converged[k] and not ref.converged
        assert 1e-10 < sol.rel_bound[k] < 2e-10 and "not converged" in sol.message
        assert np.linalg.norm(sol.lam[k] - ref.lam) <= sol.bound[k] + ref.bound
