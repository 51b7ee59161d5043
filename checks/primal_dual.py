"""FD-3, FD-7, FD-10: the primal (3), its dual (7) and the recovery (9)-(10), on exact solves.

Every quantity is computed from a solve of the exact problem: the primal by SciPy (trust-region
Newton over the open simplex) and by CVXPY (exponential cone, Clarabel); the dual by Newton
(attnverify) and by SciPy's trust-exact.  No closed form under test enters a ground truth.
"""

from __future__ import annotations

import numpy as np

from attnverify import dual
from attnverify.evidence import Evidence, Table
from attnverify.primal import solve_primal_scipy
from attnverify.checks._common import require

from .instances import EPS, Instance, pinsker_bound, solved_instances

PINSKER_WHY = (r"$F$ is 1-strongly convex in the $\ell_1$ norm on the simplex (Pinsker), so two minimisers whose "
               r"values are within $g_1, g_2$ of the dual bound differ by at most $\sqrt{2 g_1} + \sqrt{2 g_2}$; the "
               r"tolerance is that bound, computed per instance (round-off floor $n\varepsilon(1 + |F|)$)")


def _worst(values):
    return float(np.max(values))


def primal_minimiser() -> Evidence:
    """FD-3: the two direct primal solves agree, and the minimiser has no mass off supp(u)."""
    ev = Evidence()
    rows, ratio, val = [], [], []
    for s in solved_instances():
        d1 = float(np.abs(s.scipy.p - s.cvxpy.p).sum())
        bound = pinsker_bound(s.scipy.value, s.cvxpy.value, s.dual_value, len(s.inst.u))
        ratio.append(d1 / bound)
        val.append(abs(s.scipy.value - s.cvxpy.value) / (1 + abs(s.scipy.value)))
        rows.append([s.inst.label, s.scipy.value, s.cvxpy.value, d1, bound])
    ev.at_most("scipy-and-cvxpy-primal-minimisers-agree", "SciPy and CVXPY primal minimisers agree",
               _worst(ratio), 1.0, PINSKER_WHY, method="scipy+cvxpy",
               metric=r"max over instances of $\|p_{\mathrm{scipy}} - p_{\mathrm{cvxpy}}\|_1$ / Pinsker bound",
               numerical_class="iterative", evidence="float")
    ev.at_most("scipy-and-cvxpy-primal-values-agree", "SciPy and CVXPY primal values agree", _worst(val), 1e-6,
               r"Clarabel stops at a relative duality gap of $10^{-12}$, or $10^{-8}$ where that stalls; $10^{-6}$ leaves "
               r"room for evaluating $F$ at its clipped, renormalised solution",
               method="scipy+cvxpy", metric=r"$\max |F_{\mathrm{scipy}} - F_{\mathrm{cvxpy}}| / (1 + |F|)$",
               numerical_class="iterative", evidence="float")
    ev.tables.append(Table("FD-3: the primal (3) solved directly, two ways (20 instances)",
                           ["instance", "F (SciPy)", "F (CVXPY)", "||p_S - p_C||_1", "Pinsker bound"], rows))
    ev.extend(_support_limit())
    return ev


def _support_limit() -> Evidence:
    r""":math:`\operatorname{supp}\tilde p \subseteq \operatorname{supp} u`, tested without assuming it: give the zero
    entries of u a weight :math:`\epsilon` and solve over all n templates; the mass :math:`\tilde p` puts there must
    vanish linearly as :math:`\epsilon \to 0`."""
    from .instances import random_instance
    from attnverify import context

    ev = Evidence()
    rng = context.rng("support")
    inst = random_instance(rng, 32, 8, 1.0)
    off = inst.u == 0
    epss = np.geomspace(1e-2, 1e-8, 7)
    mass = []
    for e in epss:
        ue = (1 - e) * inst.u + e * off / off.sum()  # strictly positive, mass e off the support
        p = require(solve_primal_scipy(inst.T, ue, inst.z, inst.alpha)).p
        mass.append(float(p[off].sum()))
    slope = float(np.polyfit(np.log(epss), np.log(mass), 1)[0])
    ev.within("mass-outside-supp-u-vanishes-linearly-as-u-is",
              "mass outside supp(u) vanishes linearly as u is perturbed onto it", slope, 1, 0.05,
              r"$\tilde p_i \propto u_i e^{\langle t_i,\lambda\rangle}$ predicts mass $\propto \epsilon$ to first order; "
              r"a minimiser that kept mass off the support as $\epsilon \to 0$ would give slope 0",
              method="scipy",
              metric=r"fitted slope of $\log(\text{mass of } \tilde p \text{ outside } \operatorname{supp} u)$ against "
                     r"$\log\epsilon$, $\epsilon = 10^{-2} \dots 10^{-8}$",
              numerical_class="iterative", evidence="float")
    ev.at_most("no-mass-outside-supp-u-at-eps-1e-8", "no mass outside supp(u) at eps = 1e-8", mass[-1], 1e-6,
               r"mass $\approx \epsilon e^{O(\alpha)}$ at $\epsilon = 10^{-8}$, well under $10^{-6}$", method="scipy",
               metric=r"mass of $\tilde p$ outside $\operatorname{supp} u$", numerical_class="iterative", evidence="float")
    ev.tables.append(Table(r"FD-3: mass of the minimiser outside $\operatorname{supp}(u)$ when $u$ is given weight "
                           rf"$\epsilon$ there ({inst.label})", ["eps", "mass outside supp u"],
                           [[e, m] for e, m in zip(epss, mass)]))
    return ev


def strong_duality() -> Evidence:
    r"""FD-7: primal min = dual max, and (9) at :math:`\lambda^*` is the primal minimiser."""
    ev = Evidence()
    gap, gap_direct, lam_ratio, rec_s, rec_c, rows = [], [], [], [], [], []
    for s in solved_instances():
        i = s.inst
        scale = 1 + abs(s.dual_value)
        gap.append((s.primal_at_p9 - s.dual_value) / scale)
        gap_direct.append(abs(s.scipy.value - s.dual_value) / scale)
        # -D is (1/alpha)-strongly convex: ||lam - lam*|| <= alpha ||grad D(lam)||
        lam_ratio.append(np.linalg.norm(s.lam - s.lam_scipy) /
                         (i.alpha * (s.grad_newton + s.grad_scipy + len(i.u) * EPS * (1 + np.linalg.norm(i.b)))))
        rec_s.append(np.abs(s.p9 - s.scipy.p).sum() / pinsker_bound(s.primal_at_p9, s.scipy.value, s.dual_value, len(s.inst.u)))
        rec_c.append(np.abs(s.p9 - s.cvxpy.p).sum() / pinsker_bound(s.primal_at_p9, s.cvxpy.value, s.dual_value, len(s.inst.u)))
        rows.append([i.label, s.scipy.value, s.dual_value, s.scipy.value - s.dual_value,
                     float(np.abs(s.p9 - s.scipy.p).sum())])
    ev.at_most("two-dual-solvers-agree", "two dual solvers agree", _worst(lam_ratio), 1.0,
               r"$-D$ is $(1/\alpha)$-strongly convex, so $\|\lambda - \lambda^*\| \le \alpha \|\nabla D(\lambda)\|$ for "
               r"each solver; each gradient carries a rounding error up to $n\varepsilon(1 + \|b\|)$",
               method="newton+scipy",
               metric=r"$\max \|\lambda_{\mathrm{newton}} - \lambda_{\mathrm{scipy}}\| / (\alpha (|\nabla_N| + |\nabla_S| "
                      r"+ n\varepsilon(1+\|b\|)))$",
               numerical_class="iterative", evidence="float")
    ev.at_most("strong-duality-directly-solved-primal-min-dual",
               "strong duality: directly solved primal min = dual max", _worst(gap_direct), 1e-10,
               r"both sides solved to gradient norm $\le 10^{-10}$; their value errors are $O(\|\nabla\|^2)$, far below "
               r"$10^{-10}$",
               method="scipy+newton", metric=r"$\max |F(p_{\mathrm{scipy}}) - D(\lambda^*)| / (1 + |D|)$",
               numerical_class="iterative", evidence="float")
    ev.at_most("duality-gap-at-p-lambda-lambda", "duality gap at (p~(lambda*), lambda*)", _worst(np.abs(gap)),
               1e-12,
               r"the gap equals $\frac{1}{2\alpha}\|\nabla D\|^2$-order terms at a gradient norm $\le 10^{-12}\|b\|$; "
               r"$10^{-12}$ is the float64 resolution of $F$ at these magnitudes",
               method="newton", metric=r"$\max (F(\tilde p(\lambda^*)) - D(\lambda^*)) / (1 + |D|)$",
               numerical_class="iterative", evidence="float")
    ev.at_most("9-recovers-the-scipy-primal-minimiser", "(9) recovers the SciPy primal minimiser",
               _worst(rec_s), 1.0, PINSKER_WHY, method="scipy",
               metric=r"$\max \|\tilde p(\lambda^*) - p_{\mathrm{scipy}}\|_1$ / Pinsker bound", numerical_class="iterative",
               evidence="float")
    ev.at_most("9-recovers-the-cvxpy-primal-minimiser", "(9) recovers the CVXPY primal minimiser",
               _worst(rec_c), 1.0, PINSKER_WHY, method="cvxpy",
               metric=r"$\max \|\tilde p(\lambda^*) - p_{\mathrm{cvxpy}}\|_1$ / Pinsker bound", numerical_class="iterative",
               evidence="float")
    ev.tables.append(Table("FD-7: primal minimum (SciPy, direct) against dual maximum (Newton on (7))",
                           ["instance", "min F", "max D", "gap", "||p~(lam*) - p_scipy||_1"], rows))
    return ev


def h_hat_through_lambda() -> Evidence:
    r"""FD-10: :math:`\hat h = \mathbb{E}_{\tilde p}[t]` computed from the directly solved primal equals (10) at
    :math:`\lambda^*`."""
    ev = Evidence()
    err, err_b = [], []
    for s in solved_instances():
        i = s.inst
        h_primal = i.T.T @ s.scipy.p
        h10 = dual.h_hat(i.T, i.u, s.lam)
        scale = np.linalg.norm(i.T, axis=1).max()
        # ||T^T (p - q)|| <= max ||t_i|| ||p - q||_1: the primal solve's own error, propagated
        tol = scale * pinsker_bound(s.scipy.value, s.primal_at_p9, s.dual_value, len(s.inst.u))
        err.append(np.linalg.norm(h_primal - h10) / tol)
        err_b.append(np.linalg.norm(h10 - (i.b - s.lam / i.alpha)) / (1 + np.linalg.norm(i.b)))
    ev.at_most("10-at-lambda-equals-the-mean-of-the-primal",
               "(10) at lambda* equals the mean of the primal minimiser", _worst(err), 1.0,
               r"$\|T^\top(p - q)\| \le \max_i \|t_i\|\, \|p - q\|_1$, and $\|p - q\|_1$ is bounded by Pinsker",
               method="scipy+newton",
               metric=r"$\max \|\mathbb{E}_{p_{\mathrm{scipy}}}[t] - h_{(10)}(\lambda^*)\| / (\max_i \|t_i\| \times$ "
                      "Pinsker bound)",
               numerical_class="iterative", evidence="float")
    ev.at_most("h-hat-b-lambda-alpha-dual-stationarity", "h_hat = b - lambda*/alpha (dual stationarity)",
               _worst(err_b), 1e-11, r"this is the gradient of $D$ at $\lambda^*$, solved to $\le 10^{-12}\|b\|$",
               method="newton", metric=r"$\max \|h_{(10)} - (b - \lambda^*/\alpha)\| / (1 + \|b\|)$",
               numerical_class="iterative", evidence="float")
    return ev
