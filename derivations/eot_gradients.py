"""SymPy re-derivations for the backward pass and the geometry of EOT attention (EOT-PG, EOT-FISHER, EOT-LIMITS).

General :math:`n` throughout: :math:`s, p, g` are ``IndexedBase`` objects, the partition function is a ``Sum``
over :math:`l = 1..n`, and derivatives are taken through the ``Sum`` (SymPy produces ``KroneckerDelta``
terms, resolved for indices in :math:`1..n`).  Identities are decided by the finite-sum normaliser
:func:`derivations._sums.sum_normal`.  Where SymPy's ``limit`` cannot work through a symbolic
``Sum`` (EOT-LIMITS), the limit is reduced to a closed expression by an explicit squeeze whose
bounds are themselves checked, and an explicit small case is done by ``limit`` directly.
"""

from __future__ import annotations

from typing import Callable

import sympy as sp

from attnverify.evidence import Evidence
from attnverify.sources import SOURCE_000, SOURCE_003
from attnverify.derivations._sums import eq, resolve, sum_normal, sum_simplify
from attnverify.derivations.eot import n, s, softmax, tau


j, k, l, x = sp.symbols("j k l x", integer=True, positive=True)
g = sp.IndexedBase("g", real=True)  # g_j = dL/dp_j, an arbitrary upstream gradient
theta = sp.IndexedBase("theta", real=True)
P = sp.IndexedBase("p", positive=True)  # p_j as an abstract point of the open simplex


def factor_sums(e):
    """Split every multiple Sum whose summand is a product of factors each depending on one index
    into a product of single Sums (the inverse of the flattening done by ``sum_normal``)."""

    def split(S):
        if len(S.limits) < 2:
            return S
        groups = {lim[0]: [] for lim in S.limits}
        const = []
        for fac in sp.Mul.make_args(S.function):
            dep = [x0 for x0 in groups if x0 in fac.free_symbols]
            if len(dep) > 1:
                return S
            (groups[dep[0]] if dep else const).append(fac)
        out = sp.Mul(*const)
        for x0, lo, hi in S.limits:
            out *= sp.Sum(sp.Mul(*groups[x0]), (x0, lo, hi))
        return out

    return e.replace(lambda a: isinstance(a, sp.Sum), split)


def on_simplex(e, rules):
    r"""``sum_simplify`` after imposing rules like :math:`\sum_j p_j = 1`, also inside products of sums."""
    for _ in range(3):
        e = sum_normal(factor_sums(sum_normal(e)), rules=rules)
        e = sum_normal(factor_sums(e), rules=rules)
    return sum_simplify(e)


def Ep(f, idx=j, pp=None):
    r""":math:`\mathbb E_p[f] = \sum_{idx} p_{idx} f(idx)`, with :math:`p = \operatorname{softmax}(s/\tau)` unless ``pp`` is given."""
    w = pp[idx] if pp is not None else softmax(idx)
    return sp.Sum(w * f(idx), (idx, 1, n))


# ---------------------------------------------------------------------------
# EOT-PG
# ---------------------------------------------------------------------------


def advantage_gradient(idx):
    r""":math:`\partial L/\partial s_{idx} = \frac1\tau p_{idx} (g_{idx} - \mathbb E_p[g])`."""
    return softmax(idx) / tau * (g[idx] - Ep(lambda i: g[i]))


def policy_gradient(*, candidate=advantage_gradient) -> Evidence:
    r"""EOT-PG. For :math:`p = \operatorname{softmax}(s/\tau)`, any loss :math:`L(p)` with :math:`g = \partial L/\partial p`:
    :math:`\partial L/\partial s_k = \frac1\tau p_k (g_k - \mathbb{E}_p[g]) = \mathbb{E}_{j\sim p}[(g_j - b)\,
    \partial_{s_k}\log p_j]` for every constant :math:`b`, in particular the advantage form :math:`b = \mathbb{E}_p[g]`
    (general :math:`n`).  The single-sample variance satisfies
    :math:`\mathrm{Var}X_0 - \mathrm{Var}X_b = \mathbb{E}_p[w]\,(b^{\star 2} - (b-b^\star)^2)/\tau^2`,
    :math:`w_j = \|e_j - p\|^2`, :math:`b^\star = \mathbb{E}_p[gw]/\mathbb{E}_p[w]`.

    Source: 000_126cee95456ccd42.txt (abstract: "the standard gradient computed via backpropagation is
    mathematically identical to an advantage-based policy gradient, a variance-reduced update rule").
    """
    ev = Evidence()
    ok = _backprop_gives_the_candidate_gradient(ev, candidate)
    _every_baseline_policy_gradient_equals_backprop(ev)
    # SDPA: s_j = <q, k_j>, tau = sqrt(d); out = sum_j p_j v_j
    ev.step(r"In SDPA $s_j = \langle q, k_j\rangle$, $\tau = \sqrt d$ and $\mathrm{out} = \sum_j p_j v_j$, so "
            r"$g_j = \langle \partial L/\partial\mathrm{out}, v_j\rangle$ and "
            r"$\partial L/\partial q = \frac{1}{\sqrt d} \sum_j p_j (g_j - \mathbb E_p[g])\, k_j$, "
            r"$\partial L/\partial k_j = \frac{1}{\sqrt d} p_j (g_j - \mathbb E_p[g])\, q$, "
            r"$\partial L/\partial v_j = p_j\, \partial L/\partial\mathrm{out}$ (checked against autograd through torch SDPA)")
    _baseline_variance_reduction(ev)
    if not ok:
        ev.finding = r"backprop gives $\partial L/\partial s_k = \frac1\tau p_k (g_k - \mathbb E_p[g])$, not the candidate closed form"
    return ev


def _backprop_gives_the_candidate_gradient(ev: Evidence, candidate: Callable[[sp.Expr], sp.Expr]) -> bool:
    r"""The softmax Jacobian through the partition-function sum, and the chain rule :math:`\partial L/\partial s_k` against
    the candidate."""
    ev.step(r"Attention weights $p_j = \operatorname{softmax}(s/\tau)_j$ (EOT-KKT); a loss $L$ depends on $s$ only through $p$, "
            r"with upstream gradient $g_j = \partial L/\partial p_j$ (arbitrary)", eq("p_j", softmax(j)))
    dp = sp.diff(softmax(j), s[k])
    ev.step(r"Differentiate $p_j$ through the partition-function sum", eq(r"\partial_{s_k} p_j", dp))
    Jac = resolve(dp, [k])
    ev.step(r"Resolve the delta inside the sum for $1 \le k \le n$: the softmax Jacobian", eq(r"\partial_{s_k} p_j", Jac))
    ev.identity("softmax Jacobian = (1/tau)(delta_jk p_j - p_j p_k), general n", Jac,
                (sp.KroneckerDelta(j, k) * softmax(j) - softmax(j) * softmax(k)) / tau, simplify=sum_simplify,
                key="softmax-jacobian-1-tau-delta-jk-p-j-p-j-p-k")

    dL = resolve(sp.Sum(g[j] * dp, (j, 1, n)), [k])
    ev.step(r"Chain rule: $\partial L/\partial s_k = \sum_j g_j\, \partial p_j/\partial s_k$, the delta picks $j = k$", eq(r"\frac{\partial L}{\partial s_k}", dL))
    ok = ev.identity("backprop dL/ds_k = (1/tau) p_k (g_k - E_p[g]) (general n; the claim)", dL, candidate(k),
                     simplify=sum_simplify,
                     metric=r"chain-rule $\partial L/\partial s_k$ − candidate closed form",
                     key="backprop-dl-ds-k-1-tau-p-k-g-k-e-p-g-general-n")
    return ok


def _every_baseline_policy_gradient_equals_backprop(ev: Evidence) -> None:
    r"""Score function, REINFORCE, :math:`\mathbb E_p[\mathrm{score}] = 0` (any constant baseline) and the advantage form,
    for :math:`p` in the open simplex."""
    logp = sp.expand_log(sp.log(softmax(j)), force=True)
    score = resolve(sp.diff(logp, s[k]), [k])
    ev.step(r"Score function of the policy $p$: $\log p_j = s_j/\tau - \log Z$, differentiated through the sum",
            eq(r"\partial_{s_k}\log p_j", score))
    ev.identity("score function = (delta_jk - p_k)/tau (general n)", score, (sp.KroneckerDelta(j, k) - softmax(k)) / tau,
                simplify=sum_simplify, key="score-function-delta-jk-p-k-tau-general-n")
    # from here on p is any point of the open simplex (rule sum_j p_j = 1); the score is (delta_jk - p_k)/tau
    simplex = [(sp.Sum(P[j], (j, 1, n)), 1)]
    onsimplex = lambda e: on_simplex(e, simplex)  # noqa: E731
    sc = lambda i: (sp.KroneckerDelta(i, k) - P[k]) / tau  # noqa: E731
    grad_p = P[k] / tau * (g[k] - Ep(lambda i: g[i], idx=l, pp=P))
    reinforce = resolve(Ep(lambda i: g[i] * sc(i), pp=P), [k])
    ev.step(r"REINFORCE with $g$ held fixed (the surrogate $\mathbb E_{j\sim p}[g_j]$): the delta picks $j = k$",
            eq(r"\mathbb{E}_{j\sim p}[g_j\,\partial_{s_k}\log p_j]", reinforce))
    ev.identity("REINFORCE expectation = (1/tau) p_k (g_k - E_p[g]) (general n)", reinforce - grad_p, 0, simplify=onsimplex,
                key="reinforce-expectation-1-tau-p-k-g-k-e-p-g")
    mean_score = resolve(Ep(sc, pp=P), [k])
    ev.identity("E_p[score] = 0, so any constant baseline b leaves the expectation unchanged (general n)",
                mean_score, 0, simplify=onsimplex, key="e-p-score-0-so-any-constant-baseline-b-leaves")
    Gbar = Ep(lambda i: g[i], idx=l, pp=P)
    adv = resolve(Ep(lambda i: (g[i] - Gbar) * sc(i), pp=P), [k])
    ev.step(r"Advantage $A_j = g_j - \mathbb E_p[g]$ (baseline $b = \mathbb E_p[g]$): the advantage-based policy gradient",
            eq(r"\mathbb{E}_{j\sim p}[A_j\,\partial_{s_k}\log p_j]", adv))
    ev.identity("advantage policy gradient E_p[A d log p] = (1/tau) p_k (g_k - E_p[g]) = backprop (general n)",
                adv - grad_p, 0, simplify=onsimplex, key="advantage-policy-gradient-e-p-a-d-log-p-1-tau-p")


def _baseline_variance_reduction(ev: Evidence) -> None:
    r""":math:`\mathrm{Var}X_0 - \mathrm{Var}X_b = \mathbb E_p[w]\,(b^{\star 2} - (b - b^\star)^2)/\tau^2` for the
    single-sample estimators (general :math:`n`)."""
    b = sp.Symbol("b", real=True)
    w = sp.IndexedBase("w", nonnegative=True)  # w_j = ||e_j - p||^2 = 1 - 2 p_j + ||p||^2
    pj = P
    second = lambda bb: sp.Sum(pj[j] * (g[j] - bb) ** 2 * w[j], (j, 1, n)) / tau**2  # noqa: E731
    ev.step(r"Single-sample estimator $X_b = (g_J - b)(e_J - p)/\tau$, $J \sim p$: $\mathbb E X_b$ is the gradient for every $b$, "
            r"and its total variance is $\mathbb E\|X_b\|^2 - \|\nabla\|^2$ with $w_j = \|e_j - p\|^2$",
            eq(r"\mathbb{E}\|X_b\|^2", second(b)))
    bstar = sp.Sum(pj[j] * g[j] * w[j], (j, 1, n)) / sp.Sum(pj[j] * w[j], (j, 1, n))
    Ew = sp.Sum(pj[j] * w[j], (j, 1, n))
    red = Ew * (bstar**2 - (b - bstar) ** 2) / tau**2
    ev.step(r"Variance reduction of baseline $b$ over no baseline, with $b^\star = \mathbb E_p[gw]/\mathbb E_p[w]$ (the optimal "
            "scalar baseline)",
            eq(r"\mathrm{Var}X_0 - \mathrm{Var}X_b", red))
    ev.identity("Var X_0 - Var X_b = E_p[w](b*^2 - (b - b*)^2)/tau^2 (general n)", second(0) - second(b), red,
                simplify=lambda e: sp.simplify(sum_normal(sp.expand(e))),
                key="var-x-0-var-x-b-e-p-w-b-2-b-b-2-tau-2-general-n")
    ev.step(r"Hence $b = \mathbb E_p[g]$ reduces the variance iff $|\mathbb E_p[g] - b^\star| < |b^\star|$; it always does when "
            r"the offset of $g$ dominates its spread ($g \approx c\mathbf 1$ + small), but not for every $g$: the numeric check "
            "exhibits both cases")


# ---------------------------------------------------------------------------
# EOT-FISHER
# ---------------------------------------------------------------------------


def _fisher_matrix(pp, a, bb):
    return sp.KroneckerDelta(a, bb) * pp(a) - pp(a) * pp(bb)


def fisher(*, candidate=_fisher_matrix) -> Evidence:
    r"""EOT-FISHER. For :math:`p^\star = \operatorname{softmax}(s/\tau)`, general :math:`n`:
    :math:`\partial p^\star/\partial s = \nabla^2_s\,\tau\log\sum_j e^{s_j/\tau} = \frac1\tau(\operatorname{diag}p^\star
    - p^\star p^{\star\top}) = \frac1\tau\mathcal I(\theta)|_{\theta=s/\tau}`, where :math:`\mathcal I(\theta)` is the
    Fisher information of the categorical family :math:`p(\theta) = \operatorname{softmax}(\theta)`
    (in :math:`s`-coordinates :math:`\mathcal I_s = \mathcal I/\tau^2`).  :math:`\ker\mathcal I = \operatorname{span}(\mathbf 1)`;
    the natural gradient :math:`\mathcal I^+\nabla_\theta L` equals the advantage :math:`A = g - \mathbb E_p[g]` modulo
    :math:`\mathbf 1`.

    Source: 000_126cee95456ccd42.txt (abstract: Fisher information geometry dictates the learning gradient).
    """
    ev = Evidence()
    Jac = _softmax_jacobian_is_the_hessian_of_the_potential(ev)
    ok = _jacobian_is_the_fisher_information_over_tau(ev, Jac, candidate)
    _natural_gradient_is_the_advantage_modulo_ones(ev)
    _kl_trust_region_steps_along_the_fisher_rao_gradient(ev)
    _fisher_matrix_for_three_outcomes_has_rank_two(ev)
    if not ok:
        ev.finding = r"the categorical Fisher information is $\operatorname{diag}(p) - pp^\top$"
    return ev


def _softmax_jacobian_is_the_hessian_of_the_potential(ev: Evidence) -> sp.Expr:
    r"""(1) the softmax Jacobian and (2) the Hessian of :math:`F(s) = \tau\log\sum_l e^{s_l/\tau}` agree; returns the
    Jacobian."""
    Jac = resolve(sp.diff(softmax(j), s[k]), [k])
    ev.step("Softmax Jacobian (as in EOT-PG)", eq(r"\partial_{s_k} p^\star_j", Jac))
    F = tau * sp.log(sp.Sum(sp.exp(s[l] / tau), (l, 1, n)))
    Hess = resolve(sp.diff(resolve(sp.diff(F, s[j]), [j]), s[k]), [k])
    ev.step(r"Hessian of the potential $F(s) = \tau\log\sum_l \exp(s_l/\tau)$, through the sum", eq(r"\partial^2_{s_j s_k} F", Hess))
    ev.identity("Hessian of tau logsumexp(s/tau) = softmax Jacobian (general n)", Hess, Jac, simplify=sum_simplify,
                key="hessian-of-tau-logsumexp-s-tau-softmax-jacobian")
    return Jac


def _jacobian_is_the_fisher_information_over_tau(ev: Evidence, Jac: sp.Expr, candidate: Callable) -> bool:
    r"""(3) the Fisher information of the categorical family is the candidate (:math:`\operatorname{diag}p - pp^\top`),
    also by the information equality; at :math:`\theta = s/\tau` it is :math:`\tau` times the Jacobian; it is singular
    along :math:`\mathbf 1`."""
    pth = lambda i: sp.exp(theta[i]) / sp.Sum(sp.exp(theta[l]), (l, 1, n))  # noqa: E731
    logp = sp.expand_log(sp.log(pth(x)), force=True)
    sc_j = resolve(sp.diff(logp, theta[j]), [j])
    sc_k = sc_j.xreplace({j: k})
    ev.step(r"Categorical family in natural parameters $\theta$: score of outcome $x$", eq(r"\partial_{\theta_j}\log p_x(\theta)", sc_j))
    fisher = resolve(sp.expand(sp.Sum(pth(x) * sc_j * sc_k, (x, 1, n))), [j, k])
    ev.step(r"Fisher information $\mathcal I_{jk} = \mathbb E_x[\mathrm{score}_j\,\mathrm{score}_k]$, the deltas in $x$ resolved "
            r"(general $n$)",
            eq(r"\mathcal{I}_{jk}(\theta)", fisher))
    ok = ev.identity("Fisher information I(theta) = diag p(theta) - p p^T (general n)",
                     fisher, candidate(pth, j, k),
                     simplify=sum_simplify, metric=r"$\mathbb{E}_x[\partial_j\log p_x\,\partial_k\log p_x]$ − candidate",
                     key="fisher-information-i-theta-diag-p-theta-p-p-t")
    neg_hess = resolve(sp.diff(sp.diff(-logp, theta[j]), theta[k]), [j, k])
    ev.step(r"Exponential family: $-\nabla^2\log p_x$ does not depend on $x$, so "
            r"$\mathcal I = -\mathbb E[\nabla^2\log p_x] = \nabla^2\log Z$",
            eq(r"-\partial^2_{\theta_j\theta_k}\log p_x", neg_hess))
    ev.identity("-Hessian of log p_x = diag p - p p^T (information equality, general n)", neg_hess,
                candidate(pth, j, k), simplify=sum_simplify, key="hessian-of-log-p-x-diag-p-p-p-t-information")
    # scaling: theta = s/tau
    at = lambda e: e.replace(lambda a: isinstance(a, sp.Indexed) and a.base == theta,  # noqa: E731
                             lambda a: s[a.indices[0]] / tau)
    I_at = at(candidate(pth, j, k))
    ev.step(r"Evaluate at $\theta = s/\tau$, where $p(\theta) = p^\star$", eq(r"\frac1\tau\mathcal{I}_{jk}(s/\tau)", I_at / tau))
    ev.identity("softmax Jacobian = (1/tau) I(theta)|_{theta = s/tau} (general n)", Jac, I_at / tau, simplify=sum_simplify,
                key="softmax-jacobian-1-tau-i-theta-theta-s-tau")
    ev.step(r"In $s$-coordinates the Fisher metric pulls back by $d\theta/ds = I/\tau$: $\mathcal I_s = \mathcal I(\theta)/\tau^2$. "
            r"So Jacobian = Hessian = $\frac1\tau\mathcal I(\theta) = \tau\mathcal I_s$ (the 'scaling' of the claim, made explicit)")
    null = sp.Sum(candidate(pth, j, k), (k, 1, n))
    ev.identity("I(theta) 1 = 0: the Fisher matrix is singular along the all-ones direction (general n)",
                resolve(null, [j]), 0, simplify=sum_simplify,
                key="i-theta-1-0-the-fisher-matrix-is-singular-along")
    ev.step(r"For $p > 0$, $\mathcal I v = \operatorname{diag}(p)(v - \langle p,v\rangle\mathbf 1) = 0$ forces "
            r"$v = \langle p,v\rangle\mathbf 1$: the kernel is exactly $\operatorname{span}(\mathbf 1)$, the direction along which "
            r"softmax is invariant; $\mathcal I$ is positive definite on the tangent space $\mathbf 1^\perp$")
    return ok


def _natural_gradient_is_the_advantage_modulo_ones(ev: Evidence) -> None:
    r""":math:`\mathcal I A = \nabla_\theta L` with :math:`A = g - \mathbb E_p[g]`, so the natural gradient
    :math:`\mathcal I^+\nabla_\theta L = g - \bar g\mathbf 1` is :math:`A` modulo :math:`\mathbf 1`."""
    Gbar = Ep(lambda i: g[i], idx=l, pp=P)
    A = lambda i: g[i] - Gbar  # noqa: E731
    I_p = lambda a, bb: sp.KroneckerDelta(a, bb) * P[a] - P[a] * P[bb]  # noqa: E731
    grad_theta = P[j] * (g[j] - Gbar)  # dL/dtheta_j (EOT-PG with tau = 1)
    IA = resolve(sp.Sum(I_p(j, k) * A(k), (k, 1, n)), [j])
    ev.step(r"The Euclidean gradient in $\theta$ is $\mathcal I g = \operatorname{diag}(p) A$; applying $\mathcal I$ to the "
            r"advantage $A = g - \mathbb E_p[g]\mathbf 1$",
            eq(r"(\mathcal{I}A)_j", IA))
    ev.identity("I A = grad_theta L: the advantage solves the natural-gradient equation (general n)",
                IA - grad_theta, 0, simplify=lambda e: on_simplex(e, [(sp.Sum(P[k], (k, 1, n)), 1)]),
                key="i-a-grad-theta-l-the-advantage-solves-the")
    ev.identity("E_p[A] = 0: A is the p-centred solution (others differ by multiples of 1)",
                Ep(A, idx=k, pp=P), 0, simplify=lambda e: on_simplex(e, [(sp.Sum(P[k], (k, 1, n)), 1)]),
                key="e-p-a-0-a-is-the-p-centred-solution-others")
    gmean = sp.Sum(g[l], (l, 1, n)) / n
    ev.identity("g - mean(g) 1 lies in 1^perp (general n)", sp.Sum(g[k] - gmean, (k, 1, n)), 0, simplify=sum_simplify,
                key="g-mean-g-1-lies-in-1-perp-general-n")
    ev.step(r"$\mathcal I^+ b$ is the unique solution of $\mathcal I x = b$ in "
            r"$\operatorname{range}\mathcal I = (\ker\mathcal I)^\perp = \mathbf 1^\perp$ ($\mathcal I$ symmetric). Since "
            r"$\mathcal I(g - \bar g\mathbf 1) = \mathcal I g = \nabla_\theta L$ ($\mathcal I\mathbf 1 = 0$) and "
            r"$g - \bar g\mathbf 1 \in \mathbf 1^\perp$:",
            r"\mathcal{I}^{+}\nabla_\theta L = g - \bar g\,\mathbf 1,\qquad \bar g = \tfrac1n\textstyle\sum_l g_l")
    ev.step(r"Natural gradient = $\mathcal I^+\nabla_\theta L$ = orthogonal projection of $A$ onto $\mathbf 1^\perp$ = "
            r"$g - \bar g\mathbf 1$; it differs from $A$ only along $\ker\mathcal I = \operatorname{span}(\mathbf 1)$. "
            "Natural-gradient step (pseudo-inverse, i.e. on the tangent space):",
            r"\theta \leftarrow \theta - \eta\,\mathcal{I}^{+}\nabla_\theta L = \theta - \eta\,(g - \bar g\,\mathbf 1)"
            r"\ \equiv\ \theta - \eta A\ \ (\mathrm{mod}\ \mathbf 1),\qquad "
            r"s \leftarrow s - \eta\,\mathcal{I}_s^{+}\nabla_s L = s - \eta\,\tau\,(g - \bar g\,\mathbf 1)")
    ev.step(r"On the simplex this is the Fisher–Rao (Shahshahani) gradient: $dp = J\,d\theta = -\eta\operatorname{diag}(p) A$ "
            "to first order",
            r"p \leftarrow p - \eta\, p \odot (g - \mathbb{E}_p[g]) + O(\eta^2)")


def _kl_trust_region_steps_along_the_fisher_rao_gradient(ev: Evidence) -> None:
    r"""The gradient of :math:`\mathrm{KL}(p\|p(\theta + \delta))` is :math:`p(\theta + \delta) - p`: the KL trust-region
    step is the Fisher-Rao one."""
    dl = sp.IndexedBase("delta", real=True)
    qd = lambda a: sp.exp(theta[a] + dl[a]) / sp.Sum(sp.exp(theta[l] + dl[l]), (l, 1, n))  # noqa: E731
    KL = sp.Sum(P[j] * (sp.log(P[j]) - sp.expand_log(sp.log(qd(j)), force=True)), (j, 1, n))
    dKL = resolve(sp.diff(KL, dl[k]), [k])
    ev.step(r"KL trust region: minimise $\langle\nabla_\theta L, \delta\rangle$ s.t. $\mathrm{KL}(p\|p(\theta + \delta)) \le \epsilon$. "
            "Gradient of the constraint, through the sums", eq(r"\partial_{\delta_k}\mathrm{KL}(p\|p(\theta+\delta))", dKL))
    ev.identity("d KL(p || p(theta+delta))/d delta_k = p(theta+delta)_k - p_k on the simplex (general n)",
                dKL - (qd(k) - P[k]), 0, simplify=lambda e: on_simplex(e, [(sp.Sum(P[j], (j, 1, n)), 1)]),
                key="d-kl-p-p-theta-delta-d-delta-k-p-theta-delta-k-p")
    ev.step(r"Lagrange with $\nabla_\theta L = p \odot A$: $p \odot A + \nu (p_{\rm new} - p) = 0$, so for every radius the step "
            r"moves $p$ exactly along the Fisher-Rao gradient $-p \odot A$ (checked by SLSQP in the numeric check)",
            r"p_{\mathrm{new}} = p - \tfrac{1}{\nu}\, p \odot \big(g - \mathbb{E}_p[g]\big)")


def _fisher_matrix_for_three_outcomes_has_rank_two(ev: Evidence) -> None:
    r"""Explicit :math:`n = 3`: :math:`\det\mathcal I = 0` and :math:`\operatorname{rank}\mathcal I = 2`."""
    ps = sp.symbols("p1:4", positive=True)
    I3 = sp.Matrix(3, 3, lambda a, bb: (ps[a] if a == bb else 0) - ps[a] * ps[bb]).subs(ps[2], 1 - ps[0] - ps[1])
    ev.step(r"Explicit $n = 3$ ($p_3 = 1 - p_1 - p_2$): $\mathcal I$ and its determinant", r"\mathcal{I} = " + sp.latex(sp.simplify(I3))
            + r",\quad \det\mathcal{I} = " + sp.latex(sp.simplify(I3.det())))
    ev.check("n = 3: det I = 0 and rank I = 2 (singular along 1 only)", "symbolic", "det I, rank I",
             f"{sp.simplify(I3.det())}, {I3.rank(simplify=True)}", "exact",
             sp.simplify(I3.det()) == 0 and I3.rank(simplify=True) == 2, "exact matrix algebra",
             key="n-3-det-i-0-and-rank-i-2-singular-along-1-only", numerical_class="exact", evidence="proof")


# ---------------------------------------------------------------------------
# EOT-LIMITS
# ---------------------------------------------------------------------------


def limits(*, zero_limit=lambda mm: 1 / mm, inf_limit=lambda nn: 1 / nn) -> Evidence:
    r"""EOT-LIMITS. For :math:`s\in\mathbb R^n` with argmax set :math:`A` (:math:`|A| = m`), gap :math:`\Delta = \max s - \max_{l\notin A}s_l`,
    range :math:`R = \max s - \min s`: :math:`\lim_{\tau\to0^+}\operatorname{softmax}(s/\tau) = u_A` (uniform on :math:`A`; :math:`e_{\arg\max}`
    when :math:`m = 1`) with :math:`\tfrac2n e^{-\Delta/\tau} \le \|p - u_A\|_1 \le \tfrac{2(n-m)}{m}e^{-\Delta/\tau}`; and
    :math:`\lim_{\tau\to\infty}\operatorname{softmax}(s/\tau) = \tfrac1n\mathbf 1` with
    :math:`p_j = \tfrac1n + \tfrac{s_j - \bar s}{n\tau} + O(\tau^{-2})`, :math:`|p_j - \tfrac1n| \le (e^{R/\tau}-1)/n`.

    Source: 003_e1554db561d6b2f9.txt §4 (temperature :math:`\tau` in the softmax); 000 (abstract).
    """
    ev = Evidence()
    cst = sp.Symbol("c", real=True)
    shifted = resolve(sp.exp((s[j] + cst) / tau) / sp.Sum(sp.exp((s[l] + cst) / tau), (l, 1, n)), [j])
    ev.identity("shift invariance softmax((s + c)/tau) = softmax(s/tau) (general n): WLOG max_j s_j = 0",
                shifted, softmax(j), simplify=sum_simplify,
                key="shift-invariance-softmax-s-c-tau-softmax-s-tau")
    ok_inf = _high_temperature_limit_is_uniform(ev, inf_limit)
    ok0 = _low_temperature_limit_is_uniform_on_the_argmax(ev, zero_limit)
    _three_outcome_limits_by_sympy(ev)
    if not (ok0 and ok_inf):
        ev.finding = (r"$\operatorname{softmax}(s/\tau)$ tends to the uniform distribution on $\arg\max s$ as $\tau \to 0$ and "
                      r"to $1/n$ as $\tau \to \infty$")
    return ev


def _high_temperature_limit_is_uniform(ev: Evidence, inf_limit: Callable) -> bool:
    r""":math:`\tau \to \infty` (:math:`\epsilon = 1/\tau`): :math:`p_j \to 1/n`, with first-order term
    :math:`(s_j - \bar s)/(n\tau)` and a bounded remainder; returns whether the candidate limit is right."""
    e = sp.Symbol("epsilon", positive=True)
    pe = sp.exp(e * s[j]) / sp.Sum(sp.exp(e * s[l]), (l, 1, n))
    ev.step(r"$\tau \to \infty$: write $\epsilon = 1/\tau$; $p_j(\epsilon)$ is a ratio of finite sums of continuous functions "
            r"with denominator $\ge n e^{-\epsilon R} > 0$, so the limit is the value at $\epsilon = 0$", eq("p_j(\\epsilon)", pe))
    at0 = pe.subs(e, 0).doit()
    ev.step(r"Value at $\epsilon = 0$", eq(r"\lim_{\tau\to\infty} p_j", at0))
    ok_inf = ev.identity("lim_{tau->inf} softmax(s/tau)_j = 1/n (general n)", at0, inf_limit(n),
                         key="lim-tau-inf-softmax-s-tau-j-1-n-general-n")
    d1 = resolve(sp.diff(pe, e), [j]).subs(e, 0).doit()
    ev.step(r"First-order term: $dp_j/d\epsilon$ at $\epsilon = 0$ (through the sum)", eq(r"\partial_\epsilon p_j|_{0}", d1))
    sbar = sp.Sum(s[l], (l, 1, n)) / n
    ev.identity("p_j = 1/n + (s_j - mean s)/(n tau) + O(1/tau^2) (general n)", d1, (s[j] - sbar) / n, simplify=sum_simplify,
                key="p-j-1-n-s-j-mean-s-n-tau-o-1-tau-2-general-n")
    d2 = sp.diff(pe, e, 2)
    Es = sp.Sum(pe.xreplace({j: l}) * s[l], (l, 1, n))
    Es2 = sp.Sum(pe.xreplace({j: l}) * s[l] ** 2, (l, 1, n))
    rem = pe * ((s[j] - Es) ** 2 - (Es2 - Es**2))
    ev.identity("d^2 p_j/d eps^2 = p_j[(s_j - E_p s)^2 - Var_p s] (general n)", d2, rem, simplify=sum_simplify,
                key="d-2-p-j-d-eps-2-p-j-s-j-e-p-s-2-var-p-s-general")
    ev.step(r"Both $(s_j - \mathbb E_p s)^2$ and $\mathrm{Var}_p s$ lie in $[0, R^2]$, $R = \max s - \min s$, and "
            r"$np_j \le e^{\epsilon R}$; Taylor with remainder gives the proven $O(1/\tau)$ rate",
            r"\Big|\,n\tau\big(p_j - \tfrac1n\big) - (s_j - \bar s)\Big| \le \frac{R^2 e^{R/\tau}}{2\tau},\qquad "
            r"\big|p_j - \tfrac1n\big| \le \frac{e^{R/\tau} - 1}{n}")
    return ok_inf


def _low_temperature_limit_is_uniform_on_the_argmax(ev: Evidence, zero_limit: Callable) -> bool:
    r""":math:`\tau \to 0` with ties: :math:`p \to u_A`, uniform on the argmax set :math:`A`, and
    :math:`\|p - u_A\|_1 = 2r/(m + r)` with :math:`r = \sum_{l>m} e^{-\delta_l/\tau}`; returns whether the candidate
    limit is right."""
    mm = sp.Symbol("m", integer=True, positive=True)
    dl = sp.IndexedBase("delta", positive=True)
    D = sp.Symbol("Delta", positive=True)
    r = sp.Sum(sp.exp(-dl[l] / tau), (l, mm + 1, n))
    Zsplit = sp.Sum(sp.exp(0 / tau), (l, 1, mm)) + r
    ev.step(r"$\tau \to 0$: after sorting, $s_1 = \dots = s_m = 0 = \max$ (the argmax set $A$, $|A| = m$) and $s_l = -\delta_l$, "
            r"$\delta_l \ge \Delta > 0$ for $l > m$; the partition function splits", eq("Z", Zsplit))
    Zs = Zsplit.doit()
    rr = sp.Symbol("r", positive=True)
    r_def = r.doit()
    p_in, p_out = 1 / Zs, sp.exp(-dl[j] / tau) / Zs
    ev.step(r"With $r(\tau) = \sum_{l>m} e^{-\delta_l/\tau}$: $p_j = 1/(m + r)$ on $A$ and $e^{-\delta_j/\tau}/(m + r)$ off $A$",
            eq(r"p_{j\in A}", p_in))
    ev.step(r"Squeeze: each of the $n - m$ terms of $r$ lies in $(0, e^{-\Delta/\tau}]$",
            r"0 < r(\tau) \le (n-m)\,e^{-\Delta/\tau}")
    lim_r = sp.limit((n - mm) * sp.exp(-D / tau), tau, 0, "+")
    ev.step("SymPy limit of the upper bound", (sp.Limit((n - mm) * sp.exp(-D / tau), tau, 0, "+"), lim_r))
    ev.check("r(tau) -> 0 as tau -> 0+ (squeeze with the SymPy limit of the bound)", "symbolic",
             r"$\lim_{\tau\to0^+}(n-m)e^{-\Delta/\tau}$", str(lim_r), "exact", lim_r == 0, "SymPy limit, exact",
             key="r-tau-0-as-tau-0-squeeze-with-the-sympy-limit-of", numerical_class="exact", evidence="proof")
    lim_in = sp.limit(p_in.xreplace({r_def: rr}), rr, 0, "+")
    ev.step(r"Hence on $A$", (sp.Limit(1 / (mm + rr), rr, 0, "+"), lim_in))
    ok0 = ev.identity("lim_{tau->0} p_j = 1/|A| on the argmax set (general n, ties allowed; e_argmax when m = 1)",
                      lim_in, zero_limit(mm), key="lim-tau-0-p-j-1-a-on-the-argmax-set-general-n")
    lim_out = sp.limit(sp.exp(-D / tau) / mm, tau, 0, "+")
    ev.check("off the argmax set 0 < p_j <= exp(-Delta/tau)/m -> 0", "symbolic",
             r"$\lim_{\tau\to0^+} e^{-\Delta/\tau}/m$", str(lim_out), "exact", lim_out == 0, "SymPy limit, exact",
             key="off-the-argmax-set-0-p-j-exp-delta-tau-m-0", numerical_class="exact", evidence="proof")
    dist = mm * (1 / mm - p_in) + sp.Sum(p_out, (j, mm + 1, n))
    ev.step(r"$L^1$ distance to the uniform distribution $u_A$ on $A$ (on $A$, $1/(m+r) \le 1/m$)", eq(r"\|p - u_A\|_1", dist))
    # r is the name of the sum: factor the common denominator out of the second sum, then name it
    dist_r = (mm * (1 / mm - 1 / (mm + rr)) + sum_normal(sp.Sum(p_out * Zs, (j, mm + 1, n))) / (mm + rr))
    dist_r = dist_r.xreplace({sum_normal(r_def): rr})
    ev.identity("||p - u_A||_1 = 2 r/(m + r) (general n)", dist_r, 2 * rr / (mm + rr),
                key="p-u-a-1-2-r-m-r-general-n")
    ev.step(r"Rate: $e^{-\Delta/\tau} \le r \le (n - m)\,e^{-\Delta/\tau}$ (the index at gap $\Delta$ is one term), hence",
            r"\frac{2}{n}\,e^{-\Delta/\tau} \le \|p - u_A\|_1 \le \frac{2(n-m)}{m}\,e^{-\Delta/\tau}")
    return ok0


def _three_outcome_limits_by_sympy(ev: Evidence) -> None:
    """Explicit :math:`n = 3`: both limits by ``sp.limit`` directly, with a tie and without."""
    a1, a2 = sp.symbols("delta_1 delta_2", positive=True)
    ex = lambda v: [sp.exp(vi / tau) / sum(sp.exp(vj / tau) for vj in v) for vi in v]  # noqa: E731
    tie = [sp.limit(pi, tau, 0, "+") for pi in ex([0, 0, -a1])]
    dis = [sp.limit(pi, tau, 0, "+") for pi in ex([0, -a1, -a1 - a2])]
    big = [sp.limit(pi, tau, sp.oo) for pi in ex([0, -a1, -a1 - a2])]
    ev.step(r"Explicit $n = 3$ by SymPy limit: $s = (0, 0, -\delta_1)$ (a tie), $s = (0, -\delta_1, -\delta_1 - \delta_2)$",
            r"\lim_{\tau\to0^+}: " + sp.latex(tuple(tie)) + r",\ " + sp.latex(tuple(dis))
            + r";\quad \lim_{\tau\to\infty}: " + sp.latex(tuple(big)))
    ok3 = tie == [sp.Rational(1, 2)] * 2 + [0] and dis == [1, 0, 0] and big == [sp.Rational(1, 3)] * 3
    ev.check("n = 3 limits by SymPy: tie -> (1/2, 1/2, 0), distinct -> (1, 0, 0), tau -> inf -> 1/3", "symbolic",
             "`sp.limit` of each component", f"{tie}; {dis}; {big}", "exact", ok3, "SymPy limits are exact",
             key="n-3-limits-by-sympy-tie-1-2-1-2-0-distinct-1-0-0", numerical_class="exact", evidence="proof")


__all__ = ["policy_gradient", "fisher", "limits", "advantage_gradient", "on_simplex", "resolve"]
