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
