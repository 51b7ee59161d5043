"""Mutants that only the certified checks (checks.certified) can kill: the claim's float checks are removed
(their ref replaced by :func:`no_float_check`) and a closed form is made wrong, so the claim must be refuted
by a ball-arithmetic enclosure alone. One per certified check family."""

from __future__ import annotations

import dataclasses

import numpy as np

from attnverify.evidence import Evidence

from . import Mutant

D = "attnverify.dual"
NONE = "mutants.certified:no_float_check"


def no_float_check() -> Evidence:
    """Stands in for a claim's float check: records nothing."""
    return Evidence()


def _primal_returns_u(orig):
    def solve(T, u, z, alpha, *args, **kwargs):
        return dataclasses.replace(orig(T, u, z, alpha, *args, **kwargs), p=np.asarray(u, float).copy())

    return solve


MUTANTS = [
    Mutant("FD-3/certified-only-primal-is-u", "FD", "the SciPy primal solve returns the prior u instead of the "
           "minimiser of (3); float checks removed",
           replace={"checks.primal_dual:primal_minimiser": NONE},
           patch={"checks.instances:solve_primal_scipy": _primal_returns_u}),
    Mutant("FD-7/certified-only-tilt-sign", "FD", "(9) with the tilt's sign flipped; float checks removed",
           replace={"checks.primal_dual:strong_duality": NONE},
           patch={f"{D}:tilted": lambda orig: lambda T, u, lam: orig(T, u, -np.asarray(lam, float))}),
    Mutant("FD-10/certified-only-half-lambda", "FD", "(10) evaluated at lambda*/2; float checks removed",
           replace={"checks.primal_dual:h_hat_through_lambda": NONE},
           patch={f"{D}:h_hat": lambda orig: lambda T, u, lam: orig(T, u, 0.5 * np.asarray(lam, float))}),
    Mutant("FD-13/certified-only-sigma-is-identity", "FD", "Sigma replaced by I in (13); float checks removed",
           replace={"checks.closed_forms:order_of_13": NONE},
           patch={f"{D}:lambda_quadratic_13": lambda orig: lambda T, u, z, alpha: alpha / (1 + alpha) * np.asarray(z, float)}),
    Mutant("FD-14/certified-only-one-plus-alpha", "FD", "(14) as alpha (1 + alpha) z (order 2 kept, coefficient wrong); "
           "float checks removed",
           replace={"checks.closed_forms:order_of_14": NONE},
           patch={f"{D}:lambda_linear_14": lambda orig: lambda z, alpha: (1 + alpha) * orig(z, alpha)}),
    Mutant("FD-16/certified-only-u-ignored", "FD", "(16) with u replaced by 1/n; float checks removed",
           replace={"checks.closed_forms:order_of_16": NONE},
           patch={f"{D}:attention_16": lambda orig: lambda T, u, z, alpha: orig(T, np.full(len(u), 1 / len(u)), z, alpha)}),
    Mutant("FD-FIG3/certified-only-alpha-dropped", "FD", "(16) with alpha dropped from the exponent; float checks removed",
           replace={"checks.fig3:figure_3": NONE},
           patch={f"{D}:attention_16": lambda orig: lambda T, u, z, alpha: orig(T, u, z, 1.0)}),
    Mutant("FD-33/certified-only-printed-is-corrected", "FD-OT", "erratum (33): the corrected conjugate evaluated as "
           "printed (the erratum would be missed); float checks removed",
           replace={"checks.ot_numeric:conjugate_numeric": NONE},
           patch={"checks.certified:conjugate_33": lambda orig: lambda g, u, M, gamma, printed: orig(g, u, M, gamma, True)}),
    Mutant("FD-22/certified-only-42-printed-is-corrected", "FD-OT", "erratum (42): the corrected covariance evaluated as "
           "printed; float checks removed",
           replace={"checks.ot_numeric:exact_vs_22": NONE},
           patch={"checks.certified:covariance_42": lambda orig: lambda Q, a, printed: orig(Q, a, True)}),
]
