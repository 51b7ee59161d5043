"""SymPy re-derivations for the one-sided entropic-OT reading of attention (EOT-KKT, EOT-UNIQ, EOT-LSE).

Everything is done for a general number :math:`n` of keys: :math:`p` and :math:`s` are ``IndexedBase`` objects, the
objective is a ``Sum`` over :math:`j = 1..n`, and derivatives are taken through the ``Sum`` (SymPy then
produces ``KroneckerDelta`` terms, which ``doit`` turns into ``Piecewise`` in the index range).

The identities are decided by the sum algebra of :mod:`derivations._sums`.
"""

from __future__ import annotations

from typing import Callable

import sympy as sp

from attnverify.evidence import Erratum, Evidence, as_latex
from attnverify.sources import SOURCE_003
from attnverify.derivations._sums import eq, readable, replace_indexed, resolve, sum_normal, sum_simplify


def against_printed(ev, key, name, derived, printed, source, where, printed_latex, note="", simplify=None):
    """Compare a derived line with the line as printed; an erratum only if they differ."""
    simp = simplify or sum_simplify
    residual = simp(sp.sympify(derived) - sp.sympify(printed))
    if residual == 0:
        return ev.check(
            name, "symbolic", f"derived line − printed line {where} ({source})", "0", "exact", True,
            "a symbolic identity holds exactly or not at all",
            key=key, numerical_class="exact", evidence="proof",
        )
    ev.errata.append(Erratum(source=source, equation=where, printed=printed_latex,
                             corrected=as_latex(derived), note=note or f"derived − printed = {residual}"))
    return ev.check(
        name, "symbolic",
        f"printed line {where} compared with the derived line: they differ by {sp.latex(residual)} "
        "(see errata); the derived (corrected) line is the one carried forward",
        str(residual), "exact", True,
        "a typo in an intermediate printed line does not change the claim, which is checked separately",
        key=key, numerical_class="exact", evidence="proof",
    )


# ---------------------------------------------------------------------------
# Symbols (general n)
# ---------------------------------------------------------------------------

n = sp.Symbol("n", integer=True, positive=True)
j, k, l, m = sp.symbols("j k l m", integer=True, positive=True)
p = sp.IndexedBase("p", positive=True)  # open simplex: p_j > 0 (interiority is shown in EOT-UNIQ)
s = sp.IndexedBase("s", real=True)  # scores s_j = q^T k_j (003 writes q^T k_j)
v = sp.IndexedBase("v", real=True)
tau = sp.Symbol("tau", positive=True)
lam = sp.Symbol("lambda", real=True)


def partition_function(idx=l):
    return sp.Sum(sp.exp(s[idx] / tau), (idx, 1, n))


def softmax(idx):
    r""":math:`p^\star_{idx} = \exp(s_{idx}/\tau) / \sum_l \exp(s_l/\tau)`."""
    return sp.exp(s[idx] / tau) / partition_function()


def _J(pp=p):
    H = -sp.Sum(pp[j] * sp.log(pp[j]), (j, 1, n))
    return -sp.Sum(pp[j] * s[j], (j, 1, n)) - tau * H


# ---------------------------------------------------------------------------
# EOT-KKT
# ---------------------------------------------------------------------------


def _kkt_evidence(candidate: Callable[[sp.Expr], sp.Expr] = softmax) -> Evidence:
    """EOT-KKT: the Lagrangian and its stationarity line (003 Sec 2-3), solved for p (Sec 4), equal to the
    candidate; the candidate is stationary with one multiplier and normalised."""
    ev = Evidence()
    J = _J()
    ev.step(r"Objective on the simplex (003 §1), scores $s_j = q^\top k_j$, $n$ keys (003 writes $m$)",
            eq(r"\mathcal{J}(p)", J))

    dL, stat = _stationarity_of_the_lagrangian(ev, J)
    p_star = _stationary_point_is_the_softmax(ev, dL, stat)
    ok = ev.identity("derived minimiser = softmax(s/tau) of 003 §4 (the claim's closed form)",
                     p_star, candidate(k), simplify=sum_simplify,
                     metric=r"derived $p_k^\star$ − printed $\exp(s_k/\tau)/\sum_l \exp(s_l/\tau)$",
                     key="derived-minimiser-softmax-s-tau-of-003-4-the")

    _candidate_is_stationary_and_normalised(ev, stat, candidate)
    ev.step(r"$\mathcal J$ is strictly convex on the open simplex (EOT-UNIQ), so this stationary point is the minimiser")
    if not ok:
        ev.finding = r"the derived minimiser is $\operatorname{softmax}(s/\tau)$, not the candidate closed form"
    return ev




def _stationarity_of_the_lagrangian(ev: Evidence, J):
    """003 Sec 2-3: the Lagrangian of J with one multiplier and its stationarity line, each against the print."""
    # Sec 2: Lagrangian
    L = J + lam * (1 - sp.Sum(p[j], (j, 1, n)))
    ev.step(r"Lagrangian with multiplier $\lambda$ for $\sum_j p_j = 1$", eq(r"\mathcal{L}(p,\lambda)", L))
    L_printed = -sp.Sum(p[j] * s[j], (j, 1, n)) + tau * sp.Sum(p[j] * sp.log(p[j]), (j, 1, n)) \
        + lam * (1 - sp.Sum(p[j], (j, 1, n)))
    against_printed(ev, "lagrangian-003-2-as-printed", "Lagrangian = 003 §2 as printed",
                    L, L_printed, SOURCE_003, "§2",
                    r"-\sum_j p_j (q^T k_j) + \tau \sum_j p_j \log p_j + \lambda (1 - \sum_j p_j)")

    # Sec 3: stationarity, differentiating through the Sum (KroneckerDelta), 1 <= k <= n
    dL = sp.diff(L, p[k])
    ev.step(r"Differentiate through the sum: each term carries $\delta_{jk}$", eq(r"\partial_{p_k}\mathcal{L}", dL))
    stat = resolve(dL, [k], 1, n)
    ev.step(r"Resolve the delta for $1 \le k \le n$: the stationarity condition (KKT)", sp.Eq(stat, 0))
    stat_printed = -s[k] + tau * (1 + sp.log(p[k])) - lam
    against_printed(ev, "stationarity-003-3-as-printed", "stationarity = 003 §3 as printed",
                    stat, stat_printed, SOURCE_003, "§3",
                    r"\frac{\partial \mathcal{L}}{\partial p_j} = -(q^T k_j) + \tau (1 + \log p_j) - \lambda = 0")

    return dL, stat


def _stationary_point_is_the_softmax(ev: Evidence, dL, stat):
    """003 Sec 4: the stationarity line solved for :math:`p_k`, exponentiated and normalised, gives the softmax."""
    # Sec 4: solve for tau log p_k
    ell = sp.Symbol("ell", real=True)  # stands for log p_k
    (ell_sol,) = sp.solve(sp.Eq(stat.subs(sp.log(p[k]), ell), 0), ell)
    tlog = tau * ell_sol
    ev.step(r"Solve the stationarity condition for $\tau\log p_k$", (tau * sp.log(p[k]), sp.expand(tlog)))
    against_printed(ev, "tau-log-p-k-003-4-as-printed", "tau log p_k = 003 §4 as printed",
                    tlog, s[k] + lam - tau, SOURCE_003, "§4 (first line)",
                    r"\tau \log p_j = q^T k_j + \lambda - \tau")

    # exponentiate
    pk = sp.exp(tlog / tau)
    pk_printed = sp.exp(s[k] / tau) * sp.exp((lam - tau) / tau)
    ev.step("Exponentiate", (p[k], pk_printed))
    against_printed(ev, "p-k-after-exponentiating-003-4-as-printed", "p_k after exponentiating = 003 §4 as printed",
                    pk, pk_printed, SOURCE_003, "§4 (second line)",
                    r"p_j = \exp(q^T k_j/\tau) \cdot \exp((\lambda - \tau)/\tau)")
    ev.identity("p_k from exponentiating satisfies the stationarity condition",
                resolve(dL, [k], 1, n).subs(p[k], pk), 0, simplify=sum_simplify,
                key="p-k-from-exponentiating-satisfies-the")

    # normaliser: c = exp((lambda - tau)/tau) is the same for all j; sum_j p_j = 1 fixes it
    cc = sp.Symbol("c", positive=True)
    constraint = sp.Sum(cc * sp.exp(s[j] / tau), (j, 1, n))
    ev.step(r"The factor $c = \exp((\lambda - \tau)/\tau)$ does not depend on $j$; impose $\sum_j p_j = 1$",
            sp.Eq(sp.factor_terms(constraint), 1))
    (c_sol,) = sp.solve(sp.Eq(sp.factor_terms(constraint), 1), cc)
    Z_derived = 1 / c_sol
    ev.step(r"Hence $c = 1/Z$ with the partition function", (sp.Symbol("Z"), Z_derived))
    against_printed(ev, "z-003-4-as-printed", "Z = 003 §4 as printed",
                    Z_derived, partition_function(l), SOURCE_003, "§4 (partition function)",
                    r"Z = \sum_{l=1}^m \exp(q^T k_l / \tau)")
    (lam_sol,) = sp.solve(sp.Eq(sp.exp((lam - tau) / tau), c_sol), lam)
    ev.step("and the multiplier", (lam, lam_sol))

    p_star = pk.subs(lam, lam_sol)
    ev.step("Substitute back: the softmax", eq(r"p_k^\star", sp.simplify(p_star)))
    return p_star


def _candidate_is_stationary_and_normalised(ev: Evidence, stat, candidate) -> None:
    """The candidate closed form satisfies the stationarity line with one multiplier for all k and sums to 1."""
    # the candidate itself: stationary with one lambda for all indices, and normalised
    (lam_k,) = sp.solve(stat, lam)  # lambda from the stationarity line at index k

    def lam_of(idx):
        return lam_k.xreplace({k: idx}).subs(p[idx], candidate(idx))

    ev.step(r"Multiplier implied by the candidate at index $k$ (from the stationarity line)", (lam, readable(sum_normal(lam_of(k)))))
    ev.identity("candidate satisfies stationarity with one lambda for every index (lambda_k = lambda_m)",
                lam_of(k), lam_of(m), simplify=sum_simplify,
                key="candidate-satisfies-stationarity-with-one-lambda")
    ev.identity("candidate sums to 1 over j = 1..n", sp.Sum(candidate(j), (j, 1, n)), 1, simplify=sum_simplify,
                key="candidate-sums-to-1-over-j-1-n")


def kkt(*, candidate=softmax) -> Evidence:
    r"""EOT-KKT. For :math:`s \in \mathbb{R}^n`, :math:`\tau > 0`:
    :math:`\operatorname{argmin}_{p \in \Delta_n} -\sum_j p_j s_j - \tau H(p) = \operatorname{softmax}(s/\tau)`,
    :math:`H(p) = -\sum_j p_j \log p_j`; via the Lagrangian, the stationarity line, :math:`\tau\log p_j`,
    exponentiation and the normaliser :math:`Z = \sum_l e^{s_l/\tau}`, all for general :math:`n`.

    Source: 003_e1554db561d6b2f9.txt §1–§4 (each printed line compared as printed).
    """
    return _kkt_evidence(candidate=candidate)


# ---------------------------------------------------------------------------
# EOT-UNIQ
# ---------------------------------------------------------------------------


def _second_variation(pj, vj):
    return tau * vj**2 / pj


def _uniq_evidence(candidate: Callable = _second_variation) -> Evidence:
    ev = Evidence()
    t = sp.Symbol("t", real=True)
    J = _J()
    Jt = replace_indexed(J, p, lambda i: p[i] + t * v[i])
    ev.step(r"Restrict $\mathcal J$ to the line $p + tv$ ($p$ in the open simplex, $v$ any direction)", eq(r"\mathcal{J}(p+tv)", Jt))
    d2 = sp.diff(Jt, t, 2).subs(t, 0)
    d2 = sp.simplify(d2)
    ev.step(r"Second derivative at $t = 0$ (differentiated under the sum)", eq(r"\frac{d^2}{dt^2}\mathcal{J}(p+tv)\big|_{t=0}", d2))
    ev.identity("d^2/dt^2 J(p + t v)|_0 = tau sum_j v_j^2 / p_j (general n)",
                d2, sp.Sum(candidate(p[j], v[j]), (j, 1, n)), simplify=sum_simplify,
                key="d-2-dt-2-j-p-t-v-0-tau-sum-j-v-j-2-p-j-general-n")

    # Hessian entries, general n
    H = resolve(sp.diff(J, p[k], p[m]), [k], 1, n)
    ev.step(r"Hessian entries (general $n$)", eq(r"\partial^2_{p_k p_m}\mathcal{J}", H))
    ev.identity("Hessian = tau diag(1/p_k) (general n)", H, tau * sp.KroneckerDelta(k, m) / p[k],
                key="hessian-tau-diag-1-p-k-general-n")

    # positivity of each term: p_j > 0, tau > 0, v_j real and nonzero
    P, V = sp.Symbol("P", positive=True), sp.Symbol("V", real=True, nonzero=True)
    term = candidate(P, V)
    pos, nonneg = term.is_positive, candidate(P, sp.Symbol("W", real=True)).is_nonnegative
    ev.step(r"Each term $\tau v_j^2/p_j$ is $\ge 0$, and $> 0$ when $v_j \ne 0$; so the sum is $> 0$ for every $v \ne 0$, "
            r"on all of $\mathbb R^n$ and in particular on the tangent space $\{v : \sum_j v_j = 0\}$")
    ev.check("second variation positive definite on R^n (hence on the tangent space)", "symbolic",
             r"sign of each summand $\tau v_j^2/p_j$ for $p_j>0$, $v_j$ real ($\ge 0$) and $v_j \ne 0$ ($> 0$)",
             f"nonneg={nonneg}, pos={pos}", "exact", pos is True and nonneg is True,
             "a sum of nonnegative terms with at least one positive term is positive",
             key="second-variation-positive-definite-on-r-n-hence", numerical_class="exact", evidence="proof")

    # explicit n = 3: Hessian matrix and its restriction to the tangent plane
    ps = sp.symbols("p1:4", positive=True)
    J3 = sum(-ps[i] * sp.Symbol(f"s{i+1}", real=True) + tau * ps[i] * sp.log(ps[i]) for i in range(3))
    H3 = sp.hessian(J3, ps)
    B = sp.Matrix([[1, 0], [0, 1], [-1, -1]])  # basis of {v : v1 + v2 + v3 = 0}
    Ht = sp.simplify(B.T * H3 * B)
    ev.step(r"Explicit $n = 3$: the Hessian restricted to the tangent plane, $B$ = basis of $\{v_1 + v_2 + v_3 = 0\}$",
            r"B^\top H B = " + sp.latex(Ht))
    minors = [sp.simplify(Ht[:r, :r].det()) for r in (1, 2)]
    ok3 = (H3 - tau * sp.diag(*[1 / q for q in ps])).is_zero_matrix and all(mi.is_positive for mi in minors)
    ev.check("n = 3: Hessian = tau diag(1/p) and tangent-plane restriction positive definite", "symbolic",
             r"$H - \tau\operatorname{diag}(1/p) = 0$ and leading minors of $B^\top H B > 0$ (Sylvester)",
             ", ".join(sp.latex(mi) for mi in minors), "exact", ok3, "Sylvester's criterion is exact",
             key="n-3-hessian-tau-diag-1-p-and-tangent-plane", numerical_class="exact", evidence="proof")

    # interiority: d/dx (x log x) -> -infinity as x -> 0+
    x, q = sp.Symbol("x", positive=True), sp.Symbol("q", positive=True)
    slope = sp.limit(sp.diff(x * sp.log(x), x), x, 0, "+")
    ev.step(r"Interior: $\frac{d}{dx}(x\log x) = \log x + 1$ tends to", (sp.Limit(sp.log(x) + 1, x, 0, "+"), slope))
    # moving from a boundary point (p_k = 0) toward an interior q: the p_k-term of J changes at rate
    # tau q (log(t q) + 1) -> -inf, the others at finite rates, so J decreases: no boundary minimiser
    rate = sp.limit(sp.diff(tau * (t * q) * sp.log(t * q), t).subs(t, x), x, 0, "+")
    ev.check("minimiser is interior: one-sided derivative of J from a boundary point is -infinity", "symbolic",
             r"$\lim_{t\to 0^+} \frac{d}{dt}\,\tau (tq)\log(tq)$ for $q > 0$", str(rate), "exact", rate == -sp.oo,
             "an infinite descent rate at every boundary point excludes it as a minimiser",
             key="minimiser-is-interior-one-sided-derivative-of-j", numerical_class="exact", evidence="proof")
    ev.step("A strictly convex function on the convex simplex has at most one minimiser; by compactness and "
            "the infinite inward slope it exists and lies in the open simplex, where it is the softmax of EOT-KKT")
    return ev


def uniqueness(*, candidate=_second_variation) -> Evidence:
    r"""EOT-UNIQ. For :math:`\tau > 0` and :math:`p` in the open simplex, :math:`\nabla^2 \mathcal{J}(p) = \tau\,
    \mathrm{diag}(1/p_j)`; for every :math:`v \ne 0`, :math:`\frac{d^2}{dt^2}\mathcal{J}(p+tv)|_{t=0} = \tau \sum_j
    v_j^2/p_j > 0` (on all of :math:`\mathbb{R}^n`, hence on :math:`\{v: \sum_j v_j = 0\}`). So :math:`\mathcal{J}` is
    strictly convex, its minimiser over the simplex is unique, and it is interior.

    Source: 000_126cee95456ccd42.txt ("exact solution"/uniqueness), with 003 §1 for :math:`\mathcal{J}`.
    """
    return _uniq_evidence(candidate=candidate)


# ---------------------------------------------------------------------------
# EOT-LSE
# ---------------------------------------------------------------------------


def _lse_value(_s=s):
    return -tau * sp.log(partition_function())


def _lse_evidence(candidate: Callable = _lse_value) -> Evidence:
    ev = Evidence()
    Z = partition_function()
    J_star = replace_indexed(_J(), p, softmax)
    ev.step(r"Optimal value: substitute $p^\star = \operatorname{softmax}(s/\tau)$ into $\mathcal J$", eq(r"\mathcal{J}(p^\star)", J_star))
    ev.step(r"Since $\tau\log p^\star_j = s_j - \tau\log Z$, each term is $p^\star_j(-s_j + \tau\log p^\star_j) = -\tau\log Z\,p^\star_j$, "
            r"and $\sum_j p^\star_j = 1$", eq(r"\mathcal{J}(p^\star)", readable(sum_normal(J_star))))
    ok = ev.identity("min J = -tau log sum_j exp(s_j/tau) (general n)", J_star, candidate(), simplify=sum_simplify,
                     key="min-j-tau-log-sum-j-exp-s-j-tau-general-n")

    F = tau * sp.log(Z)
    grad = resolve(sp.diff(F, s[k]), [k], 1, n)
    ev.step(r"Gradient of the potential $F(s) = \tau\log\sum_l \exp(s_l/\tau)$, through the sum", eq(r"\partial_{s_k} F", grad))
    ev.identity("d/ds_k [tau logsumexp(s/tau)] = p*_k (general n)", grad, softmax(k), simplify=sum_simplify,
                key="d-ds-k-tau-logsumexp-s-tau-p-k-general-n")

    # Fenchel reading: tau lse(s/tau) = sup_p <p,s> - tau sum p log p over the simplex
    gap = F - (sp.Sum(p[j] * s[j], (j, 1, n)) - tau * sp.Sum(p[j] * sp.log(p[j]), (j, 1, n)))
    kl = tau * sp.Sum(p[j] * sp.log(p[j] / softmax(j)), (j, 1, n))
    ev.step(r"Fenchel–Young gap for any $p$ in the simplex ($\sum_j p_j = 1$) is $\tau\,\mathrm{KL}(p \,\|\, p^\star)$",
            sp.latex(gap) + r" = \tau \sum_{j=1}^{n} p_j \log \frac{p_j}{p^\star_j} = \tau\,\mathrm{KL}(p \,\|\, p^\star)")
    ev.identity("tau lse(s/tau) - (<p,s> - tau sum p log p) = tau KL(p||p*) on the simplex (general n)",
                sum_normal(gap - kl, rules=[(sp.Sum(p[j], (j, 1, n)), 1)]), 0, simplify=sum_simplify,
                key="tau-lse-s-tau-p-s-tau-sum-p-log-p-tau-kl-p-p-on")
    ev.step(r"$\mathrm{KL} \ge 0$ with equality iff $p = p^\star$ (Gibbs), so the sup over the simplex is attained at $p^\star$ and "
            r"equals $\tau\,\mathrm{lse}(s/\tau)$: the log-sum-exp is the conjugate of $\tau$ times negative entropy on the simplex, "
            r"and $\min\mathcal J = -\sup(\langle p,s\rangle - \tau\sum p\log p) = -\tau\,\mathrm{lse}(s/\tau)$")
    ev.identity("-J(p*) = <p*,s> - tau sum p* log p* = tau lse(s/tau)", -J_star, F, simplify=sum_simplify,
                key="j-p-p-s-tau-sum-p-log-p-tau-lse-s-tau")
    if not ok:
        ev.finding = r"$\min\mathcal J$ equals $-\tau\log\sum_j \exp(s_j/\tau)$"
    return ev


def log_sum_exp(*, candidate=_lse_value) -> Evidence:
    r"""EOT-LSE. :math:`\min_{p \in \Delta_n} \mathcal{J}(p) = -\tau \log \sum_j e^{s_j/\tau}` and
    :math:`\partial_{s_k}\, \tau \log\sum_j e^{s_j/\tau} = p^\star_k`; dually
    :math:`\tau\,\mathrm{lse}(s/\tau) = \sup_{p\in\Delta_n} \langle p, s\rangle - \tau \sum_j p_j \log p_j`,
    with the Fenchel–Young gap equal to :math:`\tau\,\mathrm{KL}(p \,\|\, p^\star)`. General :math:`n`.

    Source: 000_126cee95456ccd42.txt (log-sum-exp potential as the dual), 003 §1–§4.
    """
    return _lse_evidence(candidate=candidate)
