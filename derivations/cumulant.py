r"""Cumulant expansion of :math:`\log M` and the small-:math:`\alpha` solution of the dual (004, Sec 6, Appx A).

Claims FD-11, FD-13 (with footnote 5) and FD-14.  The discrete preference :math:`u` has a
symbolic number :math:`n` of atoms :math:`t_1..t_n`; general :math:`d` is handled through directional
derivatives (:math:`\lambda = sv`, :math:`c_i = \langle t_i, v\rangle`) and polarisation, or through sympy
MatrixSymbol algebra; an explicit small case is always added as a second route.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import sympy as sp

from attnverify.evidence import Erratum, Evidence, Table, full_simplify
from attnverify.sources import SOURCE_004
from attnverify.derivations._sums import eq, sum_expand, sum_expand_simplify

S = sp.S

# -- shared symbols -----------------------------------------------------------
n = sp.Symbol("n", integer=True, positive=True)
i, j = sp.symbols("i j", integer=True)
_k = sp.Symbol("k", integer=True)  # canonical dummy index
u = sp.IndexedBase("u")  # preference weights u_i
c = sp.IndexedBase("c")  # c_i = <t_i, v> for a direction v
s = sp.Symbol("s", real=True)  # lambda = s v
alpha = sp.Symbol("alpha", positive=True)


# -- small helpers (mat_simplify is also used by gaussian.py) -----------------
_U_SUMS_TO_1 = (sp.Sum(u[_k], (_k, 1, n)),)  # sum_i u_i = 1, in the form sum_expand substitutes


def _expand_normalised(e):
    r"""``sum_expand`` with the canonical index :math:`k`, using :math:`\sum_i u_i = 1`."""
    return sum_expand(e, _k, _U_SUMS_TO_1)


def sum_zero(e, normalised=True):
    r"""Residual simplifier for identities between sums: ``sum_expand_simplify``, with :math:`\sum_i u_i = 1` if
    ``normalised``."""
    return sum_expand_simplify(e, _k, _U_SUMS_TO_1 if normalised else ())


def mat_simplify(e):
    """Simplify a residual that may be a scalar, an explicit Matrix or a MatrixSymbol expression.

    Returns sympy zero when it vanishes (Evidence.identity compares the residual with 0).
    """
    if isinstance(e, sp.MatrixBase):
        r = e.applyfunc(full_simplify)
        return S.Zero if r.is_zero_matrix else r
    if not isinstance(e, sp.MatrixExpr):
        return full_simplify(e)
    e = sp.expand(e).doit()
    if isinstance(e, sp.ZeroMatrix):
        return S.Zero
    acc = {}  # matrix part -> accumulated scalar coefficient
    for t in e.args if isinstance(e, sp.MatAdd) else (e,):
        if isinstance(t, sp.MatMul):
            coeff, mats = t.as_coeff_matrices()
            key = sp.MatMul(*mats).doit() if len(mats) > 1 else mats[0]
        else:
            coeff, key = S.One, t
        acc[key] = acc.get(key, 0) + coeff
    out = [sp.simplify(co) * m for m, co in acc.items() if sp.simplify(co) != 0]
    return S.Zero if not out else sp.MatAdd(*out)


def _taylor_coeffs(f, var, order):
    r"""Taylor coefficients :math:`f^{(k)}(0)/k!`, :math:`k = 0..\mathrm{order}`, by differentiating (works through Sum)."""
    return [sp.diff(f, var, kk).subs(var, 0).doit() / sp.factorial(kk) for kk in range(order + 1)]


# =============================================================================
# FD-11: cumulant expansion
# =============================================================================
def _mean_dir():
    r""":math:`\langle\mu, v\rangle = \sum_i u_i \langle t_i, v\rangle`."""
    return sp.Sum(u[j] * c[j], (j, 1, n))


def variance_along():
    r""":math:`v^\top\Sigma v = \sum_i u_i \langle t_i - \mu, v\rangle^2`."""
    return sp.Sum(u[i] * (c[i] - _mean_dir()) ** 2, (i, 1, n))


def _kappa3_dir():
    r""":math:`\kappa_3[v,v,v] = \sum_i u_i \langle t_i - \mu, v\rangle^3`."""
    return sp.Sum(u[i] * (c[i] - _mean_dir()) ** 3, (i, 1, n))


def _second_moment_dir():
    r""":math:`v^\top (\sum_i u_i t_i t_i^\top)\, v = \sum_i u_i \langle t_i, v\rangle^2`."""
    return sp.Sum(u[i] * c[i] ** 2, (i, 1, n))


def cumulant_expansion(*, first=None, second=None, third=None) -> Evidence:
    r"""The cumulant expansion (11),

    .. math::

        \log M(\lambda) = \langle\mu, \lambda\rangle + \tfrac12\lambda^\top\Sigma\lambda + o(\|\lambda\|^2)
        \quad (\text{in fact } O(\|\lambda\|^3)),

    for a discrete :math:`u = \sum_i u_i \delta_{t_i}` of any size :math:`n`, in any dimension :math:`d`, with
    :math:`M(\lambda) = \sum_i u_i e^{\langle t_i, \lambda\rangle}`, :math:`\mu = \sum_i u_i t_i`,
    :math:`\Sigma = \sum_i u_i (t_i - \mu)(t_i - \mu)^\top`.

    Source: 004_830fd89135933577.txt, eq (11) and Appendix A, (23)-(26) and the display after (26).
    """
    ev = _directional_evidence(first, second, third)
    ev.extend(_explicit_case_evidence())
    ev.extend(_appendix_a_evidence())
    return ev


def _directional_evidence(first=None, second=None, third=None) -> Evidence:
    r"""Derivatives of :math:`s \mapsto \log M(sv)` at 0 against candidate closed forms (defaults: the cumulants)."""
    ev = Evidence()
    first = _mean_dir() if first is None else first
    second = variance_along() if second is None else second
    third = _kappa3_dir() if third is None else third

    M = sp.Sum(u[i] * sp.exp(s * c[i]), (i, 1, n))
    K = sp.log(M)
    ev.step(r"Discrete $u$ of symbolic size $n$: $M(\lambda)$ of (8) is a finite sum; take $\lambda = sv$ and write "
            r"$c_i = \langle t_i, v\rangle$.",
            (sp.Function("M")(s * sp.Symbol("v")), M))
    ev.step(r"By linearity of the mean and the definition of $\Sigma$, the mean, variance and third cumulant along $v$ are",
            r"\langle\mu,v\rangle=\sum_i u_i c_i,\quad v^\top\Sigma v=\sum_i u_i(c_i-\langle\mu,v\rangle)^2,"
            r"\quad \kappa_3[v,v,v]=\sum_i u_i(c_i-\langle\mu,v\rangle)^3")
    K0 = _expand_normalised(K.subs(s, 0).doit())
    ev.step(r"At $s = 0$, $\log M(0) = \log\sum_i u_i = 0$ because $\sum_i u_i = 1$.", (sp.log(sp.Sum(u[i], (i, 1, n))), K0))
    ev.identity("FD-11 log M(0) = 0", K0, 0, metric=r"$\log M(0)$ with $\sum_i u_i = 1$", simplify=sum_zero,
                key="fd-11-log-m-0-0")

    d1, d2, d3 = (sp.diff(K, s, kk).subs(s, 0).doit() for kk in (1, 2, 3))
    ev.step("First derivative at 0 (differentiating through the sum).", eq("K'(0)", d1))
    ev.step(r"Using $\sum_i u_i = 1$ it is the mean along $v$.", eq("K'(0)", _expand_normalised(d1)))
    ev.identity("FD-11 d/ds log M(sv)|0 = <mu,v>", d1, first,
                metric=r"$\frac{d}{ds}\log M(sv)|_{s=0} - \sum_i u_i c_i$, with $\sum_i u_i = 1$", simplify=sum_zero,
                key="fd-11-d-ds-log-m-sv-0-mu-v")
    ev.step("Second derivative at 0.", eq("K''(0)", d2))
    ev.step(r"With $\sum_i u_i = 1$: second moment minus squared mean along $v$.", eq("K''(0)", _expand_normalised(d2)))
    ev.identity("FD-11 d2/ds2 log M(sv)|0 = v^T Sigma v", d2, second,
                metric=r"$\frac{d^2}{ds^2}\log M(sv)|_0 - \sum_i u_i (c_i - \langle\mu,v\rangle)^2$, with $\sum_i u_i = 1$",
                simplify=sum_zero, key="fd-11-d2-ds2-log-m-sv-0-v-t-sigma-v")
    ev.step(r"Third derivative at 0 is the third cumulant (third central moment) along $v$.",
            eq("K'''(0)", _expand_normalised(d3)))
    ev.identity("FD-11 d3/ds3 log M(sv)|0 = kappa3[v,v,v]", d3, third,
                metric=r"$\frac{d^3}{ds^3}\log M(sv)|_0 - \sum_i u_i (c_i - \langle\mu,v\rangle)^3$, with $\sum_i u_i = 1$",
                simplify=sum_zero, key="fd-11-d3-ds3-log-m-sv-0-kappa3-v-v-v")
    ev.step(r"Polarisation: $\langle g,v\rangle = \langle\mu,v\rangle$ for all $v$ gives $\nabla\log M(0) = \mu$, and "
            r"$v^\top Hv = v^\top\Sigma v$ for all $v$ with $H, \Sigma$ symmetric gives $H = \Sigma$, since "
            r"$v^\top Hw = ((v+w)^\top H(v+w) - (v-w)^\top H(v-w))/4$.",
            r"\nabla\log M(0)=\mu,\qquad \nabla^2\log M(0)=\Sigma")
    ev.step(r"$\log M$ is analytic near 0 (a positive finite sum of exponentials), so Taylor's theorem with the bounded "
            r"third derivative (the third cumulant tensor) gives a remainder $O(\|\lambda\|^3)$, in particular "
            r"$o(\|\lambda\|^2)$.",
            r"\log M(\lambda)=\langle\mu,\lambda\rangle+\tfrac12\lambda^\top\Sigma\lambda+\tfrac16\kappa_3[\lambda,\lambda,\lambda]+O(\|\lambda\|^4)")
    return ev


def _explicit_case_evidence() -> Evidence:
    r""":math:`n = 3`, :math:`d = 2`, fully symbolic :math:`t` and :math:`u`: gradient and Hessian of :math:`\log M` at 0
    by ``sp.diff``."""
    ev = Evidence()
    u1, u2 = sp.symbols("u1 u2", positive=True)
    us = [u1, u2, 1 - u1 - u2]
    T = sp.Matrix(3, 2, lambda a, b: sp.Symbol(f"t{a + 1}{b + 1}", real=True))
    l1, l2 = sp.symbols("lambda1 lambda2", real=True)
    lam = sp.Matrix([l1, l2])
    M = sum(us[a] * sp.exp((T[a, :] * lam)[0]) for a in range(3))
    K = sp.log(M)
    at0 = {l1: 0, l2: 0}
    grad = sp.Matrix([sp.diff(K, x) for x in (l1, l2)]).subs(at0)
    hess = sp.hessian(K, (l1, l2)).subs(at0)
    mu = sum((us[a] * T[a, :].T for a in range(3)), sp.zeros(2, 1))
    Sigma = sum(((T[a, :].T - mu) * (T[a, :].T - mu).T * us[a] for a in range(3)), sp.zeros(2, 2))
    ev.step(r"Explicit case (second, non-directional route): $n = 3$, $d = 2$, $u_3 = 1 - u_1 - u_2$, all $t_{ik}$ symbolic.",
            eq("M(\\lambda)", M))
    ev.step(r"Gradient of $\log M$ at 0 by `sp.diff`.", eq("\\nabla\\log M(0)", sp.simplify(grad)))
    ev.identity("FD-11 explicit n=3,d=2: grad log M(0) = mu", grad, mu, simplify=mat_simplify,
                metric=r"$\nabla\log M(0) - \sum_i u_i t_i$ (entrywise, simplified)",
                key="fd-11-explicit-n-3-d-2-grad-log-m-0-mu")
    ev.identity("FD-11 explicit n=3,d=2: Hess log M(0) = Sigma", hess, Sigma, simplify=mat_simplify,
                metric=r"$\nabla^2\log M(0) - \sum_i u_i (t_i-\mu)(t_i-\mu)^\top$ (entrywise, simplified)",
                key="fd-11-explicit-n-3-d-2-hess-log-m-0-sigma")
    # (24), (25) non-directionally, and Sigma = M''(0) - M'(0)M'(0)^T
    Mgrad = sp.Matrix([sp.diff(M, x) for x in (l1, l2)]).subs(at0)
    Mhess = sp.hessian(M, (l1, l2)).subs(at0)
    second_moment = sum((us[a] * T[a, :].T * T[a, :] for a in range(3)), sp.zeros(2, 2))
    ev.identity("FD-11 explicit (24): M'(0) = mu", Mgrad, mu, simplify=mat_simplify, metric=r"$\nabla M(0) - \mu$",
                key="fd-11-explicit-24-m-0-mu")
    ev.identity("FD-11 explicit (25): M''(0) = sum u_i t_i t_i^T", Mhess, second_moment, simplify=mat_simplify,
                metric=r"$\nabla^2 M(0) - \sum_i u_i t_i t_i^\top$", key="fd-11-explicit-25-m-0-sum-u-i-t-i-t-i-t")
    ev.identity("FD-11 explicit: M''(0) - M'(0)M'(0)^T = Sigma", Mhess - Mgrad * Mgrad.T, Sigma,
                simplify=mat_simplify, metric=r"$M''(0) - M'(0)M'(0)^\top - \sum_i u_i (t_i-\mu)(t_i-\mu)^\top$",
                key="fd-11-explicit-m-0-m-0-m-0-t-sigma")
    return ev


def _appendix_a_evidence() -> Evidence:
    """Appendix A, (23)-(26) and the display after it, checked as printed."""
    ev = Evidence()
    M = sp.Sum(u[i] * sp.exp(s * c[i]), (i, 1, n))
    _mgf_23_lacks_the_exponential_and_24_25_hold(ev, M)
    _log_series_26_uses_the_wrong_variable(ev)
    _display_after_26_gives_the_covariance(ev, M)
    return ev


def _mgf_23_lacks_the_exponential_and_24_25_hold(ev: Evidence, M: sp.Expr) -> None:
    """(23) as printed has no exp (erratum); the Taylor coefficients of the corrected M are 1, (24) and (25)."""
    printed23 = sp.Sum(u[i] * s * c[i], (i, 1, n))
    ev.step(r"(23) as printed has integrand $\langle a,\lambda\rangle u(a)$ (no exp); for discrete $u$ along $\lambda = sv$ this is",
            eq("M_{(23)}(sv)", printed23))
    gap_at0 = _expand_normalised((printed23 - M).subs(s, 0).doit())
    ev.step(r"Compared with (8) at $s = 0$ the printed form gives 0 while $M(0) = \sum_i u_i = 1$.",
            eq("M_{(23)}(0)-M(0)", gap_at0))
    if gap_at0 != 0:
        ev.errata.append(Erratum(
            source=SOURCE_004, equation="(23)",
            printed=r"M(\boldsymbol{\lambda}) = \int_{\mathbb{R}^d} \langle \mathbf{a}, \boldsymbol{\lambda} \rangle u(\mathbf{a}) d\mathbf{a}",
            corrected=r"M(\boldsymbol{\lambda}) = \int_{\mathbb{R}^d} \exp\langle \mathbf{a}, \boldsymbol{\lambda} \rangle u(\mathbf{a}) d\mathbf{a}",
            note="The exp is missing: the printed integral is <mu,lambda>, which vanishes at 0 and differs from the "
                 "MGF (8) and from the right-hand side 1 + <M'(0),lambda> + ... of (23) itself. "
                 f"Computed for discrete u: printed minus (8) at lambda = 0 is {gap_at0}."))
    # the right-hand side of (23), with (24) and (25), for the corrected M
    co = [_expand_normalised(x) for x in _taylor_coeffs(M, s, 2)]
    second_moment_dir = _second_moment_dir()  # v^T (sum u_i t_i t_i^T) v
    ev.step(r"Taylor coefficients of the corrected $M(sv) = \sum_i u_i e^{sc_i}$ at $s = 0$ (orders 0, 1, 2).",
            "(M_0, M_1, M_2) = " + sp.latex(sp.Matrix(co).T))
    ev.identity("FD-11 (23) corrected: constant term 1", co[0], 1,
                metric=r"$M(0) - 1$ with $M$ of (8); printed (23) LHS compared and differs, see errata",
                simplify=sum_zero, key="fd-11-23-corrected-constant-term-1")
    ev.identity("FD-11 (24): <M'(0), v> = <mu, v>", co[1], _mean_dir(),
                metric=r"$\frac{d}{ds}M(sv)|_0 - \sum_i u_i c_i$", simplify=sum_zero, key="fd-11-24-m-0-v-mu-v")
    ev.identity("FD-11 (25): v^T M''(0) v = sum_i u_i <t_i,v>^2", 2 * co[2], second_moment_dir,
                metric=r"$\frac{d^2}{ds^2}M(sv)|_0 - v^\top (\int aa^\top u)\, v$", simplify=sum_zero,
                key="fd-11-25-v-t-m-0-v-sum-i-u-i-t-i-v-2")


def _log_series_26_uses_the_wrong_variable(ev: Evidence) -> None:
    r"""(26) as printed expands :math:`\log(1 + x)` in :math:`t` (erratum); the series of :math:`\log(1 + t)` is right."""
    x, t = sp.symbols("x t")
    printed26 = t - t**2 / 2 + t**3 / 3 - t**4 / 4
    true_x = sp.series(sp.log(1 + x), x, 0, 5).removeO()
    diff26 = sp.simplify(true_x - printed26)
    ev.step(r"(26) as printed: the left side is in $x$, the series in $t$; the series of $\log(1+x)$ minus the printed right side is",
            eq("\\Delta_{(26)}", diff26))
    if diff26 != 0:
        ev.errata.append(Erratum(
            source=SOURCE_004, equation="(26)",
            printed=r"\log(1+x) = t - \frac{t^2}{2} + \frac{t^3}{3} - \frac{t^4}{4} + \dots = t - \frac{t^2}{2} + o(t^2)",
            corrected=r"\log(1+t) = t - \frac{t^2}{2} + \frac{t^3}{3} - \frac{t^4}{4} + \dots = t - \frac{t^2}{2} + o(t^2)",
            note="Variable mismatch: the left side uses x, the series uses t. Computed: "
                 f"series(log(1+x), x, 0, 5) - printed = {sp.sstr(diff26)}."))
    ev.identity("FD-11 (26) corrected: log(1+t) series coefficients", sp.series(sp.log(1 + t), t, 0, 5).removeO(),
                printed26, metric=r"`series(log(1+t), t, 0, 5)` $- (t - t^2/2 + t^3/3 - t^4/4)$; printed (26) "
                                  r"with $\log(1+x)$ compared and differs, see errata",
                key="fd-11-26-corrected-log-1-t-series-coefficients")


def _display_after_26_gives_the_covariance(ev: Evidence, M: sp.Expr) -> None:
    r"""The display after (26): :math:`\log(1 + X)` to order 2, on :math:`M` of (8) the variance along :math:`v`, and
    entrywise :math:`\Sigma = M''(0) - M'(0) M'(0)^\top = \sum_i u_i (t_i - \mu)(t_i - \mu)^\top` for general :math:`n`
    and :math:`d`."""
    a1, a2, a3 = sp.symbols("a1 a2 a3")  # <M'(0),v>, v^T M''(0) v, third moment along v
    X = s * a1 + s**2 * a2 / 2 + s**3 * a3 / 6
    logser = sp.series(sp.log(1 + X), s, 0, 3).removeO()
    line1 = sp.expand(X - X**2 / 2)
    line1 = sum(line1.coeff(s, kk) * s**kk for kk in range(3))  # truncate to order s^2
    line2 = s * a1 + s**2 / 2 * (a2 - a1**2)
    ev.step(r"Display after (26), along $\lambda = sv$ with $X = M - 1 = s\langle M'(0),v\rangle + \frac{s^2}{2} v^\top M''(0) v "
            r"+ O(s^3)$.",
            eq("\\log(1+X)", logser))
    ev.identity("FD-11 Appx A line 1: log(1+X) = X - X^2/2 + o(s^2)", logser, line1,
                metric=r"`series(log(1+X), s, 0, 3)` minus the truncation of $X - X^2/2$ at $s^2$",
                key="fd-11-appx-a-line-1-log-1-x-x-x-2-2-o-s-2")
    ev.identity("FD-11 Appx A line 2: <M'(0),l> + 1/2(l^T M''(0) l - <M'(0),l>^2)", logser, line2,
                metric=r"`series(log(1+X), s, 0, 3)` $- (sa_1 + \frac{s^2}{2}(a_2 - a_1^2))$",
                key="fd-11-appx-a-line-2-m-0-l-1-2-l-t-m-0-l-m-0-l-2")
    # the same chain on the actual M of (8): second-order coefficient is the variance along v
    second_moment_dir = _second_moment_dir()
    K2 = _expand_normalised(_taylor_coeffs(sp.log(M), s, 2)[2])
    ev.identity("FD-11 Appx A line 2 on M of (8)", 2 * K2, second_moment_dir - _mean_dir() ** 2,
                metric=r"$2\,[s^2]\log M(sv) - (v^\top M''(0) v - \langle M'(0),v\rangle^2)$", simplify=sum_zero,
                key="fd-11-appx-a-line-2-on-m-of-8")
    # Sigma = M''(0) - M'(0)M'(0)^T = int (a-mu)(a-mu)^T u, general n, general d, entrywise
    t_ = sp.IndexedBase("t")
    p, q = sp.symbols("p q", integer=True)
    mu_p, mu_q = (sp.Sum(u[j] * t_[j, r], (j, 1, n)) for r in (p, q))
    lhs = sp.Sum(u[i] * t_[i, p] * t_[i, q], (i, 1, n)) - mu_p * mu_q
    rhs = sp.Sum(u[i] * (t_[i, p] - mu_p) * (t_[i, q] - mu_q), (i, 1, n))
    ev.step(r"Last line, entrywise for general $n$ and $d$ (indices $p, q$):", eq("\\Sigma_{pq}", lhs))
    ev.identity("FD-11 Sigma = M''(0) - M'(0)M'(0)^T = int (a-mu)(a-mu)^T u", lhs, rhs, simplify=sum_zero,
                metric=r"$\sum_i u_i t_{ip} t_{iq} - \mu_p\mu_q - \sum_i u_i (t_{ip} - \mu_p)(t_{iq} - \mu_q)$, with $\sum_i u_i = 1$",
                key="fd-11-sigma-m-0-m-0-m-0-t-int-a-mu-a-mu-t-u")


# =============================================================================
# FD-13: quadratic cumulant -> lambda* = alpha (I + alpha Sigma)^{-1} z
# =============================================================================
def _lambda13(a, Sig, z, I):
    r"""(13) as printed: :math:`\lambda^* = \alpha (I_d + \alpha\Sigma)^{-1} z`."""
    return a * (I + a * Sig).inv() * z if isinstance(Sig, sp.MatrixBase) else a * (I + a * Sig).I * z



def quadratic_cumulant_solution(*, candidate=_lambda13) -> Evidence:
    r"""With :math:`\log M` replaced by its quadratic cumulant (12), the dual (7) is maximised uniquely at

    .. math::

        \lambda^* = \alpha (I_d + \alpha\Sigma)^{-1} z \qquad (\alpha > 0,\ \Sigma \succeq 0);

    for :math:`\Sigma = I_d` this is :math:`\frac{\alpha}{1+\alpha} z = \frac{\alpha}{\alpha+1}(b - \mu)`, the
    :math:`\lambda^*` of Sec 5.

    Source: 004_830fd89135933577.txt, eqs (7), (12), (13) and footnote 5.
    """
    ev = _quadratic_evidence(candidate)
    ev.extend(_footnote5_evidence())
    return ev


def _quadratic_evidence(candidate=_lambda13) -> Evidence:
    r"""Stationarity of (7) with (12) substituted, against a candidate closed form
    :math:`(a, \Sigma, z, I) \mapsto \lambda`."""
    ev = Evidence()
    d = sp.Symbol("d", integer=True, positive=True)
    Sig, lam = sp.MatrixSymbol("Sigma", d, d), sp.MatrixSymbol("lambda", d, 1)
    z, mu = sp.MatrixSymbol("z", d, 1), sp.MatrixSymbol("mu", d, 1)
    I = sp.Identity(d)
    J = lam.T * (mu + z) - lam.T * lam / (2 * alpha) - (mu.T * lam + lam.T * Sig * lam / 2)
    ev.step(r"Substitute (12) into (7): the objective becomes quadratic in $\lambda$ (general $d$, MatrixSymbol).",
            eq("J(\\lambda)", J))
    g = J.diff(lam).subs(Sig.T, Sig)  # Sigma is a covariance, hence symmetric
    ev.step(r"Gradient ($\Sigma$ symmetric).", eq("\\nabla J", g.doit()))
    ev.identity("FD-13 gradient = z - (I/alpha + Sigma) lambda", g, z - (I + alpha * Sig) * lam / alpha,
                simplify=mat_simplify, metric=r"$\nabla J - (z - (I + \alpha\Sigma)\lambda / \alpha)$",
                key="fd-13-gradient-z-i-alpha-sigma-lambda")
    cand = candidate(alpha, Sig, z, I)
    ev.step(r"Stationarity $z - \lambda/\alpha - \Sigma\lambda = 0$, i.e. $(I + \alpha\Sigma)\lambda = \alpha z$, solved by",
            eq("\\lambda^*", cand))
    ev.identity("FD-13 general d: candidate satisfies stationarity", (z - (I + alpha * Sig) * lam / alpha).subs(lam, cand),
                sp.ZeroMatrix(d, 1), simplify=mat_simplify,
                metric=r"$z - (I + \alpha\Sigma)\lambda^*/\alpha$ with $\lambda^*$ = (13) as printed",
                key="fd-13-general-d-candidate-satisfies-stationarity")
    H = g.diff(lam).subs(Sig.T, Sig)
    ev.step(r"Hessian; for $\Sigma$ PSD and $\alpha > 0$, $x^\top (I/\alpha + \Sigma)\, x \ge \|x\|^2/\alpha > 0$, so $J$ is "
            "strictly concave and the stationary point is the unique maximiser.", r"\nabla^2 J = " + sp.latex(H))
    ev.identity("FD-13 Hessian = -(I/alpha + Sigma)", H, -(I / alpha + Sig), simplify=mat_simplify,
                metric=r"$\nabla^2 J + I/\alpha + \Sigma$", key="fd-13-hessian-i-alpha-sigma")

    # explicit d = 2 by sp.solve, symmetric symbolic Sigma
    s11, s12, s22, z1, z2, m1, m2, l1, l2 = sp.symbols("sigma11 sigma12 sigma22 z1 z2 mu1 mu2 lambda1 lambda2", real=True)
    Sg = sp.Matrix([[s11, s12], [s12, s22]])
    L, Z, MU = sp.Matrix([l1, l2]), sp.Matrix([z1, z2]), sp.Matrix([m1, m2])
    J2 = (L.T * (MU + Z))[0] - (L.T * L)[0] / (2 * alpha) - (MU.T * L)[0] - (L.T * Sg * L)[0] / 2
    sol = sp.solve([sp.diff(J2, l1), sp.diff(J2, l2)], [l1, l2], dict=True)
    if len(sol) != 1:
        ev.check("FD-13 d=2 unique stationary point", "symbolic", r"number of solutions of $\nabla J = 0$",
                 len(sol), 1, False, "a strictly concave quadratic has exactly one stationary point",
                 key="fd-13-d-2-unique-stationary-point", numerical_class="exact", evidence="proof")
        return ev
    sol2 = sp.Matrix([sol[0][l1], sol[0][l2]])
    ev.step(r"Explicit $d = 2$ (symmetric symbolic $\Sigma$): `sp.solve` of $\nabla J = 0$ gives", eq("\\lambda^*", sol2))
    ev.identity("FD-13 d=2: sp.solve = (13)", sol2, candidate(alpha, Sg, Z, sp.eye(2)), simplify=mat_simplify,
                metric=r"`solve(grad J = 0)` $- \alpha (I + \alpha\Sigma)^{-1} z$, entrywise",
                key="fd-13-d-2-sp-solve-13")
    H2 = sp.hessian(J2, (l1, l2))
    ev.identity("FD-13 d=2 Hessian = -(I/alpha + Sigma)", H2, -(sp.eye(2) / alpha + Sg), simplify=mat_simplify,
                key="fd-13-d-2-hessian-i-alpha-sigma")
    # negative definiteness for every PSD Sigma = R R^T (Cholesky parametrisation covers all PSD 2x2)
    r1, r2, r3 = sp.symbols("r1 r2 r3", real=True)
    R = sp.Matrix([[r1, 0], [r2, r3]])
    P = sp.eye(2) / alpha + R * R.T
    minors = [sp.expand(P[0, 0]), sp.expand(P.det())]
    pd = all(sp.ask(sp.Q.positive(m)) for m in minors)
    ev.step(r"Negative definiteness for every PSD $\Sigma = RR^\top$: leading minors of $I/\alpha + \Sigma$.",
            r"(P_{11}, \det P) = " + sp.latex(sp.Matrix(minors).T))
    ev.check("FD-13 d=2: I/alpha + Sigma positive definite for PSD Sigma", "symbolic",
             r"sympy `ask(Q.positive)` of the leading principal minors of $I/\alpha + RR^\top$ ($\alpha > 0$, $R$ real)",
             str(minors), "exact", pd, "Sylvester's criterion decides positive definiteness exactly",
             key="fd-13-d-2-i-alpha-sigma-positive-definite-for", numerical_class="exact", evidence="proof")
    return ev


def _footnote5_evidence() -> Evidence:
    r"""Footnote 5: :math:`\Sigma = I_d` in (13) recovers Sec 5's :math:`\lambda^* = \frac{\alpha}{\alpha+1}(b - \mu)`."""
    ev = Evidence()
    d = sp.Symbol("d", integer=True, positive=True)
    z, mu = sp.MatrixSymbol("z", d, 1), sp.MatrixSymbol("mu", d, 1)
    h, eps = sp.MatrixSymbol("h", d, 1), sp.MatrixSymbol("epsilon", d, 1)
    I = sp.Identity(d)
    # (I + alpha I)^{-1} = I/(1+alpha): verify the inverse, then use it
    inv = I / (1 + alpha)
    ev.identity("FD-13 fn5: (I + alpha I) (I/(1+alpha)) = I", (I + alpha * I) * inv, I, simplify=mat_simplify,
                key="fd-13-fn5-i-alpha-i-i-1-alpha-i")
    lam13 = alpha * inv * z
    ev.step(r"Footnote 5: with $\Sigma = I_d$, (13) becomes", eq("\\lambda^*", lam13))
    ev.identity("FD-13 fn5: alpha (I + alpha I)^{-1} z = alpha/(1+alpha) z", lam13, alpha / (1 + alpha) * z,
                simplify=mat_simplify, key="fd-13-fn5-alpha-i-alpha-i-1-z-alpha-1-alpha-z")
    # b = mu + z and, by (2) z = h - mu + eps, b = h + eps = z + mu
    b = sp.MatrixSymbol("b", d, 1)
    b_def = mu + z  # b := mu + z (Sec 5)
    ev.identity("FD-13 fn5: by (2) b = h + eps", b_def.subs(z, h - mu + eps), h + eps, simplify=mat_simplify,
                metric=r"$\mu + z - (h + \epsilon)$ with $z = h - \mu + \epsilon$ from (2)", key="fd-13-fn5-by-2-b-h-eps")
    ev.identity("FD-13 fn5: b - mu = z", (b - mu).subs(b, b_def), z, simplify=mat_simplify,
                key="fd-13-fn5-b-mu-z")
    sec5 = alpha / (alpha + 1) * (b - mu)  # Sec 5 as printed
    ev.step(r"So it equals the motivating example's $\lambda^*$ (Sec 5, as printed) with $b = \mu + z$.",
            eq("\\lambda^*", sec5))
    ev.identity("FD-13 fn5: equals Sec 5 lambda* = alpha/(alpha+1)(b - mu)", lam13, sec5.subs(b, b_def),
                simplify=mat_simplify,
                metric=r"$\alpha (I + \alpha I)^{-1} z - \frac{\alpha}{\alpha+1}(b - \mu)$, $b = \mu + z$",
                key="fd-13-fn5-equals-sec-5-lambda-alpha-alpha-1-b-mu")
    return ev


# =============================================================================
# FD-14: lambda* = alpha z + O(alpha^2)
# =============================================================================
def first_order_lambda(*, a3_candidate=None) -> Evidence:
    r""":math:`\lambda^* = \alpha z + O(\alpha^2)` as :math:`\alpha \to 0`, for the exact maximiser :math:`\lambda^*` of (7);
    more precisely

    .. math::

        \lambda^* = \alpha z - \alpha^2\Sigma z + \alpha^3\big(\Sigma^2 z - \tfrac12\kappa_3[z,z]\big) + O(\alpha^4),

    so :math:`\|\lambda^* - \alpha z\| = O(\alpha^2)`, :math:`\|\lambda^* - (13)\| = O(\alpha^3)` and
    :math:`\hat h(\lambda^*) - \hat h(\alpha z) = -\alpha^2\Sigma^2 z + O(\alpha^3)`.

    Source: 004_830fd89135933577.txt, eqs (7), (13), (14), (16).
    """
    ev = _series13_evidence()
    ev.extend(_exact_dual_d1_evidence(a3_candidate))
    ev.extend(_exact_dual_d2_evidence())
    ev.extend(_hhat_is_grad_evidence())
    ev.step(r"Conclusion: $\|\lambda^* - \alpha z\| = \alpha^2\|\Sigma z\| + O(\alpha^3)$ (log-log slope 2 when $\Sigma z \ne 0$); "
            r"$\|\lambda^* - (13)\| = \alpha^3\|\kappa_3[z,z]\|/2 + O(\alpha^4)$ (slope 3 when $\kappa_3[z,z] \ne 0$); "
            r"$\hat h(\lambda^*) - \hat h(\alpha z) = \nabla K(\lambda^*) - \nabla K(\alpha z) = -\alpha^2\Sigma^2 z + O(\alpha^3)$ "
            r"(slope 2 when $\Sigma z \ne 0$, as $\|\Sigma z\|^2 = z^\top\Sigma^2 z$).",
            r"\|\lambda^*-\alpha z\|=O(\alpha^2),\quad \|\lambda^*-\lambda_{(13)}\|=O(\alpha^3),\quad "
            r"\|\hat h(\lambda^*)-\hat h(\alpha z)\|=O(\alpha^2)")
    ev.tables.append(Table(r"Error laws predicted as $\alpha \to 0$ (read by `checks.closed_forms`)",
                           ["claim", "error", "order", "leading coefficient (d = 2, as SymPy derives it)",
                            "general d"],
                           [[q.claim, q.quantity, q.order, sp.sstr(q.coefficient), q.closed_form]
                            for q in predictions().values()]))
    ev.notes += [
        r"FD-14: slope 2 needs $\Sigma z \ne 0$; FD-13: slope 3 needs $\kappa_3[z,z] \ne 0$ (third cumulant tensor); "
        r"FD-16: slope 2 needs $\Sigma z \ne 0$.",
    ]
    return ev


def _series13_evidence() -> Evidence:
    r"""Route (a): (13) expanded in :math:`\alpha`."""
    ev = Evidence()
    d = sp.Symbol("d", integer=True, positive=True)
    Sig, z = sp.MatrixSymbol("Sigma", d, d), sp.MatrixSymbol("z", d, 1)
    I = sp.Identity(d)
    trunc = alpha * z - alpha**2 * Sig * z + alpha**3 * Sig**2 * z
    ev.step(r"Route (a), general $d$: $(I + \alpha\Sigma)$ times the truncated Neumann series leaves only an $\alpha^4$ term,",
            ((I + alpha * Sig) * trunc - alpha * z, alpha**4 * Sig**3 * z))
    ev.identity("FD-14 general d: (I + alpha Sigma)(alpha z - alpha^2 Sigma z + alpha^3 Sigma^2 z) - alpha z = alpha^4 Sigma^3 z",
                (I + alpha * Sig) * trunc - alpha * z, alpha**4 * Sig**3 * z, simplify=mat_simplify,
                key="fd-14-general-d-i-alpha-sigma-alpha-z-alpha-2")
    ev.step(r"hence (13) $= \alpha z - \alpha^2\Sigma z + \alpha^3\Sigma^2 z + \alpha^4 (I + \alpha\Sigma)^{-1}\Sigma^3 z$, "
            r"and $(I + \alpha\Sigma)^{-1}$ is bounded (norm $\le 1$) for $\Sigma$ PSD, so the last term is $O(\alpha^4)$.",
            r"\alpha(I+\alpha\Sigma)^{-1}z=\alpha z-\alpha^2\Sigma z+\alpha^3\Sigma^2 z+O(\alpha^4)")
    # explicit d = 2
    s11, s12, s22, z1, z2 = sp.symbols("sigma11 sigma12 sigma22 z1 z2", real=True)
    Sg, Z = sp.Matrix([[s11, s12], [s12, s22]]), sp.Matrix([z1, z2])
    lam13 = _lambda13(alpha, Sg, Z, sp.eye(2))
    ser = lam13.applyfunc(lambda e: sp.series(e, alpha, 0, 4).removeO())
    ev.identity("FD-14 d=2: series of (13) in alpha to O(alpha^4)", ser,
                alpha * Z - alpha**2 * Sg * Z + alpha**3 * Sg**2 * Z, simplify=mat_simplify,
                metric=r"series of $\alpha (I + \alpha\Sigma)^{-1} z$ to $O(\alpha^4)$ minus "
                       r"$(\alpha z - \alpha^2\Sigma z + \alpha^3\Sigma^2 z)$",
                key="fd-14-d-2-series-of-13-in-alpha-to-o-alpha-4")
    return ev


# route (b) in d = 1: the exact dual with an undefined cumulant generating function K
_D1_MU, _D1_Z, _D1_S2, _D1_K3, _D1_K4 = sp.symbols("mu z sigma^2 kappa_3 kappa_4", real=True)
_D1_CUMULANTS = {1: _D1_MU, 2: _D1_S2, 3: _D1_K3, 4: _D1_K4}  # K^{(m)}(0)
_D1_K, _D1_X = sp.Function("K"), sp.Symbol("x")
_D1_ANSATZ = sp.symbols("a1:4")  # lambda* = a1 alpha + a2 alpha^2 + a3 alpha^3 + O(alpha^4)


def _d1_at0(e, var):
    """Set ``var`` = 0 and name the derivatives :math:`K^{(m)}(0)` by the cumulants."""
    e = e.subs(var, 0).doit()
    rep = {}
    for q in e.atoms(sp.Subs):
        if q.point != (0,) or not isinstance(q.expr, sp.Derivative):
            raise ValueError(f"unexpected {q}")
        rep[q] = _D1_CUMULANTS[q.expr.derivative_count]
    return sp.expand(e.xreplace(rep))


def _d1_Kp(arg):
    """K'(arg)."""
    return sp.Subs(sp.Derivative(_D1_K(_D1_X), _D1_X), _D1_X, arg)


def _exact_dual_d1_evidence(a3_candidate=None) -> Evidence:
    """Route (b), d = 1: the exact stationarity with an undefined cumulant generating function K."""
    ev = Evidence()
    lam, sol = _d1_ansatz_solved_order_by_order(ev, a3_candidate)
    _d1_implicit_differentiation_agrees_with_the_ansatz(ev, sol)
    _d1_error_laws(ev, lam.subs(sol))
    return ev


def _d1_ansatz_solved_order_by_order(ev: Evidence, a3_candidate) -> tuple[sp.Expr, dict]:
    r"""The coefficients of :math:`\lambda^* = a_1\alpha + a_2\alpha^2 + a_3\alpha^3` solved from the stationarity of (7):
    :math:`a_1 = z`, :math:`a_2 = -\sigma^2 z`, :math:`a_3` against the candidate (default
    :math:`\sigma^4 z - \kappa_3 z^2/2`); returns (ansatz, solution)."""
    mu, z, s2, k3 = _D1_MU, _D1_Z, _D1_S2, _D1_K3
    a1, a2, a3 = _D1_ANSATZ
    lam = a1 * alpha + a2 * alpha**2 + a3 * alpha**3
    G = alpha * z - lam - alpha * (_d1_Kp(lam) - mu)
    ev.step(r"Route (b), exact dual in $d = 1$: stationarity of (7) is $(\mu + z) - \lambda/\alpha - K'(\lambda) = 0$ with "
            r"$K = \log M$, $K'(0) = \mu$, $K''(0) = \sigma^2$, $K'''(0) = \kappa_3$; times $\alpha$:",
            sp.Eq(alpha * z - sp.Symbol("lambda") - alpha * (sp.Function("K'")(sp.Symbol("lambda")) - mu), 0))
    ev.step(r"$G(0,0) = 0$ and $\partial G/\partial\lambda(0,0) = -1$, so by the implicit function theorem $\lambda^*(\alpha)$ "
            r"is analytic with $\lambda^*(0) = 0$; insert the ansatz", eq("\\lambda^*", lam))
    eqs = [_d1_at0(sp.diff(G, alpha, m) / sp.factorial(m), alpha) for m in (1, 2, 3)]
    ev.step(r"Coefficients of $\alpha$, $\alpha^2$, $\alpha^3$ of $G$ ($K'$ expanded at 0):", "(G_1, G_2, G_3) = " + sp.latex(sp.Matrix(eqs).T))
    sol = {}
    for e, a in zip(eqs, (a1, a2, a3)):
        sol[a] = sp.solve(e.subs(sol), a)[0]
    ev.step("Solving order by order.", "(a_1, a_2, a_3) = " + sp.latex(sp.Tuple(sol[a1], sol[a2], sol[a3])))
    ev.identity("FD-14 d=1 exact dual: a1 = z", sol[a1], z, key="fd-14-d-1-exact-dual-a1-z")
    ev.identity("FD-14 d=1 exact dual: a2 = -sigma^2 z", sol[a2], -s2 * z,
                key="fd-14-d-1-exact-dual-a2-sigma-2-z")
    ev.identity("FD-14 d=1 exact dual: a3 = sigma^4 z - kappa3 z^2/2", sol[a3],
                (s2**2 * z - k3 * z**2 / 2) if a3_candidate is None else a3_candidate(s2, k3, z),
                key="fd-14-d-1-exact-dual-a3-sigma-4-z-kappa3-z-2-2")
    return lam, sol


def _d1_implicit_differentiation_agrees_with_the_ansatz(ev: Evidence, sol: dict) -> None:
    r"""Second route: implicit differentiation of :math:`G(f(\alpha), \alpha) = 0` gives the same coefficients."""
    mu, z = _D1_MU, _D1_Z
    a1, a2, a3 = _D1_ANSATZ
    f = sp.Function("f")
    Gf = alpha * z - f(alpha) - alpha * (_d1_Kp(f(alpha)) - mu)
    derivs = {}
    for m in (1, 2, 3):
        e = sp.diff(Gf, alpha, m)
        for mm in range(m, 0, -1):  # replace f^{(mm)}(alpha) by symbols before alpha -> 0
            e = e.subs(sp.Derivative(f(alpha), (alpha, mm)), sp.Symbol(f"F{mm}"))
        e = e.subs(f(alpha), 0)
        e = _d1_at0(e, alpha).subs(derivs)
        derivs[sp.Symbol(f"F{m}")] = sp.solve(e, sp.Symbol(f"F{m}"))[0]
    ev.identity("FD-14 d=1 implicit differentiation agrees with the ansatz",
                sp.Matrix([derivs[sp.Symbol(f"F{m}")] / sp.factorial(m) for m in (1, 2, 3)]),
                sp.Matrix([sol[a1], sol[a2], sol[a3]]), simplify=mat_simplify,
                metric=r"$\lambda^{*(m)}(0)/m!$ by implicit differentiation minus the ansatz coefficients, $m = 1..3$",
                key="fd-14-d-1-implicit-differentiation-agrees-with")


def _d1_error_laws(ev: Evidence, lam_star: sp.Expr) -> None:
    r""":math:`\lambda^* - \alpha z = -\sigma^2 z\alpha^2 + O(\alpha^3)`, :math:`\lambda^* - (13) = -\kappa_3 z^2\alpha^3/2 +
    O(\alpha^4)` and :math:`h(\lambda^*) - h(\alpha z) = -\sigma^4 z\alpha^2 + O(\alpha^3)`."""
    z, s2, k3 = _D1_Z, _D1_S2, _D1_K3
    err14 = sp.expand(lam_star - alpha * z)
    ev.identity("FD-14 d=1: lambda* - alpha z = -sigma^2 z alpha^2 + O(alpha^3)", err14.coeff(alpha, 2), -s2 * z,
                metric=r"$[\alpha^2](\lambda^* - \alpha z) + \sigma^2 z$ (and $[\alpha^1] = 0$ below)",
                key="fd-14-d-1-lambda-alpha-z-sigma-2-z-alpha-2-o")
    ev.identity("FD-14 d=1: [alpha^1](lambda* - alpha z) = 0", err14.coeff(alpha, 1), 0,
                key="fd-14-d-1-alpha-1-lambda-alpha-z-0")
    lam13 = alpha * z / (1 + alpha * s2)
    err13 = sp.series(lam_star - lam13, alpha, 0, 4).removeO()
    ev.step("Against the quadratic-cumulant solution (13) the first two orders cancel:",
            eq("\\lambda^* - \\lambda_{(13)}", err13))
    ev.identity("FD-14 d=1: lambda* - (13) = -kappa3 z^2/2 alpha^3 + O(alpha^4)", err13, -k3 * z**2 / 2 * alpha**3,
                metric=r"series of $\lambda^* - \alpha z/(1 + \alpha\sigma^2)$ to $O(\alpha^4)$ plus $\kappa_3 z^2\alpha^3/2$",
                key="fd-14-d-1-lambda-13-kappa3-z-2-2-alpha-3-o-alpha")
    # h_hat(lambda) = K'(lambda) (mean of the tilted distribution); compare at lambda* and at alpha z
    dh = _d1_Kp(lam_star) - _d1_Kp(alpha * z)
    dh_co = [_d1_at0(sp.diff(dh, alpha, m) / sp.factorial(m), alpha) for m in (0, 1, 2)]
    ev.identity("FD-14 d=1: h(lambda*) - h(alpha z) = -sigma^4 z alpha^2 + O(alpha^3)", sp.Matrix(dh_co),
                sp.Matrix([0, 0, -s2**2 * z]), simplify=mat_simplify,
                metric=r"Taylor coefficients 0..2 of $K'(\lambda^*) - K'(\alpha z)$ minus $(0, 0, -\sigma^4 z)$",
                key="fd-14-d-1-h-lambda-h-alpha-z-sigma-4-z-alpha-2-o")


def _taylor_K(xs, names):
    """Generic Taylor polynomial of K to order 4 at 0 with symmetric-tensor coefficients named by sorted indices."""
    import itertools

    d = len(xs)
    poly = 0
    for order in (1, 2, 3, 4):
        for idx in itertools.product(range(d), repeat=order):
            poly += names(idx) * sp.Mul(*[xs[q] for q in idx]) / sp.factorial(order)
    return poly


@functools.cache
def _d2_series():
    r""":math:`\lambda^*` of (7) in :math:`d = 2` to order :math:`\alpha^3`, :math:`K` a generic 4th-order Taylor polynomial
    with symmetric-tensor coefficients: (coefficients :math:`a_1..a_3` of :math:`\alpha^1..\alpha^3`, :math:`\Sigma`,
    :math:`z`, :math:`\kappa_3[z,z]`, the symbols, :math:`\nabla K`)."""
    xs = sp.symbols("x1 x2", real=True)
    zs, mus = sp.symbols("z1 z2", real=True), sp.symbols("mu1 mu2", real=True)

    def names(idx):
        if len(idx) == 1:
            return mus[idx[0]]
        return sp.Symbol("kappa_" + "".join(str(q + 1) for q in sorted(idx)), real=True)

    Kpoly = _taylor_K(xs, names)
    A = [[sp.Symbol(f"a{o}_{q}") for q in (1, 2)] for o in (1, 2, 3)]
    lam = [sum(A[o][q] * alpha ** (o + 1) for o in range(3)) for q in range(2)]
    grad = [sp.diff(Kpoly, xs[q]).subs(dict(zip(xs, lam)), simultaneous=True) for q in range(2)]
    G = [sp.expand(alpha * zs[q] - lam[q] - alpha * (grad[q] - mus[q])) for q in range(2)]
    sol = {}
    for o in range(3):
        eqs = [G[q].coeff(alpha, o + 1).subs(sol) for q in range(2)]
        sol.update(sp.solve(eqs, A[o], dict=True)[0])
    Sg = sp.Matrix(2, 2, lambda p, q: names((p, q)))
    Z = sp.Matrix(zs)
    k3zz = sp.Matrix([sum(names((p, q, r)) * zs[q] * zs[r] for q in range(2) for r in range(2)) for p in range(2)])
    coeffs = [sp.Matrix([sol[A[o][q]] for q in range(2)]) for o in range(3)]
    gradK = [sp.diff(Kpoly, x) for x in xs]
    return coeffs, Sg, Z, k3zz, xs, gradK


def _exact_dual_d2_evidence() -> Evidence:
    """Route (b) in d = 2 with a generic 4th-order Taylor polynomial of K: checks the general-d a3 with kappa3[z,z]."""
    ev = Evidence()
    coeffs, Sg, Z, k3zz, _, _ = _d2_series()
    ev.step(r"General $d$ (checked in $d = 2$ with a generic symmetric-tensor Taylor polynomial of $K$ to 4th order; the "
            r"remainder only affects $\alpha^4$): the exact maximiser of (7) is",
            r"\lambda^*=\alpha z-\alpha^2\Sigma z+\alpha^3\left(\Sigma^2 z-\tfrac12\kappa_3[z,z]\right)+O(\alpha^4),"
            r"\quad \kappa_3[z,z]_p=\sum_{q,r}\kappa_{pqr}z_qz_r")
    ev.identity("FD-14 d=2: a1 = z", coeffs[0], Z, simplify=mat_simplify, key="fd-14-d-2-a1-z")
    ev.identity("FD-14 d=2: a2 = -Sigma z", coeffs[1], -Sg * Z, simplify=mat_simplify,
                key="fd-14-d-2-a2-sigma-z")
    ev.identity("FD-14 d=2: a3 = Sigma^2 z - kappa3[z,z]/2", coeffs[2], Sg**2 * Z - k3zz / 2, simplify=mat_simplify,
                key="fd-14-d-2-a3-sigma-2-z-kappa3-z-z-2")
    return ev


@dataclass(frozen=True)
class Prediction:
    """An error law err(alpha) = c alpha^order + O(alpha^(order+1)) as alpha -> 0, derived here and
    measured by :mod:`checks.closed_forms`."""

    claim: str
    quantity: str  # the error, in words
    order: int  # the power of alpha of the first non-vanishing Taylor coefficient
    coefficient: sp.Expr  # that coefficient, as SymPy derives it (d = 2, generic cumulants)
    closed_form: str  # the same coefficient for general d, as the check evaluates it


def _leading(series) -> tuple[int, sp.Matrix]:
    r"""(power, coefficient) of the first Taylor coefficient (:math:`\alpha^1, \alpha^2, \dots`) that does not vanish."""
    for o, c in enumerate(series, 1):
        c = c.applyfunc(lambda e: sp.factor(sp.expand(e)))
        if not c.is_zero_matrix:
            return o, c
    raise ValueError("every computed Taylor coefficient vanishes")


@functools.cache
def predictions() -> dict[str, Prediction]:
    r"""The table of error laws FD-13, FD-14, FD-16: orders and leading coefficients read off the :math:`d = 2` series
    of :math:`\lambda^*` (the check takes the order from here, not from a constant of its own)."""
    coeffs, Sg, Z, k3zz, xs, gradK = _d2_series()
    err14 = [coeffs[0] - Z, coeffs[1], coeffs[2]]  # lambda* - alpha z
    # (13) = alpha (I + alpha Sigma)^{-1} z = alpha z - alpha^2 Sigma z + alpha^3 Sigma^2 z + O(alpha^4)
    err13 = [coeffs[0] - Z, coeffs[1] + Sg * Z, coeffs[2] - Sg**2 * Z]
    # h_hat(lambda) = grad K(lambda): h_hat(lambda*) - h_hat(alpha z), Taylor coefficients in alpha
    lam_star = [sum(coeffs[o][q] * alpha ** (o + 1) for o in range(3)) for q in range(2)]
    diff = [sp.expand(g.subs(dict(zip(xs, lam_star)), simultaneous=True)
                      - g.subs(dict(zip(xs, alpha * Z)), simultaneous=True)) for g in gradK]
    err16 = [sp.Matrix([d.coeff(alpha, o) for d in diff]) for o in (1, 2)]
    out = {}
    for claim, quantity, series, closed in (
            ("FD-14", "||lambda* - alpha z||", err14, "-Sigma z"),
            ("FD-13", "||lambda* - (13)||", err13, "-kappa3[z,z]/2"),
            ("FD-16", "||h_hat - (16)||", err16, "-Sigma^2 z")):
        order, coef = _leading(series)
        out[claim] = Prediction(claim, quantity, order, coef, closed)
    return out


def _hhat_is_grad_evidence() -> Evidence:
    r""":math:`\hat h(\lambda)` of (10) is :math:`\nabla\log M(\lambda)`; at :math:`\lambda = \alpha z` it is (16)."""
    ev = Evidence()
    a = sp.IndexedBase("w")  # w_i = <t_i, lambda>
    K = sp.log(sp.Sum(u[i] * sp.exp(a[i] + s * c[i]), (i, 1, n)))
    dK = sp.diff(K, s).subs(s, 0).doit()
    hhat = sp.Sum(u[i] * c[i] * sp.exp(a[i]), (i, 1, n)) / sp.Sum(u[j] * sp.exp(a[j]), (j, 1, n))
    ev.step(r"$\hat h(\lambda)$ of (10) is the gradient of $\log M$: along $v$, with $w_i = \langle t_i, \lambda\rangle$,",
            eq("\\langle\\hat h(\\lambda), v\\rangle", hhat))
    ev.identity("FD-14 h_hat(lambda) = grad log M(lambda) (directional)", dK, hhat,
                metric=r"$\frac{d}{ds}\log M(\lambda + sv)|_0 - \sum_i u_i \langle t_i,v\rangle e^{w_i} / \sum_j u_j e^{w_j}$",
                simplify=lambda e: sum_zero(e, normalised=False),
                key="fd-14-h-hat-lambda-grad-log-m-lambda-directional")
    ev.step(r"At $\lambda = \alpha z$, $w_i = \alpha\langle t_i, z\rangle$ and $\hat h(\alpha z)$ is exactly (16).",
            r"\hat h(\alpha z)=\sum_i t_i\,\frac{u_i e^{\alpha\langle t_i,z\rangle}}{\sum_j u_j e^{\alpha\langle t_j,z\rangle}}")
    return ev
