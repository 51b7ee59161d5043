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

from .primal import primal_objective  # noqa: F401  (moved next to the primal; dual.primal_objective still works)
from .validate import dual_args, linear_args


def _log_u(u: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore"):
        return np.log(u)


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
    lam: np.ndarray  # lambda*, (d,)
    converged: bool
    iterations: int
    grad_norm: float  # ||grad D(lambda*)||
    tol: float  # the gradient-norm target that was asked for


def solve_dual_newton(T, u, z, alpha, rtol: float = 1e-12, maxiter: int = 200) -> DualSolution:
    r"""Maximise (7) by damped Newton; stop when ||grad D|| <= rtol * max(||b||, 1), or at the
    float64 floor of the gradient (see _gradient_floor) if that is larger.

    grad D = b - lambda/alpha - T^T p(lambda);  Hess D = -(I/alpha + T^T diag(p) T - (T^T p)(T^T p)^T).
    Armijo backtracking on D keeps every step an ascent step, which makes the method
    globally convergent for this strictly concave, smooth objective.
    """
    T, u, z, alpha = dual_args(T, u, z, alpha)
    n, d = T.shape
    b = T.T @ u + z
    tol = rtol * max(float(np.linalg.norm(b)), 1.0)
    lam = alpha * z.copy()  # the paper's approximation (14) is a good start for small alpha
    f = _dual_objective(T, u, z, alpha, lam)
    eye = np.eye(d)
    for it in range(maxiter + 1):
        p = _tilted(T, u, lam)
        h = T.T @ p
        g = b - lam / alpha - h
        gn = float(np.linalg.norm(g))
        if gn <= max(tol, _gradient_floor(T, u, lam)):
            return DualSolution(lam, True, it, gn, max(tol, _gradient_floor(T, u, lam)))
        if it == maxiter:
            break
        Tc = T - h
        H = eye / alpha + (Tc * p[:, None]).T @ Tc  # = -Hess D, positive definite
        step = np.linalg.solve(H, g)
        t = 1.0
        slope = g @ step
        while True:
            cand = lam + t * step
            fc = _dual_objective(T, u, z, alpha, cand)
            if fc >= f + 1e-4 * t * slope:
                break
            # Near lambda* the change in D falls below its float64 resolution and Armijo's test
            # is noise; only there is a step that halves the gradient norm accepted instead
            # (elsewhere that non-monotone test can cycle: seen at n = 2, alpha = 100).
            resolution = 64 * np.finfo(float).eps * (abs(f) + abs(lam @ b) + lam @ lam / alpha + 1.0)
            if 1e-4 * t * slope <= resolution and \
                    np.linalg.norm(b - cand / alpha - T.T @ _tilted(T, u, cand)) <= 0.5 * gn:
                break
            t *= 0.5
            if t < 1e-12:
                break
        if t < 1e-12:
            break  # no progress possible at float64 resolution
        lam, f = cand, fc
    p = _tilted(T, u, lam)
    gn = float(np.linalg.norm(b - lam / alpha - T.T @ p))
    tol = max(tol, _gradient_floor(T, u, lam))
    return DualSolution(lam, gn <= tol, it, gn, tol)


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
