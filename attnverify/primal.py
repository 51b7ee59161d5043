r"""Direct solves of the primal problems, independent of the dual and of any closed form.

Problem (3) and the maximum-entropy problem MEM (Sec 4), both over p in the simplex with
:math:`\operatorname{supp} p \subseteq \operatorname{supp} u`:

.. math::
    \min_p \frac{\alpha}{2}\|b - T^\top p\|^2 + \mathrm{KL}(p \,\|\, u), \qquad
    \min_p \mathrm{KL}(p \,\|\, u) \ \text{ s.t. } \ \|b - T^\top p\|^2 \le r^2.

Two independent routes for each:

* SciPy: (3) by trust-region Newton over the open simplex (every p in it, not only the
  exponential family (9)); MEM by SLSQP directly on p (bounds, equality, the ball constraint).
* CVXPY: the same problem as an exponential-cone program (``rel_entr``), solved by Clarabel.

Every solver returns a :class:`PrimalSolution` (``converged``, ``message``, ``accuracy``) and
never raises because it stopped short; the checks decide what that means for a claim.

Shapes: T (n, d), u (n,), z (d,), :math:`\alpha > 0`, :math:`r > 0`. Templates with :math:`u_i = 0` are
dropped before solving (:math:`\mathrm{KL}(p\,\|\,u)` is finite only if :math:`p_i = 0` there) and their
:math:`p_i` is returned as 0.
Reference: 004_830fd89135933577.txt eqs (3)-(4) and Section 4.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize
from scipy.special import logsumexp

from .validate import MIN_ALPHA, dual_args, positive, positive_scale, scores, simplex, vector

_FLOOR = 1e-300  # p log p at p = 0 is 0; the floor only keeps log finite for SLSQP's probes


@dataclass
class PrimalSolution:
    """What every primal solver returns (SciPy's ``OptimizeResult`` is the model).

    A solver never raises because it stopped short: it returns ``converged=False`` with its
    ``message``, and the caller (a check) decides whether that makes its claim inconclusive.
    ``accuracy`` is the solver's own measure of how far it is from the optimum, on the scale its
    ``message`` names: the gradient norm in the simplex coordinates (trust-exact), or the
    feasibility violation of the returned point before clipping (SLSQP, Clarabel).
    """

    p: np.ndarray  # (n,), zero outside supp(u); NaN where the solver returned nothing
    value: float
    method: str
    converged: bool = True
    message: str = ""
    accuracy: float = 0.0
    status: str = "optimal"  # the solver's own verdict; Clarabel may say "optimal_inaccurate"


def primal_objective(T, u, z, alpha, p) -> float:
    r"""The objective of (3) at p (:math:`0 \log 0 = 0`):

    .. math::
        F(p) = \frac{\alpha}{2}\|b - T^\top p\|^2 + \mathrm{KL}(p \,\|\, u), \qquad b = T^\top u + z.

    Parameters
    ----------
    T, u, z, alpha : array_like, array_like, array_like, float
        The instance, as in :func:`solve_primal_scipy`: templates (n, d), prior (n,), evidence (d,),
        :math:`\alpha > 0`.
    p : array_like, shape (n,)
        A point of the simplex.

    Returns
    -------
    float
        F(p); ``inf`` if p puts mass where u has none.
    """
    T, u, z, alpha, p = dual_args(T, u, z, alpha, p=p)
    b = T.T @ u + z
    r = b - T.T @ p
    s = p > 0
    if np.any(s & (u <= 0)):
        return float("inf")  # KL is infinite off supp(u)
    kl = float(np.sum(p[s] * (np.log(p[s]) - np.log(u[s]))))
    return float(alpha / 2 * r @ r + kl)


def _infeasibility(x) -> float:
    """|sum x - 1| + max(0, -min x): how far a solver's raw point is from the simplex."""
    return float(abs(np.sum(x) - 1.0) + max(0.0, -float(np.min(x))))


def _support(u):
    s = np.asarray(u) > 0
    return s, np.flatnonzero(s)


def _embed(n, idx, ps):
    p = np.zeros(n)
    p[idx] = ps
    return p


def _clipped_distribution(x) -> np.ndarray:
    """A solver's raw point, negative round-off clipped to 0, renormalised onto the simplex."""
    ps = np.clip(x, 0, None)
    return ps / ps.sum()


def _kl_and_grad(p, u):
    q = np.maximum(p, _FLOOR)
    return float(np.sum(q * (np.log(q) - np.log(u)))), np.log(q) - np.log(u) + 1.0


def solve_primal_scipy(T, u, z, alpha, gtol=1e-8) -> PrimalSolution:
    r"""Problem (3) by SciPy's trust-region Newton (``trust-exact``) on the open simplex:

    .. math::
        \min_{p \in \Delta_n,\ \operatorname{supp} p \subseteq \operatorname{supp} u}
            F(p) = \frac{\alpha}{2}\|b - T^\top p\|^2 + \mathrm{KL}(p \,\|\, u), \qquad b = T^\top u + z.

    :math:`p = \mathrm{softmax}(\log u + \theta)` with :math:`\theta_m = 0` maps
    :math:`\mathbb R^{m-1}` one-to-one onto the relative interior of the simplex on supp(u)
    (m = |supp u|); the minimiser lies there because :math:`\partial\,\mathrm{KL}/\partial p_i \to -\infty`
    as :math:`p_i \to 0`. The exact Hessian in :math:`\theta` is

    .. math::
        J(\alpha T T^\top + \operatorname{diag}(1/p))J + \operatorname{diag}(w) - p w^\top - w p^\top,
        \qquad J = \operatorname{diag} p - p p^\top,\quad w = p \odot (g - \langle p, g\rangle),

    with :math:`g = \nabla_p F`. This parameterisation is of the whole simplex, not of the
    exponential family (9) under test.

    Parameters
    ----------
    T : array_like, shape (n, d)
        Templates (rows).
    u : array_like, shape (n,)
        Prior on the simplex; zeros mask templates.
    z : array_like, shape (d,)
        Evidence; :math:`b = T^\top u + z`.
    alpha : float
        :math:`\alpha > 0`.
    gtol : float
        Converged when the gradient in :math:`\theta` has norm :math:`\le` ``gtol`` (``accuracy`` is that norm).

    Returns
    -------
    PrimalSolution
        p (zero off supp u), the objective F(p), ``converged``, ``message`` and ``accuracy``.

    Examples
    --------
    >>> sol = solve_primal_scipy([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], [0.5, 0.25, 0.25], [0.3, -0.2], 0.5)
    >>> sol.converged, sol.p.round(4)
    (True, array([0.5365, 0.2164, 0.2472]))
    """
    T, u, z, alpha = dual_args(T, u, z, alpha)
    b = T.T @ u + z
    s, idx = _support(u)
    if len(idx) == 1:
        p = _embed(len(u), idx, np.ones(1))
        return PrimalSolution(p, primal_objective(T, u, z, alpha, p), "scipy-trust-exact", True,
                              "one template in supp(u): p = u")
    prob = _SoftmaxPrimal(T[idx], np.log(u[idx]), b, alpha)
    res = minimize(prob.value_and_gradient, np.zeros(len(idx) - 1), jac=True, hess=prob.hessian,
                   method="trust-exact", options={"gtol": 1e-13, "maxiter": 1000})
    return _trust_exact_verdict(prob, res, len(u), idx, gtol)


@dataclass(frozen=True)
class _SoftmaxPrimal:
    r"""Problem (3) on supp u in the coordinates :math:`\theta` of :func:`solve_primal_scipy`:
    templates ``Ts`` and ``lu`` (:math:`\log u`) on the support, ``b`` and ``alpha``."""

    Ts: np.ndarray
    lu: np.ndarray
    b: np.ndarray
    alpha: float

    def parts(self, th):
        r"""(p, F(p), :math:`g = \nabla_p F`, :math:`w = p \odot (g - \langle p, g\rangle)`) at
        :math:`p = \mathrm{softmax}(\log u + (\theta, 0))`; w is the gradient in :math:`(\theta, 0)`."""
        x = self.lu + np.append(th, 0.0)
        lp = x - logsumexp(x)
        p = np.exp(lp)
        r = self.b - self.Ts.T @ p
        g = -self.alpha * (self.Ts @ r) + (lp - self.lu) + 1.0
        return p, self.alpha / 2 * r @ r + p @ (lp - self.lu), g, p * (g - p @ g)

    def value_and_gradient(self, th):
        p, F, g, w = self.parts(th)
        return F, w[:-1]

    def hessian(self, th):
        r"""The exact Hessian in :math:`\theta` of the docstring of :func:`solve_primal_scipy`."""
        p, F, g, w = self.parts(th)
        J = np.diag(p) - np.outer(p, p)
        H = J @ (self.alpha * self.Ts @ self.Ts.T + np.diag(1.0 / p)) @ J + np.diag(w) - np.outer(p, w) - np.outer(w, p)
        return H[:-1, :-1]


def _trust_exact_verdict(prob, res, n, idx, gtol) -> PrimalSolution:
    """The point trust-exact returned, judged by its gradient norm (trust-exact may stop at round-off,
    "bad approximation", with the gradient already at its target)."""
    p, F, g, w = prob.parts(res.x)
    gn = float(np.linalg.norm(w))
    ok = bool(np.all(np.isfinite(w)) and gn <= gtol)
    msg = f"trust-exact on the primal (3) stopped at gradient {gn:.1e}" + ("" if ok else f" > {gtol:g}: {res.message}")
    return PrimalSolution(_embed(n, idx, p), float(F), "scipy-trust-exact", ok, msg, gn)


def solve_primal_cvxpy(T, u, z, alpha) -> PrimalSolution:
    r"""Problem (3) as an exponential-cone program (CVXPY + Clarabel, see :func:`solve_cvxpy`):

    .. math::
        \min_{p \ge 0,\ \sum_i p_i = 1} \frac{\alpha}{2}\|b - T^\top p\|^2 + \sum_i \mathrm{rel\_entr}(p_i, u_i)

    over supp u.

    Parameters
    ----------
    T, u, z, alpha : array_like, array_like, array_like, float
        As in :func:`solve_primal_scipy`: templates (n, d), prior (n,), evidence (d,), :math:`\alpha > 0`.

    Returns
    -------
    PrimalSolution
        p (zero off supp u) and the objective F(p) at Clarabel's point clipped to the simplex and
        renormalised (not the solver's own figure); ``converged``, ``message``, ``status`` (Clarabel's),
        and ``accuracy``, the distance of Clarabel's raw point from the simplex.

    Examples
    --------
    >>> sol = solve_primal_cvxpy([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], [0.5, 0.25, 0.25], [0.3, -0.2], 0.5)
    >>> sol.converged, sol.p.round(4)  # as solve_primal_scipy, to Clarabel's accuracy
    (True, array([0.5365, 0.2164, 0.2472]))
    """
    import cvxpy as cp

    T, u, z, alpha = dual_args(T, u, z, alpha)
    b = T.T @ u + z
    s, idx = _support(u)
    Ts, us = T[idx], u[idx]
    def build():
        p = cp.Variable(len(idx), nonneg=True)
        obj = alpha / 2 * cp.sum_squares(b - Ts.T @ p) + cp.sum(cp.rel_entr(p, us))
        return cp.Problem(cp.Minimize(obj), [cp.sum(p) == 1]), p

    prob, p, msg = solve_cvxpy(build)
    if p is None:
        return _failed(len(u), "cvxpy-clarabel", msg)
    p_full = _embed(len(u), idx, _clipped_distribution(p.value))
    # the objective at the returned (clipped, renormalised) point, not the solver's own figure
    return PrimalSolution(p_full, primal_objective(T, u, z, alpha, p_full), "cvxpy-clarabel", True, msg,
                          _infeasibility(p.value), prob.status)


def _failed(n, method, message) -> PrimalSolution:
    return PrimalSolution(np.full(n, np.nan), float("nan"), method, False, message, float("inf"), "failed")


def solve_cvxpy(build):
    """Solve a freshly built (problem, variable) pair by Clarabel.

    Returns ``(problem, variable, message)``; the variable is None if Clarabel gave no usable
    point (the message says why). Nothing is raised: the caller decides what a failure means.
    """
    import cvxpy as cp

    # Tolerances near float64 with many iterative-refinement steps first: without refinement the
    # solution is only ~1e-8 accurate even at gap 1e-12 (measured: lambda off by 2e-8 relative,
    # n = 2).  Clarabel calls that attempt "optimal_inaccurate" when it stops short of 1e-14; the
    # point is still used, since every caller bounds distances by the value it actually reached
    # (Pinsker) or compares it against an independent solve.  Clarabel's defaults last.
    tight = {"tol_gap_abs": 1e-14, "tol_gap_rel": 1e-14, "tol_feas": 1e-14, "tol_ktratio": 1e-12,
             "iterative_refinement_reltol": 1e-16, "iterative_refinement_abstol": 1e-16,
             "iterative_refinement_max_iter": 50}
    for opts, accept in ((tight, ("optimal", "optimal_inaccurate")), ({}, ("optimal",))):
        prob, var = build()  # a fresh problem: a re-solve keeps state and may not converge
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                prob.solve(solver=cp.CLARABEL, max_iter=500, **opts)
        except cp.error.SolverError as e:
            return prob, None, f"Clarabel failed: {e}"
        if prob.status in accept and var.value is not None:
            return prob, var, f"Clarabel status {prob.status}"
    return prob, None, f"Clarabel status {prob.status}"


def solve_mem_scipy(T, u, b, r) -> PrimalSolution:
    r"""MEM by SLSQP on the simplex:

    .. math::
        \min_p \mathrm{KL}(p \,\|\, u) \ \text{ s.t. } \ \|b - T^\top p\|^2 \le r^2.

    Parameters
    ----------
    T : array_like, shape (n, d)
        Templates (rows).
    u : array_like, shape (n,)
        Prior on the simplex.
    b : array_like, shape (d,)
        Centre of the ball.
    r : float
        Radius, :math:`r > 0`.

    Returns
    -------
    PrimalSolution
        p, the value :math:`\mathrm{KL}(p \,\|\, u)`, ``converged``, ``message`` and ``accuracy`` (the
        feasibility of the solver's raw point).

    Examples
    --------
    >>> sol = solve_mem_scipy([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], [0.5, 0.25, 0.25], [1.0, 0.2], 0.3)
    >>> sol.converged, sol.p.round(4)
    (True, array([0.5721, 0.1951, 0.2328]))
    """
    T, u, b, r, idx, Ts, us = _mem_args(T, u, b, r)
    cons = [
        {"type": "eq", "fun": lambda p: p.sum() - 1.0, "jac": lambda p: np.ones_like(p)},
        {"type": "ineq", "fun": lambda p: r**2 - np.sum((b - Ts.T @ p) ** 2),
         "jac": lambda p: 2 * Ts @ (b - Ts.T @ p)},
    ]
    res = minimize(lambda p: _kl_and_grad(p, us), us.copy(), jac=True, method="SLSQP",
                   bounds=[(0.0, 1.0)] * len(idx), constraints=cons,
                   options={"ftol": 1e-15, "maxiter": 2000})
    # "Positive directional derivative": SLSQP's line search found no descent at round-off, i.e. it is done
    ok = bool(res.success or "Positive directional derivative" in res.message)
    return _mem_solution(len(u), idx, us, res.x, method="scipy-slsqp", ok=ok,
                         message=f"SLSQP on the MEM problem: {res.message}")


def solve_mem_cvxpy(T, u, b, r) -> PrimalSolution:
    r"""MEM as an exponential-cone + second-order-cone program (CVXPY + Clarabel):

    .. math::
        \min_{p \ge 0,\ \sum_i p_i = 1} \sum_i \mathrm{rel\_entr}(p_i, u_i)
        \ \text{ s.t. } \ \|b - T^\top p\| \le r.

    Parameters
    ----------
    T, u, b, r : array_like, array_like, array_like, float
        As in :func:`solve_mem_scipy`: templates (n, d), prior (n,), centre (d,) and radius :math:`r > 0` of the ball.

    Returns
    -------
    PrimalSolution
        p and :math:`\mathrm{KL}(p \,\|\, u)` at Clarabel's point clipped to the simplex and renormalised;
        ``converged``, ``message``, ``status`` (Clarabel's) and ``accuracy``, the distance of the raw point
        from the simplex.

    Examples
    --------
    >>> sol = solve_mem_cvxpy([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], [0.5, 0.25, 0.25], [1.0, 0.2], 0.3)
    >>> sol.converged, sol.p.round(4)  # as solve_mem_scipy
    (True, array([0.5721, 0.1951, 0.2328]))
    """
    import cvxpy as cp

    T, u, b, r, idx, Ts, us = _mem_args(T, u, b, r)
    def build():
        p = cp.Variable(len(idx), nonneg=True)
        return cp.Problem(cp.Minimize(cp.sum(cp.rel_entr(p, us))),
                          [cp.sum(p) == 1, cp.norm(b - Ts.T @ p, 2) <= r]), p

    prob, p, msg = solve_cvxpy(build)
    if p is None:
        return _failed(len(u), "cvxpy-clarabel", msg)
    return _mem_solution(len(u), idx, us, p.value, method="cvxpy-clarabel", ok=True, message=msg, status=prob.status)


def _mem_args(T, u, b, r):
    """The checked arguments of the MEM solvers, and the support of u: (T, u, b, r, idx, T[idx], u[idx])."""
    T, u = dual_args(T, u)
    b, r = vector("b", b, T.shape[1]), positive("r", r, MIN_ALPHA**0.5, "r^2 would underflow")
    s, idx = _support(u)
    return T, u, b, r, idx, T[idx], u[idx]


def _mem_solution(n, idx, us, raw, *, method, ok, message, status="optimal") -> PrimalSolution:
    r"""A MEM solver's raw point on supp u as a PrimalSolution: clipped and renormalised, its
    :math:`\mathrm{KL}(p \,\|\, u)`, and the feasibility of the raw point as the accuracy."""
    ps = _clipped_distribution(raw)
    return PrimalSolution(_embed(n, idx, ps), float(_kl_and_grad(ps, us)[0]), method, ok, message,
                          _infeasibility(raw), status)


def solve_eot_scipy(s, tau, prior=None) -> PrimalSolution:
    r"""The entropic problem of 003 (with a prior :math:`\pi`, GOAT of 002) by SLSQP on the simplex:

    .. math::
        \min_p -\langle p, s\rangle - \tau H(p) \qquad\text{or}\qquad
        \min_{\operatorname{supp} p \subseteq \operatorname{supp}\pi} -\langle p, s\rangle + \tau\,\mathrm{KL}(p \,\|\, \pi),

    started at the uniform distribution (at :math:`\pi`).

    Parameters
    ----------
    s : array_like, shape (n,)
        Scores.
    tau : float
        Temperature, :math:`\tau > 0`.
    prior : array_like, shape (n,), optional
        Prior :math:`\pi` on the simplex (GOAT); None is the plain entropic problem.

    Returns
    -------
    PrimalSolution
        p (zero off supp :math:`\pi`), the minimised objective, ``converged``, ``message`` and ``accuracy``
        (the feasibility of the solver's raw point).

    Examples
    --------
    >>> sol = solve_eot_scipy([1.0, 0.0, -1.0], 0.5)  # the minimiser is softmax(s / tau)
    >>> sol.converged, bool(abs(sol.p - [0.8668, 0.1173, 0.0159]).max() < 1e-4)
    (True, True)
    """
    s, tau = scores(s), positive_scale(tau, "tau")
    S, start = np.ones(len(s), bool), np.full(len(s), 1 / len(s))
    if prior is not None:
        prior = simplex("prior", prior, len(s), of="s has")
        S = prior > 0
        start = prior[S].copy()
    ss, ps = s[S], (None if prior is None else prior[S])

    def f(p):
        q = np.maximum(p, _FLOOR)
        lq = np.log(q if ps is None else q / ps)
        return -p @ ss + tau * np.sum(q * lq), -ss + tau * (lq + 1)

    n = len(ss)
    res = minimize(f, start, jac=True, method="SLSQP", bounds=[(0, 1)] * n,
                   constraints=[{"type": "eq", "fun": lambda p: p.sum() - 1,
                                 "jac": lambda p: np.ones_like(p)}],
                   options={"ftol": 1e-15, "maxiter": 2000})
    ok = bool(res.success or "Positive directional derivative" in res.message)
    out = np.zeros(len(s))
    out[S] = _clipped_distribution(res.x)
    return PrimalSolution(out, float(res.fun), "scipy-slsqp", ok,
                          f"SLSQP on the {'EOT' if prior is None else 'GOAT'} problem: {res.message}", _infeasibility(res.x))


def solve_eot_cvxpy(s, tau, prior=None) -> PrimalSolution:
    r"""The problem of :func:`solve_eot_scipy` as an exponential-cone program (CVXPY + Clarabel):

    .. math::
        \max_{p \in \Delta_n} \langle p, s\rangle + \tau\sum_j \mathrm{entr}(p_j), \qquad\text{or}\qquad
        \min_{p \in \Delta} -\langle p, s\rangle + \tau\sum_j \mathrm{rel\_entr}(p_j, \pi_j)
        \ \text{ on } \operatorname{supp}\pi.

    Parameters
    ----------
    s, tau, prior : array_like, float, array_like or None
        As in :func:`solve_eot_scipy`: scores (n,), temperature :math:`\tau > 0`, prior :math:`\pi` (n,) or None.

    Returns
    -------
    PrimalSolution
        p (zero off supp :math:`\pi`, Clarabel's point clipped and renormalised), the minimised objective
        (Clarabel's own value), ``converged``, ``message``, ``status`` (Clarabel's) and ``accuracy``, the
        distance of the raw point from the simplex.

    Examples
    --------
    >>> sol = solve_eot_cvxpy([1.0, 0.0, -1.0], 0.5)  # softmax(s / tau), as solve_eot_scipy
    >>> sol.converged, bool(abs(sol.p - [0.8668, 0.1173, 0.0159]).max() < 1e-4)
    (True, True)
    """
    import cvxpy as cp

    s, tau = scores(s), positive_scale(tau, "tau")
    S = np.ones(len(s), bool) if prior is None else simplex("prior", prior, len(s), of="s has") > 0

    def build():
        p = cp.Variable(int(S.sum()), nonneg=True)
        if prior is None:
            return cp.Problem(cp.Maximize(p @ np.asarray(s, float) + tau * cp.sum(cp.entr(p))), [cp.sum(p) == 1]), p
        return cp.Problem(cp.Minimize(-p @ s[S] + tau * cp.sum(cp.rel_entr(p, np.asarray(prior, float)[S]))),
                          [cp.sum(p) == 1]), p

    prob, p, msg = solve_cvxpy(build)
    if p is None:
        return _failed(len(s), "cvxpy-clarabel", msg)
    out = np.zeros(len(s))
    out[S] = _clipped_distribution(p.value)
    value = -prob.value if prior is None else prob.value  # the maximised form has the opposite sign
    return PrimalSolution(out, float(value), "cvxpy-clarabel", True, msg, _infeasibility(p.value), prob.status)
