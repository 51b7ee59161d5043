r"""SymPy re-derivations for attention with a prior (GOAT-PRIOR, GOAT-UNIFORM, GOAT-SINK) and for masks (EOT-SDPA).

GOAT (002, second abstract) replaces the entropy of the one-sided EOT problem by :math:`\tau\,\mathrm{KL}(p\|\pi)`
with a learnable prior :math:`\pi`.  Everything here is for a general number :math:`n` of keys (``IndexedBase`` +
``Sum``, derivatives through the sum).  The abstract gives no formulas; what is derived is the
precise form the claims need, including the one unstated assumption that decides whether a fused
kernel computes GOAT "unchanged": torch's SDPA adds ``attn_mask`` *after* multiplying :math:`q\cdot k` by
``scale`` (default :math:`1/\sqrt d`), so the mask must be :math:`\log\pi` (not :math:`\tau\log\pi`), and the
kernel's scale must be :math:`1/\tau`.
"""

from __future__ import annotations

from typing import Callable

import sympy as sp

from attnverify.evidence import Evidence
from attnverify.sources import SOURCE_002
from attnverify.derivations._sums import eq, resolve, sum_normal, sum_simplify
from attnverify.derivations.eot import n, s, tau
from attnverify.derivations.eot_gradients import on_simplex


j, k, l, i = sp.symbols("j k l i", integer=True, positive=True)
p = sp.IndexedBase("p", positive=True)
pi = sp.IndexedBase("pi", positive=True)
M = sp.IndexedBase("M", real=True)  # an additive logit mask
w = sp.IndexedBase("w", real=True)  # prior logits
g = sp.IndexedBase("g", real=True)
lam = sp.Symbol("lambda", real=True)
kappa = sp.Symbol("kappa", real=True)
SIMPLEX = [(sp.Sum(p[j], (j, 1, n)), 1)]


def biased_softmax(bias, idx, scale=1 / tau, hi=n):
    """softmax(scale * s + bias)_idx: what SDPA computes with attn_mask = bias and scale = scale."""
    return sp.exp(scale * s[idx] + bias(idx)) / sp.Sum(sp.exp(scale * s[l] + bias(l)), (l, 1, hi))


def goat_softmax(idx):
    r""":math:`\operatorname{softmax}(s/\tau + \log\pi)_{idx}`."""
    return biased_softmax(lambda a: sp.log(pi[a]), idx)


def _J_prior(pp=p):
    return -sp.Sum(pp[j] * s[j], (j, 1, n)) + tau * sp.Sum(pp[j] * sp.log(pp[j] / pi[j]), (j, 1, n))


# ---------------------------------------------------------------------------
# GOAT-PRIOR
# ---------------------------------------------------------------------------


def _prior_evidence(candidate: Callable = goat_softmax, mask: Callable = lambda a: sp.log(pi[a])) -> Evidence:
    ev = Evidence()
    J = _J_prior()
    ev.step(r"One-sided EOT with the entropy replaced by $\tau\,\mathrm{KL}(p\|\pi)$, $\pi$ in the open simplex (zeros: EOT-SDPA)",
            eq(r"\mathcal{J}_\pi(p)", J))
    Lg = J + lam * (1 - sp.Sum(p[j], (j, 1, n)))
    stat = resolve(sp.diff(Lg, p[k]), [k], 1, n)
    ev.step(r"Lagrangian and stationarity, differentiating through the sum (delta resolved for $1 \le k \le n$)", sp.Eq(stat, 0))
    ell = sp.Symbol("ell", real=True)
    (ell_sol,) = sp.solve(sp.Eq(sp.expand_log(stat, force=True).subs(sp.log(p[k]), ell), 0), ell)
    pk = sp.exp(ell_sol)
    ev.step(r"Solve for $\log p_k$ and exponentiate", (p[k], pk))
    cc = sp.Symbol("c", positive=True)
    ev.step(r"$\exp((\lambda - \tau)/\tau) = c$ is the same for all $k$; $\sum_k p_k = 1$ fixes $c$",
            sp.Eq(sp.Sum(cc * pi[j] * sp.exp(s[j] / tau), (j, 1, n)), 1))
    c_sol = 1 / sp.Sum(pi[j] * sp.exp(s[j] / tau), (j, 1, n))
    p_star = sp.powsimp(sp.expand(pk * sp.exp(-(lam - tau) / tau)) * c_sol)
    ev.step("The minimiser", eq(r"p^\star_k", p_star))
    (lam_sol,) = sp.solve(sp.Eq(sp.exp((lam - tau) / tau), c_sol), lam)
    ev.step("and the multiplier", (lam, lam_sol))
    ev.identity("stationarity holds at p* with this one lambda for every k (general n)",
                stat.subs(p[k], p_star).subs(lam, lam_sol), 0, simplify=sum_simplify,
                key="stationarity-holds-at-p-with-this-one-lambda-for")
    ev.identity("p* sums to 1 (general n)", sp.Sum(p_star.xreplace({k: j}), (j, 1, n)), 1, simplify=sum_simplify,
                key="p-sums-to-1-general-n")
    ok = ev.identity("p* = softmax(s/tau + log pi) (the claim; general n)", p_star, candidate(k), simplify=sum_simplify,
                     metric=r"derived $p^\star_k$ − candidate $\operatorname{softmax}(s/\tau + \log\pi)_k$",
                     key="p-softmax-s-tau-log-pi-the-claim-general-n")
    ev.step("As a logit bias", r"p^\star = \operatorname{softmax}\big(s/\tau + \log\pi\big)")
    _gibbs_variational_identity(ev, J, p_star)
    _prior_as_an_sdpa_mask(ev, p_star, mask)
    _learnable_prior_and_its_gradient(ev)
    if not ok:
        ev.finding = r"the minimiser of $-\langle p,s\rangle + \tau\,\mathrm{KL}(p\|\pi)$ is $\operatorname{softmax}(s/\tau + \log\pi)$"
    return ev




def _gibbs_variational_identity(ev: Evidence, J, p_star) -> None:
    r""":math:`\mathcal J_\pi(p) = -\tau\log\sum_l \pi_l e^{s_l/\tau} + \tau\,\mathrm{KL}(p\|p^\star)` on the simplex:
    :math:`p^\star` is the unique minimiser."""
    # global optimality and uniqueness without convexity arguments: Fenchel-Young / Gibbs
    Fval = -tau * sp.log(sp.Sum(pi[l] * sp.exp(s[l] / tau), (l, 1, n)))
    kl = tau * sp.Sum(p[j] * sp.log(p[j] / p_star.xreplace({k: j})), (j, 1, n))
    ev.step(r"For every $p$ in the simplex, $\mathcal J_\pi(p) = -\tau\log\sum_l \pi_l e^{s_l/\tau} + \tau\,\mathrm{KL}(p\|p^\star)$",
            eq(r"\mathcal{J}_\pi(p) - \tau\,\mathrm{KL}(p\|p^\star)", Fval))
    ev.identity("J_pi(p) - tau KL(p||p*) = -tau log sum_l pi_l exp(s_l/tau) on the simplex (general n)",
                sum_normal(J - kl - Fval, rules=SIMPLEX), 0, simplify=sum_simplify,
                key="j-pi-p-tau-kl-p-p-tau-log-sum-l-pi-l-exp-s-l-tau")
    ev.step(r"$\mathrm{KL} \ge 0$ with equality iff $p = p^\star$: $p^\star$ is the unique global minimiser, "
            r"$\min\mathcal J_\pi = -\tau\log\mathbb E_\pi[e^{s/\tau}]$")


def _prior_as_an_sdpa_mask(ev: Evidence, p_star, mask) -> None:
    r"""SDPA with scale :math:`1/\tau` and ``attn_mask`` :math:`= \log\pi` returns :math:`p^\star` (any row constant);
    :math:`\tau\log\pi` does not."""
    # what a fused kernel needs: SDPA(q, K, V; scale, attn_mask) = softmax(scale * q.K + attn_mask) V
    ev.step(r"torch SDPA computes $\operatorname{softmax}(\mathrm{scale}\cdot\langle q,k_j\rangle + \mathrm{mask}_j)\,V$ with "
            r"$\mathrm{scale} = 1/\sqrt d$ by default: the mask is added AFTER scaling. So GOAT with temperature $\tau$ is "
            r"SDPA with $\mathrm{scale} = 1/\tau$ ($\tau = \sqrt d$: the default) and $\mathrm{mask} = \log\pi$",
            r"\operatorname{SDPA}(q,K,V;\ \mathrm{scale}=1/\tau,\ \mathrm{mask}=M) = \sum_j "
            r"\operatorname{softmax}(s/\tau + M)_j\,v_j")
    sdpa = biased_softmax(lambda a: mask(a) + kappa, k)
    ev.identity("softmax(s/tau + attn_mask + kappa) = GOAT p* for attn_mask = log pi, any row constant kappa (general n)",
                sdpa, p_star, simplify=sum_simplify, key="softmax-s-tau-attn-mask-kappa-goat-p-for-attn")
    ev.identity("a bias b added BEFORE scaling, softmax((s + b)/tau), needs b = tau log pi (general n)",
                biased_softmax(lambda a: tau * sp.log(pi[a]) / tau, k), p_star, simplify=sum_simplify,
                key="a-bias-b-added-before-scaling-softmax-s-b-tau")
    # the wrong scale: mask = tau log pi gives the tempered prior pi^tau / sum pi^tau
    wrong = biased_softmax(lambda a: tau * sp.log(pi[a]), k).subs({s[k]: 0}).replace(
        lambda e: isinstance(e, sp.Indexed) and e.base == s, lambda e: sp.S.Zero)
    ev.step(r"$\mathrm{mask} = \tau\log\pi$ (the scale of a pre-scaling bias) is the prior $\pi^\tau / \sum\pi^\tau$ instead: "
            "at flat scores it returns", eq(r"p_k|_{s=0}", sp.powsimp(sp.simplify(wrong))))
    a = sp.Symbol("a", positive=True)
    wrong2 = sp.simplify(a**tau / (a**tau + (1 - a) ** tau) - a)
    ev.check("attn_mask = tau log pi is not GOAT unless tau = 1 or pi uniform (n = 2, flat scores)", "symbolic",
             r"$a^\tau/(a^\tau + (1-a)^\tau) - a$ at $a = 1/4$, $\tau = 2$; and at $\tau = 1$",
             f"{wrong2.subs({a: sp.Rational(1, 4), tau: 2})}, {sp.simplify(wrong2.subs(tau, 1))}", "exact",
             wrong2.subs({a: sp.Rational(1, 4), tau: 2}) != 0 and sp.simplify(wrong2.subs(tau, 1)) == 0,
             "exact rational arithmetic: a non-zero residual is a counterexample",
             key="attn-mask-tau-log-pi-is-not-goat-unless-tau-1-or", numerical_class="exact", evidence="proof")


def _learnable_prior_and_its_gradient(ev: Evidence) -> None:
    r""":math:`\pi = \operatorname{softmax}(w)`: the logits :math:`w` can be the mask, and
    :math:`\partial L/\partial M = p\odot(g - \mathbb E_p g)` (no :math:`1/\tau`)."""
    # learnable prior through logits: pi = softmax(w) -> mask = w works (row constant)
    pi_w = lambda a: sp.exp(w[a]) / sp.Sum(sp.exp(w[l]), (l, 1, n))  # noqa: E731
    logpi_w = lambda a: sp.expand_log(sp.log(pi_w(a)), force=True)  # noqa: E731
    ev.step(r"Learnable prior $\pi = \operatorname{softmax}(w)$: $\log\pi_j = w_j - \log\sum_l e^{w_l}$, a row constant away from $w$",
            eq(r"\log\pi_j", logpi_w(j)))
    ev.identity("softmax(s/tau + log softmax(w)) = softmax(s/tau + w): the logits w can be the mask (general n)",
                biased_softmax(logpi_w, k), biased_softmax(lambda a: w[a], k), simplify=sum_simplify,
                key="softmax-s-tau-log-softmax-w-softmax-s-tau-w-the")

    # gradient w.r.t. the mask: (1/tau) disappears, the advantage stays
    pM = lambda a: biased_softmax(lambda b: M[b], a)  # noqa: E731
    dLdM = resolve(sp.Sum(g[j] * sp.diff(pM(j), M[k]), (j, 1, n)), [k])
    ev.step(r"Gradient of a loss $L(p)$ with $g = \partial L/\partial p$ w.r.t. the mask $M$, through the sum", eq(r"\partial L/\partial M_k", dLdM))
    EpG = sp.Sum(pM(l) * g[l], (l, 1, n))
    ev.identity("dL/dM_k = p_k (g_k - E_p[g]) (no 1/tau: the mask is added after scaling; general n)",
                dLdM, pM(k) * (g[k] - EpG), simplify=sum_simplify,
                key="dl-dm-k-p-k-g-k-e-p-g-no-1-tau-the-mask-is-added")
    Gm = sp.IndexedBase("G", real=True)  # G_j = dL/dM_j of one query row
    dw = resolve(sp.Sum(Gm[j] * sp.diff(logpi_w(j), w[k]), (j, 1, n)), [k])
    ev.step(r"Through $M = \log\operatorname{softmax}(w)$: $\partial L/\partial w_k = \sum_j (\partial L/\partial M_j)(\delta_{jk} - \pi_k)$", eq(r"\partial L/\partial w_k", dw))
    ev.step(r"and $\sum_j \partial L/\partial M_j = \sum_j p_j (g_j - \mathbb E_p[g]) = 0$ for every query row, so the "
            r"normaliser of the prior receives no gradient: $\partial L/\partial w_k$ = sum over query rows of "
            r"$\partial L/\partial M_k$ (checked against finite differences)")
    ev.identity("sum_j p_j (g_j - E_p g) = 0 (general n)",
                sp.Sum(p[j] * (g[j] - sp.Sum(p[l] * g[l], (l, 1, n))), (j, 1, n)), 0,
                simplify=lambda e: on_simplex(e, SIMPLEX), key="sum-j-p-j-g-j-e-p-g-0-general-n")


def prior(*, candidate=goat_softmax, mask=lambda a: sp.log(pi[a])) -> Evidence:
    r"""GOAT-PRIOR. For :math:`\pi` in the open simplex and :math:`\tau>0`:
    :math:`\arg\min_{p\in\Delta_n} -\langle p,s\rangle + \tau\,\mathrm{KL}(p\|\pi) = \operatorname{softmax}(s/\tau + \log\pi)`,
    unique, with value :math:`-\tau\log\sum_l \pi_l e^{s_l/\tau}` (general :math:`n`).  Hence
    :math:`\operatorname{SDPA}(q,K,V;\ \mathrm{scale}=1/\tau,\ \mathrm{attn\_mask}=\log\pi + \kappa)` computes it for any
    row constant :math:`\kappa` (so the logits :math:`w` of :math:`\pi = \operatorname{softmax}(w)` can be passed directly); a mask
    :math:`\tau\log\pi` would be wrong (it is the prior :math:`\pi^\tau/\sum\pi^\tau`); :math:`\partial L/\partial M_k = p_k(g_k -
    \mathbb E_p g)`.

    Source: 002_45411e362948ee22.txt, second abstract (GOAT: learnable prior, compatible with FlashAttention).
    """
    return _prior_evidence(candidate=candidate, mask=mask)


# ---------------------------------------------------------------------------
# GOAT-UNIFORM
# ---------------------------------------------------------------------------


def _uniform_evidence(uniform: Callable = lambda nn: 1 / nn) -> Evidence:
    ev = Evidence()
    u = uniform(n)
    ev.step(r"Uniform prior $\pi_j = 1/n$ in $\operatorname{softmax}(s/\tau + \log\pi)$", eq(r"\operatorname{softmax}(s/\tau + \log\pi)_k",
                                                                     biased_softmax(lambda a: sp.log(u), k)))
    ok = ev.identity("pi = 1/n: softmax(s/tau + log pi) = softmax(s/tau) (general n)",
                     biased_softmax(lambda a: sp.log(u), k), biased_softmax(lambda a: 0, k), simplify=sum_simplify,
                     key="pi-1-n-softmax-s-tau-log-pi-softmax-s-tau")
    klu = tau * sp.Sum(p[j] * sp.log(p[j] / u), (j, 1, n))
    negH = tau * sp.Sum(p[j] * sp.log(p[j]), (j, 1, n))
    ev.step("The objectives differ by a constant on the simplex", eq(r"\tau\,\mathrm{KL}(p\|\tfrac1n\mathbf 1) + \tau H(p)",
                                                                      sp.simplify(sum_normal(klu - negH, rules=SIMPLEX))))
    ev.identity("tau KL(p || 1/n) = -tau H(p) + tau log n on the simplex (general n)",
                sum_normal(klu - negH, rules=SIMPLEX), tau * sp.log(n), simplify=sum_simplify,
                key="tau-kl-p-1-n-tau-h-p-tau-log-n-on-the-simplex")
    ev.step(r"So the GOAT problem with the uniform prior is the EOT problem of 003 shifted by $\tau\log n$: same minimiser "
            r"(standard SDPA), optimal values differ by $\tau\log n$")
    ev.identity("min values: -tau log sum_l (1/n) e^{s_l/tau} = -tau lse(s/tau) + tau log n (general n)",
                -tau * sp.log(sp.Sum(u * sp.exp(s[l] / tau), (l, 1, n))),
                -tau * sp.log(sp.Sum(sp.exp(s[l] / tau), (l, 1, n))) + tau * sp.log(n), simplify=sum_simplify,
                key="min-values-tau-log-sum-l-1-n-e-s-l-tau-tau-lse-s")
    # converse: only the uniform prior (up to nothing) reproduces standard attention for all s
    flat = biased_softmax(lambda a: sp.log(pi[a]), k).replace(lambda e: isinstance(e, sp.Indexed) and e.base == s,
                                                               lambda e: sp.S.Zero)
    ev.step(r"Conversely, at flat scores $s = 0$ GOAT returns the prior itself, standard attention returns $1/n$",
            eq(r"\operatorname{softmax}(\log\pi)_k", flat))
    ev.identity("softmax(0 + log pi) = pi (general n): standard attention for all s forces pi = 1/n",
                on_simplex(flat, [(sp.Sum(pi[l], (l, 1, n)), 1)]), pi[k],
                key="softmax-0-log-pi-pi-general-n-standard-attention")
    if not ok:
        ev.finding = r"the uniform prior $\pi = 1/n$ gives $\operatorname{softmax}(s/\tau)$"
    return ev


def uniform(*, uniform=lambda nn: 1 / nn) -> Evidence:
    r"""GOAT-UNIFORM. :math:`\pi = \tfrac1n\mathbf 1 \Rightarrow \operatorname{softmax}(s/\tau + \log\pi) =
    \operatorname{softmax}(s/\tau)` and :math:`\tau\mathrm{KL}(p\|\tfrac1n\mathbf 1) = -\tau H(p) + \tau\log n` on the
    simplex (general :math:`n`); conversely a prior reproducing standard attention for all :math:`s` is uniform.

    Source: 002_45411e362948ee22.txt, second abstract ("standard attention corresponds to ... an implicit uniform prior").
    """
    return _uniform_evidence(uniform=uniform)


# ---------------------------------------------------------------------------
# GOAT-SINK
# ---------------------------------------------------------------------------


def sink(*, flat_value=lambda a: pi[a]) -> Evidence:
    r"""GOAT-SINK (made precise). For :math:`p = \operatorname{softmax}(s/\tau + \log\pi)`: (i) flat scores give :math:`p = \pi`,
    so a sink slot takes exactly :math:`\pi_1`; (ii) :math:`|\operatorname{logit}p_1 - \operatorname{logit}\pi_1| \le \Delta/\tau`
    with :math:`\Delta = \max s - \min s`, attained when the other scores are equal; (iii) under the uniform prior a sink
    mass :math:`m` (other scores equal) needs a score gap :math:`\tau(\operatorname{logit}m + \log(n-1))`, under GOAT with
    :math:`\pi_1 = m` none.

    Source: 002_45411e362948ee22.txt, second abstract ("an EOT-based explanation of attention sinks").
    """
    ev = Evidence()
    ok = _flat_scores_give_the_prior(ev, flat_value)
    _sink_logit_is_pinned_by_its_prior(ev)
    _sink_mass_needs_a_score_gap_only_under_the_uniform_prior(ev)
    ev.notes.append("What is checked is the precise mechanism the abstract's 'EOT-based explanation' can rest on: "
                    "mass on a slot is bought by score (uniform prior) or by prior (GOAT). That trained transformers "
                    "develop sinks for this reason, and that GOAT removes them without representational cost, are "
                    "empirical statements about trained models; they are not checked here.")
    if not ok:
        ev.finding = r"with flat scores the GOAT attention equals the prior $\pi$"
    return ev


def _flat_scores_give_the_prior(ev: Evidence, flat_value: Callable) -> bool:
    r"""(i) Flat scores :math:`s_j = c` give :math:`p = \pi`: a sink slot takes exactly its prior mass; returns whether the
    candidate is right."""
    cst = sp.Symbol("c", real=True)
    flat = biased_softmax(lambda a: sp.log(pi[a]), k).replace(
        lambda e: isinstance(e, sp.Indexed) and e.base == s, lambda e: cst)
    ev.step(r"Flat scores $s_j = c$ (no key is relevant to the query): the GOAT attention is", eq("p_k", flat))
    ok = ev.identity("flat scores: p = pi exactly, so a slot with prior mass pi_1 takes exactly pi_1 (general n)",
                     on_simplex(flat, [(sp.Sum(pi[l], (l, 1, n)), 1)]), flat_value(k),
                     key="flat-scores-p-pi-exactly-so-a-slot-with-prior")
    return ok


def _sink_logit_is_pinned_by_its_prior(ev: Evidence) -> None:
    r"""(ii) :math:`|\operatorname{logit}p_1 - \operatorname{logit}\pi_1| \le \Delta/\tau` with :math:`\Delta` the score
    spread, attained when the other scores are equal."""
    Zr = sp.Sum(pi[l] * sp.exp(s[l] / tau), (l, 2, n))
    p1 = pi[1] * sp.exp(s[1] / tau) / (pi[1] * sp.exp(s[1] / tau) + Zr)
    odds = p1 / (1 - p1)
    ev.step("Sink slot 1: split the partition function into slot 1 and the rest", eq("p_1", p1))
    ev.identity("odds p_1/(1 - p_1) = pi_1 e^{s_1/tau} / sum_{l>=2} pi_l e^{s_l/tau} (general n)",
                odds, pi[1] * sp.exp(s[1] / tau) / Zr, key="odds-p-1-1-p-1-pi-1-e-s-1-tau-sum-l-2-pi-l-e-s-l")
    ev.step(r"With $\rho_l = \pi_l/(1 - \pi_1)$ (a distribution on $l \ge 2$), the logit shift is the score of slot 1 minus a "
            r"$\rho$-weighted log-mean-exp of the other scores, which lies between their min and max",
            r"\operatorname{logit}p_1 - \operatorname{logit}\pi_1 = \frac{s_1}{\tau} - \log\sum_{l\ge2}\rho_l e^{s_l/\tau}"
            r"\in\Big[\frac{s_1 - \max_{l\ge2}s_l}{\tau},\ \frac{s_1 - \min_{l\ge2}s_l}{\tau}\Big]")
    ratio = odds / (pi[1] / (1 - pi[1]))  # exp(logit p_1 - logit pi_1)
    ev.identity("exp(logit p_1 - logit pi_1) = e^{s_1/tau} / sum_{l>=2} rho_l e^{s_l/tau} (general n)",
                ratio, sp.exp(s[1] / tau) / (Zr / (1 - pi[1])), simplify=sum_simplify,
                key="exp-logit-p-1-logit-pi-1-e-s-1-tau-sum-l-2-rho-l")
    ev.step(r"Hence, with the score spread $\Delta = \max_j s_j - \min_j s_j$, the sink mass is pinned by its prior",
            r"\big|\operatorname{logit}p_1 - \operatorname{logit}\pi_1\big| \le \Delta/\tau,\qquad "
            r"\sigma\big(\operatorname{logit}\pi_1 - \Delta/\tau\big) \le p_1 \le \sigma\big(\operatorname{logit}\pi_1 + \Delta/\tau\big)")
    # tightness: equal scores on the rest
    cc = sp.Symbol("c", real=True)
    tight = ratio.replace(lambda e: isinstance(e, sp.Indexed) and e.base == s and e.indices[0] != 1, lambda e: cc)
    ev.identity("equal scores c on l >= 2: logit p_1 - logit pi_1 = (s_1 - c)/tau exactly (the bound is attained)",
                tight - sp.exp((s[1] - cc) / tau), 0,
                simplify=lambda e: on_simplex(e, [(sp.Sum(pi[l], (l, 2, n)), 1 - pi[1])]),
                key="equal-scores-c-on-l-2-logit-p-1-logit-pi-1-s-1-c")


def _sink_mass_needs_a_score_gap_only_under_the_uniform_prior(ev: Evidence) -> None:
    r"""(iii) Sink mass :math:`m` needs the score gap :math:`\tau(\operatorname{logit}m + \log(n - 1))` under the uniform
    prior, none under GOAT with :math:`\pi_1 = m`."""
    m, gap = sp.Symbol("m", positive=True), sp.Symbol("gamma", real=True)
    nn = sp.Symbol("n", integer=True, positive=True)
    pu = 1 / (1 + (nn - 1) * sp.exp(-gap / tau))
    gap_u = tau * (sp.log(m / (1 - m)) + sp.log(nn - 1))
    ev.step(r"Standard attention (uniform prior), other scores equal: $p_1 = 1/(1 + (n - 1) e^{-\gamma/\tau})$; sink mass $m$ "
            "needs the score gap", (gap, gap_u))
    ev.identity("uniform prior: p_1 = m at gap tau (logit m + log(n - 1)), growing with the context length n",
                pu.subs(gap, gap_u), m, simplify=lambda e: sp.simplify(sp.powsimp(sp.expand_log(e, force=True))),
                key="uniform-prior-p-1-m-at-gap-tau-logit-m-log-n-1")
    pg = 1 / (1 + (1 - pi[1]) / pi[1] * sp.exp(-gap / tau))
    gap_g = tau * (sp.log(m / (1 - m)) - sp.log(pi[1] / (1 - pi[1])))
    ev.identity("GOAT prior, other scores equal: p_1 = m at gap tau (logit m - logit pi_1), independent of n",
                pg.subs(gap, gap_g), m, simplify=lambda e: sp.simplify(sp.powsimp(sp.expand_log(e, force=True))),
                key="goat-prior-other-scores-equal-p-1-m-at-gap-tau")
    ev.check("GOAT prior pi_1 = m: the needed gap is 0", "symbolic", "gap at pi_1 = m", str(sp.simplify(gap_g.subs(pi[1], m))),
             "exact", sp.simplify(gap_g.subs(pi[1], m)) == 0, "exact",
             key="goat-prior-pi-1-m-the-needed-gap-is-0", numerical_class="exact", evidence="proof")
    ev.step(r"A sink slot with a zero value vector ($v_1 = 0$) scales the output by $1 - p_1$: with GOAT this is set by "
            r"the prior at flat scores instead of by a key that must outscore every other key by "
            r"$\tau(\operatorname{logit}m + \log(n-1))$")


# ---------------------------------------------------------------------------
# EOT-SDPA: masks are supports
# ---------------------------------------------------------------------------


def _support_evidence(off_support_mass: Callable = lambda: 0) -> Evidence:
    ev = Evidence()
    q = sp.Symbol("q", positive=True)
    e = sp.Symbol("epsilon", positive=True)
    blow = sp.limit(q * sp.log(q / e), e, 0, "+")
    ev.step(r"A prior with zeros: $\pi_j = 0$ off the support $S$. The KL term of a $p$ with $p_j = q > 0$ off $S$ is",
            (sp.Limit(q * sp.log(q / e), e, 0, "+"), blow))
    ev.check("KL(p||pi) = +infinity unless p vanishes off supp(pi)", "symbolic",
             r"$\lim_{\epsilon\to0^+} q\log(q/\epsilon)$, $q>0$", str(blow), "exact", blow == sp.oo, "SymPy limit, exact",
             key="kl-p-pi-infinity-unless-p-vanishes-off-supp-pi", numerical_class="exact", evidence="proof")
    mS = sp.Symbol("m", integer=True, positive=True)
    ev.step(r"So feasible $p$ live on $S$ (relabelled $1..m$): the problem is GOAT-PRIOR on $S$ with prior $\pi|_S$, and for "
            r"$\pi$ uniform on $S$ ($\pi_j = 1/m$) the EOT problem of 003 restricted to $S$")
    pS = biased_softmax(lambda a: sp.log(1 / mS), k, hi=mS)
    ev.identity("uniform prior on S: p*_k = e^{s_k/tau}/sum_{l in S} e^{s_l/tau}, k in S (general m)",
                pS, biased_softmax(lambda a: 0, k, hi=mS), simplify=sum_simplify,
                key="uniform-prior-on-s-p-k-e-s-k-tau-sum-l-in-s-e-s")
    # a float mask -beta off S tends to the boolean mask
    beta = sp.Symbol("beta", positive=True)
    A_, B_ = sp.symbols("A B", positive=True)  # A = sum_{l in S} e^{s_l/tau}, B = sum_{l not in S} e^{s_l/tau}
    pin = sp.exp(s[k] / tau) / (A_ + sp.exp(-beta) * B_)
    pout = sp.exp(s[j] / tau - beta) / (A_ + sp.exp(-beta) * B_)
    lin, lout = sp.limit(pin, beta, sp.oo), sp.limit(pout, beta, sp.oo)
    ev.step(r"Additive mask 0 on $S$ and $-\beta$ off $S$ ($A$, $B$: the partition sums over $S$ and off $S$)",
            r"p_{k\in S} = " + sp.latex(pin) + r",\quad p_{j\notin S} = " + sp.latex(pout))
    ok = ev.identity("beta -> infinity: the float mask -beta tends to the boolean mask (p_k -> e^{s_k/tau}/A on S)",
                     lin, sp.exp(s[k] / tau) / A_, key="beta-infinity-the-float-mask-beta-tends-to-the")
    ok &= ev.identity("beta -> infinity: mass off S tends to 0", lout, off_support_mass(),
                      key="beta-infinity-mass-off-s-tends-to-0")
    ev.step(r"torch SDPA with a boolean ``attn_mask`` (True = attend) or ``is_causal`` ($S_i = \{j \le i\}$, top-left aligned) "
            r"uses $e^{-\infty} = 0$ off $S$, i.e. $\beta = \infty$: it is the EOT solution on each query's support, times $V$. "
            r"With $s_j = \langle q, k_j\rangle$ and $\tau = \sqrt d$:",
            r"\operatorname{SDPA}(q,K,V,\mathrm{mask})= \sum_{j\in S} \frac{e^{\langle q,k_j\rangle/\sqrt d}}"
            r"{\sum_{l\in S} e^{\langle q,k_l\rangle/\sqrt d}}\,v_j")
    ev.step(r"An empty support makes the problem infeasible ($\mathrm{KL} = +\infty$ for every $p$); torch returns a zero row "
            "there (observed), which is not an EOT solution: padding must leave every query at least one key")
    if not ok:
        ev.finding = r"a $-\infty$ mask restricts the EOT problem to the support"
    return ev


def masked_support() -> Evidence:
    r"""EOT-SDPA (masks). For a prior :math:`\pi` with support :math:`S`, :math:`\mathrm{KL}(p\|\pi) < \infty \iff \operatorname{supp}p
    \subseteq S`, so with :math:`\pi` uniform on :math:`S` the EOT problem is the one restricted to :math:`S`, solved by
    :math:`\operatorname{softmax}` over :math:`S`; an additive mask :math:`-\beta` off :math:`S` converges to it as :math:`\beta\to\infty`,
    and a boolean mask / ``is_causal`` is the case :math:`\beta = \infty`.

    Source: 000_126cee95456ccd42.txt, 001_9e0338424570f436.txt (SDPA as one-sided EOT); masks are not discussed
    there, this is the precise form needed for padded and causal attention.
    """
    return _support_evidence()


__all__ = ["prior", "uniform", "sink", "masked_support"]
