r"""SymPy re-derivation of the regularised-argmax template (EOT-OMEGA): other :math:`\Omega`, other attentions.

Template, with :math:`\Omega(p) = \sum_j \omega(p_j)` strictly convex:

.. math::

    p^*(s) = \arg\max_{p \in \Delta_n}\ \langle p, s\rangle - \Omega(p).

KKT (concave objective, affine constraints: necessary and sufficient):

.. math::

    s_j - \omega'(p_j) - \lambda + \mu_j = 0,\quad \mu_j \ge 0,\quad \mu_j p_j = 0,\quad \textstyle\sum_j p_j = 1,

so :math:`p_j = (\omega')^{-1}(s_j - \lambda)` where :math:`s_j - \lambda > \omega'(0^+)`, else 0; the threshold
:math:`\lambda` (:math:`\tau^\star` below) is fixed by :math:`\sum_j p_j = 1`. Three instances, all for general :math:`n`:

* :math:`\omega = \tau p\log p` gives :math:`\operatorname{softmax}(s/\tau)` (:math:`\omega'(0^+) = -\infty`: full support; EOT-KKT);
* :math:`\omega = p^2/2` gives sparsemax :math:`[s - \tau^\star]_+` (Martins & Astudillo 2016);
* :math:`\omega = (p^a - p)/(a(a-1))` gives :math:`a`-entmax :math:`[(a-1)s - \tau^\star]_+^{1/(a-1)}` (Tsallis; Peters et al. 2019).

:math:`\tau^\star` is the threshold (a Lagrange multiplier), not the temperature :math:`\tau` of the entropic problem.
"""

from __future__ import annotations

from typing import Callable

import sympy as sp

from attnverify.evidence import Evidence
from attnverify.sources import SOURCE_000
from attnverify.derivations._sums import eq, readable, resolve, sum_normal, sum_simplify
from attnverify.derivations.eot import n, s, tau


j, k, i = sp.symbols("j k i", integer=True, positive=True)
K = sp.Symbol("K", integer=True, positive=True)  # support size (scores sorted decreasingly)
p = sp.IndexedBase("p", positive=True)
lam = sp.Symbol("lambda", real=True)
beta = sp.Symbol("beta", positive=True)
alpha = 1 + beta  # Tsallis index alpha > 1
x = sp.Symbol("x", positive=True)


def sparsemax_threshold(KK):
    r""":math:`\tau^\star = (\sum_{i\le K} s_i - 1)/K` for the support :math:`\{1..K\}` of sorted scores."""
    return (sp.Sum(s[i], (i, 1, KK)) - 1) / KK


def entmax_form(a, thr):
    r""":math:`[(a - 1) s_k - \tau^\star]^{1/(a-1)}` on the support."""
    return ((a - 1) * s[k] - thr) ** (1 / (a - 1))


def _stationary_p(omega, ev, label):
    r"""Lagrangian of the template with :math:`\sum_j \omega(p_j)`; stationarity at an interior :math:`p_k` solved for :math:`p_k`."""
    Lg = sp.Sum(p[j] * s[j] - omega(p[j]), (j, 1, n)) - lam * (sp.Sum(p[j], (j, 1, n)) - 1)
    stat = resolve(sp.diff(Lg, p[k]), [k])
    ev.step(f"{label}: stationarity where $p_k > 0$ ($\\mu_k = 0$), differentiating through the sum", sp.Eq(stat, 0))
    sol = sp.solve(sp.Eq(stat, 0), p[k])
    if len(sol) != 1:
        raise ValueError(f"expected one solution for p_k, got {sol}")
    ev.step(f"{label}: solve for $p_k$", (p[k], sol[0]))
    return sol[0]


def omega_template(*, sparse_thr=sparsemax_threshold) -> Evidence:
    r"""EOT-OMEGA. For :math:`\Omega(p) = \sum_j\omega(p_j)` strictly convex, :math:`\arg\max_{p\in\Delta_n}\langle p,s\rangle
    - \Omega(p)` is :math:`p_j = (\omega')^{-1}(s_j - \tau^\star)` where :math:`s_j - \tau^\star > \omega'(0^+)`, else :math:`0`,
    with :math:`\tau^\star` fixed by :math:`\sum_j p_j = 1`. Shannon :math:`\omega = \tau p\log p`: :math:`\operatorname{softmax}(s/\tau)`;
    :math:`\omega = p^2/2`: sparsemax :math:`[s - \tau^\star]_+`, :math:`\tau^\star = (\sum_{i\le K}s_{(i)} - 1)/K`,
    :math:`K = \max\{k: 1 + ks_{(k)} > \sum_{i\le k}s_{(i)}\}`; Tsallis :math:`\omega = (p^\alpha - p)/(\alpha(\alpha-1))`:
    :math:`\alpha`-entmax :math:`[(\alpha-1)s - \tau^\star]_+^{1/(\alpha-1)}` (general :math:`n`, :math:`K`).

    Source: 000_126cee95456ccd42.txt (attention as a regularised optimisation; the generalisation to other
    regularisers is this project's, after Martins & Astudillo 2016 and Peters et al. 2019).
    """
    ev = Evidence()
    ev.step(r"Template: attention = argmax over the simplex of $\langle p, s\rangle - \Omega(p)$, $\Omega = \sum_j \omega(p_j)$. "
            r"KKT (concave objective, affine constraints: necessary and sufficient), $\mu_j \ge 0$ the multipliers of $p_j \ge 0$",
            r"s_j - \omega'(p_j) - \lambda + \mu_j = 0,\quad \mu_j \ge 0,\quad \mu_j p_j = 0,\quad \textstyle\sum_j p_j = 1"
            r"\ \Rightarrow\ p_j = (\omega')^{-1}(s_j - \lambda)\ \text{if } s_j - \lambda > \omega'(0^+),\ \text{else } 0")
    _shannon_instance_is_softmax(ev)
    ok_norm = _sparsemax_instance_is_the_thresholded_scores(ev, sparse_thr)
    _tsallis_instance_is_entmax(ev)
    ev.step(r"Temperature: $\arg\max \langle p,s\rangle - T\,\Omega(p) = \arg\max \langle p, s/T\rangle - \Omega(p)$, so every "
            r"instance takes a temperature as $s \to s/T$; Shannon with $T = \tau$ is EOT attention "
            r"($\operatorname{softmax}(s/\tau)$), $\alpha = 2$ is $\operatorname{sparsemax}(s/T)$")
    if not ok_norm:
        ev.finding = r"the sparsemax threshold is $\tau^\star = (\sum_{i\le K} s_i - 1)/K$"
    return ev


def _shannon_instance_is_softmax(ev: Evidence) -> None:
    r""":math:`\omega = \tau p\log p`: :math:`\omega'(0^+) = -\infty`, full support, and the template gives
    :math:`\operatorname{softmax}(s/\tau)` (EOT-KKT)."""
    pk = _stationary_p(lambda q: tau * q * sp.log(q), ev, r"Shannon, $\omega = \tau p\log p$")
    w0 = sp.limit(sp.diff(tau * x * sp.log(x), x), x, 0, "+")
    ev.step(r"$\omega'(0^+) = -\infty$: no bound is active, the support is everything", eq(r"\omega'(0^+)", w0))
    Zc = sp.Sum(pk.xreplace({k: j}), (j, 1, n))
    (lam_sol,) = sp.solve(sp.Eq(sp.factor_terms(sp.powsimp(sp.expand(Zc))), 1), lam)
    soft = pk.subs(lam, lam_sol)
    ev.identity("Shannon instance = softmax(s/tau) (EOT-KKT recovered from the template; general n)", soft,
                sp.exp(s[k] / tau) / sp.Sum(sp.exp(s[j] / tau), (j, 1, n)), simplify=sum_simplify,
                key="shannon-instance-softmax-s-tau-eot-kkt-recovered")


def _sparsemax_instance_is_the_thresholded_scores(ev: Evidence, sparse_thr: Callable) -> bool:
    r""":math:`\omega = p^2/2`: :math:`p = [s - \tau^\star]_+` with :math:`\tau^\star_K = (\sum_{i\le K} s_i - 1)/K` and
    :math:`K` the largest :math:`k` with :math:`1 + k s_k > \sum_{i\le k} s_i`; returns whether the candidate threshold
    normalises :math:`p`."""
    pk = _stationary_p(lambda q: q**2 / 2, ev, r"sparsemax, $\omega = p^2/2$")
    ev.identity("sparsemax: p_k = s_k - lambda on the support, and omega'(0) = 0, so p_k = [s_k - tau*]_+ with tau* = lambda",
                pk, s[k] - lam, key="sparsemax-p-k-s-k-lambda-on-the-support-and")
    thr = sparse_thr(K)
    ev.step(r"Sort $s_1 \ge \dots \ge s_n$; on the support $\{1..K\}$, $\sum_{i\le K} (s_i - \tau^\star) = 1$ gives the threshold",
            eq(r"\tau^\star_K", thr))
    ok_norm = ev.identity("sum_{i<=K} (s_i - tau*_K) = 1 (general K)", sp.Sum(s[i] - thr, (i, 1, K)), 1, simplify=sum_simplify,
                          key="sum-i-k-s-i-tau-k-1-general-k")
    f = lambda kk: 1 + kk * s[kk] - sp.Sum(s[i], (i, 1, kk))  # noqa: E731
    ev.identity("support condition: K (s_K - tau*_K) = 1 + K s_K - sum_{i<=K} s_i, so s_K > tau*_K iff f(K) > 0",
                K * (s[K] - thr), f(K), simplify=sum_simplify,
                key="support-condition-k-s-k-tau-k-1-k-s-k-sum-i-k-s")
    ev.identity("f(k+1) - f(k) = k (s_{k+1} - s_k) <= 0 for sorted s: f decreases from f(1) = 1, so "
                "K = max{k : 1 + k s_k > sum_{i<=k} s_i} is well defined",
                f(k + 1) - f(k), k * (s[k + 1] - s[k]),
                simplify=lambda e: sum_simplify(sp.expand(e.replace(
                    lambda a: isinstance(a, sp.Sum) and a.limits[0][2] == k + 1,
                    lambda a: sp.Sum(a.function, (a.limits[0][0], 1, k)) + a.function.xreplace({a.limits[0][0]: k + 1})))),
                key="f-k-1-f-k-k-s-k-1-s-k-0-for-sorted-s-f-decreases")
    ev.identity("excluded scores: f(K+1) = K (s_{K+1} - tau*_K), so f(K+1) <= 0 iff s_{K+1} <= tau*_K (dual feasibility, "
                "mu_j = tau* - s_j >= 0 off the support)",
                f(K + 1).replace(lambda a: isinstance(a, sp.Sum), lambda a: sp.Sum(s[i], (i, 1, K)) + s[K + 1]),
                K * (s[K + 1] - thr), simplify=sum_simplify,
                key="excluded-scores-f-k-1-k-s-k-1-tau-k-so-f-k-1-0")
    ev.step(r"So $p = [s - \tau^\star]_+$ with $\tau^\star_K$ satisfies all KKT conditions: it is the sparsemax, the Euclidean "
            r"projection of $s$ onto the simplex ($\langle p,s\rangle - \|p\|^2/2 = -\|p - s\|^2/2 + \|s\|^2/2$)")
    return ok_norm


def _tsallis_instance_is_entmax(ev: Evidence) -> None:
    r""":math:`\omega = (p^\alpha - p)/(\alpha(\alpha - 1))`: :math:`\alpha`-entmax
    :math:`[(\alpha - 1) s - \tau^\star]_+^{1/(\alpha-1)}`, sparsemax at :math:`\alpha = 2`, and the quadratic threshold
    of :math:`\alpha = 3/2`."""
    om = lambda q: (q**alpha - q) / (alpha * (alpha - 1))  # noqa: E731
    lim1 = sp.limit(om(x), beta, 0, "+")
    ev.step(r"Tsallis: $\omega_\alpha(p) = (p^\alpha - p)/(\alpha(\alpha - 1))$, $\alpha = 1 + \beta > 1$; as $\alpha \to 1$ it "
            r"becomes Shannon's $p\log p$", (sp.Limit(om(x), beta, 0, "+"), lim1))
    ev.identity("lim_{alpha->1} (x^alpha - x)/(alpha(alpha-1)) = x log x", lim1, x * sp.log(x),
                key="lim-alpha-1-x-alpha-x-alpha-alpha-1-x-log-x")
    pa = sp.Symbol("P", positive=True)  # p_k on the support, solved from omega'(p_k) = s_k - lambda
    dom = sp.diff(om(pa), pa)
    ev.step(r"$\omega_\alpha'(p)$ (finite at 0 for $\alpha > 1$: bounds can be active, the attention can be sparse)",
            eq(r"\omega_\alpha'(P)", sp.simplify(dom)))
    w0a = sp.limit(dom, pa, 0, "+")
    ev.check("omega'_alpha(0+) = -1/(alpha(alpha - 1)) is finite for alpha > 1", "symbolic", r"$\lim_{p\to0^+}\omega_\alpha'(p)$",
             str(w0a), "exact", sp.simplify(w0a + 1 / (alpha * (alpha - 1))) == 0, "SymPy limit, exact",
             key="omega-alpha-0-1-alpha-alpha-1-is-finite-for", numerical_class="exact", evidence="proof")
    tstar = sp.Symbol(r"\tau^\star", real=True)
    y = sp.Symbol("y", positive=True)  # y = p_k^{alpha - 1}
    dom_y = (alpha * y - 1) / (alpha * (alpha - 1))
    ev.identity("omega'_alpha(p) = (alpha p^{alpha-1} - 1)/(alpha(alpha-1))", dom, dom_y.subs(y, pa ** (alpha - 1)),
                key="omega-alpha-p-alpha-p-alpha-1-1-alpha-alpha-1")
    sol_pow = sp.solve(sp.Eq(dom_y, s[k] - lam), y)
    ev.step(r"Solve $\omega'(p_k) = s_k - \lambda$ for $p_k^{\alpha-1}$", (pa ** (alpha - 1), sol_pow[0]))
    ev.identity("p_k^{alpha-1} = (alpha-1) s_k - tau* with tau* = (alpha-1) lambda - 1/alpha",
                sol_pow[0], (alpha - 1) * s[k] - ((alpha - 1) * lam - 1 / alpha),
                key="p-k-alpha-1-alpha-1-s-k-tau-with-tau-alpha-1")
    ev.step(r"The zero branch: $p_k = 0$ iff $s_k - \lambda \le \omega'(0)$ iff $(\alpha-1) s_k \le \tau^\star$, the same "
            "threshold, so",
            eq(r"p_k", sp.Symbol(r"\big[(\alpha-1)s_k - \tau^\star\big]_+^{1/(\alpha-1)}")))
    ev.identity("alpha = 2: omega_2(x) = x^2/2 - x/2, so Omega_2 = ||p||^2/2 - 1/2 on the simplex (the sparsemax regulariser)",
                om(x).subs(beta, 1), x**2 / 2 - x / 2, key="alpha-2-omega-2-x-x-2-2-x-2-so-omega-2-p-2-2-1-2")
    ev.identity("alpha = 2: [(alpha-1) s_k - tau*]^{1/(alpha-1)} = s_k - tau*, the sparsemax form",
                entmax_form(sp.Integer(2), tstar), s[k] - tstar,
                key="alpha-2-alpha-1-s-k-tau-1-alpha-1-s-k-tau-the")
    # alpha = 3/2: quadratic threshold on the support {1..K}, a_i = s_i/2
    S1, S2 = sp.symbols("S_1 S_2", real=True)  # S1 = sum_{i<=K} a_i, S2 = sum_{i<=K} a_i^2
    t15 = (S1 - sp.sqrt(S1**2 - K * (S2 - 1))) / K
    quad = sum_normal(sp.expand(sp.Sum((s[i] / 2 - tstar) ** 2, (i, 1, K))))
    ev.step(r"$\alpha = 3/2$: $p_k = (s_k/2 - \tau^\star)^2$; on the support $\sum_{i\le K} (a_i - \tau^\star)^2 = 1$ with "
            r"$a_i = s_i/2$ is a quadratic in $\tau^\star$", sp.Eq(readable(quad), 1))
    quadS = K * tstar**2 - 2 * tstar * S1 + S2 - 1
    ev.identity("the sum expands to K tau*^2 - 2 tau* S1 + S2 (S1 = sum a_i, S2 = sum a_i^2)",
                quad - 1, quadS.subs({S1: sp.Sum(s[i] / 2, (i, 1, K)), S2: sp.Sum(s[i] ** 2 / 4, (i, 1, K))}),
                simplify=sum_simplify, key="the-sum-expands-to-k-tau-2-2-tau-s1-s2-s1-sum-a")
    ev.step(r"The smaller root ($\tau^\star < a_i$ on the support, and the roots are symmetric about the mean of $a$)",
            (tstar, t15))
    ev.identity("tau*_{3/2} solves the quadratic", quadS.subs(tstar, t15), 0, simplify=lambda e: sp.simplify(sp.expand(e)),
                key="tau-3-2-solves-the-quadratic")
