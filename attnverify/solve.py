"""One instance of (3)/(7), solved exactly, with the paper's closed forms beside it."""

from __future__ import annotations

import numpy as np

from . import batched, certificate, dual
from .batched import solve_dual_instance


def objective_values(T, u, z, alpha, lam, p=None) -> tuple[float, float, np.ndarray]:
    r"""(P, D, p~) for validated inputs: the primal (3) at the tilted distribution p~(lambda) and the dual (7).

    Both in centred form, so that neither mu nor log u is added and subtracted:
    :math:`D = \langle\lambda, z\rangle - \|\lambda\|^2/(2\alpha) - K`, with
    :math:`K = \log\sum_i u_i e^{\langle t_i - \mu, \lambda\rangle}` (log1p form for small logits), and
    :math:`P = \frac{\alpha}{2}\|z - c\|^2 + \langle\lambda, c\rangle - K`, :math:`c = E_{\tilde p}[t] - \mu`,
    using :math:`\mathrm{KL}(\tilde p\|u) = \langle\lambda, c\rangle - K` at the tilted distribution.  At
    alpha = 1e-300 the plain formulas lose everything to the rounding of log M (~eps) against values of
    ~1e-300 (a negative gap); these keep the relative accuracy of their terms."""
    ts = batched.prepare(T, u)
    y = (ts.Tc @ lam)[None]
    U = np.exp(ts.lu)
    _, P, Pm = batched.tilt(y, U)
    if p is not None:  # the solver's own p~ (from its logits in S coordinates: no cancellation)
        P = p[u > 0][None]
        Pm = P - U
    K = float(certificate.log_partition(y, U)[0])
    c = (Pm @ ts.Tc)[0]
    dval = float(lam @ z - certificate.half_sq_over_alpha(lam[None], alpha)[0] - K)
    r = z - c
    pval = float(alpha / 2 * (r @ r) + lam @ c - K)
    p = np.zeros(len(u))
    p[u > 0] = P[0]
    return pval, dval, p


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
