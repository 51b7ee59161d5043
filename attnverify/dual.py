r"""The Fenchel dual (7) of the estimation problem (3), for a discrete preference u.

Problem (3) (primal), over distributions p on the templates t_1..t_n (rows of T):

.. math::
    \min_{p \in \Delta_n} \frac{\alpha}{2}\,\|b - T^\top p\|^2 + \mathrm{KL}(p\,\|\,u),
    \qquad b = \mu + z,\ \mu = T^\top u.

Its dual (7), with the cumulant generating function log M of (8):

.. math::
    \max_{\lambda \in \mathbb{R}^d}\ D(\lambda) = \langle \lambda, b\rangle
        - \frac{1}{2\alpha}\|\lambda\|^2 - \log \sum_i u_i e^{\langle t_i, \lambda\rangle}.

D is strictly concave (its Hessian is -(I/alpha + Cov_{p(lambda)}(T))), so Newton's method
with a backtracking line search converges globally and quadratically near lambda*.
The minimiser of (3) is the tilted distribution (9), p~_i ∝ u_i exp<t_i, lambda*>, and
h_hat = T^T p~ = b - lambda*/alpha (10).

Reference: 004_830fd89135933577.txt, Theorem 1, eqs (3), (7)-(10); Rioux et al. (2020).

Shapes: T (n, d), u (n,) on the simplex (zeros allowed: those templates are outside the
support), z (d,), alpha > 0 scalar. Everything is float64 and evaluated in the log domain.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import logsumexp

from . import certificate
from .certificate import log_u
from .primal import primal_objective  # noqa: F401  (moved next to the primal; dual.primal_objective still works)
from .validate import dual_args, linear_args

EPS = np.finfo(float).eps


_log_u = log_u  # the former private name

# Every public function checks its arguments (attnverify.validate: a ValueError naming the argument);
# the solver's inner loops call the unchecked _log_mgf, _tilted, _dual_objective.


def _log_mgf(T, u, lam) -> float:
    return float(logsumexp(_log_u(u) + T @ lam))


def _tilted(T, u, lam) -> np.ndarray:
    logits = _log_u(u) + T @ lam
    return np.exp(logits - logsumexp(logits))


def _dual_objective(T, u, z, alpha, lam) -> float:
    b = T.T @ u + z
    return float(lam @ b - lam @ lam / (2 * alpha) - _log_mgf(T, u, lam))


def log_mgf(T: np.ndarray, u: np.ndarray, lam: np.ndarray) -> float:
    """log M(lambda) of (8) for discrete u: log sum_i u_i exp<t_i, lambda>."""
    T, u, lam = dual_args(T, u, lam=lam)
    return _log_mgf(T, u, lam)


def tilted(T: np.ndarray, u: np.ndarray, lam: np.ndarray) -> np.ndarray:
    """p~(lambda) of (9): p_i = u_i exp<t_i,lambda> / M(lambda); exactly 0 where u_i = 0."""
    T, u, lam = dual_args(T, u, lam=lam)
    return _tilted(T, u, lam)


def dual_objective(T, u, z, alpha, lam) -> float:
    """D(lambda) of (7)."""
    T, u, z, alpha, lam = dual_args(T, u, z, alpha, lam=lam)
    return _dual_objective(T, u, z, alpha, lam)


@dataclass
class DualSolution:
    """Result of a solve of (7) for one instance (SciPy's OptimizeResult is the model).

    lam: lambda (d,); converged: the certified verdict of attnverify.certificate (bound <= rtol ||lam||
    and relative duality gap <= rtol); iterations; grad_norm: ||grad D(lam)|| as computed; tol: the
    rtol asked for; bound: certified bound on ||lam - lam*||; rel_bound = bound / ||lam||; rel_gap: bound
    on the relative duality gap; message: one line."""

    lam: np.ndarray
    converged: bool
    iterations: int
    grad_norm: float
    tol: float
    bound: float = float("nan")
    rel_bound: float = float("nan")
    rel_gap: float = float("nan")
    message: str = ""
    p: np.ndarray | None = None  # (n,) the tilted distribution at lam, when the solver provides it

    @property
    def success(self) -> bool:
        return bool(self.converged)


def solve_dual_newton(T, u, z, alpha, rtol: float = 1e-10, maxiter: int = 200) -> DualSolution:
    r"""Maximise (7) by damped Newton in R^d, for one instance.

    grad D = z - lambda/alpha - sum_i p_i (t_i - mu) (centred: mu cancels exactly, so it is never
    added and subtracted) and -Hess D = I/alpha + Cov_{p(lambda)}(T).  Armijo backtracking on D keeps
    every step an ascent step (globally convergent for this strictly concave objective); near the
    optimum, where the change of D is below its float64 resolution, a step that halves the gradient
    is accepted instead.  Iteration stops when the certificate's global bound holds or the gradient
    reaches its float64 evaluation error; the verdict is the certified one of
    :mod:`attnverify.certificate` (evaluated by :func:`attnverify.batched.certify_points`).

    Parameters
    ----------
    T : array_like, shape (n, d)
    u : array_like, shape (n,)
        On the simplex (zeros allowed).
    z : array_like, shape (d,)
    alpha : float
    rtol : float
        Certified relative accuracy of lambda (and of the duality gap).
    maxiter : int

    Returns
    -------
    DualSolution

    Examples
    --------
    >>> sol = solve_dual_newton([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], [1/3, 1/3, 1/3], [0.3, -0.2], 1e10)
    >>> sol.converged, bool(sol.rel_bound <= 1e-12)
    (True, True)
    """
    from . import batched

    T, u, z, alpha = dual_args(T, u, z, alpha)
    u = u / u.sum()
    ts = batched.prepare(T, u)
    d = T.shape[1]
    Tc, lu = ts.Tc, ts.lu

    def value(lam):
        return float(lam @ z - certificate.half_sq_over_alpha(lam[None], alpha)[0]
                     - certificate.log_partition((Tc @ lam)[None], np.exp(lu))[0])

    # start at (13): alpha (I + alpha Sigma)^{-1} z, = alpha z to first order and bounded as alpha grows
    lam = alpha * np.linalg.solve(np.eye(d) + alpha * ((Tc * np.exp(lu)[:, None]).T @ Tc), z)
    f = value(lam)
    eye = np.eye(d)
    it = 0
    gprev = np.inf
    for it in range(maxiter + 1):
        g, (delta, *_), P, _ = batched.full_gradient(ts, z, lam, alpha)
        g, delta, p = g[0], float(delta[0]), P[0]
        gn = float(np.linalg.norm(g))
        # stop: the global bound certifies, or the gradient is at its evaluation error and stopped decreasing
        if alpha * (gn + 2 * delta) <= rtol * certificate.norm_rows(lam) or (gn <= 2 * delta and (gn > 0.25 * gprev or gn == 0)) \
                or it == maxiter:
            break
        gprev = gn
        c = Tc.T @ p
        Tcc = Tc - c
        H = eye / alpha + (Tcc * p[:, None]).T @ Tcc  # = -Hess D, positive definite
        step = np.linalg.solve(H, g)
        t = 1.0
        slope = g @ step
        while True:
            cand = lam + t * step
            fc = value(cand)
            if fc >= f + 1e-4 * t * slope:
                break
            # Near lambda* the change in D falls below its float64 resolution and Armijo's test
            # is noise; only there is a step that halves the gradient norm accepted instead
            # (elsewhere that non-monotone test can cycle: seen at n = 2, alpha = 100).
            resolution = 64 * EPS * (abs(f) + abs(lam @ z) + float(np.abs(Tc @ lam).max()) + 1.0)
            if 1e-4 * t * slope <= resolution and \
                    np.linalg.norm(batched.full_gradient(ts, z, cand, alpha)[0]) <= 0.5 * gn:
                break
            t *= 0.5
            if t < 1e-12:
                break
        if t < 1e-12:
            break  # no progress possible at float64 resolution
        lam, f = cand, fc
    cert = batched.certify_points(T, u, z, lam, alpha, rtol, ts)
    conv = bool(cert["converged"][0])
    p = np.zeros(len(u))
    p[u > 0] = batched.full_gradient(ts, z, lam, alpha)[2][0]
    return DualSolution(lam, conv, it, float(cert["grad_norm"][0]), rtol, float(cert["bound"][0]),
                        float(cert["rel_bound"][0]), float(cert["rel_gap"][0]),
                        certificate.message(cert["converged"], cert["rel_bound"], rtol), p)


def _gradient_floor(T, u, lam) -> float:
    """The accuracy to which grad D can be evaluated in float64 at lambda (one instance)."""
    on = u > 0
    return float(gradient_floor(np.abs(T[on] @ lam).max(), np.linalg.norm(T[on], axis=1).max()))


def gradient_floor(max_abs_logit, max_template_norm):
    """The logits <t_i, lambda> carry a rounding error ~eps |<t_i, lambda>|, which moves p by that
    relative amount and T^T p by ~eps max|logit| max||t_i||.  A gradient target below this is
    unreachable, not unconverged.  Works elementwise on arrays of instances."""
    return 64 * np.finfo(float).eps * (1 + max_abs_logit) * max_template_norm


# --- the closed forms under test ------------------------------------------------------

def covariance(T, u) -> np.ndarray:
    """Sigma = Cov_u(t) (d, d)."""
    T, u = dual_args(T, u)
    mu = T.T @ u
    Tc = T - mu
    return (Tc * u[:, None]).T @ Tc


def lambda_quadratic_13(T, u, z, alpha) -> np.ndarray:
    """(13): lambda* ≈ alpha (I + alpha Sigma)^{-1} z."""
    T, u, z, alpha = dual_args(T, u, z, alpha)
    d = T.shape[1]
    return alpha * np.linalg.solve(np.eye(d) + alpha * covariance(T, u), z)


def lambda_linear_14(z, alpha) -> np.ndarray:
    """(14): lambda* ≈ alpha z."""
    z, alpha = linear_args(z, alpha)
    return alpha * z


def attention_16(T, u, z, alpha) -> np.ndarray:
    """(16): h ≈ sum_i t_i u_i e^{alpha<t_i,z>} / sum_j u_j e^{alpha<t_j,z>}  (= T^T p~(alpha z))."""
    T, u, z, alpha = dual_args(T, u, z, alpha)
    return T.T @ _tilted(T, u, alpha * z)


def h_hat(T, u, lam) -> np.ndarray:
    """(10): h_hat = E_{p~(lambda)}[t]."""
    T, u, lam = dual_args(T, u, lam=lam)
    return T.T @ _tilted(T, u, lam)
