r"""Random instances of (3)/(7) shared by the numeric checks, and the exact solves on them.

Sizes cover n up to 256 and d up to 64 (:math:`n \gg d` and :math:`n < d`), :math:`\alpha` from
:math:`10^{-3}` to 10, and a preference u with zeros (a quarter of the templates outside the support).
Templates are :math:`\mathcal N(0, I/d)` so that :math:`\|t_i\| \sim 1` whatever d is, and
:math:`z \sim \mathcal N(0, I/d)` (:math:`\|z\| \sim 1`).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from attnverify import context, dual
from attnverify.batched import solve_dual_instance
from attnverify.evidence import Inconclusive
from attnverify import primal
from attnverify.primal import PrimalSolution, solve_primal_cvxpy, solve_primal_scipy
from attnverify.checks._common import require

SIZES = [(8, 2), (32, 8), (64, 16), (256, 64), (16, 64)]
ALPHAS = [1e-3, 1e-1, 1.0, 10.0]
EPS = np.finfo(float).eps


@dataclass
class Instance:
    T: np.ndarray
    u: np.ndarray
    z: np.ndarray
    alpha: float

    @property
    def label(self) -> str:
        n, d = self.T.shape
        return f"n={n}, d={d}, alpha={self.alpha:g}, |supp u|={int((self.u > 0).sum())}"

    @property
    def b(self) -> np.ndarray:
        return self.T.T @ self.u + self.z


def random_instance(rng, n, d, alpha, zeros=True) -> Instance:
    T = rng.normal(size=(n, d)) / np.sqrt(d)
    u = rng.dirichlet(np.ones(n))
    if zeros and n >= 4:
        u[rng.choice(n, n // 4, replace=False)] = 0.0
        u /= u.sum()
    z = rng.normal(size=d) / np.sqrt(d)
    return Instance(T, u, z, alpha)


def instances(label="primal-dual") -> list[Instance]:
    rng = context.rng(label)
    return [random_instance(rng, n, d, a) for n, d in SIZES for a in ALPHAS]


def exact_dual(inst: Instance) -> dual.DualSolution:
    sol = solve_dual_instance(inst.T, inst.u, inst.z, inst.alpha, rtol=1e-12)
    if not sol.converged:
        raise Inconclusive(f"the batched dual solver did not converge on (7) for {inst.label}: |grad| = {sol.grad_norm:.1e}")
    return sol


@dataclass
class Solved:
    inst: Instance
    lam: np.ndarray  # Newton on (7)
    grad_newton: float
    lam_scipy: np.ndarray  # SciPy on (7), independent
    grad_scipy: float
    p9: np.ndarray  # (9) at lambda*
    dual_value: float
    primal_at_p9: float
    scipy: PrimalSolution  # direct primal solve
    cvxpy: PrimalSolution  # exponential-cone primal solve


def solve_dual_scipy(inst: Instance):
    """(7) by SciPy's trust-exact on :math:`-D` (SciPy's own trust-region code, analytic derivatives)."""
    from scipy.optimize import minimize

    T, u, z, a = inst.T, inst.u, inst.z, inst.alpha
    b = inst.b

    def negD(lam):
        p = dual.tilted(T, u, lam)
        return -dual.dual_objective(T, u, z, a, lam), -(b - lam / a - T.T @ p)

    def hess(lam):
        p = dual.tilted(T, u, lam)
        Tc = T - T.T @ p
        return np.eye(len(lam)) / a + (Tc * p[:, None]).T @ Tc

    res = minimize(negD, np.zeros(T.shape[1]), jac=True, hess=hess, method="trust-exact",
                   options={"gtol": 1e-13})
    return res.x, float(np.linalg.norm(negD(res.x)[1]))


@lru_cache(maxsize=None)
def solved_instances() -> tuple[Solved, ...]:
    """Every instance solved by all four routes (cached: FD-3, FD-7 and FD-10 share it)."""
    out = []
    for inst in instances():
        sol = exact_dual(inst)
        lam_s, g_s = solve_dual_scipy(inst)
        p9 = dual.tilted(inst.T, inst.u, sol.lam)
        out.append(Solved(
            inst, sol.lam, sol.grad_norm, lam_s, g_s, p9,
            dual.dual_objective(inst.T, inst.u, inst.z, inst.alpha, sol.lam),
            primal.primal_objective(inst.T, inst.u, inst.z, inst.alpha, p9),
            require(solve_primal_scipy(inst.T, inst.u, inst.z, inst.alpha)),
            require(solve_primal_cvxpy(inst.T, inst.u, inst.z, inst.alpha)),
        ))
    return tuple(out)


def pinsker_bound(F_p: float, F_q: float, lower: float, n: int) -> float:
    r"""Bound on :math:`\|p - q\|_1` for two approximate minimisers of (3).

    .. math::
        F(p) = \frac{\alpha}{2}\|b - T^\top p\|^2 + \mathrm{KL}(p \| u)

    is 1-strongly convex in :math:`\|\cdot\|_1` on the simplex (Pinsker), so
    :math:`\|p - p^*\|_1 \le \sqrt{2 (F(p) - F^*)}`, and :math:`F^* \ge` lower (any dual value, by weak
    duality).  A gap below the float64 resolution of F is floored at :math:`n\varepsilon(1 + |F|)`, the
    standard bound on the rounding error of a sum of n terms.
    """
    floor = n * EPS * (1 + abs(lower))
    return float(np.sqrt(2 * max(F_p - lower, floor)) + np.sqrt(2 * max(F_q - lower, floor)))
