"""One instance of (3)/(7), solved exactly, with the paper's closed forms beside it."""

from __future__ import annotations

import numpy as np

from . import dual
from .batched import solve_dual


def solve_instance(T, u, z, alpha) -> dict:
    """All quantities of ``attnverify solve`` for validated float64 inputs."""
    sol = solve_dual(T, u, z, alpha)
    p = dual.tilted(T, u, sol.lam)
    # at logit scales L the float64 softmax sums to 1 only within ~eps L (one rounding of log M shifts
    # every p_i by the same factor): renormalise, so p_tilde is a distribution to round-off
    p = p / p.sum()
    primal = dual.primal_objective(T, u, z, alpha, p)
    dval = dual.dual_objective(T, u, z, alpha, sol.lam)
    return {
        "lambda_star": sol.lam.tolist(),
        "h_hat": (T.T @ p).tolist(),
        "p_tilde": p.tolist(),
        "lambda_approx_14": dual.lambda_linear_14(z, alpha).tolist(),
        "lambda_approx_13": dual.lambda_quadratic_13(T, u, z, alpha).tolist(),
        "h_attention_16": dual.attention_16(T, u, z, alpha).tolist(),
        "primal": primal,
        "dual": dval,
        "gap": primal - dval,
        "converged": sol.converged,
        "iterations": sol.iterations,
        "grad_norm": sol.grad_norm,
    }
