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

whose gradient is -y/alpha - A^T p and whose negative Hessian is I/alpha + Cov_p(a) (r x r).
So each Newton system is r x r instead of d x d, the component of lambda* outside S is exactly
alpha z (no iteration), and the only per-query input is the logit vector alpha T z_k.

Shapes: T (n, d), Z (m, d), u (n,) on the simplex (zeros = padding), alpha > 0.
Returns lambda* (m, d) and per-instance converged (m,), iterations (m,), grad_norm (m,), where
grad_norm is ||grad D(lambda*_k)|| of the full problem (7), recomputed at the end.

Reference: 004_830fd89135933577.txt, Theorem 1, (7)-(10).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import logsumexp

from .dual import _log_u, gradient_floor


@dataclass
class BatchSolution:
    lam: np.ndarray  # (m, d)
    converged: np.ndarray  # (m,) bool
    iterations: np.ndarray  # (m,) int
    grad_norm: np.ndarray  # (m,) ||grad D|| of (7)
    rank: int  # r = dim S


def centred_basis(T: np.ndarray, u: np.ndarray, rtol: float = 1e-12):
    """Orthonormal basis Q (d, r) of S = span{t_i - mu : u_i > 0} (SVD, rank by rtol)."""
    on = u > 0
    Tc = T[on] - T.T @ u
    if Tc.shape[0] == 0:
        return np.zeros((T.shape[1], 0))
    _, s, Vt = np.linalg.svd(Tc, full_matrices=False)
    r = int(np.sum(s > rtol * max(s[0], 1e-300))) if s.size else 0
    return Vt[:r].T


def solve_dual_batched(T, u, Z, alpha, rtol: float = 1e-12, maxiter: int = 100, chunk: int = 256) -> BatchSolution:
    """lambda* of (7) for every row of Z, sharing T and u; Newton in the subspace S, in chunks."""
    T = np.asarray(T, float)
    u = np.asarray(u, float)
    Z = np.atleast_2d(np.asarray(Z, float))
    m, d = Z.shape
    Q = centred_basis(T, u)
    r = Q.shape[1]
    on = u > 0
    Ts, lu = T[on], _log_u(u[on])
    A = (Ts - T.T @ u) @ Q  # (n_on, r): templates in S coordinates
    tnorm = np.linalg.norm(Ts, axis=1).max()
    lam = np.empty((m, d))
    conv = np.zeros(m, bool)
    iters = np.zeros(m, int)
    gnorm = np.zeros(m)
    for s in range(0, m, chunk):
        zc = Z[s:s + chunk]
        bc = T.T @ u + zc
        bscale = np.maximum(np.linalg.norm(bc, axis=1), 1.0)
        base = lu + alpha * zc @ Ts.T  # (k, n_on): the per-query logits at y = 0
        y, it = _newton_y(A, base, alpha, rtol, maxiter, scale=bscale)
        L = alpha * zc + y @ Q.T
        # the convergence verdict is made on the full gradient of (7), not on the reduced one
        logits = L @ Ts.T
        g = bc - L / alpha - _softmax_rows(lu + logits) @ Ts
        lam[s:s + chunk], iters[s:s + chunk] = L, it
        gnorm[s:s + chunk] = np.linalg.norm(g, axis=1)
        tol = np.maximum(rtol * bscale, gradient_floor(np.abs(logits).max(axis=1), tnorm))
        conv[s:s + chunk] = gnorm[s:s + chunk] <= tol
    return BatchSolution(lam, conv, iters, gnorm, r)


def _softmax_rows(x):
    return np.exp(x - logsumexp(x, axis=1, keepdims=True))


def _newton_y(A, base, alpha, rtol, maxiter, scale):
    """Damped Newton on the reduced concave objective f(y) = -|y|^2/(2 alpha) - lse(base + A y), batched."""
    k, r = base.shape[0], A.shape[1]
    y = np.zeros((k, r))
    it = np.zeros(k, int)
    if r == 0:
        return y, it

    def value(yy, rows):
        return -np.sum(yy**2, axis=1) / (2 * alpha) - logsumexp(base[rows] + yy @ A.T, axis=1)

    active = np.arange(k)
    f = value(y, active)
    anorm = np.linalg.norm(A, axis=1).max()
    eye = np.eye(r)
    for _ in range(maxiter):
        logits = base[active] + y[active] @ A.T
        P = _softmax_rows(logits)  # (a, n)
        abar = P @ A  # (a, r)
        g = -y[active] / alpha - abar
        gn = np.linalg.norm(g, axis=1)
        done = gn <= np.maximum(rtol * scale[active], gradient_floor(np.abs(logits).max(axis=1), anorm))
        if np.all(done):
            break
        keep = ~done
        active, P, abar, g, gn = active[keep], P[keep], abar[keep], g[keep], gn[keep]
        W = np.sqrt(P)[:, :, None] * A[None]  # (a, n, r); Cov_p(a) = W^T W - abar abar^T, by BLAS
        H = eye / alpha + np.matmul(W.transpose(0, 2, 1), W) - abar[:, :, None] * abar[:, None, :]
        step = np.linalg.solve(H, g[:, :, None])[:, :, 0]
        t = np.ones(len(active))
        slope = np.sum(g * step, axis=1)
        f_act = f[active]
        for _ls in range(40):  # Armijo backtracking, per instance
            cand = y[active] + t[:, None] * step
            fc = value(cand, active)
            ok = fc >= f_act + 1e-4 * t * slope
            if np.all(ok):
                break
            # at float64 resolution of f, accept a step that halves the gradient instead
            Pc = _softmax_rows(base[active] + cand @ A.T)
            ok |= np.linalg.norm(-cand / alpha - Pc @ A, axis=1) <= 0.5 * gn
            if np.all(ok):
                break
            t = np.where(ok, t, t / 2)
        y[active] = y[active] + t[:, None] * step
        f[active] = value(y[active], active)
        it[active] += 1
    return y, it
