r"""Entropic optimal transport and the OT-based attention of Section 9 / Appendix D.

All distributions live on a finite template set :math:`\mathcal A = \{t_1, \dots, t_N\}`
(the rows of ``T``); the preference ``u`` is a distribution on :math:`\mathcal A` that may
vanish outside the input templates. The cost matrix has ``M[i, j] = M(t_i, t_j)``, its
**first index belonging to p** (rows of the plan) and its second to u (columns).

Entropic OT, eq. (20) (Cuturi, 2013):

.. math::
    \mathcal W_\gamma(p, u; M) = \min_{X \ge 0,\ X\mathbf 1 = p,\ X^\top \mathbf 1 = u}
        \langle M, X\rangle - \gamma H(X), \qquad H(X) = -\sum_{ij} X_{ij}\log X_{ij}

(no "+1" term: POT's ``ot.sinkhorn`` minimises the same objective,
:math:`\langle M, X\rangle + \mathrm{reg}\sum X\log X`; ``ot.sinkhorn2`` returns only
:math:`\langle M, X^*\rangle`).

Its Fenchel conjugate in p (Cuturi & Peyre, 2016, Thm 2.4; (33)-(34) with the inner
index corrected, see ``derivations/ot.py``):

.. math::
    \mathcal W_\gamma^*(g) = \gamma\Big(H(u) + \sum_j u_j
        \log\sum_i e^{(g_i - M_{ij})/\gamma}\Big), \qquad
    [\nabla \mathcal W_\gamma^*(g)]_i = \sum_j u_j
        \frac{e^{(g_i - M_{ij})/\gamma}}{\sum_k e^{(g_k - M_{kj})/\gamma}}.

The OT-based estimation problem (21) and its dual (36):

.. math::
    \min_{p \in \Delta_N} \frac{\alpha}{2}\|\tilde\mu + z - T^\top p\|^2 + \mathcal W_\gamma(p, u; M)
    \;=\; \max_{\lambda \in \mathbb R^d} \langle \tilde\mu + z, \lambda\rangle
        - \frac{1}{2\alpha}\|\lambda\|^2 - \mathcal W_\gamma^*(T\lambda),

with :math:`p^* = \nabla \mathcal W_\gamma^*(T\lambda^*)` (35) and
:math:`\tilde\mu = T^\top\tilde u`, :math:`\tilde u = \nabla \mathcal W_\gamma^*(0)` (37)-(38).
For small :math:`\alpha/\gamma`, :math:`\lambda^* \approx \alpha z` gives the OT-based attention (22).

Everything is float64 and evaluated in the log domain (no :math:`e^{-M/\gamma}` is ever
formed), so small :math:`\gamma` does not underflow. A cost entry of ``+inf`` forbids transport.

References: 004_830fd89135933577.txt, Sec 9 and Appendix D, eqs (20)-(22), (31)-(44);
M. Cuturi, Sinkhorn distances, NeurIPS 2013; M. Cuturi and G. Peyre, A smoothed dual
approach for variational Wasserstein problems, SIAM J. Imaging Sci. 9(1), 2016.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from attnverify.validate import InputError, array, cost_matrix, ot_scale, positive_scale, simplex, templates


def _distribution(name, x, N) -> np.ndarray:
    """A distribution over N points (zeros allowed), renormalised to sum to 1 exactly."""
    a = simplex(name, x, N, of="expected")
    return a / a.sum()


# -- log-domain helpers ---------------------------------------------------------------------
def lse(x: np.ndarray, axis) -> np.ndarray:
    r""":math:`\log\sum\exp` along axis; :math:`-\infty` where every entry is :math:`-\infty` (no NaN)."""
    m = np.max(x, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)
    with np.errstate(divide="ignore"):
        return np.squeeze(np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True)) + m, axis=axis)


def xlogx(x: np.ndarray) -> float:
    s = x > 0
    return float(np.sum(x[s] * np.log(x[s])))


# -- (20): entropic OT by log-domain Sinkhorn ---------------------------------------------------
@dataclass
class SinkhornResult:
    plan: np.ndarray  # X*, (N_p, N_u); rows sum to p exactly, columns to u up to marginal_err
    f: np.ndarray  # row potential (cost units), -inf where p = 0
    g: np.ndarray  # column potential (cost units), -inf where u = 0
    value: float  # W_gamma = <M, X> - gamma H(X) at the returned plan
    linear: float  # <M, X> (what ot.sinkhorn2 returns)
    entropy: float  # H(X) = -sum X log X
    marginal_err: float  # ||X^T 1 - u||_1: the accuracy figure
    iterations: int
    converged: bool
    message: str = ""


def sinkhorn_log(p, u, M, gamma, *, tol: float = 1e-13, max_iter: int = 200_000, init=None) -> SinkhornResult:
    r"""Entropic OT (20) by Sinkhorn's algorithm in the log domain.

    .. math::
        \mathcal W_\gamma(p, u; M) = \min_{X \in U(p, u)} \langle M, X\rangle + \gamma \sum_{ij} X_{ij}\log X_{ij},
        \qquad X^*_{ij} = e^{(f_i + g_j - M_{ij})/\gamma},

    with the potentials updated alternately, :math:`g_j = \gamma\log u_j - \gamma\,\mathrm{LSE}_i((f_i - M_{ij})/\gamma)`,
    :math:`f_i = \gamma\log p_i - \gamma\,\mathrm{LSE}_j((g_j - M_{ij})/\gamma)`, until
    :math:`\|X^\top\mathbf 1 - u\|_1 \le \max(` ``tol`` :math:`, 16\,\epsilon\,(1 + \max|M|/\gamma))` (rows are exact
    after each f-update; the second term is the float64 floor: a rounding of the potentials by
    :math:`\epsilon\max|M|` changes X relatively by that amount over :math:`\gamma`). At the fixed point
    :math:`\mathcal W_\gamma = \langle f, p\rangle + \langle g, u\rangle`, and f is the gradient of
    :math:`\mathcal W_\gamma(\cdot, u; M)` up to an additive constant.

    Parameters
    ----------
    p : array_like, shape (N_p,)
        Row marginal on the simplex (zeros allowed: those rows of X are 0).
    u : array_like, shape (N_u,)
        Column marginal on the simplex (zeros allowed).
    M : array_like, shape (N_p, N_u)
        Cost, entries in :math:`\mathbb R` or :math:`+\infty` (transport forbidden).
    gamma : float
        Entropic regularisation, :math:`\gamma > 0`.
    tol : float
        Target for the column-marginal error (raised to the float64 floor above).
    max_iter : int
        Iteration limit; reaching it returns ``converged=False``.
    init : array_like, shape (N_p,), optional
        Starting row potential f (a warm start, e.g. the f of a nearby p).

    Returns
    -------
    SinkhornResult
        Plan, potentials, :math:`\mathcal W_\gamma` and its parts, ``marginal_err`` (the accuracy figure), ``iterations``,
        ``converged`` and ``message``. Nothing is raised when Sinkhorn stops short.

    Examples
    --------
    >>> r = sinkhorn_log([0.5, 0.5], [0.5, 0.5], [[0.0, 1.0], [1.0, 0.0]], 1.0)  # the plan is proportional to e^{-M}
    >>> r.converged, r.plan.round(4)
    (True, array([[0.3655, 0.1345],
           [0.1345, 0.3655]]))

    References
    ----------
    Cuturi (2013); Peyre & Cuturi, Computational Optimal Transport (2019), Sec 4.4.
    """
    gamma = positive_scale(gamma, "gamma")
    M = array("M", M, 2, allow_posinf=True)
    prob = _SinkhornProblem.on_supports(_distribution("p", p, M.shape[0]), _distribution("u", u, M.shape[1]),
                                        M, gamma)
    tol = max(tol, prob.float64_floor())
    f = np.zeros(prob.Mr.shape[0]) if init is None else np.nan_to_num(np.asarray(init, float)[prob.rows], neginf=0.0)
    f, g, it, converged = _sinkhorn_potentials(prob, f, tol, max_iter)
    return _sinkhorn_result(prob, f, g, it, converged, tol)


@dataclass(frozen=True)
class _SinkhornProblem:
    r"""Entropic OT (20) restricted to the supports of its marginals: the rows with :math:`p_i > 0` and the
    columns with :math:`u_j > 0` (the plan is 0 elsewhere)."""

    M: np.ndarray  # the full cost (N_p, N_u)
    rows: np.ndarray  # p > 0
    cols: np.ndarray  # u > 0
    Mr: np.ndarray  # M on rows x cols
    lp: np.ndarray  # log p on the rows
    lu: np.ndarray  # log u on the columns
    uc: np.ndarray  # u on the columns
    gamma: float

    @classmethod
    def on_supports(cls, p, u, M, gamma):
        rows, cols = p > 0, u > 0
        return cls(M, rows, cols, M[np.ix_(rows, cols)], np.log(p[rows]), np.log(u[cols]), u[cols], gamma)

    def float64_floor(self) -> float:
        r"""The marginal error float64 can resolve, :math:`16\,\epsilon\,(1 + \max|M|/\gamma)` over the finite costs."""
        fin = self.Mr[np.isfinite(self.Mr)]
        return 16 * np.finfo(float).eps * (1 + (np.abs(fin).max() if fin.size else 0.0) / self.gamma)

    def log_plan(self, f, g) -> np.ndarray:
        r"""The log plan :math:`(f_i + g_j - M_{ij})/\gamma` on the supports."""
        return (f[:, None] + g[None, :] - self.Mr) / self.gamma


def _sinkhorn_potentials(prob: _SinkhornProblem, f, tol, max_iter):
    r"""Alternate the g- and f-updates of :func:`sinkhorn_log` from f until the column-marginal error
    :math:`\|X^\top\mathbf 1 - u\|_1` (measured at the first iteration and every tenth) is at most
    tol, or max_iter iterations. Returns (f, g, iterations, converged)."""
    gamma, Mr = prob.gamma, prob.Mr
    converged = False
    for it in range(1, max_iter + 1):
        g = gamma * (prob.lu - lse((f[:, None] - Mr) / gamma, axis=0))
        f = gamma * (prob.lp - lse((g[None, :] - Mr) / gamma, axis=1))
        if it % 10 == 0 or it == 1:
            err = float(np.abs(np.exp(prob.log_plan(f, g)).sum(axis=0) - prob.uc).sum())
            if err <= tol:
                converged = True
                break
    return f, g, it, converged


def _sinkhorn_result(prob: _SinkhornProblem, f, g, it, converged, tol) -> SinkhornResult:
    r"""The plan at the potentials (f, g), embedded in the full (N_p, N_u) shape, with
    :math:`\langle M, X\rangle`, H(X), :math:`\mathcal W_\gamma = \langle M, X\rangle - \gamma H(X)`, the
    marginal error and the potentials (:math:`-\infty` off the supports)."""
    M, rows, cols = prob.M, prob.rows, prob.cols
    Xr = np.exp(prob.log_plan(f, g))
    err = float(np.abs(Xr.sum(axis=0) - prob.uc).sum())
    X = np.zeros(M.shape)
    X[np.ix_(rows, cols)] = Xr
    fin = Xr > 0  # +inf costs carry no mass
    linear = float(np.sum(prob.Mr[fin] * Xr[fin]))
    H = -xlogx(Xr)
    F = np.full(M.shape[0], -np.inf)
    G = np.full(M.shape[1], -np.inf)
    F[rows], G[cols] = f, g
    msg = (f"Sinkhorn {'reached' if converged else 'did not reach'} marginal error {tol:.1e} "
           f"(got {err:.2e} after {it} iterations)")
    return SinkhornResult(X, F, G, linear - prob.gamma * H, linear, H, err, it, converged, msg)


# -- (33), (34), (37): conjugate, its gradient, the true preference ------------------------------------
def _column_logits(g, M, gamma, u):
    r""":math:`(g_i - M_{ij})/\gamma` restricted to the columns j with :math:`u_j > 0`, shape (..., N, n_u),
    and u on those columns."""
    cols = u > 0
    return (g[..., :, None] - M[:, cols]) / gamma, u[cols]


def ot_conjugate(g, u, M, gamma) -> float:
    r"""Fenchel conjugate of :math:`p \mapsto \mathcal W_\gamma(p, u; M)` (33, corrected):

    .. math::
        \mathcal W_\gamma^*(g) = \sup_{p \in \Delta_N} \langle g, p\rangle - \mathcal W_\gamma(p, u; M)
        = \gamma\Big(H(u) + \sum_j u_j \log\sum_i e^{(g_i - M_{ij})/\gamma}\Big).

    Shapes: g (N,), u (N,) on the simplex, M (N, N). Reference: Cuturi & Peyre (2016), Thm 2.4.
    """
    A, uc = _column_logits(np.asarray(g, float), np.asarray(M, float), gamma, np.asarray(u, float))
    return float(gamma * (-np.sum(uc * np.log(uc)) + uc @ lse(A, axis=0)))


def ot_conjugate_grad(g, u, M, gamma) -> np.ndarray:
    r"""Gradient (34) of the conjugate, a distribution on the templates:

    .. math::
        [\nabla\mathcal W_\gamma^*(g)]_i = \sum_j u_j \frac{e^{(g_i - M_{ij})/\gamma}}{\sum_k e^{(g_k - M_{kj})/\gamma}}.

    g may be batched, shape (..., N); returns the same shape. It is the maximiser in the definition of
    the conjugate (Danskin), and the first marginal of the optimal plan
    :math:`X_{ij} = u_j\,\mathrm{softmax}_i((g_i - M_{ij})/\gamma)`.
    """
    A, uc = _column_logits(np.asarray(g, float), np.asarray(M, float), gamma, np.asarray(u, float))
    logP = A - lse(A, axis=-2)[..., None, :]  # column-wise log softmax
    return np.exp(lse(logP + np.log(uc), axis=-1))


def true_preference(u, M, gamma) -> np.ndarray:
    r"""The minimiser :math:`\tilde u` of :math:`\mathcal W_\gamma(\cdot, u; M)` (Prop 1, (37) with the column
    normalisation that is right for any M; for symmetric M it is (37) as printed):

    .. math::
        \tilde u_i = [\nabla\mathcal W_\gamma^*(0)]_i = \sum_j u_j \frac{e^{-M_{ij}/\gamma}}{\sum_k e^{-M_{kj}/\gamma}}.
    """
    u = np.asarray(u, float)
    return ot_conjugate_grad(np.zeros(len(u)), u, M, gamma)


# -- (21) / (36): the exact minimiser via the dual --------------------------------------------------
def ot_dual_objective(lam, T, u, z, M, alpha, gamma) -> float:
    r"""The dual objective of (21) (the function maximised in (36), constant :math:`\gamma H(u)` included):

    .. math::
        D(\lambda) = \langle\tilde\mu + z, \lambda\rangle - \frac{1}{2\alpha}\|\lambda\|^2 - \mathcal W_\gamma^*(T\lambda).
    """
    mu_t = T.T @ true_preference(u, M, gamma)
    return float(lam @ (mu_t + z) - lam @ lam / (2 * alpha) - ot_conjugate(T @ lam, u, M, gamma))


def ot_primal_objective(p, T, u, z, M, alpha, gamma, W: float) -> float:
    r"""The objective of (21) at p, given :math:`W = \mathcal W_\gamma(p, u; M)` (computed by any OT solver)."""
    r = T.T @ true_preference(u, M, gamma) + z - T.T @ p
    return float(alpha / 2 * r @ r + W)


@dataclass
class OTDualSolution:
    lam: np.ndarray  # lambda*, (d,)
    p: np.ndarray  # p* = grad W*(T lambda*), (N,)
    value: float  # D(lambda*)
    grad_norm: float  # ||grad D(lambda*)||: the accuracy figure (||lambda - lambda*|| <= alpha grad_norm)
    converged: bool
    message: str = ""


def _dual_parts(lam, T, u, M, gamma):
    r""":math:`p(\lambda) = \nabla\mathcal W_\gamma^*(T\lambda)` and the Hessian of :math:`\mathcal W_\gamma^*(T\lambda)`
    in :math:`\lambda`, :math:`\frac1\gamma\sum_j u_j \operatorname{Cov}_{P_{\cdot j}}(T)`."""
    A, uc = _column_logits(T @ lam, M, gamma, u)
    P = np.exp(A - lse(A, axis=0)[None, :])  # (N, n_u), columns on the simplex
    p = P @ uc
    means = T.T @ P  # (d, n_u)
    second = np.einsum("ij,ia,ib->ab", P * uc, T, T)
    H = (second - (means * uc) @ means.T) / gamma
    return p, H


def solve_ot_dual(T, u, z, M, alpha, gamma, *, gtol: float = 1e-13) -> OTDualSolution:
    r"""Exact minimiser of (21) through its dual (36), solved by SciPy's trust-region Newton method.

    .. math::
        \lambda^* = \arg\max_\lambda \langle\tilde\mu + z, \lambda\rangle - \frac{1}{2\alpha}\|\lambda\|^2
            - \gamma\sum_j u_j\log\sum_i e^{(t_i^\top\lambda - M_{ij})/\gamma},
        \qquad p^* = \nabla\mathcal W_\gamma^*(T\lambda^*).

    The objective is smooth and strongly concave (Hessian :math:`\preceq -I/\alpha`), so the maximiser is
    unique and :math:`\|\lambda - \lambda^*\| \le \alpha\|\nabla D(\lambda)\|`.

    Parameters
    ----------
    T : array_like, shape (N, d)
        Templates of A (rows).
    u : array_like, shape (N,)
        Preference on the simplex.
    z : array_like, shape (d,)
        One query.
    M : array_like, shape (N, N)
        Cost (see :func:`ot_attention`).
    alpha, gamma : float
        :math:`\alpha > 0`, :math:`\gamma > 0`.
    gtol : float
        Gradient-norm target, relative to :math:`\max(\|\tilde\mu + z\|, 1)`.

    Returns
    -------
    OTDualSolution
        :math:`\lambda^*`, :math:`p^* = \nabla\mathcal W_\gamma^*(T\lambda^*)`, :math:`D(\lambda^*)`,
        ``grad_norm`` (the accuracy figure: :math:`\|\lambda - \lambda^*\| \le \alpha\|\nabla D\|`),
        ``converged`` and ``message``.

    Examples
    --------
    >>> T = [[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]
    >>> M = [[0.0, 1.0, 1.0], [1.0, 0.0, 1.0], [1.0, 1.0, 0.0]]
    >>> sol = solve_ot_dual(T, [0.5, 0.25, 0.25], [0.3, -0.2], M, 0.1, 1.0)
    >>> sol.converged, sol.p.round(4)
    (True, array([0.401 , 0.2956, 0.3034]))
    >>> _, p22 = ot_attention(T, [0.5, 0.25, 0.25], [0.3, -0.2], M, 0.1, 1.0, return_weights=True)
    >>> bool(abs(sol.p - p22).max() < 1e-3)  # (22) is lambda* replaced by alpha z: close at small alpha / gamma
    True
    """
    from scipy.optimize import minimize

    T, u, Z, M, alpha, gamma = _validate(T, u, z, M, alpha, gamma)
    if Z.ndim != 1:
        raise InputError("z: solve_ot_dual takes one query z of shape (d,)")
    prob = _OTDual(T, u, Z, M, alpha, gamma, T.T @ true_preference(u, M, gamma) + Z)
    scale = max(float(np.linalg.norm(prob.b)), 1.0)
    res = minimize(prob.negative_value, alpha * Z, jac=prob.negative_gradient, hess=prob.negative_hessian,
                   method="trust-exact", options={"gtol": gtol * scale, "maxiter": 500})
    lam, gvec = _newton_polish(prob, res.x, prob.negative_gradient(res.x))
    return _ot_dual_verdict(prob, lam, gvec, gtol * scale, scale)


@dataclass(frozen=True)
class _OTDual:
    r"""The dual (36) of one instance, with :math:`b = \tilde\mu + z`, as the function SciPy minimises
    (:math:`-D`), its gradient and its Hessian :math:`I/\alpha + \nabla^2 \mathcal W_\gamma^*(T\lambda)`."""

    T: np.ndarray
    u: np.ndarray
    Z: np.ndarray
    M: np.ndarray
    alpha: float
    gamma: float
    b: np.ndarray

    def negative_value(self, lam):
        return -ot_dual_objective(lam, self.T, self.u, self.Z, self.M, self.alpha, self.gamma)

    def negative_gradient(self, lam):
        p, _ = _dual_parts(lam, self.T, self.u, self.M, self.gamma)
        return -(self.b - lam / self.alpha - self.T.T @ p)

    def negative_hessian(self, lam):
        _, H = _dual_parts(lam, self.T, self.u, self.M, self.gamma)
        return np.eye(len(lam)) / self.alpha + H


def _newton_polish(prob: _OTDual, lam, gvec):
    r"""Up to 8 plain Newton steps on the gradient, each kept only if it lowers the gradient norm: near
    :math:`\lambda^*` the trust-region ratio test is lost in the round-off of D, while the gradient keeps
    :math:`\sim\epsilon` relative accuracy. Returns :math:`(\lambda, -\nabla D(\lambda))`."""
    for _ in range(8):
        step = np.linalg.solve(prob.negative_hessian(lam), -gvec)
        g_new = prob.negative_gradient(lam + step)
        if np.linalg.norm(g_new) >= np.linalg.norm(gvec):
            break
        lam, gvec = lam + step, g_new
    return lam, gvec


def _ot_dual_verdict(prob: _OTDual, lam, gvec, target, scale) -> OTDualSolution:
    r"""Converged when :math:`\|\nabla D\|` is at most the target, raised to its float64 floor
    :math:`64\,\epsilon\,(\max(\|b\|, 1) + \|\lambda\|/\alpha + \max|T|\sqrt d)`."""
    T, alpha = prob.T, prob.alpha
    gn = float(np.linalg.norm(gvec))
    p, _ = _dual_parts(lam, T, prob.u, prob.M, prob.gamma)
    floor = 64 * np.finfo(float).eps * (scale + np.linalg.norm(lam) / alpha + np.abs(T).max() * np.sqrt(T.shape[1]))
    target = max(target, floor)
    ok = bool(gn <= target)
    msg = f"trust-exact + Newton polish on (36): ||grad D|| = {gn:.1e} {'<=' if ok else '>'} {target:.1e}"
    return OTDualSolution(lam, p, ot_dual_objective(lam, T, prob.u, prob.Z, prob.M, alpha, prob.gamma), gn, ok, msg)


# -- (22): the OT-based attention -------------------------------------------------------------------
def _validate(T, u, z, M, alpha, gamma):
    """The arguments of (21)/(22), checked by :mod:`attnverify.validate`; u renormalised, z of shape (d,) or (m, d)."""
    T = templates(T, "T")
    N, d = T.shape
    u = _distribution("u", u, N)
    Z = array("z", z, (1, 2))
    if Z.shape[-1] != d:
        raise InputError(f"z: last dimension is {Z.shape[-1]}, templates have dimension {d}")
    M = cost_matrix(M, N, u)
    alpha, gamma = positive_scale(alpha), positive_scale(gamma, "gamma")
    ot_scale(T, Z, M, alpha, gamma)  # magnitudes: no overflow to inf or NaN (attnverify.validate)
    return T, u, Z, M, alpha, gamma


def ot_attention(T, u, z, M, alpha, gamma, *, return_weights: bool = False):
    r"""OT-based attention, eq. (22) substituted into (4), batched over queries.

    .. math::
        p^*(t) = \sum_{i} u_i \frac{\exp\big((\alpha\, t^\top z - M(t, t_i))/\gamma\big)}{Z_i},\qquad
        Z_i = \sum_{t' \in \mathcal A}\exp\big((\alpha\, t'^\top z - M(t', t_i))/\gamma\big),\qquad
        \hat h = \sum_{t \in \mathcal A} p^*(t)\, t.

    This is the minimiser of (21) with :math:`\lambda^*` replaced by :math:`\alpha z`, i.e.
    :math:`p^* = \nabla\mathcal W_\gamma^*(\alpha T z)`; its error against the exact minimiser is
    :math:`O((\alpha/\gamma)^2)` (claim FD-22). Unlike softmax attention it gives weight to every template
    of :math:`\mathcal A` reachable at finite cost, also where u vanishes.

    Parameters
    ----------
    T : array_like, shape (N, d)
        Templates of A (rows).
    u : array_like, shape (N,)
        Preference on the simplex; zeros allowed (templates of A that are not in the input).
    z : array_like, shape (d,) or (m, d)
        Queries (the evidence z of each query).
    M : array_like, shape (N, N)
        Cost, ``M[i, j] = M(t_i, t_j)`` (first index: the attended template t, second: the
        template t_i carrying u's mass); ``+inf`` forbids transport. NaN and -inf are rejected.
    alpha, gamma : float
        :math:`\alpha > 0`, :math:`\gamma > 0`.
    return_weights : bool
        Also return the weights :math:`p^*` (shape (m, N), or (N,) for one query).

    Returns
    -------
    h : ndarray, shape (m, d), or (d,) for z of shape (d,)
        The attention output; with ``return_weights``, ``(h, p)``.

    Evaluated in the log domain: :math:`\log p^*(t) = \mathrm{LSE}_i\big(\log u_i + A_{ti} - \mathrm{LSE}_{t'} A_{t'i}\big)`
    with :math:`A_{ti} = (\alpha t^\top z - M(t, t_i))/\gamma`, so small :math:`\gamma` does not underflow.
    Reference: 004_830fd89135933577.txt, eq. (22), Appendix D (35), (44).
    """
    T, u, Z, M, alpha, gamma = _validate(T, u, z, M, alpha, gamma)
    P = ot_conjugate_grad(alpha * np.atleast_2d(Z) @ T.T, u, M, gamma)  # (m, N)
    H = P @ T
    if Z.ndim == 1:
        P, H = P[0], H[0]
    return (H, P) if return_weights else H
