"""The motivating Gaussian example of 004, Sec 5, eqs (5)-(6): claim FD-5."""

from __future__ import annotations

import sympy as sp

from attnverify.evidence import Evidence

from attnverify.derivations._sums import eq

from .cumulant import mat_simplify

alpha = sp.Symbol("alpha", positive=True)


def _lambda_sec5(a, b, mu):
    r"""Sec 5 as printed: :math:`\lambda^* = \frac{\alpha}{\alpha+1}(b - \mu)`."""
    return a / (a + 1) * (b - mu)


def _mean_sec5(a, b, mu):
    r"""Sec 5 as printed: :math:`p^* = \mathcal N(\mu/(1+\alpha) + \alpha b/(1+\alpha), I_d)`."""
    return mu / (1 + a) + a * b / (1 + a)


def gaussian_case(*, lam_candidate=_lambda_sec5, mean_candidate=_mean_sec5) -> Evidence:
    r"""For :math:`u = \mathcal N(\mu, I_d)` and :math:`\alpha > 0`, the maximiser of (6) is
    :math:`\lambda^* = \frac{\alpha}{1+\alpha}(b - \mu)` and the minimiser of (3) is
    :math:`p^* = \mathcal N(\mu/(1+\alpha) + \alpha b/(1+\alpha), I_d)`; the quadratic cumulant (12) is exact.

    Source: 004_830fd89135933577.txt, Sec 5, eqs (5)-(6) and the text after (6); eq (12) remark.
    """
    ev = _mgf_evidence()
    ev.extend(_dual_evidence(lam_candidate, mean_candidate))
    ev.extend(_primal_evidence(mean_candidate))
    return ev


def _mgf_evidence() -> Evidence:
    r"""MGF of :math:`\mathcal N(\mu, I_d)` by integration in one coordinate, product over coordinates."""
    ev = Evidence()
    x, m, l = sp.symbols("x m l", real=True)
    phi = sp.exp(-(x - m) ** 2 / 2) / sp.sqrt(2 * sp.pi)
    mgf1 = sp.integrate(phi * sp.exp(x * l), (x, -sp.oo, sp.oo), conds="none")
    ev.step(r"One coordinate: the MGF of $\mathcal N(m, 1)$ by direct integration.",
            (sp.Integral(phi * sp.exp(x * l), (x, -sp.oo, sp.oo)), sp.simplify(mgf1)))
    ev.identity("FD-5 1-d MGF = exp(m l + l^2/2)", mgf1, sp.exp(m * l + l**2 / 2),
                metric=r"$\int\varphi(x-m)\,e^{xl}\,dx - \exp(ml + l^2/2)$", key="fd-5-1-d-mgf-exp-m-l-l-2-2")
    ev.step(r"$\mathcal N(\mu, I_d)$ has density $\prod_k \varphi(a_k - \mu_k)$ and $e^{\langle a,\lambda\rangle} = \prod_k e^{a_k\lambda_k}$, "
            r"so the integral separates (Fubini) into a product of one-coordinate MGFs, for every $d$.",
            r"\int u(a)e^{\langle a,\lambda\rangle}da=\prod_{k=1}^d e^{\mu_k\lambda_k+\lambda_k^2/2}"
            r"=\exp\left(\langle\mu,\lambda\rangle+\tfrac12\|\lambda\|^2\right)")
    # (12) is exact: the cumulant generating function is exactly quadratic (per coordinate, hence in sum)
    logmgf = sp.expand_log(sp.log(mgf1.rewrite(sp.exp)), force=True)
    ev.identity("FD-5 (12) exact for Gaussian u: log MGF - quadratic = 0", logmgf, m * l + l**2 / 2,
                metric=r"$\log\mathrm{MGF}_1(l) - (ml + l^2/2)$; summing over coordinates gives "
                       r"$\log M - \langle\mu,l\rangle - \|l\|^2/2$",
                key="fd-5-12-exact-for-gaussian-u-log-mgf-quadratic-0")
    ev.identity("FD-5 Sigma = I from the cumulant (second derivative in one coordinate)", sp.diff(logmgf, l, 2), 1,
                metric=r"$\frac{d^2}{dl^2}\log\mathrm{MGF}_1 - 1$; mixed partials vanish by separability",
                key="fd-5-sigma-i-from-the-cumulant-second-derivative")
    return ev


def _dual_evidence(lam_candidate=_lambda_sec5, mean_candidate=_mean_sec5) -> Evidence:
    """Dual (6) with the Gaussian MGF, stationarity, completing the square, the mean of :math:`p^*`."""
    ev = Evidence()
    cand = _dual_is_maximised_at_the_candidate(ev, lam_candidate)
    _two_dimensional_stationary_point_by_solve(ev, lam_candidate)
    _completing_the_square_gives_the_mean(ev, cand, mean_candidate)
    return ev


def _dual_symbols():
    r""":math:`(d, \lambda, b, \mu)`: the dimension and the :math:`d \times 1` MatrixSymbols of the dual (6)."""
    d = sp.Symbol("d", integer=True, positive=True)
    lam, b, mu = (sp.MatrixSymbol(nm, d, 1) for nm in ("lambda", "b", "mu"))
    return d, lam, b, mu


def _dual_is_maximised_at_the_candidate(ev: Evidence, lam_candidate):
    """(6) with the Gaussian MGF, general :math:`d`: gradient, negative definite Hessian, and the candidate
    stationary; returns the candidate."""
    d, lam, b, mu = _dual_symbols()
    I = sp.Identity(d)
    J = lam.T * b - lam.T * lam / (2 * alpha) - (mu.T * lam + lam.T * lam / 2)
    ev.step(r"Substitute $\log M = \langle\mu,\lambda\rangle + \|\lambda\|^2/2$ into (6) (general $d$, MatrixSymbol).", eq("J(\\lambda)", J))
    g = J.diff(lam)
    ev.step("Gradient.", eq("\\nabla J", g))
    ev.identity("FD-5 gradient = b - lambda/alpha - mu - lambda", g, b - lam / alpha - mu - lam, simplify=mat_simplify,
                key="fd-5-gradient-b-lambda-alpha-mu-lambda")
    H = g.diff(lam)
    ev.identity("FD-5 Hessian = -(1/alpha + 1) I (negative definite as alpha > 0)", H, -(1 / alpha + 1) * I,
                simplify=mat_simplify, key="fd-5-hessian-1-alpha-1-i-negative-definite-as")
    ev.check("FD-5 1/alpha + 1 > 0", "symbolic", r"`ask(Q.positive(1/alpha + 1))`, $\alpha > 0$",
             str(1 / alpha + 1), "exact", bool(sp.ask(sp.Q.positive(1 / alpha + 1))),
             "strict concavity makes the stationary point the unique maximiser",
             key="fd-5-1-alpha-1-0", numerical_class="exact", evidence="proof")
    cand = lam_candidate(alpha, b, mu)
    ev.step(r"Stationarity $b - \lambda/\alpha - \mu - \lambda = 0$ gives $(1 + 1/\alpha)\lambda = b - \mu$, i.e.",
            eq("\\lambda^*", cand))
    ev.identity("FD-5 lambda* satisfies stationarity (compared with printed alpha/(alpha+1)(b - mu))",
                g.subs(lam, cand), sp.ZeroMatrix(d, 1), simplify=mat_simplify,
                metric=r"$b - \lambda^*/\alpha - \mu - \lambda^*$ with $\lambda^* = \frac{\alpha}{\alpha+1}(b-\mu)$ as printed",
                key="fd-5-lambda-satisfies-stationarity-compared-with")
    return cand


def _two_dimensional_stationary_point_by_solve(ev: Evidence, lam_candidate) -> None:
    """Explicit :math:`d = 2`: ``sp.solve`` finds exactly one stationary point, the candidate."""
    l1, l2, b1, b2, m1, m2 = sp.symbols("lambda1 lambda2 b1 b2 mu1 mu2", real=True)
    L, B, MU = sp.Matrix([l1, l2]), sp.Matrix([b1, b2]), sp.Matrix([m1, m2])
    J2 = (L.T * B)[0] - (L.T * L)[0] / (2 * alpha) - (MU.T * L)[0] - (L.T * L)[0] / 2
    sol = sp.solve([sp.diff(J2, l1), sp.diff(J2, l2)], [l1, l2], dict=True)
    ev.equal("fd-5-d-2-unique-stationary-point", "FD-5 d=2 unique stationary point", len(sol), 1,
             "a strictly concave quadratic has exactly one stationary point", method="symbolic",
             metric=r"number of solutions of $\nabla J = 0$", shown=1, numerical_class="exact", evidence="proof")
    if len(sol) == 1:
        ev.identity("FD-5 d=2: sp.solve = alpha/(alpha+1)(b - mu)", sp.Matrix([sol[0][l1], sol[0][l2]]),
                    lam_candidate(alpha, B, MU), simplify=mat_simplify,
                    key="fd-5-d-2-sp-solve-alpha-alpha-1-b-mu")


def _completing_the_square_gives_the_mean(ev: Evidence, cand, mean_candidate) -> None:
    r"""Completing the square in (5), general :math:`d` by components: :math:`p^* = \mathcal N(\mu + \lambda^*, I_d)`,
    whose mean is the candidate."""
    d, _, b, mu = _dual_symbols()
    k, p = sp.symbols("k p", integer=True)
    a_, m_, l_ = sp.IndexedBase("a"), sp.IndexedBase("mu"), sp.IndexedBase("lambda")
    E1 = sp.Sum(-(a_[k] - m_[k]) ** 2 / 2 + a_[k] * l_[k], (k, 1, d))
    E2 = sp.Sum(-(a_[k] - (m_[k] + l_[k])) ** 2 / 2, (k, 1, d))
    ev.step(r"By (5), $\log p^*(a) = E_1(a) + \mathrm{const}$; completing the square:",
            r"E_1=-\tfrac12\|a-\mu\|^2+\langle a,\lambda^*\rangle,\quad E_2=-\tfrac12\|a-(\mu+\lambda^*)\|^2")
    diffE = sp.Sum(sp.expand(E1.function - E2.function), (k, 1, d))
    ev.step("Their difference, summand expanded:", "E_1 - E_2 = " + sp.latex(diffE))
    ev.identity("FD-5 E1 - E2 is independent of a (d/da_p through the sum)", sp.diff(E1 - E2, a_[p]).doit(), 0,
                metric=r"$\partial_{a_p}(E_1 - E_2)$ with KroneckerDelta from differentiating through Sum",
                key="fd-5-e1-e2-is-independent-of-a-d-da-p-through")
    ev.identity("FD-5 E1 - E2 = <mu,lambda> + ||lambda||^2/2", diffE,
                sp.Sum(m_[k] * l_[k] + l_[k] ** 2 / 2, (k, 1, d)), simplify=lambda e: sp.simplify(e.doit()),
                metric=r"summand of $E_1 - E_2$ minus $(\mu_k\lambda_k + \lambda_k^2/2)$",
                key="fd-5-e1-e2-mu-lambda-lambda-2-2")
    mean = mu + cand
    ev.step(r"So $p^* = \mathcal N(\mu + \lambda^*, I_d)$, with mean", eq("\\mu + \\lambda^*", mean))
    ev.identity("FD-5 mean mu + lambda* = printed mu/(1+alpha) + alpha b/(1+alpha)", mean,
                mean_candidate(alpha, b, mu), simplify=mat_simplify,
                key="fd-5-mean-mu-lambda-printed-mu-1-alpha-alpha-b-1")


def _primal_evidence(mean_candidate=_mean_sec5) -> Evidence:
    r"""Second route, primal side: minimise (3) over :math:`\mathcal N(m, I_d)`; zero duality gap then gives optimality
    over all :math:`p`."""
    ev = Evidence()
    x, m, mu1 = sp.symbols("x m mu", real=True)
    phi = lambda c: sp.exp(-(x - c) ** 2 / 2) / sp.sqrt(2 * sp.pi)  # noqa: E731
    kl1 = sp.integrate(phi(m) * (sp.log(phi(m)) - sp.log(phi(mu1))), (x, -sp.oo, sp.oo), conds="none")
    ev.step(r"Primal route. One coordinate: $\mathrm{KL}(\mathcal N(m,1) \,\|\, \mathcal N(\mu,1))$ by integration.", eq(r"\mathrm{KL}_1", sp.factor(kl1)))
    ev.identity("FD-5 KL(N(m,1)||N(mu,1)) = (m - mu)^2/2", kl1, (m - mu1) ** 2 / 2,
                key="fd-5-kl-n-m-1-n-mu-1-m-mu-2-2")
    ev.step(r"KL of product measures adds over coordinates, and $\mathbb E_{\mathcal N(m,I)}[a] = m$, so (3) restricted to "
            r"$\mathcal N(m, I_d)$ is",
            r"F(m)=\tfrac{\alpha}{2}\|b-m\|^2+\tfrac12\|m-\mu\|^2")
    d = sp.Symbol("d", integer=True, positive=True)
    M, b, mu = (sp.MatrixSymbol(nm, d, 1) for nm in ("m", "b", "mu"))
    F = alpha / 2 * (b - M).T * (b - M) + (M - mu).T * (M - mu) / 2
    gF = F.diff(M)
    ev.identity("FD-5 primal gradient = (1+alpha) m - alpha b - mu", gF, (1 + alpha) * M - alpha * b - mu,
                simplify=mat_simplify, key="fd-5-primal-gradient-1-alpha-m-alpha-b-mu")
    ev.identity("FD-5 primal Hessian = (1+alpha) I (positive definite)", gF.diff(M), (1 + alpha) * sp.Identity(d),
                simplify=mat_simplify, key="fd-5-primal-hessian-1-alpha-i-positive-definite")
    cand = mean_candidate(alpha, b, mu)
    ev.identity("FD-5 primal minimiser m* = mu/(1+alpha) + alpha b/(1+alpha) (printed)", gF.subs(M, cand),
                sp.ZeroMatrix(d, 1), simplify=mat_simplify, metric=r"$\nabla F$ at the printed mean",
                key="fd-5-primal-minimiser-m-mu-1-alpha-alpha-b-1")
    # zero duality gap in one coordinate (w = b - mu): primal value at m* equals dual value at lambda*
    bb, w = sp.symbols("b w", real=True)
    mstar = mean_candidate(alpha, bb, mu1)
    lstar = _lambda_sec5(alpha, bb, mu1)
    primal = alpha / 2 * (bb - mstar) ** 2 + (mstar - mu1) ** 2 / 2
    dual = bb * lstar - lstar**2 / (2 * alpha) - (mu1 * lstar + lstar**2 / 2)
    ev.step(r"Primal value at $m^*$ and dual value (6) at $\lambda^*$, per coordinate:",
            "P^* = D^* = " + sp.latex(sp.factor(primal)))
    ev.identity("FD-5 zero duality gap: primal(m*) = dual(lambda*)", primal, dual,
                metric=r"$\frac{\alpha}{2}(b-m^*)^2 + \frac12(m^*-\mu)^2 - [b l^* - (l^*)^2/(2\alpha) - \mu l^* - (l^*)^2/2]$, "
                       "per coordinate",
                key="fd-5-zero-duality-gap-primal-m-dual-lambda")
    ev.step(r"By weak duality every $p$ has primal value $\ge$ the dual value, so the Gaussian $p^*$ attaining it minimises "
            r"(3) over all $p$, not only over Gaussians.", r"\min_p(3)=\tfrac{\alpha}{2(1+\alpha)}\|b-\mu\|^2")
    return ev
