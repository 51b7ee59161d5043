r"""Many instances of the dual (7) that share one template set: the real-model shape.

For one attention head, the n templates T (n, d) are shared by all queries; each query k has
its own evidence z_k and (with padding) the same preference u.  We solve, for every k,

.. math::
    \lambda^*_k = \arg\max_\lambda\ \langle\lambda, \mu + z_k\rangle - \frac{1}{2\alpha}\|\lambda\|^2
                  - \log\sum_i u_i e^{\langle t_i,\lambda\rangle}.

**Structure.** Stationarity reads  lambda = alpha (z + mu - E_{p(lambda)}[t]).  Since
E_p[t] - mu = sum_i (p_i - u_i)(t_i - mu) and p, u live on supp(u), the correction
lambda* - alpha z lies in S = span{t_i - mu : u_i > 0}, of dimension r <= min(|supp u| - 1, d).
With Q (d, r) an orthonormal basis of S, write lambda = alpha z + Q y.  The logits are
<t_i, lambda> = alpha <t_i, z> + <a_i, y> + const, a_i = Q^T (t_i - mu), and the dual becomes

.. math::
    \max_{y\in\mathbb R^r}\ -\frac{1}{2\alpha}\|y\|^2 - \log\sum_i u_i e^{\alpha\langle t_i,z\rangle + \langle a_i,y\rangle}
    \ (+\text{terms free of } y),

whose gradient is -y/alpha - A^T p and whose negative Hessian is H = I/alpha + Cov_p(a) (r x r).
So the component of lambda* outside S is exactly alpha z (no iteration), the Newton systems are
r x r instead of d x d, and the only per-query input is the logit vector alpha T z_k.

**Method.** Truncated (inexact) Newton: each Newton system H s = g is solved by preconditioned
conjugate gradients (Jacobi preconditioner diag H = 1/alpha + E_p[a^2] - abar^2), to the
Eisenstat-Walker forcing tolerance ||H s - g|| <= min(0.1, (||g||/||b||)^0.75) ||g||, which keeps
Newton's local superlinear convergence (order 1.75).  A Hessian-vector product is
H v = v/alpha + A^T (p * (A v - <p, A v>)): because A is shared by every query of the head, a CG
step for a whole chunk of queries is two dense matrix products (chunk x r)(r x n) and
(chunk x n)(n x r), which BLAS runs near peak, instead of one r x r factorisation per query.
Eigenvalues of Cov_p(a) cluster at 0 when the attention p is peaked, so CG needs few iterations.
Each CG direction started from 0 is an ascent direction, so a truncated solve is still safe;
Armijo backtracking on the dual value (with a gradient-halving test where the value is at float64
resolution) globalises the method.  Only the CG directions may be computed in float32 (when
cond(H) <= 1e3, so that float32 still meets the forcing tolerance); gradients, dual values, the
line search, the stopping test and the verdict are float64, so the precision of the answer does
not depend on it, only the number of Newton steps could.

Shapes: T (n, d), Z (m, d), u (n,) on the simplex (zeros = padding), alpha > 0.
Returns lambda* (m, d) and per-instance converged (m,), iterations (m,), grad_norm (m,), where
grad_norm is ||grad D(lambda*_k)|| of the full problem (7), recomputed at the end: with
E = (T_s - 1 mu^T)(I - Q Q^T) what the numerical rank cut of S leaves out,
grad D(alpha z + Q y) = -Q (y/alpha + A^T p) - E^T p, two orthogonal parts, so the verdict is
the exact reduced norm combined with the bound ||E^T p|| <= ||E||_2 ||p||_2, at no d-dimensional
cost.  (The tests and `make bench` recompute the gradient in R^d independently.)

Reference: 004_830fd89135933577.txt, Theorem 1, (7)-(10).
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from threadpoolctl import ThreadpoolController

from . import validate
from .dual import DualSolution, _gradient_floor, _log_u, gradient_floor

EPS = np.finfo(float).eps
EPS32 = float(np.finfo(np.float32).eps)
# Eisenstat-Walker forcing: CG stops at ||H s - g|| <= min(FORCING_MAX, (||g||/||b||)^FORCING_EXP) ||g||
# (measured on the `make bench` workloads: 0.1 and 0.75 take the fewest Newton steps for the same CG work)
FORCING_MAX, FORCING_EXP = 0.1, 0.75
# CG runs in float32 when cond(H) <= KAPPA_SINGLE (see _truncated_newton)
KAPPA_SINGLE = 1e3


@dataclass
class BatchSolution:
    lam: np.ndarray  # (m, d)
    converged: np.ndarray  # (m,) bool
    iterations: np.ndarray  # (m,) int
    grad_norm: np.ndarray  # (m,) ||grad D|| of (7)
    rank: int  # r = dim S
    cg_iterations: np.ndarray | None = None  # (m,) conjugate-gradient steps, summed over Newton steps
    basis: np.ndarray | None = None  # (d, r) the orthonormal basis Q of S the solver used


def centred_basis(T: np.ndarray, u: np.ndarray, rtol: float = 1e-12):
    """Orthonormal basis Q (d, r) of S = span{t_i - mu : u_i > 0} (SVD, rank by rtol)."""
    on = u > 0
    Tc = T[on] - T.T @ u
    if Tc.shape[0] == 0:
        return np.zeros((T.shape[1], 0))
    _, s, Vt = np.linalg.svd(Tc, full_matrices=False)
    r = int(np.sum(s > rtol * max(s[0], 1e-300))) if s.size else 0
    return Vt[:r].T


def solve_dual_batched(T, u, Z, alpha, rtol: float = 1e-10, maxiter: int = 100, chunk: int | None = None,
                       workers: int | None = None) -> BatchSolution:
    """lambda* of (7) for every row of Z, sharing T and u (see the module docstring).

    rtol: stop when ||grad D(lambda)|| <= rtol * max(||b_k||, 1), or at the float64 floor of the
    gradient (dual.gradient_floor) if that is larger.  chunk: queries solved together; the default
    keeps the working set to a few MB whatever n and d are, so memory is bounded for any m.
    workers: threads solving chunks in parallel (default: one per core when n >= 64 and every thread
    gets at least 1024 queries, else 1; pass 1 inside a process pool or a Dask worker that already
    uses every core).
    """
    T, u, Z, alpha = validate.batch(T, u, Z, alpha)
    m, d = Z.shape
    n = T.shape[0]
    if chunk is None:  # measured best near 1024 rows for n <= 256 (fewer, shorter tails); fewer when n is large
        chunk = int(np.clip(2**18 // max(n, 1), 16, 1024))
    Q = centred_basis(T, u)
    r = Q.shape[1]
    on = u > 0
    Ts, lu = T[on], _log_u(u[on])
    mu = T.T @ u
    A = np.ascontiguousarray((Ts - mu) @ Q)  # (n_on, r): templates in S coordinates
    # What the rank cut of S leaves out of the centred templates (zero in exact arithmetic); it
    # enters the gradient of (7) only through E^T p, bounded by ||E||_2 ||p||_2 <= ||E||_F ||p||_2.
    e_norm = np.linalg.norm((Ts - mu) - A @ Q.T) if r else np.linalg.norm(Ts - mu)
    mu_q = Q.T @ mu
    tnorm = np.linalg.norm(Ts, axis=1).max()
    TsT = np.ascontiguousarray(Ts.T)
    lam = np.empty((m, d))
    conv = np.zeros(m, bool)
    iters = np.zeros(m, int)
    cgits = np.zeros(m, int)
    gnorm = np.zeros(m)
    def solve_chunk(s):
        zc = Z[s:s + chunk]
        bscale = np.maximum(np.linalg.norm(mu + zc, axis=1), 1.0)
        base = zc @ TsT  # (k, n_on): the per-query logits at y = 0, log u + alpha T z
        base *= alpha
        base += lu
        y, it, cg = _truncated_newton(A, base, lu, alpha, rtol, maxiter, bscale)
        out = lam[s:s + chunk]
        np.matmul(y, Q.T, out=out)
        out += alpha * zc
        # Verdict on the full gradient of (7):  grad D(lambda) = -Q (y/alpha + A^T p) - E^T p, and the two
        # parts are orthogonal, so ||grad D||^2 = ||y/alpha + A^T p||^2 + ||E^T p||^2 (p recomputed here).
        x = base + y @ A.T
        p = _softmax_rows(x)
        g_s = y / alpha + p @ A
        gnorm[s:s + chunk] = np.sqrt(_dot_rows(g_s, g_s) + (e_norm * np.linalg.norm(p, axis=1)) ** 2)
        # max |<t_i, lambda>| <= max |alpha <t_i, z> + <a_i, y>| + |<mu, Q y>|: the float64 floor's logit size
        big = np.abs(x - lu).max(axis=1) + np.abs(y @ mu_q)
        tol = np.maximum(rtol * bscale, gradient_floor(big, tnorm))
        iters[s:s + chunk], cgits[s:s + chunk] = it, cg
        conv[s:s + chunk] = gnorm[s:s + chunk] <= tol

    if workers is None:  # measured (`make bench`): threads pay off once every worker has a full chunk of
        # 1024 rows and n >= 64 (1.3-1.6x on 2 cores); with less work each, the GIL makes them slower
        workers = max(1, min(os.cpu_count() or 1, m // 1024)) if len(lu) >= 64 else 1
    if workers > 1:  # at least one chunk per worker
        chunk = max(16, min(chunk, -(-m // workers)))
    starts = range(0, m, chunk)
    workers = min(workers, len(starts))
    # BLAS is kept to one thread: these products are small, and BLAS threads spin-wait whenever a
    # core is busy (measured: 8x slower under load).  Parallelism comes from the chunks instead:
    # they are independent and write disjoint slices, and numpy releases the GIL inside BLAS and
    # ufunc loops, so one thread per core uses every core.
    with one_blas_thread():
        if workers <= 1:
            for s in starts:
                solve_chunk(s)
        else:
            with ThreadPoolExecutor(workers) as pool:
                list(pool.map(solve_chunk, starts))
    return BatchSolution(lam, conv, iters, gnorm, r, cgits, Q)


@lru_cache(maxsize=1)
def _blas_controller():
    return ThreadpoolController()  # finding the BLAS libraries costs ~0.4 ms; do it once


def one_blas_thread():
    """Context manager: BLAS limited to one thread inside it (restored on exit)."""
    return _blas_controller().limit(limits=1, user_api="blas")


def solve_dual(T, u, z, alpha, rtol: float = 1e-10, maxiter: int = 100) -> DualSolution:
    """lambda* of (7) for one instance, by the batched solver (what `attnverify solve` and the checks call)."""
    sol = solve_dual_batched(T, u, np.asarray(z, float)[None], alpha, rtol=rtol, maxiter=maxiter)
    lam = sol.lam[0]
    b = np.asarray(T, float).T @ np.asarray(u, float) + np.asarray(z, float)
    tol = max(rtol * max(float(np.linalg.norm(b)), 1.0), _gradient_floor(np.asarray(T, float), np.asarray(u, float), lam))
    return DualSolution(lam, bool(sol.converged[0]), int(sol.iterations[0]), float(sol.grad_norm[0]), tol)


def hessian_condition_bound(A, alpha) -> float:
    """cond(H) <= 1 + alpha max_i |a_i|^2 for H = I/alpha + Cov_p(a), whatever p: lambda_max(Cov_p(a))
    <= lambda_max(E_p[a a^T]) <= max_i |a_i|^2.  A (n, r): the templates in S coordinates."""
    return 1.0 + alpha * float(np.max(np.sum(A * A, axis=1))) if A.size else 1.0


def _softmax_rows(x):
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _dot_rows(a, b):
    return np.einsum("ij,ij->i", a, b)


def _shifted_exp(L):
    """Row max m, E = exp(L - m) and its row sums: softmax = E / sums, logsumexp = m + log sums."""
    mx = L.max(axis=1)
    E = np.exp(L - mx[:, None])
    return mx, E, E.sum(axis=1)


def _truncated_newton(A, base, lu, alpha, rtol, maxiter, scale):
    """Maximise f_k(y) = -|y|^2/(2 alpha) - lse(base_k + A y) for every row k; returns y (k, r), iterations.
    base_k = log u + alpha T z_k; lu = log u (n,) only enters the float64 floor of the stopping test."""
    k, r = base.shape[0], A.shape[1]
    y = np.zeros((k, r))
    it = np.zeros(k, int)
    cg = np.zeros(k, int)
    if r == 0:
        return y, it, cg
    AT = np.ascontiguousarray(A.T)
    A2 = A * A
    anorm = np.linalg.norm(A, axis=1).max()
    # Only the Newton direction comes from CG; gradient, line search and verdict stay float64, so CG
    # may run in float32 (half the memory traffic, twice the matmul rate) where that can still meet
    # the forcing tolerance: cond(H) <= 1 + alpha lambda_max(Cov_p(a)) <= 1 + alpha max_i |a_i|^2 =
    # kappa, and float32 CG resolves relative residuals down to ~kappa eps32 (floor cgfloor).
    kappa = hessian_condition_bound(A, alpha)
    single = kappa <= KAPPA_SINGLE
    dt = np.float32 if single else np.float64
    cgfloor = 100 * kappa * EPS32 if single else 0.0
    Af, ATf, A2f = A.astype(dt), AT.astype(dt), A2.astype(dt)
    inv_alpha = 1.0 / alpha
    maxcg = 2 * r + 10  # CG is exact after r steps in exact arithmetic; the margin absorbs rounding
    act = np.arange(k)  # rows still iterating; ya, ba, logits, P, fa, bres, sc are their current state
    ya, ba, logits, sc = y, base, base, scale
    bres = 64 * EPS * (np.abs(base).max(axis=1) + 1.0)  # the part of f's float64 resolution fixed per row
    mx, E, ssum = _shifted_exp(base)
    P = E / ssum[:, None]
    fa = -(mx + np.log(ssum))
    for _ in range(maxiter + 1):
        abar = P @ A
        g = ya * -inv_alpha
        g -= abar
        gn = np.sqrt(_dot_rows(g, g))
        # the same float64 floor as the final verdict: logits without the constant log u
        tol = np.maximum(rtol * sc, gradient_floor(np.abs(logits - lu).max(axis=1), anorm))
        keep = gn > tol
        if not keep.all() or _ == maxiter:
            y[act] = ya
            if not keep.any() or _ == maxiter:
                break
            act, ya, ba, P, abar, g, gn, tol, fa, bres, sc = (act[keep], ya[keep], ba[keep], P[keep], abar[keep],
                                                              g[keep], gn[keep], tol[keep], fa[keep], bres[keep], sc[keep])
        Pf = P.astype(dt)
        abf = abar.astype(dt)
        jacobi = Pf @ A2f
        jacobi -= abf * abf
        jacobi += inv_alpha
        np.reciprocal(jacobi, out=jacobi)
        forcing = np.minimum(FORCING_MAX, np.maximum((gn / sc) ** FORCING_EXP, cgfloor))
        forcing = np.maximum(forcing, 0.1 * tol / gn)
        gs = (g / gn[:, None]).astype(dt)
        step, count = _pcg(Pf, Af, ATf, dt(alpha), gs, jacobi, forcing.astype(dt), maxcg)
        step = step.astype(float)
        step *= gn[:, None]
        cg[act] += count
        ya, logits, P, fa = _armijo(ya, step, g, gn, fa, ba, bres, A, AT, alpha)
        it[act] += 1
    return y, it, cg


def _armijo(ya, step, g, gn, fa, ba, bres, A, AT, alpha):
    """Backtrack each row until f rises by 1e-4 t <g, s>; at float64 resolution of f, accept a
    step that halves the gradient instead.  Returns the new y, logits, p and f of each row."""
    t = np.ones(len(ya))
    slope = _dot_rows(g, step)
    cand = ya + step
    L = cand @ AT
    L += ba
    mx, E, ssum = _shifted_exp(L)  # E / ssum is the next Newton step's p: kept, not recomputed
    lse = mx + np.log(ssum)
    f = -_dot_rows(cand, cand) / (2 * alpha) - lse
    resolution = bres + 64 * EPS * np.abs(fa)  # float64 resolution of f
    bad = np.flatnonzero(f < fa + 1e-4 * slope)
    for _ in range(60):
        if bad.size == 0:
            break
        # Only where the Armijo increase is below the resolution of f may the test be replaced by
        # "the gradient halves"; elsewhere that non-monotone test can cycle (seen: n = 2, alpha = 100).
        flat = bad[1e-4 * t[bad] * slope[bad] <= resolution[bad]]
        if flat.size:
            P = np.exp(L[flat] - lse[flat, None])
            halved = np.zeros(len(ya), bool)
            halved[flat] = np.linalg.norm(-cand[flat] / alpha - P @ A, axis=1) <= 0.5 * gn[flat]
            bad = bad[~halved[bad]]
        t[bad] /= 2
        cand[bad] = ya[bad] + t[bad, None] * step[bad]
        L[bad] = ba[bad] + cand[bad] @ AT
        mb, E[bad], ssum[bad] = _shifted_exp(L[bad])
        lse[bad] = mb + np.log(ssum[bad])
        f[bad] = -_dot_rows(cand[bad], cand[bad]) / (2 * alpha) - lse[bad]
        bad = bad[f[bad] < fa[bad] + 1e-4 * t[bad] * slope[bad]]
    E /= ssum[:, None]
    return cand, L, E, f


def _pcg(P, A, AT, alpha, g, jacobi, rtol, maxcg):
    """Jacobi-preconditioned CG on H s = g for every row (|g_k| = 1); rows drop out once solved."""
    m = len(g)
    out = np.zeros_like(g)
    count = np.zeros(m, int)
    idx = np.arange(m)
    s = np.zeros_like(g)
    res = g.copy()
    zr = jacobi * res
    dvec = zr.copy()
    rz = _dot_rows(res, zr)
    tol2 = rtol * rtol
    cnt = np.zeros(m, int)
    done = np.zeros(m, bool)
    inv_alpha = 1.0 / alpha
    for _ in range(maxcg):
        cnt += ~done  # solved rows stay in the batch until compaction, frozen (zero direction)
        Ad = dvec @ AT
        c = _dot_rows(P, Ad)
        Ad -= c[:, None]
        Ad *= P
        Hd = Ad @ A
        Hd += inv_alpha * dvec
        dHd = _dot_rows(dvec, Hd)
        step = rz / np.where(dHd > 0, dHd, 1)  # frozen rows have dvec = 0, hence step 0
        s += step[:, None] * dvec
        res -= step[:, None] * Hd
        rr = _dot_rows(res, res)
        done = rr <= tol2
        ndone = np.count_nonzero(done)
        if ndone == len(done):
            out[idx] = s
            count[idx] = cnt
            return out, count
        if 4 * ndone >= len(done):  # compact once enough rows are solved
            out[idx[done]] = s[done]
            count[idx[done]] = cnt[done]
            keep = ~done
            idx, s, res, dvec, rz, P, jacobi, tol2, cnt = (idx[keep], s[keep], res[keep], dvec[keep], rz[keep],
                                                       P[keep], jacobi[keep], tol2[keep], cnt[keep])
            done = done[keep]
            ndone = 0
        zr = jacobi * res
        rz_new = _dot_rows(res, zr)
        beta = rz_new / rz
        dvec *= beta[:, None]
        dvec += zr
        if ndone:
            dvec *= ~done[:, None]
            rz = np.where(done, 1, rz_new)
        else:
            rz = rz_new
    out[idx] = s  # truncated: CG iterates from 0 on an SPD system are still ascent directions
    count[idx] = cnt
    return out, count
