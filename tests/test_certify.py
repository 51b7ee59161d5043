"""attnverify.certify: certificates are never false, and fail where they must.

The ground truth is an 80-digit mpmath Newton solve of (7) (small n, d), independent of the float
solvers and of FLINT.
"""

import doctest
import json

import mpmath as mp
import numpy as np
import pytest
from hypothesis import assume, given, settings, strategies as st

from attnverify import certify as C
from attnverify import dual, strength
from attnverify.batched import solve_dual
from attnverify.solve import solve_instance
from attnverify.validate import InputError, instance


def truth(T, u, z, alpha, dps=80):
    """lambda*, p~ and the optimal value of (7) by damped Newton in mpmath at dps digits (u normalised exactly)."""
    with mp.workdps(dps):
        n, d = T.shape
        Tm = mp.matrix(T.tolist())
        on = [i for i in range(n) if u[i] > 0]
        su = mp.fsum(mp.mpf(float(u[i])) for i in on)
        lu = {i: mp.log(mp.mpf(float(u[i])) / su) for i in on}
        a = mp.mpf(float(alpha))
        mu = [mp.fsum(mp.mpf(float(u[i])) / su * Tm[i, j] for i in on) for j in range(d)]
        b = [mu[j] + mp.mpf(float(z[j])) for j in range(d)]

        def parts(lam):
            x = {i: mp.fsum(Tm[i, j] * lam[j] for j in range(d)) for i in on}  # <t_i, lambda>, not via ell - log u
            ell = {i: lu[i] + x[i] for i in on}
            m = max(ell.values())
            w = {i: mp.exp(ell[i] - m) for i in on}
            s = mp.fsum(w.values())
            p = {i: w[i] / s for i in on}
            # small logits: log M = log1p(sum ubar_i expm1(x_i)) keeps relative accuracy when log M << 1
            logM = (mp.log1p(mp.fsum(mp.exp(lu[i]) * mp.expm1(x[i]) for i in on)) if max(abs(v) for v in x.values()) < 1
                    else m + mp.log(s))
            D = mp.fsum(lam[j] * b[j] for j in range(d)) - mp.fsum(x * x for x in lam) / (2 * a) - logM
            h = [mp.fsum(p[i] * Tm[i, j] for i in on) for j in range(d)]
            g = [b[j] - lam[j] / a - h[j] for j in range(d)]
            return D, g, p, h

        lam = [a * mp.mpf(float(z[j])) for j in range(d)]
        D, g, p, h = parts(lam)
        for _ in range(400):
            H = mp.matrix(d, d)
            for j in range(d):
                for k in range(d):
                    H[j, k] = (1 / a if j == k else 0) + mp.fsum(p[i] * (Tm[i, j] - h[j]) * (Tm[i, k] - h[k]) for i in on)
            step = mp.lu_solve(H, mp.matrix(g))
            t = mp.mpf(1)
            while True:
                cand = [lam[j] + t * step[j] for j in range(d)]
                Dc, gc, pc, hc = parts(cand)
                # near lambda* the change of D is below its resolution: only there a step that halves ||grad||
                # is taken instead (elsewhere that non-monotone test can cycle)
                flat = abs(Dc - D) <= mp.mpf(10) ** (20 - dps) * (1 + abs(D))
                if Dc >= D or (flat and mp.norm(mp.matrix(gc)) < mp.norm(mp.matrix(g)) / 2) or t < mp.mpf(2) ** -60:
                    break
                t /= 2
            lam, D, g, p, h = cand, Dc, gc, pc, hc
            # ||lambda - lambda*|| <= alpha ||grad D||: stop when that is 1e-50 relative (float64 answers: 1e-16)
            if a * mp.norm(mp.matrix(g)) <= mp.mpf(10) ** -50 * mp.norm(mp.matrix(lam)):
                break
        else:
            raise AssertionError("the mpmath Newton solve did not converge")
        pv = [p.get(i, mp.mpf(0)) for i in range(n)]
        return lam, pv, D


def err(lam_hat, lam):
    with mp.workdps(80):
        return mp.sqrt(mp.fsum((mp.mpf(float(x)) - y) ** 2 for x, y in zip(lam_hat, lam)))


def l1(p_hat, p):
    with mp.workdps(80):
        return mp.fsum(abs(mp.mpf(float(x)) - y) for x, y in zip(p_hat, p))


def small(rng, n=4, d=2, s=1.0):
    T = s * rng.normal(size=(n, d))
    u = rng.dirichlet(np.ones(n))
    z = s * rng.normal(size=d)
    return T, u, z


def test_doctests():
    assert doctest.testmod(C).failed == 0
    assert doctest.testmod(strength).failed == 0


def test_certified_radii_contain_the_80_digit_truth():
    rng = np.random.default_rng(1)
    for alpha in (1e-3, 0.5, 5.0):
        T, u, z = small(rng)
        u[0] = 0.0
        u /= u.sum()
        out = solve_instance(T, u, z, alpha)
        c = C.certify(T, u, z, alpha, np.array(out["lambda_star"]), p_hat=np.array(out["p_tilde"]))
        lam, p, val = truth(T, u, z, alpha)
        assert c.certified
        assert err(out["lambda_star"], lam) <= c.radius_lambda
        assert l1(out["p_tilde"], p) <= c.radius_p_l1
        lo, hi = c.value_interval
        assert lo <= val <= hi


def test_perturbed_lambda_is_not_certified_and_its_radius_still_covers_the_error():
    rng = np.random.default_rng(2)
    T, u, z = small(rng, 5, 3)
    lam0 = solve_dual(T, u, z, 1.0).lam
    lam, _, _ = truth(T, u, z, 1.0)
    for rel in (1e-8, 1e-6, 1e-2):
        bad = lam0 + rel * np.linalg.norm(lam0) * rng.normal(size=3) / np.sqrt(3)
        c = C.certify(T, u, z, 1.0, bad)
        assert not c.certified
        assert c.radius_lambda >= float(err(bad, lam))  # never smaller than the true error


def test_wrong_closed_form_is_excluded_by_the_enclosure():
    """A closed form off by a relative 1e-7 has a distance enclosure away from 0; the right value's contains 0."""
    rng = np.random.default_rng(3)
    T, u, z = small(rng, 6, 2)
    lam0 = solve_dual(T, u, z, 0.3).lam
    c = C.certify(T, u, z, 0.3, lam0)
    lo, hi = c.lambda_distance(lam0)
    assert C.down(lo) == 0.0 and C.up(hi) <= 2 * c.radius_lambda
    lo, _ = c.lambda_distance(lam0 * (1 + 1e-7))
    assert C.down(lo) > 0
    # h_hat: (16) is not h_hat at alpha = 0.3 (error O(alpha^2)), and the enclosure says so
    lo, _ = c.h_distance(dual.attention_16(T, u, z, 0.3))
    assert C.down(lo) > 1e-6


def test_float64_loses_the_answer_certificate_refuses():
    """Templates 1e8 + O(1) and ||z|| = 1e-9: b = mu + z loses z's digits in float64. The naive
    float64 evaluation of the stationarity map lambda = alpha (b - E_p[t]) at the exact lambda* is
    wrong by far more than 1e-9 relative: the certificate (inputs exact) is not certified, and its
    radius covers the true error. The certified solver (centred form) does not lose it, and the
    certificate certifies its answer."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(4, 2))
    T, u, z, a = instance((X + 1e8).tolist(), (1e-9 * rng.normal(size=2)).tolist(), 1e-6)
    lam, _, _ = truth(T, u, z, a)
    lam64 = np.array([float(x) for x in lam])
    p = u * np.exp(T @ lam64 - (T @ lam64).max())
    naive = a * ((T.T @ u + z) - T.T @ (p / p.sum()))  # b = mu + z in float64: z's digits are gone
    e = float(err(naive.tolist(), lam))
    assert e > 1e-9 * np.linalg.norm(naive)  # float64 really lost it
    c = C.certify(T, u, z, a, naive)
    assert not c.certified
    assert c.radius_lambda >= e
    out = solve_instance(T, u, z, a)
    assert out["converged"] and C.certify(T, u, z, a, np.array(out["lambda_star"])).certified


@st.composite
def scaled(draw):
    seed = draw(st.integers(0, 2**31 - 1))
    s = 10.0 ** draw(st.floats(-12, 12))
    alpha = 10.0 ** draw(st.floats(-300, 10))
    n, d = draw(st.integers(1, 4)), draw(st.integers(1, 3))
    rng = np.random.default_rng(seed)
    T, u, z = small(rng, n, d, s)
    if n > 2 and draw(st.booleans()):
        u[0] = 0.0
        u /= u.sum()
    return T, u, z, alpha


@settings(max_examples=60, deadline=None, derandomize=True)
@given(scaled())
def test_hypothesis_certificate_never_false(case):
    T, u, z, alpha = case
    try:
        T, u, z, alpha = instance(T.tolist(), z.tolist(), alpha, u.tolist())
    except InputError:
        assume(False)
    out = solve_instance(T, u, z, alpha)
    c = C.certify(T, u, z, alpha, np.array(out["lambda_star"]), p_hat=np.array(out["p_tilde"]))
    lam, p, val = truth(T, u, z, alpha)
    assert c.radius_lambda >= float(err(out["lambda_star"], lam))
    assert c.radius_p_l1 >= float(l1(out["p_tilde"], p))
    lo, hi = c.value_interval
    assert lo <= val <= hi
    if c.certified:
        assert float(err(out["lambda_star"], lam)) <= 1e-9 * np.linalg.norm(out["lambda_star"]) + c.radius_lambda


def test_lipschitz_bound_of_9_holds_and_is_attained_for_two_templates():
    rng = np.random.default_rng(4)
    for n, d in ((2, 1), (5, 3), (12, 4)):
        T, u, z = small(rng, n, d)
        L = C.certify(T, u, z, 1.0, np.zeros(d)).lipschitz_p
        for _ in range(200):
            l1_, l2_ = rng.normal(size=d) * 3, rng.normal(size=d) * 3
            dp = np.abs(dual.tilted(T, u, l1_) - dual.tilted(T, u, l2_)).sum()
            assert dp <= L * np.linalg.norm(l1_ - l2_) * (1 + 1e-12)
    # n = 2 at p = (1/2, 1/2), direction t_1 - t_2: the ratio tends to diam/2 = L
    T = np.array([[1.0, 0.0], [0.0, 2.0]])
    u = np.array([0.5, 0.5])
    L = C.certify(T, u, np.zeros(2), 1.0, np.zeros(2)).lipschitz_p
    v = (T[0] - T[1]) * 1e-6
    ratio = np.abs(dual.tilted(T, u, v / 2) - dual.tilted(T, u, -v / 2)).sum() / np.linalg.norm(v)
    assert ratio == pytest.approx(L, rel=1e-6)


def test_batch_agrees_with_single_and_bench_reports():
    rng = np.random.default_rng(5)
    T = rng.normal(size=(16, 8)) / np.sqrt(8)
    u = np.full(16, 1 / 16)
    Z = rng.normal(size=(6, 8)) / np.sqrt(8)
    lam = np.array([solve_dual(T, u, z, 0.7).lam for z in Z])
    batch = C.certify_batch(T, u, Z, 0.7, lam)
    for k in (0, 5):
        one = C.certify(T, u, Z[k], 0.7, lam[k])
        assert one.radius_lambda == batch[k].radius_lambda and one.value_interval == batch[k].value_interval
    r = C.bench_certification(T, u, Z, 0.7, lam)
    assert r["instances"] == 6 and r["certified"] == 6 and r["us_per_instance"] > 0


def test_cli_solve_certify(tmp_path, capsys):
    from attnverify.cli import main

    f = tmp_path / "case.json"
    f.write_text(json.dumps({"templates": [[0, 0], [1, 0], [0, 1]], "z": [0.5, -0.25], "alpha": 1.0}))
    assert main(["solve", "--certify", str(f)]) == 0
    out, err_ = capsys.readouterr()
    cert = json.loads(out)["certificate"]
    assert cert["certified"] and cert["radius_lambda"] < 1e-12 and "certified radius of lambda*" in err_
    assert main(["solve", "--certify", "--certify-tol", "1e-30", str(f)]) == 1
    capsys.readouterr()
    assert main(["solve", "--certify", "--certify-tol", "-1", str(f)]) == 2
    assert "--certify-tol" in capsys.readouterr().err


def test_evidence_by_part_refuted_part_rests_on_its_failing_checks():
    e = {"id": "X", "checks": [{"key": "a", "evidence": "proof", "passed": True},
                               {"key": "b", "evidence": "certificate", "passed": False},
                               {"key": "c", "evidence": "float", "passed": False}],
         "parts": [{"id": "X/1", "checks": ["a"]}, {"id": "X/2", "checks": ["b", "c"]}, {"id": "X/3", "checks": []}]}
    assert strength.evidence_by_part(e) == {"X/1": "proof", "X/2": "certificate", "X": "certificate"}
