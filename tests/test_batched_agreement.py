"""Issue 3, item 2: the batched solver agrees with independent exact solves over adversarial ranges.

Ranges drawn by hypothesis: logits alpha <t_i, z> up to 1e4 in magnitude, alpha from 1e-6 to 1e3,
u with zeros (padding), n >> d and n << d.  References:
  * per-instance SciPy (trust-exact on -D with the analytic Hessian, tight gtol);
  * the per-instance full-space Newton of attnverify.dual (a different algorithm: direct solves in R^d);
  * the CVXPY/Clarabel exponential-cone solve of the primal (3), lambda = alpha (b - T^T p).

Tolerances.  -D is (1/alpha)-strongly concave, so for any two points
||lambda_1 - lambda_2|| <= alpha (||grad D(lambda_1)|| + ||grad D(lambda_2)||): the agreement
bound is computed from the gradients each solver reached, not chosen.  The CVXPY comparison
is at the 1e-8 relative level the issue asks for.  The duality gap at p~(lambda) equals
alpha ||grad D||^2 / 2 exactly, so it is checked against 1e-10 relative plus the float64
rounding of the objective values themselves (a few eps times the largest term).
Since issue 18 the agreement with the references uses each solver's certified bound on
||lambda - lambda*|| (attnverify.certificate) in place of alpha ||grad D||.
"""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from scipy.optimize import minimize

from attnverify import dual
from attnverify.batched import solve_dual_batched
from attnverify.primal import solve_primal_cvxpy

EPS = np.finfo(float).eps


@st.composite
def head(draw, max_logit_exp=4.0):
    """One template set T and u shared by m queries Z, scaled so that max |alpha <t_i, z>| = 10^e."""
    shape = draw(st.sampled_from(["n>>d", "n<<d", "mixed"]))
    if shape == "n>>d":
        n, d = draw(st.integers(20, 80)), draw(st.integers(1, 4))
    elif shape == "n<<d":
        n, d = draw(st.integers(2, 6)), draw(st.integers(20, 80))
    else:
        n, d = draw(st.integers(2, 30)), draw(st.integers(2, 30))
    seed = draw(st.integers(0, 2**31 - 1))
    alpha = 10.0 ** draw(st.floats(-6, 3))
    e = draw(st.floats(-2, max_logit_exp))
    rng = np.random.default_rng(seed)
    T = rng.normal(size=(n, d))
    u = rng.dirichlet(np.ones(n))
    if n > 2 and draw(st.booleans()):
        u[rng.choice(n, size=n // 3, replace=False)] = 0  # padding / masks
        u /= u.sum()
    Z = rng.normal(size=(3, d))
    Z *= (10.0**e / (alpha * np.abs(Z @ T.T).max(axis=1)))[:, None]
    return T, u, Z, alpha


def _grad(T, u, z, alpha, lam):
    return T.T @ u + z - lam / alpha - T.T @ dual.tilted(T, u, lam)


@settings(max_examples=200, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(head())
def test_batched_agrees_with_scipy_and_newton(inst):
    T, u, Z, alpha = inst
    sol = solve_dual_batched(T, u, Z, alpha)
    assert np.all(np.isfinite(sol.lam))
    for k, z in enumerate(Z):
        lam = sol.lam[k]
        b = T.T @ u + z
        g = np.linalg.norm(_grad(T, u, z, alpha, lam))
        # an independent algorithm on the full problem: within the two certified bounds
        ref = dual.solve_dual_newton(T, u, z, alpha)
        assert np.linalg.norm(lam - ref.lam) <= sol.bound[k] + ref.bound
        # the certified verdict (issue 18): every row is certified that the full-space Newton certifies.  At the
        # corner alpha = 1e3, logits ~1e3-1e4 neither can be: the float64 error bounds of the gradient alone
        # reach ~1.2e-10 ||lambda||, so both report "not converged" with that bound (and agree within it)
        assert sol.converged[k] or not ref.converged, (k, sol.rel_bound[k], ref.rel_bound, sol.iterations)
        if not sol.converged[k]:
            continue
        assert sol.rel_bound[k] <= 1e-10 and sol.rel_gap[k] <= 1e-10

        # per-instance SciPy, tight: trust-exact with the analytic Hessian
        def negD(x):
            p = dual.tilted(T, u, x)
            h = T.T @ p
            val = -dual.dual_objective(T, u, z, alpha, x)
            return val, -(b - x / alpha - h)

        def hessD(x):
            p = dual.tilted(T, u, x)
            Tc = T - T.T @ p
            return np.eye(len(x)) / alpha + (Tc * p[:, None]).T @ Tc

        res = minimize(negD, alpha * z, jac=True, hess=hessD, method="trust-exact",
                       options={"gtol": 1e-10 * max(np.linalg.norm(b), 1), "maxiter": 500})
        gs = np.linalg.norm(_grad(T, u, z, alpha, res.x))
        assert np.linalg.norm(lam - res.x) <= sol.bound[k] + alpha * gs * (1 + 1e-6) + 8 * EPS * np.linalg.norm(lam)
        # duality gap at p~(lambda*): exactly alpha ||g||^2 / 2, plus rounding of the two values
        p = dual.tilted(T, u, lam)
        F = dual.primal_objective(T, u, z, alpha, p)
        D = dual.dual_objective(T, u, z, alpha, lam)
        scale = max(1.0, abs(F), abs(D), abs(lam @ b), lam @ lam / alpha, np.abs(T @ lam).max())
        assert abs(F - D) <= 1e-10 * max(1.0, abs(D)) + 64 * EPS * scale


@settings(max_examples=80, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(head(max_logit_exp=1.5))
def test_batched_agrees_with_cvxpy_primal(inst):
    """The primal (3) solved as an exponential-cone program: lambda = alpha (b - T^T p).

    Where Clarabel certifies its solution ("optimal" at gap and feasibility 1e-14) the two agree
    to 1e-8 relative, as the issue asks.  Where it stops short ("optimal_inaccurate"; measured on
    about 1 instance in 12, the reference's own limit, not ours) the agreement is held to the bound
    its objective value implies: F is 1-strongly convex in l1 on the simplex, so
    ||p_c - p~||_1 <= sqrt(2 (F(p_c) - D(lambda*))) and ||lambda_c - lambda*|| <= alpha max||t_i|| ||p_c - p~||_1.
    Logits are kept to |alpha <t, z>| <= 10^1.5: beyond that p~ has entries under the interior-point
    solver's accuracy and the comparison would measure Clarabel, not the dual solver."""
    T, u, Z, alpha = inst
    sol = solve_dual_batched(T, u, Z[:1], alpha)
    z = Z[0]
    prim = solve_primal_cvxpy(T, u, z, alpha)
    lam_c = alpha * (T.T @ u + z - T.T @ prim.p)
    lam = sol.lam[0]
    err = np.linalg.norm(lam - lam_c)
    if prim.status == "optimal":
        assert err <= 1e-8 * np.linalg.norm(lam) + alpha * 1e-9 * np.abs(T).max()
    else:
        gap = max(prim.value - dual.dual_objective(T, u, z, alpha, lam), 0.0)
        l1 = np.sqrt(2 * gap) + 1e-12
        assert err <= alpha * np.linalg.norm(T, axis=1).max() * l1 * (1 + 1e-6) + 1e-8 * np.linalg.norm(lam)


def test_nonconvergence_is_reported_not_hidden():
    """With too few iterations the solver must say so, instance by instance."""
    rng = np.random.default_rng(3)
    T = rng.normal(size=(40, 10)) * 3
    u = np.full(40, 1 / 40)
    Z = rng.normal(size=(20, 10)) * 5
    sol = solve_dual_batched(T, u, Z, 100.0, maxiter=1)
    assert not sol.converged.all()
    b = T.T @ u + Z
    for k in range(20):
        g = np.linalg.norm(_grad(T, u, Z[k], 100.0, sol.lam[k]))
        assert sol.grad_norm[k] == pytest.approx(g, rel=1e-6)
        # the verdict is the certified one (issue 18): bound <= rtol ||lambda|| and relative gap <= rtol
        assert sol.converged[k] == (sol.rel_bound[k] <= 1e-10 and sol.rel_gap[k] <= 1e-10)


def test_memory_is_bounded_by_chunks():
    """The working set is a chunk, not m: solving many queries allocates O(chunk), shown by tracemalloc."""
    import tracemalloc

    rng = np.random.default_rng(4)
    T = rng.normal(size=(64, 48))
    u = np.full(64, 1 / 64)
    out = []
    for m in (1024, 8192):  # one default chunk (n = 64), and eight
        Z = rng.normal(size=(m, 48)) * 0.3
        tracemalloc.start()
        solve_dual_batched(T, u, Z, 1.0, workers=1)  # each worker thread holds one chunk
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        # minus what is returned per query: lambda (m, d) and the S coordinates w, Q^T z (m, r each; r = d here)
        out.append(peak - 8 * m * 48 * 3)
    assert out[1] <= 1.5 * out[0] + (8192 - 1024) * 64  # per-query bookkeeping only (flags, counters)


@pytest.mark.parametrize("alpha", [1e-6, 1e3])
@pytest.mark.parametrize("max_logit", [1e-2, 1e4])
@pytest.mark.parametrize("n,d", [(300, 3), (4, 300)])
def test_corners_of_the_range(alpha, max_logit, n, d):
    """The corners hypothesis may not reach: extreme alpha and logits, n >> d and n << d, with padding."""
    rng = np.random.default_rng(7)
    T = rng.normal(size=(n, d))
    u = rng.dirichlet(np.ones(n))
    u[: n // 4] = 0
    u /= u.sum()
    Z = rng.normal(size=(5, d))
    Z *= (max_logit / (alpha * np.abs(Z @ T.T).max(axis=1)))[:, None]
    sol = solve_dual_batched(T, u, Z, alpha)
    assert np.all(np.isfinite(sol.lam)) and sol.converged.all()
    for k in range(5):
        ref = dual.solve_dual_newton(T, u, Z[k], alpha)
        assert ref.converged
        assert np.linalg.norm(sol.lam[k] - ref.lam) <= sol.bound[k] + ref.bound
