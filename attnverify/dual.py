r"""The Fenchel dual (7) of the estimation problem (3), for a discrete preference u.

Problem (3) (primal), over distributions p on the templates :math:`t_1, \dots, t_n` (rows of T):

.. math::
    \min_{p \in \Delta_n} \frac{\alpha}{2}\,\|b - T^\top p\|^2 + \mathrm{KL}(p\,\|\,u),
    \qquad b = \mu + z,\ \mu = T^\top u.

Its dual (7), with the cumulant generating function :math:`\log M` of (8):

.. math::
    \max_{\lambda \in \mathbb{R}^d}\ D(\lambda) = \langle \lambda, b\rangle
        - \frac{1}{2\alpha}\|\lambda\|^2 - \log \sum_i u_i e^{\langle t_i, \lambda\rangle}.

D is strictly concave (its Hessian is :math:`-(I/\alpha + \operatorname{Cov}_{p(\lambda)}(T))`), so
Newton's method with a backtracking line search converges globally and quadratically near
:math:`\lambda^*`. The minimiser of (3) is the tilted distribution (9),
:math:`\tilde p_i \propto u_i e^{\langle t_i, \lambda^*\rangle}`, and
:math:`\hat h = T^\top \tilde p = b - \lambda^*/\alpha` (10).

Reference: 004_830fd89135933577.txt, Theorem 1, eqs (3), (7)-(10); Rioux et al. (2020).

Shapes: T (n, d), u (n,) on the simplex (zeros allowed: those templates are outside the
support), z (d,), :math:`\alpha > 0` scalar. Everything is float64 and evaluated in the log domain.
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
# tilted, attention_16 and h_hat share the unchecked _tilted.


def log_mgf(T: np.ndarray, u: np.ndarray, lam: np.ndarray) -> float:
    r"""The normaliser :math:`\log M(\lambda)` of (8) for a discrete u:

    .. math::
        \log M(\lambda) = \log \sum_i u_i e^{\langle t_i, \lambda\rangle}

    (terms with :math:`u_i = 0` contribute nothing). :func:`dual_objective` evaluates it through
    this function, so a wrong normaliser here is a wrong dual (7)."""
    T, u, lam = dual_args(T, u, lam=lam)
    return float(logsumexp(_log_u(u) + T @ lam))


def _tilted(T, u, lam) -> np.ndarray:
    logits = _log_u(u) + T @ lam
    return np.exp(logits - logsumexp(logits))


def tilted(T: np.ndarray, u: np.ndarray, lam: np.ndarray) -> np.ndarray:
    r""":math:`\tilde p(\lambda)` of (9): :math:`p_i = u_i e^{\langle t_i, \lambda\rangle} / M(\lambda)`;
    exactly 0 where :math:`u_i = 0`."""
    T, u, lam = dual_args(T, u, lam=lam)
    return _tilted(T, u, lam)


def dual_objective(T, u, z, alpha, lam) -> float:
    r"""The dual objective :math:`D(\lambda)` of (7):

    .. math::
        D(\lambda) = \langle \lambda, b\rangle - \frac{1}{2\alpha}\|\lambda\|^2 - \log M(\lambda),
        \qquad b = T^\top u + z,

    with :math:`\log M` from :func:`log_mgf`."""
    T, u, z, alpha, lam = dual_args(T, u, z, alpha, lam=lam)
    b = T.T @ u + z
    return float(lam @ b - lam @ lam / (2 * alpha) - log_mgf(T, u, lam))


@dataclass
class DualSolution:
    r"""Result of a solve of (7) for one instance (SciPy's OptimizeResult is the model).

    ``lam``: :math:`\lambda` (d,); ``converged``: the certified verdict of :mod:`attnverify.certificate`
    (bound :math:`\le \mathrm{rtol}\,\|\lambda\|` and relative duality gap :math:`\le \mathrm{rtol}`);
    ``iterations``; ``grad_norm``: :math:`\|\nabla D(\lambda)\|` as computed; ``tol``: the rtol asked for;
    ``bound``: certified bound on :math:`\|\lambda - \lambda^*\|`; ``rel_bound`` = bound / :math:`\|\lambda\|`;
    ``rel_gap``: bound on the relative duality gap; ``message``: one line."""

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
    r"""Maximise the dual (7) by damped Newton in :math:`\mathbb R^d`, for one instance.

    .. math::
        \lambda^* = \arg\max_{\lambda \in \mathbb R^d}\ \langle \lambda, z\rangle
            - \frac{1}{2\alpha}\|\lambda\|^2 - \log \sum_i u_i e^{\langle t_i - \mu, \lambda\rangle},
        \qquad \mu = T^\top u,

    which is (7) itself written with the centred templates: :math:`\log M(\lambda) = \langle\mu, \lambda\rangle
    + \log \sum_i u_i e^{\langle t_i - \mu, \lambda\rangle}`, and the two terms
    :math:`\langle\lambda, \mu\rangle` cancel. The gradient and the Hessian are

    .. math::
        \nabla D = z - \frac{\lambda}{\alpha} - \sum_i (p_i - u_i)(t_i - \mu), \qquad
        -\nabla^2 D = \frac{I}{\alpha} + \operatorname{Cov}_{p(\lambda)}(T),

    in centred form (:math:`\mu` cancels exactly, so it is never added and subtracted). Armijo
    backtracking on D keeps every step an ascent step (globally convergent for this strictly concave
    objective); near the optimum, where the change of D is below its float64 resolution, a step that
    halves the gradient is accepted instead. Iteration stops when the certificate's global bound
    holds or the gradient reaches its float64 evaluation error; the verdict is the certified one of
    :mod:`attnverify.certificate` (evaluated by :func:`attnverify.batched.certify_points`).

    Parameters
    ----------
    T : array_like, shape (n, d)
        Templates :math:`t_i` (rows).
    u : array_like, shape (n,)
        Prior on the simplex (zeros allowed: those templates are outside the support).
    z : array_like, shape (d,)
        Evidence.
    alpha : float
        :math:`\alpha > 0`.
    rtol : float
        Certified relative accuracy of :math:`\lambda` (and of the duality gap).
    maxiter : int
        Newton steps at most.

    Returns
    -------
    DualSolution
        :math:`\lambda`, the certified verdict ``converged`` with its ``bound``, ``rel_bound`` and
        ``rel_gap``, ``iterations``, ``grad_norm``, ``message`` and the tilted distribution ``p``.

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
    lam = _quadratic_start(ts, z, alpha)
    f = _centred_dual_value(ts, z, alpha, lam)
    eye = np.eye(T.shape[1])
    it = 0
    gprev = np.inf
    for it in range(maxiter + 1):
        g, (delta, *_), P, _ = batched.full_gradient(ts, z, lam, alpha)
        g, delta, p = g[0], float(delta[0]), P[0]
        gn = float(np.linalg.norm(g))
        if _newton_can_stop(lam, gn, delta, gprev, alpha, rtol) or it == maxiter:
            break
        gprev = gn
        step = _newton_direction(ts, p, g, alpha, eye)
        t, cand, fc = _backtracking_line_search(ts, z, alpha, lam, f=f, g=g, gn=gn, step=step)
        if t < 1e-12:
            break  # no progress possible at float64 resolution
        lam, f = cand, fc
    return _certified_dual_solution(T, u, z, alpha, lam, iterations=it, rtol=rtol, ts=ts)


# The steps of solve_dual_newton, each on the validated instance and its prepared templates ts
# (attnverify.batched.TemplateSet: Tc = the centred templates on supp u, lu = log u there).

def _centred_dual_value(ts, z, alpha, lam) -> float:
    r"""The centred dual objective :math:`\langle\lambda, z\rangle - \|\lambda\|^2/(2\alpha)
    - \log\sum_i u_i e^{\langle t_i - \mu, \lambda\rangle}` that :func:`solve_dual_newton` maximises."""
    return float(lam @ z - certificate.half_sq_over_alpha(lam[None], alpha)[0]
                 - certificate.log_partition((ts.Tc @ lam)[None], np.exp(ts.lu))[0])


def _quadratic_start(ts, z, alpha) -> np.ndarray:
    r"""The starting point (13), :math:`\alpha (I + \alpha\Sigma)^{-1} z`: :math:`\alpha z` to first
    order, and bounded as :math:`\alpha` grows."""
    d = ts.Tc.shape[1]
    return alpha * np.linalg.solve(np.eye(d) + alpha * ((ts.Tc * np.exp(ts.lu)[:, None]).T @ ts.Tc), z)


def _newton_can_stop(lam, gn, delta, gprev, alpha, rtol) -> bool:
    r"""The stopping test: the global bound :math:`\alpha(\|g\| + 2\delta) \le \mathrm{rtol}\,\|\lambda\|`
    certifies, or the gradient norm is at its float64 evaluation error :math:`2\delta` and stopped
    decreasing (above a quarter of the previous one, or exactly 0)."""
    return alpha * (gn + 2 * delta) <= rtol * certificate.norm_rows(lam) or (gn <= 2 * delta and (gn > 0.25 * gprev or gn == 0))


def _newton_direction(ts, p, g, alpha, eye) -> np.ndarray:
    r"""The Newton step :math:`H^{-1} g` with :math:`H = -\nabla^2 D = I/\alpha + \operatorname{Cov}_p(T)`,
    positive definite."""
    Tc = ts.Tc
    c = Tc.T @ p
    Tcc = Tc - c
    H = eye / alpha + (Tcc * p[:, None]).T @ Tcc  # = -Hess D, positive definite
    return np.linalg.solve(H, g)


def _backtracking_line_search(ts, z, alpha, lam, *, f, g, gn, step):
    r"""Halve t from 1 until :math:`\lambda + t\,\mathrm{step}` passes Armijo's test
    :math:`D \ge f + 10^{-4} t \langle g, \mathrm{step}\rangle` or, where that increase is below the
    float64 resolution of D, halves the gradient norm; give up below :math:`t = 10^{-12}`.

    Returns ``(t, candidate, D(candidate))``."""
    from . import batched

    t = 1.0
    slope = g @ step
    while True:
        cand = lam + t * step
        fc = _centred_dual_value(ts, z, alpha, cand)
        if fc >= f + 1e-4 * t * slope:
            break
        # Near lambda* the change in D falls below its float64 resolution and Armijo's test
        # is noise; only there is a step that halves the gradient norm accepted instead
        # (elsewhere that non-monotone test can cycle: seen at n = 2, alpha = 100).
        resolution = 64 * EPS * (abs(f) + abs(lam @ z) + float(np.abs(ts.Tc @ lam).max()) + 1.0)
        if 1e-4 * t * slope <= resolution and \
                np.linalg.norm(batched.full_gradient(ts, z, cand, alpha)[0]) <= 0.5 * gn:
            break
        t *= 0.5
        if t < 1e-12:
            break
    return t, cand, fc


def _certified_dual_solution(T, u, z, alpha, lam, *, iterations, rtol, ts) -> DualSolution:
    r"""The verdict on the final :math:`\lambda`: the certificate of :func:`attnverify.batched.certify_points`
    and the tilted distribution there (exactly 0 off supp u), as a :class:`DualSolution`."""
    from . import batched

    cert = batched.certify_points(T, u, z, lam, alpha, rtol, ts)
    conv = bool(cert["converged"][0])
    p = np.zeros(len(u))
    p[u > 0] = batched.full_gradient(ts, z, lam, alpha)[2][0]
    return DualSolution(lam, conv, iterations, float(cert["grad_norm"][0]), rtol, float(cert["bound"][0]),
                        float(cert["rel_bound"][0]), float(cert["rel_gap"][0]),
                        certificate.message(cert["converged"], cert["rel_bound"], rtol), p)


def gradient_floor(max_abs_logit, max_template_norm):
    r"""The accuracy to which :math:`\nabla D` can be evaluated in float64.

    The logits :math:`\langle t_i, \lambda\rangle` carry a rounding error
    :math:`\sim\epsilon\,|\langle t_i, \lambda\rangle|`, which moves p by that relative amount and
    :math:`T^\top p` by :math:`\sim\epsilon \max|\text{logit}| \max_i\|t_i\|`; the floor is
    :math:`64\,\epsilon\,(1 + \max|\text{logit}|)\max_i\|t_i\|`. A gradient target below this is
    unreachable, not unconverged. Works elementwise on arrays of instances."""
    return 64 * np.finfo(float).eps * (1 + max_abs_logit) * max_template_norm


# --- the closed forms under test ------------------------------------------------------

def covariance(T, u) -> np.ndarray:
    r""":math:`\Sigma = \operatorname{Cov}_u(t)`, shape (d, d)."""
    T, u = dual_args(T, u)
    mu = T.T @ u
    Tc = T - mu
    return (Tc * u[:, None]).T @ Tc


def lambda_quadratic_13(T, u, z, alpha) -> np.ndarray:
    r"""(13): :math:`\lambda^* \approx \alpha (I + \alpha\Sigma)^{-1} z`."""
    T, u, z, alpha = dual_args(T, u, z, alpha)
    d = T.shape[1]
    return alpha * np.linalg.solve(np.eye(d) + alpha * covariance(T, u), z)


def lambda_linear_14(z, alpha) -> np.ndarray:
    r"""(14): :math:`\lambda^* \approx \alpha z`."""
    z, alpha = linear_args(z, alpha)
    return alpha * z


def attention_16(T, u, z, alpha) -> np.ndarray:
    r"""(16): :math:`h \approx \sum_i t_i u_i e^{\alpha\langle t_i,z\rangle} / \sum_j u_j e^{\alpha\langle t_j,z\rangle}`
    (:math:`= T^\top \tilde p(\alpha z)`)."""
    T, u, z, alpha = dual_args(T, u, z, alpha)
    return T.T @ _tilted(T, u, alpha * z)


def h_hat(T, u, lam) -> np.ndarray:
    r"""(10): :math:`\hat h = E_{\tilde p(\lambda)}[t]`."""
    T, u, lam = dual_args(T, u, lam=lam)
    return T.T @ _tilted(T, u, lam)
