"""The exact dual solver: agreement with SciPy and the primal, as properties over random instances."""

import numpy as np
from hypothesis import given, settings, strategies as st

from attnverify import dual


@st.composite
def instances(draw):
    n = draw(st.integers(1, 40))
    d = draw(st.integers(1, 12))
    seed = draw(st.integers(0, 2**31 - 1))
    alpha = draw(st.floats(1e-3, 10.0))
    rng = np.random.default_rng(seed)
    T = rng.normal(size=(n, d)) * draw(st.floats(0.1, 3.0))
    u = rng.dirichlet(np.ones(n))
    if n > 2 and draw(st.booleans()):
        u[: n // 3] = 0
        u /= u.sum()
    z = rng.normal(size=d)
    return T, u, z, alpha


@settings(max_examples=60, deadline=None, derandomize=True)
@given(instances())
def test_newton_converges_with_zero_gap_and_support(inst):
    T, u, z, alpha = inst
    sol = dual.solve_dual_newton(T, u, z, alpha)
    assert sol.converged
    p = dual.tilted(T, u, sol.lam)
    assert np.all(p[u == 0] == 0)
    F = dual.primal_objective(T, u, z, alpha, p)
    D = dual.dual_objective(T, u, z, alpha, sol.lam)
    assert abs(F - D) <= 1e-10 * (1 + abs(D))
    # the gradient of D vanishes: h_hat = b - lambda*/alpha
    b = T.T @ u + z
    assert np.linalg.norm(T.T @ p - (b - sol.lam / alpha)) <= 1e-11 * max(1, np.linalg.norm(b))


def test_large_logits_stay_finite():
    rng = np.random.default_rng(0)
    T = rng.normal(size=(50, 4)) * 100
    u = np.full(50, 1 / 50)
    z = rng.normal(size=4) * 100
    sol = dual.solve_dual_newton(T, u, z, 10.0)
    assert sol.converged and np.all(np.isfinite(sol.lam))
