r"""Errata of 004 found by the systematic pass over its hypotheses, definitions and indices (issue 16).

Each :class:`Hypothesis` is one printed condition (a hypothesis, an "iff", a definition, an index
range) together with its corrected form and a *violation* function: ``violation(form)`` computes,
for ``form`` = ``"printed"`` or ``"corrected"``, how badly the statement of that form is contradicted
by a computation (a count of counterexamples found by SymPy, or a measured size).  A form holds when
its violation is at most ``tol``.  :func:`record` runs both forms and records

* a check keyed ``key`` that the **corrected** form holds (it can fail: a wrong correction fails it);
* a check keyed ``key + "-printed-fails"`` that the **printed** form is contradicted (violation at
  least ``fail_at``): the erratum is real, not read off the page;
* the :class:`~attnverify.evidence.Erratum`, whose note carries the printed form's computation.

So every erratum here fails on the printed form and passes on the corrected one, and the tests
(tests/test_coverage.py) call ``violation`` on both forms directly.  The symbolic errata are here;
the numeric ones (LP, POT, transformers) are in :mod:`checks.errata_004`.

Source: 004_830fd89135933577.txt.
"""

from __future__ import annotations

from functools import lru_cache

from dataclasses import dataclass
from typing import Callable

import numpy as np
import sympy as sp

from attnverify import context
from attnverify.evidence import Erratum, Evidence

SRC_004 = "004_830fd89135933577.txt"
FORMS = ("printed", "corrected")


@dataclass(frozen=True)
class Hypothesis:
    """One printed condition, its correction and the computation that decides between them."""

    key: str  # check key of the corrected form (the printed form's check: key + "-printed-fails")
    equation: str  # location in the seed, as in the Errata list
    printed: str  # LaTeX (or words) as printed
    corrected: str  # LaTeX (or words) as derived
    statement: str  # what is tested, in words
    violation: Callable[[str], tuple[float, str]]  # form -> (violation, what was computed)
    tol: float  # a form holds iff violation <= tol
    fail_at: float  # the printed form is contradicted iff its violation >= fail_at
    why: str  # why tol and fail_at are right
    method: str = "symbolic"
    numerical_class: str = "exact"
    evidence: str = "proof"
    source: str = SRC_004


def record(ev: Evidence, h: Hypothesis) -> None:
    """Both checks of ``h`` and, when the printed form is contradicted, its erratum."""
    vc, dc = h.violation("corrected")
    vp, dp = h.violation("printed")
    kw = dict(method=h.method, numerical_class=h.numerical_class, evidence=h.evidence)
    ev.at_most(h.key, f"{h.equation}, corrected: {h.statement}", vc, h.tol, h.why,
               metric=f"violation of the corrected form: {dc}", **kw)
    ev.at_least(h.key + "-printed-fails", f"{h.equation}, as printed: {h.statement} is contradicted", vp,
                h.fail_at, h.why, metric=f"violation of the printed form: {dp}", **kw)
    if vp >= h.fail_at:
        ev.errata.append(Erratum(h.source, h.equation, h.printed, h.corrected,
                                 note=f"{h.statement}. Computed: printed form {dp}; corrected form {dc}."))


def _count(bad: list[str], cases: int) -> tuple[int, str]:
    return len(bad), f"{len(bad)} counterexample(s) of {cases} cases" + (": " + "; ".join(bad) if bad else "")


# =====================================================================================================
# FD-3, Sec 4: "K(p,u) denotes the KL divergence of u from p. By definition, K(p,u) has a finite
# value if and only if p has zero values outside the support of u."
# =====================================================================================================
def _kl_series_diverges() -> tuple[bool, sp.Expr]:
    r""":math:`u_i = 2^{-i}`, :math:`p_i = 6/(\pi^2 i^2)` on :math:`\mathcal A = \mathbb N`: same support,
    :math:`\mathrm{KL}(p\|u) = +\infty` (limit comparison with :math:`1/i`)."""
    i = sp.Symbol("i", positive=True, integer=True)
    p, u = 6 / (sp.pi**2 * i**2), sp.Integer(2) ** (-i)
    assert sp.simplify(sp.summation(p, (i, 1, sp.oo)) - 1) == 0 and sp.summation(u, (i, 1, sp.oo)) == 1
    c = sp.limit(i * p * sp.log(p / u), i, sp.oo)  # term ~ c/i with c > 0: the series diverges like the harmonic one
    return bool(c.is_positive), c


def _kl_outside_support_infinite() -> bool:
    r""":math:`p` puts mass :math:`1/2` where :math:`u` has mass :math:`\epsilon \to 0`: :math:`\mathrm{KL}(p\|u) \to +\infty`."""
    e = sp.Symbol("epsilon", positive=True)
    kl = sp.Rational(1, 2) * sp.log(sp.Rational(1, 2) / (1 - e)) + sp.Rational(1, 2) * sp.log(sp.Rational(1, 2) / e)
    return sp.limit(kl, e, 0, "+") == sp.oo


def _kl_finite_case() -> bool:
    r"""Finite :math:`\mathcal A`: :math:`p \ll u` (random, one zero of :math:`p`) gives a finite :math:`\mathrm{KL}(p\|u)`."""
    rng = context.rng("hypotheses-004-kl-finite")
    u = rng.dirichlet(np.ones(5))
    p = rng.dirichlet(np.ones(5))
    p[2] = 0.0
    p /= p.sum()
    kl = float(np.sum(p[p > 0] * np.log(p[p > 0] / u[p > 0])))
    return bool(np.isfinite(kl))


@lru_cache(maxsize=None)  # pure in form: computed once per process (tests, mutants call it often)
def _v_kl_only_if(form: str) -> tuple[int, str]:
    div, c = _kl_series_diverges()
    cases = [  # (name, supp p within supp u, KL finite, A finite)
        (f"A = N, u_i = 2^-i, p_i = 6/(pi^2 i^2): same support, KL = +inf (i * term -> {c} > 0)", True, not div, False),
        ("A finite, p << u", True, _kl_finite_case(), True),
        ("p has mass where u has none (limit eps -> 0)", False, not _kl_outside_support_infinite(), True),
    ]
    bad = []
    for name, inside, finite, finite_A in cases:
        if form == "printed":  # finite  <=>  supp p within supp u
            ok = finite == inside
        else:  # finite => supp p within supp u; the converse on a finite A
            ok = (not finite or inside) and (not (inside and finite_A) or finite)
        if not ok:
            bad.append(name)
    return _count(bad, len(cases))


KL_ONLY_IF = Hypothesis(
    key="sec4-kl-finite-only-if-support",
    equation="Sec 4, sentence after (3) (finiteness of K(p,u))",
    printed=r"\mathcal K(p,u) < \infty \iff p = 0 \text{ outside } \operatorname{supp} u",
    corrected=r"\mathcal K(p,u) < \infty \Rightarrow p = 0 \text{ outside } \operatorname{supp} u"
              r"\ (\Leftarrow\ \text{only for finite } \mathcal A\text{, e.g. discrete } u\text{ of Sec 6})",
    statement="finiteness of KL(p||u) against p vanishing outside supp(u) (Omega = A may be countable or "
              "continuous, Sec 3.1 and Sec 7)",
    violation=_v_kl_only_if, tol=0, fail_at=1,
    why="a count of exact counterexamples (SymPy limits): none is allowed for a correct statement, one refutes it",
)


def _kl(p, u) -> sp.Expr:
    r""":math:`\sum_i p_i\log(p_i/u_i)` with :math:`0\log 0 = 0` and :math:`p\log(p/0) = +\infty` (as the limit
    :math:`u_i \to 0^+`)."""
    e = sp.Symbol("epsilon", positive=True)
    total = sp.Integer(0)
    for pi_, ui in zip(p, u):
        if pi_ == 0:
            continue
        total += pi_ * sp.log(pi_ / (ui if ui != 0 else e))
    return sp.limit(total, e, 0, "+") if total.has(e) else sp.nsimplify(total)


@lru_cache(maxsize=None)  # pure in form: computed once per process (tests, mutants call it often)
def _v_kl_orientation(form: str) -> tuple[int, str]:
    half = sp.Rational(1, 2)
    cases = [((1, 0), (half, half)), ((half, half), (1, 0))]  # (p, u)
    bad = []
    for p, u in cases:
        inside = all(pi_ == 0 or ui != 0 for pi_, ui in zip(p, u))
        val = _kl(u, p) if form == "printed" else _kl(p, u)  # "divergence of u from p" = D(u||p)
        if (val != sp.oo) != inside:
            bad.append(f"p = {p}, u = {u}: divergence {val}, p zero outside supp u: {inside}")
    return _count(bad, len(cases))


KL_ORIENTATION = Hypothesis(
    key="sec4-kl-orientation-d-p-from-u",
    equation="Sec 4, sentence after (3) (definition of K(p,u))",
    printed=r"\mathcal K(p,u) = \text{the KL divergence of } u \text{ from } p = D(u\,\|\,p)",
    corrected=r"\mathcal K(p,u) = \text{the KL divergence of } p \text{ from } u = D(p\,\|\,u) = \textstyle\int p\log(p/u)",
    statement="the property the next sentence states (finite iff p vanishes outside supp u) for the divergence "
              "named (the usual reading: 'the divergence of P from Q' is D(P||Q))",
    violation=_v_kl_orientation, tol=0, fail_at=1,
    why="exact values (SymPy) on two two-point cases; one case where finiteness and support disagree refutes the form",
)


# Sec 3.2, IC: "z = f_evd, which predicts the shift of mu from h.  So mu + z estimates h."
@lru_cache(maxsize=None)  # pure in form: computed once per process (tests, mutants call it often)
def _v_shift_direction(form: str) -> tuple[int, str]:
    h, mu = sp.symbols("h mu", real=True)
    Ez = h - mu  # (2): z = h - mu + eps, E eps = 0
    shift = (mu - h) if form == "printed" else (h - mu)  # "shift of X from Y" = X - Y (the paper's own FB usage)
    res = [sp.simplify(Ez - shift), sp.simplify(mu + shift - h)]  # z predicts the shift; mu + shift = h
    bad = [f"{r} != 0" for r in res if r != 0]
    return _count(bad, len(res))


SHIFT_DIRECTION = Hypothesis(
    key="sec3-2-ic-evidence-is-shift-of-h-from-mu",
    equation="Sec 3.2, Image Captioning (what z predicts)",
    printed=r"\mathbf z^{(k)} \text{ predicts the shift of } \boldsymbol\mu^{(k)} \text{ from } \mathbf h^{(k)}"
            r"\ (\approx \boldsymbol\mu - \mathbf h)",
    corrected=r"\mathbf z^{(k)} \text{ predicts the shift of } \mathbf h^{(k)} \text{ from } \boldsymbol\mu^{(k)}"
              r"\ (\approx \mathbf h - \boldsymbol\mu,\ \text{as in (2) and the FB paragraph})",
    statement="E[z] of (2) equals the shift named, and mu + (that shift) = h ('So mu + z estimates h')",
    violation=_v_shift_direction, tol=0, fail_at=1,
    why="two symbolic residuals, each 0 or not",
)


def fd3_hypotheses() -> Evidence:
    """FD-3: the definition of :math:`K(p,u)` and its support property (Sec 4), and the direction of the shift (Sec 3.2)."""
    ev = Evidence()
    for h in (KL_ONLY_IF, KL_ORIENTATION, SHIFT_DIRECTION):
        record(ev, h)
    return ev


# =====================================================================================================
# FD-11 / Thm 2 / Appx A: "the expansion implicitly assumes that W ... has bounded moments";
# "Given u with bounded moments, for a small enough alpha > 0 ..."; Appx A "Assume u has bounded moments."
# =====================================================================================================
@lru_cache(maxsize=None)  # pure in form: computed once per process (tests, mutants call it often)
def _v_bounded_moments(form: str) -> tuple[int, str]:
    x = sp.Symbol("x", real=True)
    a = sp.Symbol("a", positive=True)
    k = sp.Symbol("k", positive=True, integer=True)
    lam = sp.Symbol("lambda", real=True)
    eps = sp.Rational(1, 100)
    phi = sp.exp(-x**2 / 2) / sp.sqrt(2 * sp.pi)
    # lognormal W = e^X, X ~ N(0,1): E W^k = E e^{kX}; E e^{lambda W} for lambda > 0 has integrand -> oo
    logn_moment = sp.simplify(sp.integrate(sp.exp(k * x) * phi, (x, -sp.oo, sp.oo)))
    logn_all_moments = logn_moment == sp.exp(k**2 / 2)
    logn_mgf_finite = sp.limit(sp.exp(eps * sp.exp(x)) * phi, x, sp.oo) == 0  # necessary for a finite integral
    # exponential(1): moments k!, MGF 1/(1 - lambda) on lambda < 1
    expo = sp.exp(-a)
    expo_all_moments = sp.simplify(sp.integrate(a**k * expo, (a, 0, sp.oo)) - sp.factorial(k)) == 0
    expo_mgf = [sp.integrate(sp.exp(s * a) * expo, (a, 0, sp.oo)) for s in (eps, -eps)]
    expo_mgf_finite = all(v.is_finite for v in expo_mgf)
    ser = sp.series(sp.log(1 / (1 - lam)), lam, 0, 3).removeO()
    expo_expansion = sp.simplify(ser - (1 * lam + sp.Rational(1, 2) * 1 * lam**2)) == 0  # mu = 1, Sigma = 1
    cases = [  # name, all moments finite, MGF finite near 0, expansion (11) holds
        (f"lognormal: E W^k = {logn_moment}, E e^(W/100) = +inf", logn_all_moments, logn_mgf_finite, False),
        ("exponential(1): E W^k = k!, log M = l + l^2/2 + O(l^3)", expo_all_moments, expo_mgf_finite,
         expo_mgf_finite and expo_expansion),
    ]
    bad = []
    for name, moments, mgf, expansion in cases:
        hyp = moments if form == "printed" else mgf
        if hyp and not expansion:
            bad.append(name)
    return _count(bad, len(cases))


BOUNDED_MOMENTS = Hypothesis(
    key="thm2-11-hypothesis-mgf-finite-near-0",
    equation="(11) and Thm 2, hypothesis (also Appx A, first line)",
    printed=r"u \text{ has bounded moments } (\textstyle\int\|\mathbf a\|^k u(\mathbf a)\,d\mathbf a < \infty\ \forall k)",
    corrected=r"M(\boldsymbol\lambda) = \textstyle\int u(\mathbf a)e^{\langle\mathbf a,\boldsymbol\lambda\rangle}d\mathbf a"
              r" < \infty \text{ on a neighbourhood of } 0 \text{ (true for finitely supported } u\text{)}",
    statement="the hypothesis implies the expansion (11) of log M about 0",
    violation=_v_bounded_moments, tol=0, fail_at=1,
    why="a count of exact counterexamples (SymPy integrals and limits): a distribution satisfying the hypothesis "
        "whose log M has no expansion at 0 refutes it",
)


def fd11_hypotheses() -> Evidence:
    """FD-11: the hypothesis under which the cumulant expansion (11) and Theorem 2 hold."""
    ev = Evidence()
    record(ev, BOUNDED_MOMENTS)
    return ev


# =====================================================================================================
# FD-19, Sec 8: "Let x_i in R^d for i in 1, 2..., n, y_j in R^d for i in 1, 2..., m"
# =====================================================================================================
@lru_cache(maxsize=None)  # pure in form: computed once per process (tests, mutants call it often)
def _v_sec8_index(form: str) -> tuple[int, str]:
    m = 4
    y = sp.IndexedBase("y")
    i, j = sp.symbols("i j", integer=True)
    bound = i if form == "printed" else j
    elems = sp.FiniteSet(*[y[j].subs(bound, v) for v in range(1, m + 1)])
    free = {s for s in elems.free_symbols if s in (i, j)}
    return (m - len(elems)) + len(free), f"the set has {len(elems)} of {m} elements, free indices {sorted(map(str, free))}"


SEC8_INDEX = Hypothesis(
    key="sec8-query-vectors-indexed-by-j",
    equation="Sec 8, definitions before (19)",
    printed=r"\mathbf y_j \in \mathbb R^d \text{ for } i \in 1, 2, \dots, m",
    corrected=r"\mathbf y_j \in \mathbb R^d \text{ for } j \in 1, 2, \dots, m",
    statement="the family {y_j} has m members and no unbound index",
    violation=_v_sec8_index, tol=0, fail_at=1,
    why="the set is built by SymPy with $m = 4$; its size and free symbols are exact",
)


def fd19_definitions() -> Evidence:
    """FD-19: the index range of the query vectors of (19)."""
    ev = Evidence()
    record(ev, SEC8_INDEX)
    return ev


# =====================================================================================================
# FD-22, (43): sum_{t in A} u(t) mu_t = sum_{i=1}^N u(t) sum_{t'} q_t(t') t' = ... (and the display before it)
# =====================================================================================================
@lru_cache(maxsize=None)  # pure in form: computed once per process (tests, mutants call it often)
def _v_43_index(form: str) -> tuple[float, str]:
    rng = context.rng("hypotheses-004-43")
    N, d, gamma = 4, 2, 0.7
    T = rng.normal(size=(N, d))
    u = rng.dirichlet(np.ones(N))
    M = ((T[:, None] - T[None]) ** 2).sum(-1)  # symmetric, as footnote 9 assumes
    Q = np.exp(-M / gamma)
    Q /= Q.sum(axis=1, keepdims=True)  # q_t(t') = e^{-M(t,t')/gamma} / Z(t)
    mu_t = Q @ T  # rows mu_t of (41)
    C = np.exp(-M / gamma)
    mu_tilde = ((u[None, :] * C / C.sum(axis=0, keepdims=True)).sum(axis=1)) @ T  # (38)
    if form == "printed":  # sum_{i=1}^N u(t) mu_t: the summand does not depend on i, t stays free
        vals = [N * u[t] * mu_t[t] for t in range(N)]
    else:
        vals = [(u[:, None] * mu_t).sum(axis=0)]
    dev = max(float(np.abs(v - mu_tilde).max()) for v in vals)
    return dev, f"max over the free t of |value - mu~| = {dev:.3e} (N = {N}, d = {d}, gamma = {gamma})"


IDX_43 = Hypothesis(
    key="appx-d-43-summation-over-templates",
    equation="(43), middle (and the display before the small-alpha step, (sum_i u(t) mu_t)^T lambda)",
    printed=r"\sum_{\mathbf t\in\mathcal A} u(\mathbf t)\boldsymbol\mu_{\mathbf t} = \sum_{i=1}^{N} u(\mathbf t)"
            r"\sum_{\mathbf t'\in\mathcal A} q_{\mathbf t}(\mathbf t')\,\mathbf t'",
    corrected=r"\sum_{\mathbf t\in\mathcal A} u(\mathbf t)\boldsymbol\mu_{\mathbf t} = \sum_{\mathbf t\in\mathcal A}"
              r" u(\mathbf t)\sum_{\mathbf t'\in\mathcal A} q_{\mathbf t}(\mathbf t')\,\mathbf t'",
    statement="the middle of (43) equals mu~ of (38) (symmetric M)",
    violation=_v_43_index, tol=1e-13, fail_at=1e-3,
    why=r"both sides are sums of at most $N^2 = 16$ terms of size $\le 10$: float64 round-off is below $10^{-13}$; the "
        r"printed sum (summand free of $i$) misses $\tilde\mu$ by $O(1)$",
    method="numpy", numerical_class="roundoff", evidence="float",
)


def fd22_indices() -> Evidence:
    """FD-22: the summation index of (43)."""
    ev = Evidence()
    record(ev, IDX_43)
    return ev


# =====================================================================================================
# FD-B, Appx B: "This implies the log likelihood function l(z) ∝ -1/(2 sigma^2) ||(mu + z) - h||^2"
# =====================================================================================================
@lru_cache(maxsize=None)  # pure in form: computed once per process (tests, mutants call it often)
def _v_log_likelihood(form: str) -> tuple[int, str]:
    b, h = sp.symbols("b h", real=True)  # b = mu + z, one coordinate (the d-dimensional case is a sum of these)
    sigma = sp.Symbol("sigma", positive=True)
    ell = sp.expand_log(sp.log(sp.exp(-(b - h) ** 2 / (2 * sigma**2)) / sp.sqrt(2 * sp.pi * sigma**2)), force=True)
    g = -(b - h) ** 2 / (2 * sigma**2)
    rel = sp.simplify(ell / g) if form == "printed" else sp.simplify(ell - g)  # "∝": ratio constant; "+ const": difference
    depends = sorted(str(v) for v in rel.free_symbols & {b, h})
    return int(bool(depends)), f"{'l / g' if form == 'printed' else 'l - g'} = {rel}, depends on {depends or 'neither b nor h'}"


LOG_LIKELIHOOD = Hypothesis(
    key="appx-b-log-likelihood-up-to-an-additive-constant",
    equation="Appx B, maximum-likelihood paragraph (before (27))",
    printed=r"\ell(\mathbf z) \propto -\frac{1}{2\sigma^2}\|(\boldsymbol\mu + \mathbf z) - \mathbf h\|^2",
    corrected=r"\ell(\mathbf z) = -\frac{1}{2\sigma^2}\|(\boldsymbol\mu + \mathbf z) - \mathbf h\|^2 + \text{const}"
              r"\ \ (\text{const} = -\tfrac d2\log(2\pi\sigma^2))",
    statement="the Gaussian log-likelihood of (2) and the quadratic are related as the form says (a constant ratio, "
              "or a constant difference)",
    violation=_v_log_likelihood, tol=0, fail_at=1,
    why="SymPy simplifies the ratio and the difference exactly; whether b or h remains in it is exact",
)


def fdb_likelihood() -> Evidence:
    """FD-B: the relation between the log-likelihood and the quadratic term of (27)."""
    ev = Evidence()
    record(ev, LOG_LIKELIHOOD)
    return ev


HYPOTHESES = [KL_ONLY_IF, KL_ORIENTATION, SHIFT_DIRECTION, BOUNDED_MOMENTS, SEC8_INDEX, IDX_43, LOG_LIKELIHOOD]
