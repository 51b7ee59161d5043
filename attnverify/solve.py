"""One instance of (3)/(7), solved exactly, with the paper's closed forms beside it; and the objective
values of (3) and (7) in centred form, for one instance or for rows sharing their templates."""

from __future__ import annotations

import numpy as np

from . import batched, certificate, dual
from .batched import solve_dual_instance


def objective_values(T, u, z, alpha, lam, p=None) -> tuple[float, float, np.ndarray]:
    r""":math:`(P, D, \tilde p)` for validated inputs: the primal (3) at the tilted distribution :math:`\tilde p(\lambda)`
    and the dual (7), for one instance.

    Both in centred form, so that neither :math:`\mu` nor :math:`\log u` is added and subtracted:

    .. math::
        D = \langle\lambda, z\rangle - \frac{\|\lambda\|^2}{2\alpha} - K, \qquad
        P = \frac{\alpha}{2}\|z - c\|^2 + \langle\lambda, c\rangle - K,

    with :math:`K = \log\sum_i u_i e^{\langle t_i - \mu, \lambda\rangle}` (log1p form for small logits) and
    :math:`c = E_{\tilde p}[t] - \mu`, using :math:`\mathrm{KL}(\tilde p\,\|\,u) = \langle\lambda, c\rangle - K`
    at the tilted distribution. At :math:`\alpha = 10^{-300}` the plain formulas lose everything to the
    rounding of :math:`\log M` (:math:`\sim\epsilon`) against values of :math:`\sim 10^{-300}` (a negative gap);
    these keep the relative accuracy of their terms.

    Parameters
    ----------
    T, u, z, alpha : ndarray, ndarray, ndarray, float
        A validated instance: templates (n, d), prior (n,) on the simplex, evidence (d,), :math:`\alpha > 0`.
    lam : ndarray, shape (d,)
        The point :math:`\lambda` of the dual.
    p : ndarray, shape (n,), optional
        The solver's own :math:`\tilde p(\lambda)` (from its logits, without cancellation), used for P;
        default: the tilted distribution computed here.

    Returns
    -------
    (float, float, ndarray)
        P, D, and :math:`\tilde p` (n,), exactly 0 off supp u.
    """
    ts = batched.prepare(T, u)
    pval, dval, P = _centred_objectives(ts, z[None], alpha, lam[None], (ts.Tc @ lam)[None],
                                        None if p is None else p[u > 0][None])
    p = np.zeros(len(u))
    p[u > 0] = P[0]
    return float(pval[0]), float(dval[0]), p


def objective_values_rows(T, u, Z, alpha, Lam, P=None) -> tuple[np.ndarray, np.ndarray]:
    r"""The (P, D) of :func:`objective_values` for every row k of Z (m, d) and Lam (m, d), sharing the
    validated T and u (one attention head); P (m, n), optional, the distributions P is evaluated at.
    Returns two arrays of shape (m,)."""
    ts = batched.prepare(T, u)
    pval, dval, _ = _centred_objectives(ts, Z, alpha, Lam, Lam @ ts.Tc.T, None if P is None else P[:, u > 0])
    return pval, dval


def _centred_objectives(ts, Z, alpha, Lam, y, P):
    """The centred P and D of :func:`objective_values` per row, from the centred logits y (m, n_on) of
    the rows Lam; P (m, n_on) the distributions on supp u, or None for the tilt of y.
    Returns (P values (m,), D values (m,), the distributions (m, n_on))."""
    U = np.exp(ts.lu)
    _, Pt, Pm = batched.tilt(y, U)
    if P is not None:  # the caller's p~ (the solver's, from its logits in S coordinates: no cancellation)
        Pt = P
        Pm = P - U
    K = certificate.log_partition(y, U)
    c = Pm @ ts.Tc
    dval = np.vecdot(Lam, Z) - certificate.half_sq_over_alpha(Lam, alpha) - K
    r = Z - c
    pval = alpha / 2 * np.vecdot(r, r) + np.vecdot(Lam, c) - K
    return pval, dval, Pt


def solve_instance(T, u, z, alpha) -> dict:
    """All quantities of ``attnverify solve`` for validated float64 inputs."""
    sol = solve_dual_instance(T, u, z, alpha)
    pval, dval, p = objective_values(T, u, z, alpha, sol.lam, sol.p)
    # at logit scales L the float64 softmax sums to 1 only within ~eps L: renormalise, so p_tilde is a
    # distribution to round-off
    p = p / p.sum()
    return {
        "lambda_star": sol.lam.tolist(),
        "h_hat": (T.T @ p).tolist(),
        "p_tilde": p.tolist(),
        "lambda_approx_14": dual.lambda_linear_14(z, alpha).tolist(),
        "lambda_approx_13": dual.lambda_quadratic_13(T, u, z, alpha).tolist(),
        "h_attention_16": dual.attention_16(T, u, z, alpha).tolist(),
        "primal": pval,
        "dual": dval,
        "gap": pval - dval,
        "converged": sol.converged,
        "bound": sol.bound,  # certified ||lambda_star - lambda*||
        "rel_bound": sol.rel_bound,
        "rel_gap": sol.rel_gap,
        "rtol": sol.tol,
        "message": sol.message,
        "iterations": sol.iterations,
        "grad_norm": sol.grad_norm,
    }
