r"""FD-MEM: does the minimiser of (3) solve the MEM problem with the printed radius :math:`r^2 = 1/(2\alpha)`?

For each instance: :math:`\tilde p` from the exact dual (Newton on (7), checked against the primal in FD-7);
then the MEM problem

.. math::
    \min_p \mathrm{KL}(p \| u) \quad\text{s.t.}\quad \|b - \mathbb{E}_p t\|^2 \le r^2

solved directly (SciPy SLSQP, and CVXPY with an exponential cone plus a second-order cone) for

* the printed radius :math:`r^2 = 1/(2\alpha)`, and
* the radius the Lagrangian argument gives, :math:`r = \|b - \hat h\| = \|\lambda^*\|/\alpha`.
"""

from __future__ import annotations

import numpy as np

from attnverify import context, dual
from attnverify.evidence import Erratum, Evidence, Table
from attnverify.primal import solve_mem_cvxpy, solve_mem_scipy
from attnverify.checks._common import require

from .instances import exact_dual, random_instance

AGREE_TOL = 2e-4
AGREE_WHY = (r"KL is 1-strongly convex in $\ell_1$ (Pinsker), so a solver stopping at a value gap $g$ is within "
             r"$\sqrt{2g}$ of the minimiser: $2\cdot10^{-4} = \sqrt{2 \times 2\cdot10^{-8}}$, twice Clarabel's default "
             r"gap (SLSQP, ftol $10^{-15}$, does far better); a different minimiser is $O(10^{-2})$ to $O(1)$ away")


def instances():
    """The nine instances of FD-MEM (also certified by checks.certified)."""
    rng = context.rng("mem")
    return [random_instance(rng, n, d, alpha) for n, d in [(8, 2), (16, 4), (32, 8)] for alpha in (0.1, 1.0, 5.0)]


def mem_radius() -> Evidence:
    r"""FD-MEM: the MEM minimiser with the printed radius :math:`r^2 = 1/(2\alpha)` against :math:`\tilde p` of (3),
    and with the radius :math:`r = \|\lambda^*\|/\alpha` (SciPy and CVXPY)."""
    ev = Evidence()
    rows, printed, true_s, true_c = [], [], [], []
    for inst in instances():
        alpha = inst.alpha
        lam = exact_dual(inst).lam
        p = dual.tilted(inst.T, inst.u, lam)
        b = inst.b
        r_true = float(np.linalg.norm(lam) / alpha)
        r_printed = float(np.sqrt(1 / (2 * alpha)))
        p_pr = require(solve_mem_scipy(inst.T, inst.u, b, r_printed)).p
        p_s = require(solve_mem_scipy(inst.T, inst.u, b, r_true)).p
        p_c = require(solve_mem_cvxpy(inst.T, inst.u, b, r_true)).p
        e_pr = float(np.abs(p_pr - p).sum())
        printed.append(e_pr)
        true_s.append(float(np.abs(p_s - p).sum()))
        true_c.append(float(np.abs(p_c - p).sum()))
        rows.append([inst.label, r_printed, r_true, float(np.linalg.norm(inst.z)), e_pr, true_s[-1], true_c[-1]])
    ev.at_most("printed-radius-mem-with-r-2-1-2-alpha-has-the",
               "printed radius: MEM with r^2 = 1/(2 alpha) has the minimiser of (3)", max(printed),
               AGREE_TOL, AGREE_WHY, method="scipy",
               metric=r"$\max \|p_{\mathrm{MEM}}(r^2 = 1/(2\alpha)) - \tilde p\|_1$ over 9 instances ($n \le 32$: SLSQP's "
                      "dense QP steps)",
               numerical_class="iterative", evidence="float")
    ev.at_most("true-radius-scipy-mem-with-r-lambda-alpha-has",
               "true radius (SciPy): MEM with r = ||lambda*||/alpha has the minimiser of (3)", max(true_s),
               AGREE_TOL, AGREE_WHY, method="scipy",
               metric=r"$\max \|p_{\mathrm{MEM}}(r = \|\lambda^*\|/\alpha) - \tilde p\|_1$",
               numerical_class="iterative", evidence="float")
    ev.at_most("true-radius-cvxpy-mem-with-r-lambda-alpha-has",
               "true radius (CVXPY): MEM with r = ||lambda*||/alpha has the minimiser of (3)", max(true_c),
               AGREE_TOL, AGREE_WHY, method="cvxpy",
               metric=r"$\max \|p_{\mathrm{MEM}}(r = \|\lambda^*\|/\alpha) - \tilde p\|_1$",
               numerical_class="iterative", evidence="float")
    ev.tables.append(Table(r"FD-MEM: minimisers of MEM for the printed and the true radius against $\tilde p$ of (3)",
                           ["instance", "printed r = (2 alpha)^-1/2", "true r = ||lambda*||/alpha", "||z||",
                            "||p_MEM(printed) - p~||_1", "||p_MEM(true) - p~||_1 (SciPy)", "(CVXPY)"], rows))
    if max(printed) > AGREE_TOL:
        ev.finding = (
            r"As printed, the MEM statement of Section 4 is false: with radius $r^2 = 1/(2\alpha)$ the MEM minimiser "
            r"differs from the minimiser of (3) (table). What is true (Lagrangian duality, see the derivation): "
            r"the minimiser $\tilde p_\alpha$ of (3) solves $\min_p \mathrm{KL}(p\|u)$ s.t. $\|b - \mathbb{E}_p t\| \le r$ "
            r"exactly for $r = \|b - \hat h_\alpha\| = \|\lambda^*_\alpha\|/\alpha$, a radius that depends on $z$, $u$ and "
            r"the templates, not on $\alpha$ alone; conversely every $r \in (\operatorname{dist}(b, \operatorname{conv}"
            r"\operatorname{supp}), \|z\|)$ arises from some $\alpha > 0$. When $1/(2\alpha) \ge \|z\|^2$ the printed "
            r"constraint is inactive at $p = u$ and the MEM minimiser is $u$ itself.")
        ev.errata.append(Erratum(
            source="004_830fd89135933577.txt", equation="Sec 4, MEM display",
            printed=r"\tilde p = \arg\min_p \mathcal K(p,u)\ \text{s.t.}\ \|(\mu+z) - \textstyle\int a\,p(a)\,da\|^2 \le \frac{1}{2\alpha}",
            corrected=r"\tilde p_\alpha = \arg\min_p \mathcal K(p,u)\ \text{s.t.}\ \|(\mu+z) - \textstyle\int a\,p(a)\,da\| \le \|b - \hat h_\alpha\| = \frac{\|\lambda^*_\alpha\|}{\alpha}",
            note=f"the printed radius gives a different minimiser (max l1 distance {max(printed):.2f} over the instances of FD-MEM); "
                 "the radius for which the equivalence holds depends on the instance through lambda*"))
    return ev
