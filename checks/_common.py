"""Numeric building blocks shared by several checks (one definition each).

* :func:`require`: a solver result (attnverify's result contract: ``converged``, ``message``) or
  :class:`~attnverify.evidence.Inconclusive`: the check, not the solver, decides that a solver that
  stopped short leaves the claim undecided.
* :func:`solver_gaps`: the exact entropic problem solved by SciPy and CVXPY against a closed form
  (EOT-KKT, GOAT-PRIOR).

Figures get matplotlib from :func:`attnverify.context.pyplot`, the one place that selects Agg.
"""

from __future__ import annotations

import numpy as np

from attnverify.evidence import Inconclusive
from attnverify.primal import solve_eot_cvxpy, solve_eot_scipy


def require(result):
    """``result`` if its solver converged; otherwise raise Inconclusive with the solver's message."""
    if not result.converged:
        raise Inconclusive(result.message)
    return result


def solver_gaps(cases, J):
    r"""The exact problem :math:`\min_p J(p)` over the simplex, :math:`J(p) = -\langle p, s\rangle + \tau
    \mathrm{KL}(p \| \pi)` (prior :math:`\pi` None = uniform), solved per case by SciPy and CVXPY
    (attnverify.primal), against a closed form :math:`p^*`.

    cases: (label, s (n,), tau, prior (n,) or None, p_star (n,)); J(p, s, tau, prior) -> float.
    Returns beat {solver: min over cases of :math:`(J(p) - J(p^*)) / f`}, :math:`f = n\varepsilon(1 +
    |J(p^*)|)` the rounding of a sum of n terms; ratio {solver: max of :math:`\|p - p^*\|_1 / \sqrt{2
    \max(\mathrm{gap}, f)/\tau}`}, which is :math:`\le 1` when :math:`p^*` is the minimiser because J is
    :math:`\tau`-strongly convex in :math:`\ell_1` (Pinsker); and the table rows [label, then distance and gap
    per solver]."""
    rows, beat, ratio = [], {"scipy": np.inf, "cvxpy": np.inf}, {"scipy": 0.0, "cvxpy": 0.0}
    for label, s, tau, prior, p_star in cases:
        J_star = J(p_star, s, tau, prior)
        floor = len(s) * np.finfo(float).eps * (1 + abs(J_star))
        row = [label]
        for name, solver in (("scipy", solve_eot_scipy), ("cvxpy", solve_eot_cvxpy)):
            p = require(solver(s, tau, prior=prior)).p
            gap = J(p, s, tau, prior) - J_star
            beat[name] = np.minimum(beat[name], gap / floor)
            dist = float(np.abs(p - p_star).sum())
            ratio[name] = np.maximum(ratio[name], dist / np.sqrt(2 * max(gap, floor) / tau))
            row += [dist, gap]
        rows.append(row)
    return beat, ratio, rows
