r"""FD-5 numerically: :math:`u = \mathcal N(\mu, I)` in d = 2, the dual (7) solved by Gauss-Hermite quadrature.

The continuous u is replaced by the tensor Gauss-Hermite rule with N nodes per axis (a discrete
distribution with weights :math:`w_k` at nodes :math:`a_k = \mu + \sqrt 2\, x_k`), and the exact dual of that
discretised problem is solved by Newton.  As N grows it must converge to the closed form
:math:`\lambda^* = \frac{\alpha}{1+\alpha}(b - \mu)`, and the tilted distribution (9) to
:math:`\mathcal N(\mu + \lambda^*, I)`.
"""

from __future__ import annotations

import numpy as np

from attnverify import context, dual
from attnverify.batched import solve_dual_instance
from attnverify.evidence import Evidence, Table

NODES = [4, 8, 16, 32]


def _rule(mu, N):
    x, w = np.polynomial.hermite.hermgauss(N)
    X, Y = np.meshgrid(x, x, indexing="ij")
    W = np.outer(w, w).ravel() / np.pi
    A = mu + np.sqrt(2) * np.stack([X.ravel(), Y.ravel()], axis=1)
    return A, W / W.sum()


def gaussian_by_quadrature() -> Evidence:
    r"""FD-5 numerically: the quadrature :math:`\lambda^*_N` tends to :math:`\frac{\alpha}{1+\alpha}(b - \mu)`, and
    :math:`\tilde p` has the printed mean and identity covariance."""
    ev = Evidence()
    rng = context.rng("gaussian")
    rows, worst_lam, worst_mean, worst_cov = [], 0.0, 0.0, 0.0
    for alpha in (0.1, 1.0, 5.0):
        mu = rng.normal(size=2)
        z = rng.normal(size=2)
        b = mu + z
        closed = alpha / (1 + alpha) * (b - mu)
        errs = []
        for N in NODES:
            A, W = _rule(mu, N)
            sol = solve_dual_instance(A, W, z + (mu - A.T @ W), alpha, rtol=1e-12)  # z such that b = E_W[a] + z
            errs.append(float(np.linalg.norm(sol.lam - closed)))
        p = dual.tilted(A, W, sol.lam)
        mean = A.T @ p
        cov = (A - mean).T @ ((A - mean) * p[:, None])
        worst_lam = np.maximum(worst_lam, errs[-1] / np.linalg.norm(closed))
        worst_mean = np.maximum(worst_mean, float(np.linalg.norm(mean - (mu / (1 + alpha) + alpha * b / (1 + alpha)))))
        worst_cov = np.maximum(worst_cov, float(np.abs(cov - np.eye(2)).max()))
        rows.append([alpha] + errs)
    ev.at_most("quadrature-lambda-converges-to-alpha-1-alpha-b",
               "quadrature lambda* converges to alpha/(1+alpha)(b - mu)", worst_lam, 1e-10,
               r"Gauss-Hermite with $N$ nodes integrates $e^{\langle a,\lambda\rangle}$ against $\mathcal N(\mu, I)$ with "
               r"error $\sim |\lambda|^{2N}/(2N)!$, below $10^{-20}$ at $N = 32$ for $|\lambda| < 2$; $10^{-10}$ leaves room "
               "for the Newton stop",
               method="quadrature+newton",
               metric=r"$\max \|\lambda^*_N - \text{closed form}\| / \|\text{closed form}\|$ at $N = " + f"{NODES[-1]}^2$ nodes",
               numerical_class="iterative", evidence="float")
    ev.at_most("p-has-the-printed-mean-mu-1-alpha-alpha-b-1",
               "p~ has the printed mean mu/(1+alpha) + alpha b/(1+alpha)", worst_mean, 1e-10, "as above",
               method="quadrature+newton", metric=r"$\max \|\mathbb{E}_{\tilde p}[a] - \text{printed mean}\|$",
               numerical_class="iterative", evidence="float")
    ev.at_most("p-has-identity-covariance", "p~ has identity covariance", worst_cov, 1e-10,
               r"the tilt of $\mathcal N(\mu, I)$ by $e^{\langle a,\lambda\rangle}$ is $\mathcal N(\mu + \lambda, I)$; "
               "quadrature error as above",
               method="quadrature+newton", metric=r"$\max |\operatorname{Cov}_{\tilde p} - I|$ entrywise",
               numerical_class="iterative",
               evidence="float")
    ev.tables.append(Table(r"FD-5: $\|\lambda^*_N - \frac{\alpha}{1+\alpha}(b-\mu)\|$ against the number of nodes per axis",
                           ["alpha"] + [f"N={N}" for N in NODES], rows))
    return ev
