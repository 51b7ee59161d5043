"""Issue 18, item 1: a convergence verdict that means what it says.

Every solver of (7) (the batched one, its one-instance wrapper, the per-instance Newton and the
stacked solver) reports converged only when its certified bound B on ||lambda - lambda*|| is at
most rtol ||lambda|| and the relative duality gap at most rtol.  Checked here against a
high-precision Newton (mpmath, 60 digits) on small n, d, over scales s in [1e-12, 1e12] and alpha
from 1e-300 to the largest alpha the validator admits; the verdict and lambda s are scale-invariant;
the float32 CG never overflows; and each case of the issue has its own test.

Tolerances.  The reference lambda_mp is itself certified: its gradient, evaluated in 60-digit
arithmetic, bounds ||lambda_mp - lambda*|| <= alpha ||grad D(lambda_mp)|| (strong concavity), which
is added to the solver's bound B (and is below 1e-40 relative).  Nothing else is added: a converged
answer must lie within its own bound of the exact solution.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys

import mpmath
import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings, strategies as st

from attnverify import batched, dual
from attnverify.validate import MAX_LOGIT, MIN_ALPHA

DPS = 60


def mp_newton(T, u, z, alpha, lam0):
    """lambda* of (7) in 60-digit arithmetic (Newton from lam0), with its certified error alpha ||grad D||."""
    with mpmath.workdps(DPS):
        n, d = T.shape
        Tm = [[mpmath.mpf(float(x)) for x in row] for row in T]
        us = [mpmath.mpf(float(x)) for x in u]
        tot = mpmath.fsum(us)
        us = [x / tot for x in us]  # the exact problem: u normalised exactly
        zm = [mpmath.mpf(float(x)) for x in z]
        a = mpmath.mpf(float(alpha))
        mu = [mpmath.fsum(us[i] * Tm[i][j] for i in range(n)) for j in range(d)]
        Tc = [[Tm[i][j] - mu[j] for j in range(d)] for i in range(n)]
        lam = [mpmath.mpf(float(x)) for x in lam0]

        def grad_hess(lam):
            y = [mpmath.fsum(Tc[i][j] * lam[j] for j in range(d)) for i in range(n)]
            on = [i for i in range(n) if us[i] > 0]
            m = max(y[i] for i in on)
            e = {i: us[i] * mpmath.exp(y[i] - m) for i in on}
            s = mpmath.fsum(e.values())
            p = {i: e[i] / s for i in on}
            c = [mpmath.fsum(p[i] * Tc[i][j] for i in on) for j in range(d)]
            g = [zm[j] - lam[j] / a - c[j] for j in range(d)]
            H = mpmath.matrix(d, d)
            for j in range(d):
                for k in range(d):
                    H[j, k] = mpmath.fsum(p[i] * (Tc[i][j] - c[j]) * (Tc[i][k] - c[k]) for i in on) + (1 / a if j == k else 0)
            return g, H

        for _ in range(60):
            g, H = grad_hess(lam)
            gn = mpmath.sqrt(mpmath.fsum(x * x for x in g))
            scale = mpmath.sqrt(mpmath.fsum(x * x for x in lam)) / a + mpmath.sqrt(mpmath.fsum(x * x for x in zm))
            if gn <= mpmath.mpf(10) ** (-(DPS - 8)) * (scale + 1e-300):
                break
            step = mpmath.lu_solve(H, mpmath.matrix(g))
            lam = [lam[j] + step[j] for j in range(d)]
        g, _ = grad_hess(lam)
        gn = mpmath.sqrt(mpmath.fsum(x * x for x in g))
        return lam, a * gn


def mp_distance(lam, lam_mp):
    with mpmath.workdps(DPS):
        return float(mpmath.sqrt(mpmath.fsum((mpmath.mpf(float(x)) - y) ** 2 for x, y in zip(lam, lam_mp))))


def max_alpha(T, u, z):
    """The largest alpha validate admits for (T, u, z): the logit bound alpha max||t|| (||z|| + 2 max||t||) <= MAX_LOGIT."""
    tmax = float(np.linalg.norm(T[u > 0], axis=1).max())
    return 0.99 * MAX_LOGIT / (tmax * (np.linalg.norm(z) + 2 * tmax))


@st.composite
def small_instance(draw):
    n = draw(st.integers(2, 5))
    d = draw(st.integers(1, 3))
    rng = np.random.default_rng(draw(st.integers(0, 2**31 - 1)))
    T = rng.normal(size=(n, d))
    u = rng.dirichlet(np.ones(n))
    if n > 2 and draw(st.booleans()):
        u[0] = 0.0
        u /= u.sum()
    z = rng.normal(size=d) * 10.0 ** draw(st.floats(-3, 1))
    s = 10.0 ** draw(st.floats(-12, 12))
    hi = math.log10(max_alpha(T, u, z))
    la = draw(st.floats(-300, hi))
    alpha = 10.0**la
    # (sT, sz, alpha / s^2) must itself be admitted: alpha / s^2 >= the smallest normal float64
    assume(alpha / s**2 >= 1e4 * MIN_ALPHA)
    return T * s, u, z * s, alpha / s**2


def _solvers(T, u, z, alpha):
    yield "batched", batched.solve_dual_instance(T, u, z, alpha)
    yield "newton", dual.solve_dual_newton(T, u, z, alpha)
    yield "stacked", _one_stacked(T, u, z, alpha)


def _one_stacked(T, u, z, alpha):
    s = batched.solve_stacked([(T, u, z[None], alpha)])[0]
    return dual.DualSolution(s.lam[0], bool(s.converged[0]), int(s.iterations[0]), float(s.grad_norm[0]), s.rtol,
                             float(s.bound[0]), float(s.rel_bound[0]), float(s.rel_gap[0]), s.message)


@settings(max_examples=120, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow,
                                                                                    HealthCheck.filter_too_much])
@given(small_instance())
def test_every_converged_answer_meets_its_bound(inst):
    T, u, z, alpha = inst
    ref = None
    for name, sol in _solvers(T, u, z, alpha):
        assert np.all(np.isfinite(sol.lam)), name
        assert sol.bound >= 0 and sol.rel_bound >= 0, name
        if not sol.converged:
            continue
        assert sol.rel_bound <= 1e-10 and sol.rel_gap <= 1e-10, (name, sol)
        if ref is None:
            ref = mp_newton(T, u, z, alpha, sol.lam)
        lam_mp, err_mp = ref
        dist = mp_distance(sol.lam, lam_mp)
        assert dist <= sol.bound + float(err_mp), (name, dist, sol.bound, sol)


@settings(max_examples=60, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow,
                                                                                   HealthCheck.filter_too_much])
@given(small_instance(), st.integers(-40, 40), st.floats(1e-12, 1e12))
def test_scale_invariance(inst, k, s_any):
    """(T, z, alpha) -> (sT, sz, alpha/s^2) maps lambda* to lambda*/s.  For s a power of 2 every
    float operation scales exactly, so the verdict and lambda s are identical; for any s, lambda s
    agrees within the two certified bounds, and the verdict agrees unless a bound is within a factor 4
    of rtol (the computed gradient is rounding noise at that level and differs between scales)."""
    T, u, z, alpha = inst
    for s, exact in ((2.0**k, True), (s_any, False)):
        a2 = alpha / s**2
        if not (a2 >= 1e4 * MIN_ALPHA and np.isfinite(a2) and np.abs(T * s).max() < 1e90):
            continue
        for f in (batched.solve_dual_instance, dual.solve_dual_newton):
            one, two = f(T, u, z, alpha), f(T * s, u, z * s, a2)
            if exact:
                assert one.converged == two.converged
                assert np.array_equal(two.lam * s, one.lam)
            else:
                assert np.linalg.norm(two.lam * s - one.lam) <= two.bound * s + one.bound + 1e-300
                if min(one.rel_bound, two.rel_bound) > 4e-10 or max(one.rel_bound, two.rel_bound) < 2.5e-11:
                    assert one.converged == two.converged


@settings(max_examples=40, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(2, 40), st.integers(1, 40), st.floats(0, 19.5), st.integers(0, 2**31 - 1))
def test_float32_path_never_overflows(n, d, log_scale, seed):
    """Templates up to 3e19 with alpha small enough for the float32 CG (cond(H) <= 1e3): no overflow."""
    rng = np.random.default_rng(seed)
    s = 10.0**log_scale
    T = rng.normal(size=(n, d)) * s
    u = np.full(n, 1 / n)
    Z = rng.normal(size=(4, d)) * s
    ts = batched.prepare(T, u)
    alpha = 500.0 / max(ts.amax, 1e-300) ** 2  # kappa = 1 + alpha amax^2 ~ 500: the float32 path
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        sol = batched.solve_dual_batched(T, u, Z, alpha)
    assert np.all(np.isfinite(sol.lam)) and np.all(np.isfinite(sol.bound))
    assert sol.converged.all(), sol.message


# --- the cases at the top of issue 18 ------------------------------------------------------------
T3 = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
U3 = np.full(3, 1 / 3)
Z3 = np.array([0.3, -0.2])


@pytest.mark.parametrize("alpha", [1e10, 1e12])
def test_issue_case_large_alpha(alpha):
    """alpha = 1e10 once gave a gap of 0.22 and lambda off by 7e-5 with converged: true."""
    ref, err = mp_newton(T3, U3, Z3, alpha, dual.solve_dual_newton(T3, U3, Z3, alpha).lam)
    for sol in (batched.solve_dual_instance(T3, U3, Z3, alpha), dual.solve_dual_newton(T3, U3, Z3, alpha)):
        assert sol.converged and sol.rel_gap <= 1e-10
        assert mp_distance(sol.lam, ref) <= sol.bound + float(err)
        assert mp_distance(sol.lam, ref) <= 1e-10 * np.linalg.norm(sol.lam)


def test_issue_case_rescaled_templates():
    """The scale-1 problem rescaled by 1e-10 (alpha = 1e20) once stopped at alpha z after 0 iterations."""
    s = 1e-10
    one = batched.solve_dual_instance(T3, U3, Z3, 1.0)
    two = batched.solve_dual_instance(T3 * s, U3, Z3 * s, 1.0 / s**2)
    assert one.converged and two.converged and two.iterations > 0
    assert np.linalg.norm(two.lam * s - one.lam) <= two.bound * s + one.bound


def test_issue_case_tiny_alpha_gap_not_negative(tmp_path):
    """alpha = 1e-300 once gave a dual value above the primal (a negative gap of 2.4 x the primal)."""
    out = _cli(tmp_path, {"templates": T3.tolist(), "z": Z3.tolist(), "alpha": 1e-300})
    assert out["converged"] is True
    assert out["primal"] > 0 and out["dual"] > 0
    assert abs(out["gap"]) <= 1e-10 * max(abs(out["primal"]), abs(out["dual"]))
    assert np.allclose(out["lambda_star"], 1e-300 * Z3, rtol=1e-12, atol=0)


def test_issue_case_huge_templates_tiny_alpha(tmp_path):
    """Templates of size 2e19 with a tiny alpha once overflowed the float32 CG: 'lam: contains NaN'."""
    c = 2e19
    out = _cli(tmp_path, {"templates": (T3 * c).tolist(), "z": (Z3 * c).tolist(), "alpha": 1e-38})
    assert out["converged"] is True and all(math.isfinite(x) for x in out["lambda_star"])


def test_solve_exits_1_with_json_when_not_converged(tmp_path, monkeypatch):
    """maxiter too small for a hard case: converged false, the JSON printed, exit status 1."""
    case = tmp_path / "case.json"
    case.write_text(json.dumps({"templates": T3.tolist(), "z": Z3.tolist(), "alpha": 1e10}))
    code = ("import sys, attnverify.batched as b, attnverify.dual as d;"
            "f = b.solve_dual_instance; b.solve_dual_instance = lambda *a, **k: f(*a, **dict(k, maxiter=1));"
            "g = d.solve_dual_newton; d.solve_dual_newton = lambda *a, **k: g(*a, **dict(k, maxiter=1));"
            "import attnverify.solve as s; s.solve_dual_instance = b.solve_dual_instance;"
            "from attnverify.cli import main; sys.exit(main(['solve', sys.argv[1]]))")
    r = subprocess.run([sys.executable, "-c", code, str(case)], capture_output=True, text=True)
    assert r.returncode == 1, r.stderr
    out = json.loads(r.stdout)
    assert out["converged"] is False and out["rel_bound"] > 1e-10 and "not converged" in out["message"]


def _cli(tmp_path, case):
    path = tmp_path / "case.json"
    path.write_text(json.dumps(case))
    r = subprocess.run([sys.executable, "-m", "attnverify.cli", "solve", str(path)], capture_output=True, text=True)
    assert r.returncode in (0, 1), r.stderr
    return json.loads(r.stdout)
