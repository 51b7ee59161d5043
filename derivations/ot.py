r"""Entropic OT, its conjugate and the OT-based attention (004, Sec 9 and Appendix D).

Claims FD-20 (the Gibbs form of the plan and the entropy convention of (20)), FD-33 (the
Cuturi-Peyre conjugate (33) and gradient (34)), FD-37 (Prop 1, (37)-(38) and :math:`\gamma \to 0`),
FD-22 (the cumulant steps (39)-(43), the stationarity of the quadratic model, (44) and (22))
and FD-G (the grouped cost).

Conventions: templates :math:`t_1..t_N` of :math:`\mathcal A`, :math:`M_{ij} = M(t_i, t_j)` with the FIRST index
belonging to :math:`p` (rows of the plan :math:`X`, :math:`X\mathbf 1 = p`) and the second to :math:`u`
(:math:`X^\top\mathbf 1 = u`), exactly as in (20). Everything is for a symbolic number :math:`N` of templates
(IndexedBase + Sum, KroneckerDelta from differentiating through a Sum); general :math:`d` enters through a direction
:math:`v` (:math:`a_i = \langle t_i, v\rangle`) or a MatrixSymbol, and an explicit small case is added where SymPy
cannot carry the general form. A symmetric :math:`M` is written :math:`M_{ij} = A_{ij} + A_{ji}` (every symmetric
matrix has this form), so a printed formula that needs symmetry can be compared with the derived one for general
:math:`N`.
"""

from __future__ import annotations

import sympy as sp

from attnverify.evidence import Erratum, Evidence, Table
from attnverify.sources import SOURCE_004
from attnverify.derivations._sums import eq, sum_expand, sum_expand_simplify


N = sp.Symbol("N", integer=True, positive=True)  # |A|
i, j, k, l = sp.symbols("i j k l", integer=True)
_K = sp.Symbol("kappa", integer=True)  # canonical dummy of innermost sums
u = sp.IndexedBase("u")
g = sp.IndexedBase("g")
M = sp.IndexedBase("M")
A = sp.IndexedBase("A")  # M = A + A^T parametrises symmetric costs
a = sp.IndexedBase("a")  # a_i = <t_i, v>
q = sp.IndexedBase("q")
x = sp.IndexedBase("x")
gam = sp.Symbol("gamma", positive=True)
alpha = sp.Symbol("alpha", positive=True)
s = sp.Symbol("s", real=True)


# -- helpers -----------------------------------------------------------------------------------
def _in_range(e):
    """Drop the Piecewise 'index :math:`k` lies in :math:`1..N`' that Sum(KroneckerDelta) produces (:math:`k` is a
    template index)."""
    return e.replace(lambda w: isinstance(w, sp.Piecewise), lambda w: w.args[0][0])


def _flatten(e):
    r"""Exchange of finite sums made explicit: :math:`\sum_j c\sum_i f = \sum_{i,j} cf` (:math:`c` free of :math:`i`), and
    the limits of every multiple sum put in one canonical order, so a double sum written either way compares equal."""

    def fl(w):
        f = w.function
        inner = [y for y in (f.args if isinstance(f, sp.Mul) else (f,)) if isinstance(y, sp.Sum)]
        if len(inner) != 1:
            return w
        rest = f / inner[0]
        if any(lim[0] in rest.free_symbols for lim in inner[0].limits):
            return w
        return sp.Sum(rest * inner[0].function, *inner[0].limits, *w.limits)

    e = e.replace(lambda w: isinstance(w, sp.Sum), fl)
    return e.replace(lambda w: isinstance(w, sp.Sum) and len(w.limits) > 1,
                     lambda w: sp.Sum(w.function, *sorted(w.limits, key=lambda lim: str(lim[0]))))


def _zero_swap(e):
    """_zero after exchanging the order of finite sums (Fubini for finite sums)."""
    return sum_expand_simplify(_flatten(sp.expand(e)), _K)


def _zero(normalised=()):
    r"""The residual simplifier ``sum_expand_simplify``, with :math:`\sum_k w_k = 1` for each weight :math:`w` in
    ``normalised``."""
    unit = [sp.Sum(w[_K], (_K, 1, N)) for w in normalised]
    return lambda e: sum_expand_simplify(e, _K, unit)


def _symmetrise(e):
    """Substitute a general symmetric cost :math:`M_{ij} = A_{ij} + A_{ji}`."""
    return e.replace(lambda w: isinstance(w, sp.Indexed) and w.base == M, lambda w: A[w.indices] + A[w.indices[::-1]])


def _explicit(e, n, values):
    """Evaluate a Sum expression for :math:`N = n` with numeric values ``{IndexedBase: array}``; returns a float."""
    e = e.subs(N, n).doit()
    rep = {}
    for base, arr in values.items():
        if len(sp.Array(arr).shape) == 1:
            rep.update({base[r + 1]: arr[r] for r in range(n)})
        else:
            rep.update({base[r + 1, c + 1]: arr[r][c] for r in range(n) for c in range(n)})
    return float(sp.N(e.xreplace(rep), 30))


# a fixed, non-symmetric numeric instance (N = 2) used to show that two forms differ
_NS = {M: [[0.0, 1.0], [0.3, 0.0]], u: [0.25, 0.75], g: [0.4, -0.7], a: [1.0, -2.0]}
_GAMMA0 = 0.5
# the N = 2 instance on which (42) as printed is evaluated (rows: q_t for t = t_1, t_2; a_i = <t_i, v>);
# public: checks.certified encloses both forms on it
ERRATUM_42_Q = [[0.2, 0.8], [0.6, 0.4]]
ERRATUM_42_A = [1.0, -2.0]


def _eval(e, extra=None):
    vals = dict(_NS)
    vals.update(extra or {})
    return _explicit(e.subs({gam: _GAMMA0, alpha: 1}), 2, vals)


def _mat_zero(e):
    """Residual simplifier for matrix identities: ``S.Zero`` when the (symbolic or explicit) matrix vanishes."""
    if isinstance(e, sp.MatrixBase):
        r = e.applyfunc(sp.simplify)
        return sp.S.Zero if r.is_zero_matrix else r
    r = sp.expand(e).doit()
    return sp.S.Zero if (r == 0 or isinstance(r, sp.ZeroMatrix)) else r


# =============================================================================================
# FD-20: the plan of (20) and the entropy convention
# =============================================================================================
def entropic_ot_kkt() -> Evidence:
    r"""The minimiser of (20) is the Gibbs plan :math:`X_{ij} = \exp((f_i + g_j - M_{ij})/\gamma)` for potentials
    :math:`f, g` fixed by the marginals, and :math:`\mathcal W_\gamma(p, u; M) = \langle f, p\rangle + \langle g, u\rangle`;
    (20) with :math:`H(X) = -\sum X\log X` is the objective POT minimises
    (:math:`\langle M, X\rangle + \mathrm{reg}\sum X\log X`, :math:`\mathrm{reg} = \gamma`); the "+1" convention
    :math:`H'(X) = -\sum X(\log X - 1)` shifts :math:`\mathcal W_\gamma` by exactly :math:`-\gamma` and leaves the plan
    unchanged.

    Source: 004_830fd89135933577.txt, eq (20); Cuturi (2013).
    """
    ev = Evidence()
    m, f0, g0, fh = sp.symbols("M_ij f_i g_j fhat_i", real=True)
    Xp = sp.Symbol("X_ij", positive=True)
    summand = m * Xp + gam * Xp * sp.log(Xp) - f0 * Xp - g0 * Xp
    ev.step(r"Lagrangian of (20) with multipliers $f$ (rows, $X\mathbf 1 = p$) and $g$ (columns, $X^\top\mathbf 1 = u$); it is "
            r"a sum of one-variable terms, one per entry $X_{ij}$:", eq(r"\ell(X_{ij})", summand))
    d1 = sp.diff(summand, Xp)
    sol = sp.solve(sp.Eq(d1, 0), Xp)
    ev.step(r"Stationarity in $X_{ij}$:", eq(r"\partial_{X_{ij}}\ell", d1))
    ev.equal("fd-20-one-stationary-point-per-entry", "FD-20 one stationary point per entry", len(sol), 1,
             r"$\ell$ is strictly convex in $X_{ij} > 0$ (second derivative $\gamma / X_{ij}$), so at most one",
             method="symbolic", metric=r"number of solutions of $\partial\ell / \partial X_{ij} = 0$", shown=1,
             numerical_class="exact", evidence="proof")
    Xstar = sol[0]
    ev.step(r"so $X_{ij} = \exp((f_i + g_j - M_{ij})/\gamma - 1)$; writing $\hat f_i = f_i - \gamma$ absorbs the $-1$:", eq("X_{ij}", Xstar))
    ev.identity("FD-20 Gibbs form of the plan", Xstar, sp.exp((fh + g0 - m) / gam).subs(fh, f0 - gam),
                metric=r"solution of $\partial\ell/\partial X = 0$ minus $\exp((\hat f_i + g_j - M_{ij})/\gamma)$, "
                       r"$\hat f = f - \gamma$",
                key="fd-20-gibbs-form-of-the-plan")
    ev.identity("FD-20 strict convexity: d^2 ell / dX^2 = gamma / X", sp.diff(summand, Xp, 2), gam / Xp,
                key="fd-20-strict-convexity-d-2-ell-dx-2-gamma-x")
    gibbs = sp.exp((fh + g0 - m) / gam)
    val = sp.expand_log(m * gibbs + gam * gibbs * sp.log(gibbs), force=True)
    ev.step(r"Value of one entry of $\langle M, X\rangle - \gamma H(X)$ at the Gibbs plan:", eq(r"M_{ij}X_{ij} + \gamma X_{ij}\log X_{ij}", sp.simplify(val)))
    ev.identity("FD-20 entrywise value = X_ij (fhat_i + g_j)", val, gibbs * (fh + g0),
                metric=r"$MX + \gamma X\log X - X(\hat f + g)$ at $X$ = Gibbs; summing over $i, j$ with $X\mathbf 1 = p$, "
                       r"$X^\top\mathbf 1 = u$ gives $\mathcal W = \langle\hat f, p\rangle + \langle g, u\rangle$",
                key="fd-20-entrywise-value-x-ij-fhat-i-g-j")
    ev.step(r"Summing over $i, j$ and using the marginals: the value is linear in the potentials.",
            r"\mathcal W_\gamma(p,u;M) = \sum_{ij} X_{ij}(\hat f_i + g_j) = \langle \hat f, p\rangle + \langle g, u\rangle")
    # conventions
    Xs = sp.IndexedBase("X")
    H20 = -sp.Sum(Xs[i, j] * sp.log(Xs[i, j]), (i, 1, N), (j, 1, N))
    Hp1 = -sp.Sum(Xs[i, j] * (sp.log(Xs[i, j]) - 1), (i, 1, N), (j, 1, N))
    pot = sp.Sum(Xs[i, j] * sp.log(Xs[i, j]), (i, 1, N), (j, 1, N))  # POT's Omega
    ev.step(r"POT minimises $\langle M, X\rangle + \mathrm{reg}\cdot\Omega(X)$ with $\Omega(X) = \sum X\log X$; with "
            r"$\mathrm{reg} = \gamma$ this is (20)'s objective term by term:", eq(r"-\gamma H(X) - \gamma\,\Omega(X)", sp.simplify(-gam * H20 - gam * pot)))
    ev.identity("FD-20 (20) = POT's objective", (-gam * H20 - gam * pot).doit(), 0,
                metric=r"$-\gamma H(X) - \gamma\,\Omega_{\rm POT}(X)$ for general $N$", simplify=lambda e: sp.simplify(sp.expand(e)),
                key="fd-20-20-pot-s-objective")
    shift = sp.simplify(-gam * Hp1 + gam * H20)
    ev.step(r"The '+1' convention $H'(X) = -\sum X(\log X - 1)$ differs by $\gamma\sum_{ij} X_{ij} = \gamma$ ($X$ has total mass 1):",
            eq(r"-\gamma H'(X) - (-\gamma H(X))", shift))
    ev.identity("FD-20 '+1' convention shifts W by -gamma", shift.subs(sp.Sum(Xs[i, j], (i, 1, N), (j, 1, N)), 1), -gam,
                metric=r"$-\gamma H'(X) + \gamma H(X)$ with $\sum_{ij} X_{ij} = 1$ (same plan, value shifted by $-\gamma$), "
                       r"general $N$",
                key="fd-20-1-convention-shifts-w-by-gamma")
    ev.step(r"Bounds used by the numeric check of the limit $\gamma \to 0$: $0 \le H(X) \le \log(N_p N_u)$ on $U(p, u)$, hence "
            r"$\mathcal W_0 - \gamma\log(N_p N_u) \le \mathcal W_\gamma \le \mathcal W_0$ with $\mathcal W_0$ the unregularised "
            "OT cost.",
            r"\mathcal W_0 - \gamma\log(N_pN_u) \le \mathcal W_\gamma \le \mathcal W_0")
    return ev


# =============================================================================================
# FD-33: the conjugate (33) and its gradient (34)
# =============================================================================================
def _lse_col(gg, jj, inner=i):
    r""":math:`\sum_i \exp((g_i - M_{ij})/\gamma)`, the normaliser of column ``jj``."""
    return sp.Sum(sp.exp((gg(inner) - M[inner, jj]) / gam), (inner, 1, N))


def conjugate_derived():
    r""":math:`\mathcal W^*(g) = \gamma\big(H(u) + \sum_j u_j \log\sum_i \exp((g_i - M_{ij})/\gamma)\big)` (inner index
    :math:`i` = :math:`p`'s index)."""
    return gam * (-sp.Sum(u[j] * sp.log(u[j]), (j, 1, N)) + sp.Sum(u[j] * sp.log(_lse_col(lambda r: g[r], j)), (j, 1, N)))


def conjugate_printed():
    r"""(33) as printed: :math:`\gamma\big(H(u) + \sum_t u(t) \log\sum_{t'} \exp((p(t) - M(t, t'))/\gamma)\big)`, outer
    :math:`t = j`."""
    return gam * (-sp.Sum(u[j] * sp.log(u[j]), (j, 1, N))
                  + sp.Sum(u[j] * sp.log(sp.Sum(sp.exp((g[j] - M[j, i]) / gam), (i, 1, N))), (j, 1, N)))


def grad_derived(kk=k):
    r""":math:`[\nabla\mathcal W^*(g)]_k = \sum_j u_j \exp((g_k - M_{kj})/\gamma) / \sum_i \exp((g_i - M_{ij})/\gamma)`."""
    return sp.Sum(u[j] * sp.exp((g[kk] - M[kk, j]) / gam) / _lse_col(lambda r: g[r], j, l), (j, 1, N))


def grad_printed(kk=k):
    r"""(34) as printed: :math:`\sum_{t'} u(t') \exp((p(t) - M(t,t'))/\gamma) / \sum_{t''} \exp((p(t'') - M(t', t''))/\gamma)`."""
    return sp.Sum(u[j] * sp.exp((g[kk] - M[kk, j]) / gam) / sp.Sum(sp.exp((g[l] - M[j, l]) / gam), (l, 1, N)), (j, 1, N))


def conjugate(*, candidate=None) -> Evidence:
    r"""For :math:`\gamma > 0`, :math:`u` in the simplex and any cost :math:`M` (first index: :math:`p`'s),

    .. math::

        \mathcal W^*_\gamma(g) = \sup_p \langle g,p\rangle - \mathcal W_\gamma(p,u;M)
        = \gamma\Big(H(u) + \sum_j u_j \log\sum_i e^{(g_i - M_{ij})/\gamma}\Big),\qquad
        [\nabla\mathcal W^*_\gamma(g)]_i = \sum_j u_j \frac{e^{(g_i - M_{ij})/\gamma}}{\sum_k e^{(g_k - M_{kj})/\gamma}};

    (34) as printed equals this gradient for symmetric :math:`M`; (33) as printed does not equal :math:`\mathcal W^*`
    (erratum).

    Source: 004_830fd89135933577.txt, Appendix D (33)-(34); Cuturi & Peyre (2016), Thm 2.4.
    """
    ev = Evidence()
    ev.step(r"Definition: $\mathcal W^*$ is a sup over $p$ of $\langle g,p\rangle$ minus a min over $X \in U(p,u)$; since "
            r"$p = X\mathbf 1$ ranges over the simplex as $X$ ranges over $\{X \ge 0 : X^\top\mathbf 1 = u\}$, the two merge "
            r"into one sup over $X$:",
            r"\mathcal W_\gamma^*(g) = \sup_{X\ge 0,\ X^\top\mathbf 1 = u}\ \sum_{ij} X_{ij}(g_i - M_{ij}) - \gamma\sum_{ij}X_{ij}\log X_{ij}")
    ev.step(r"Only the column sums are constrained, so the sup splits into one problem per column $j$ "
            r"(mass $u_j$, scores $g_i - M_{ij}$):")
    ev.extend(_column_sup_evidence())
    derived = conjugate_derived()
    _conjugate_is_the_sum_of_the_column_values(ev, derived, candidate)
    _printed_33_is_affine_in_g(ev, derived)
    _gradient_is_34_for_symmetric_cost(ev, derived)
    total = sum_expand(sp.Sum(grad_derived(i).subs(l, k), (i, 1, N)), _K)
    ev.step(r"Fenchel-Young / Danskin: the gradient is the maximising $p$, the first marginal of the column maximisers "
            r"$x_{ij} = u_j \operatorname{softmax}_i((g_i - M_{ij})/\gamma)$; it lies on the simplex:", eq(r"\sum_k[\nabla\mathcal W^*]_k", total))
    return ev


def _column_sup_evidence(column_value=None) -> Evidence:
    r""":math:`\sup_{x \ge 0,\ \sum x = c} \sum_i x_i s_i - \gamma x_i\log x_i`, for general :math:`N`; candidate value
    injectable."""
    ev = Evidence()
    sv = sp.IndexedBase("s")
    c, nu = sp.symbols("c nu", positive=True)
    L = sp.Sum(sv[i] * x[i] - gam * x[i] * sp.log(x[i]), (i, 1, N)) - nu * (sp.Sum(x[i], (i, 1, N)) - c)
    ev.step(r"One column $j$ of the plan, mass $c = u_j$, scores $s_i = g_i - M_{ij}$: Lagrangian of the column problem.", eq(r"\mathcal L", L))
    dL = _in_range(sp.diff(L, x[k]).doit())
    ev.step(r"Differentiating through the sum (KroneckerDelta) gives, for each $k$ in $1..N$,", eq(r"\partial_{x_k}\mathcal L", dL))
    Z = sp.Sum(sp.exp(sv[i] / gam), (i, 1, N))
    xk = c * sp.exp(sv[k] / gam) / Z
    nu_star = gam * sp.log(Z / c) - gam
    ev.step("Candidate maximiser (the multiplier fixed by the mass constraint):", eq("x_k", xk) + r",\quad " + eq(r"\nu", nu_star))
    ev.identity("FD-33 column stationarity", sp.expand_log(dL.subs({x[k]: xk, nu: nu_star}), force=True), 0,
                metric=r"$\partial\mathcal L / \partial x_k$ at the candidate, for general $N$", simplify=lambda e: sp.simplify(sp.expand_log(e, force=True)),
                key="fd-33-column-stationarity")
    ev.identity("FD-33 column mass", sp.Sum(xk.subs(k, i), (i, 1, N)), c, metric=r"$\sum_i x_i - c$ for general $N$", simplify=_zero(),
                key="fd-33-column-mass")
    ev.identity("FD-33 column concavity: d^2/dx_k^2 = -gamma/x_k", _in_range(sp.diff(L, x[k], 2).doit()), -gam / x[k],
                key="fd-33-column-concavity-d-2-dx-k-2-gamma-x-k")
    ev.step(r"The column objective is strictly concave (Hessian $-\gamma\operatorname{diag}(1/x)$), so this stationary point "
            "is its maximiser.")
    per_term = sp.expand(sp.expand_log(sv[k] - gam * sp.log(xk), force=True))
    ev.step(r"At the maximiser $s_k - \gamma\log x_k$ no longer depends on $k$:", eq(r"s_k - \gamma\log x_k", per_term))
    value = sp.Sum((xk * (sv[k] - gam * sp.log(xk))).subs(k, i), (i, 1, N))
    cand = gam * c * (sp.log(Z) - sp.log(c)) if column_value is None else column_value(c, Z)
    ev.identity("FD-33 column value = gamma c (log sum_i e^{s_i/gamma} - log c)", value, cand,
                metric=r"$\sum_i x_i (s_i - \gamma\log x_i)$ at the maximiser minus the candidate, general $N$",
                simplify=lambda e: _zero()(sp.expand_log(e, force=True)),
                key="fd-33-column-value-gamma-c-log-sum-i-e-s-i-gamma")
    return ev



def _conjugate_is_the_sum_of_the_column_values(ev: Evidence, derived, candidate) -> None:
    r"""Summing the column values over :math:`j` gives the candidate (default: the derived :math:`\mathcal W^*`), for
    general :math:`N`."""
    cand = derived if candidate is None else candidate
    per_col = gam * sp.Sum(u[j] * (sp.log(_lse_col(lambda r: g[r], j)) - sp.log(u[j])), (j, 1, N))
    ev.step(r"Summing the column values $\gamma u_j (\log\sum_i e^{(g_i - M_{ij})/\gamma} - \log u_j)$ over $j$:", eq(r"\mathcal W_\gamma^*(g)", derived))
    ev.identity("FD-33 W*(g) = gamma (H(u) + sum_j u_j log sum_i e^{(g_i - M_ij)/gamma})", per_col, cand,
                metric=r"sum of the column values minus the candidate closed form, general $N$", simplify=_zero(),
                key="fd-33-w-g-gamma-h-u-sum-j-u-j-log-sum-i-e-g-i-m")


def _printed_33_is_affine_in_g(ev: Evidence, derived) -> None:
    r"""(33) as printed has :math:`e^{p(t)/\gamma}` outside the inner sum, so it is affine in :math:`g` and not
    :math:`\mathcal W^*` (erratum)."""
    printed = conjugate_printed()
    affine = sp.Sum(u[j] * g[j], (j, 1, N)) + gam * (-sp.Sum(u[j] * sp.log(u[j]), (j, 1, N))
                                                    + sp.Sum(u[j] * sp.log(sp.Sum(sp.exp(-M[j, i] / gam), (i, 1, N))), (j, 1, N)))
    ev.step(r"(33) as printed has $p(t)$ with the OUTER index $t$ inside the inner sum over $t'$, so it factors out of "
            r"the log: the printed $\mathcal W^*$ is affine in $p$, with gradient $u(t)$.", eq(r"\mathcal W^*_{(33)}(g)", printed))
    pull = sp.Sum(u[j] * (g[j] / gam + sp.log(sp.Sum(sp.exp(-M[j, i] / gam), (i, 1, N)))), (j, 1, N))
    ev.identity("FD-33 printed (33) is affine in g", gam * (-sp.Sum(u[j] * sp.log(u[j]), (j, 1, N)) + pull), affine,
                metric=r"(33) as printed, with $e^{p(t)/\gamma}$ pulled out of the inner sum, minus $\langle u,g\rangle$ + const",
                simplify=_zero(),
                key="fd-33-printed-33-is-affine-in-g")
    d_pr, d_de = _eval(printed), _eval(derived)
    ev.step(r"On a numeric instance ($N = 2$, $\gamma = 1/2$) the printed and derived conjugates differ:",
            rf"\mathcal W^*_{{(33)}} = {d_pr:.6f},\quad \mathcal W^*_{{\rm derived}} = {d_de:.6f}")
    if abs(d_pr - d_de) > 1e-12:
        ev.errata.append(Erratum(
            source=SOURCE_004, equation="(33)",
            printed=r"\mathcal W^*_\gamma(p;u,M) = \gamma\Big(H(u) + \sum_{t} u(t)\log\Big[\sum_{t'}\exp\big(\gamma^{-1}(p(t) - M(t,t'))\big)\Big]\Big)",
            corrected=r"\mathcal W^*_\gamma(p;u,M) = \gamma\Big(H(u) + \sum_{t} u(t)\log\Big[\sum_{t'}\exp\big(\gamma^{-1}(p(t') - M(t',t))\big)\Big]\Big)",
            note="p must carry the inner (summed) index: as printed, exp(p(t)/gamma) factors out of the inner sum and (33) "
                 "becomes <u, p> + const, affine in p, whose gradient u contradicts (34) and which is not the conjugate of "
                 "the strictly convex W_gamma. M(t', t) vs M(t, t') is immaterial for symmetric M (footnote 9). "
                 f"Computed on N = 2, gamma = 1/2: printed {d_pr:.6f}, derived {d_de:.6f}; (36) second line uses the corrected form."))


def _gradient_is_34_for_symmetric_cost(ev: Evidence, derived) -> None:
    r"""The gradient of :math:`\mathcal W^*` is :math:`\sum_j u_j \operatorname{softmax}_k((g - M_{\cdot j})/\gamma)`; (34) as
    printed equals it for symmetric :math:`M` only."""
    grad = _in_range(sp.diff(derived, g[k]).doit())
    ev.step(r"Differentiating the derived $\mathcal W^*$ in $g_k$ (through both sums):", eq(r"\partial_{g_k}\mathcal W_\gamma^*", grad))
    ev.identity("FD-33 gradient = sum_j u_j softmax_k((g - M_.j)/gamma)", grad, grad_derived(), simplify=_zero(),
                metric=r"$\partial\mathcal W^*/\partial g_k - \sum_j u_j e^{(g_k - M_{kj})/\gamma} / \sum_l e^{(g_l - M_{lj})/\gamma}$, "
                       r"general $N$",
                key="fd-33-gradient-sum-j-u-j-softmax-k-g-m-j-gamma")
    g_pr = grad_printed()
    ev.step(r"(34) as printed normalises column $t'$ with $M(t', t'')$ instead of $M(t'', t')$:", eq(r"[\nabla\mathcal W^*]_{(34)}", g_pr))
    ev.identity("FD-33 (34) as printed = gradient, for symmetric M (footnote 9)", _symmetrise(g_pr), _symmetrise(grad_derived()),
                simplify=_zero(), metric=r"(34) printed minus the derived gradient with $M_{ij} = A_{ij} + A_{ji}$, general $N$",
                key="fd-33-34-as-printed-gradient-for-symmetric-m")
    e_pr, e_de = _eval(g_pr.subs(k, 1)), _eval(grad_derived(1))
    ev.step(r"For non-symmetric $M$, (34) as printed is not the gradient ($N = 2$, $\gamma = 1/2$, component 1):",
            rf"[\nabla]_{{(34)}} = {e_pr:.6f},\quad [\nabla]_{{\rm derived}} = {e_de:.6f}")
    ev.at_least("fd-33-34-as-printed-needs-symmetric-m", "FD-33 (34) as printed needs symmetric M",
                abs(e_pr - e_de), 1e-6,
                r"records the assumption: (34) holds for symmetric $M$, not for all $M$; $10^{-6}$ is far "
                "above the 30-digit evaluation error",
                method="symbolic",
                metric=r"$|[(34)_{\rm printed} - \nabla_{\rm derived}]_1|$ on a non-symmetric $N = 2$ instance",
                strict=True, shown="> 1e-6", numerical_class="roundoff", evidence="float")


# =============================================================================================
# FD-37: Prop 1, (37)-(38), gamma -> 0
# =============================================================================================
def _g_zero(e):
    """Set every :math:`g_i` to 0 (also under a Sum, where ``subs`` would not reach the bound index)."""
    return e.replace(lambda w: isinstance(w, sp.Indexed) and w.base == g, lambda w: sp.S.Zero)


def ut_derived(kk=k):
    r""":math:`\tilde u_k = [\nabla\mathcal W^*(0)]_k = \sum_j u_j e^{-M_{kj}/\gamma} / \sum_l e^{-M_{lj}/\gamma}`."""
    return _g_zero(grad_derived(kk))


def ut_printed(kk=k):
    r"""(37) as printed: :math:`\sum_{t'} u(t') e^{-M(t,t')/\gamma} / \sum_{t''} e^{-M(t',t'')/\gamma}`."""
    return sp.Sum(u[j] * sp.exp(-M[kk, j] / gam) / sp.Sum(sp.exp(-M[j, l] / gam), (l, 1, N)), (j, 1, N))


ASSUMPTIONS = [
    ["(20), (21), (22)", "none (any real M; +inf allowed)", "FD-20, FD-22: (22) as printed = grad W*(alpha T z) for general N"],
    ["(33)", "wrong for every M (p(t) must be p(t')): erratum", "FD-33: printed (33) is affine in g"],
    ["(34), (35), (36) second line", "symmetric M (footnote 9)", "FD-33: (34) = gradient with M = A + A^T; differs on a non-symmetric instance"],
    ["(37)", "symmetric M (more precisely: equal row and column sums of e^{-M/gamma})", "FD-37: identity with M = A + A^T; non-symmetric instance sums to != 1"],
    ["(32) = (38)", "none", "FD-37: (38) = mean of u~ for general N and M"],
    ["(43) as printed (row-normalised q_t)", "symmetric M; column-normalised q_t: none", "FD-22: both identities, general N"],
    ["(44)", "symmetric M", "FD-22: (44) = (22) with M = A + A^T; numeric non-symmetric M misses p* by O(1)"],
    ["u~ -> u as gamma -> 0", "footnote 9's strict M(t,t) < M(t',t) for t with u(t) > 0 (columns); symmetry not needed for the derived u~, the printed (37) needs the row condition", "FD-37: limits with and without ties; numeric gamma sweep"],
    ["non-negativity of M", "never needed: a constant added to M shifts W_gamma by that constant", "FD-20 test: W(M + c) = W(M) + c"],
]


def true_preference(*, candidate=None) -> Evidence:
    r"""Prop 1: the minimiser of :math:`\mathcal W_\gamma(\cdot, u; M)` over the simplex is

    .. math::

        \tilde u_i = \sum_j u_j \frac{e^{-M_{ij}/\gamma}}{\sum_k e^{-M_{kj}/\gamma}}

    (any :math:`M`; = (37) as printed for symmetric :math:`M`), its mean is (38) (any :math:`M`), and
    :math:`\tilde u \to u` as :math:`\gamma \to 0` iff :math:`M_{jj} < M_{ij}` for all :math:`i \ne j` (footnote 9).

    Source: 004_830fd89135933577.txt, Appendix D, Prop 1, (37)-(38), footnote 9.
    """
    ev = Evidence()
    ev.step(r"$\mathcal W_\gamma(\cdot, u; M)$ is convex, lower semicontinuous and proper, and $\mathcal W^*$ is differentiable "
            r"(FD-33), so $\tilde u$ minimises $\mathcal W$ iff 0 is a subgradient at $\tilde u$ iff $\tilde u = \nabla\mathcal W^*(0)$.",
            r"\tilde u = \arg\min_p \mathcal W_\gamma(p,u;M) \iff 0\in\partial\mathcal W_\gamma(\tilde u) \iff \tilde u = \nabla\mathcal W_\gamma^*(0)")
    der = ut_derived()
    cand = der if candidate is None else candidate
    ev.step(r"The derived gradient (34) at $g = 0$:", eq(r"\tilde u_k", der))
    _preference_is_the_gradient_at_zero_and_on_the_simplex(ev, cand)
    _printed_37_needs_a_symmetric_cost(ev, der)
    _mean_38_holds_for_any_cost(ev, cand)
    _preference_tends_to_u_under_footnote_9(ev)
    ev.tables.append(Table("Sec 9 / Appendix D: what each printed formula needs of the cost $M$",
                           ["printed formula", "assumption on M", "checked by"], ASSUMPTIONS))
    return ev


def _preference_is_the_gradient_at_zero_and_on_the_simplex(ev: Evidence, cand) -> None:
    r""":math:`\tilde u = \nabla\mathcal W^*(0)` (the candidate, general :math:`N`), and exchanging the sums shows
    :math:`\sum_k \tilde u_k = 1`."""
    ev.identity("FD-37 u~ = grad W*(0)", _g_zero(_in_range(sp.diff(conjugate_derived(), g[k]).doit())), cand,
                simplify=_zero(), metric=r"$\partial\mathcal W^*/\partial g_k$ at $g = 0$ minus the candidate $\tilde u_k$, general $N$",
                key="fd-37-u-grad-w-0")
    swapped = sp.Sum(u[j] * sp.Sum(sp.exp(-M[i, j] / gam), (i, 1, N)) / sp.Sum(sp.exp(-M[l, j] / gam), (l, 1, N)), (j, 1, N))
    ev.step(r"Summing over $k$ and exchanging the two finite sums: each column's softmax sums to 1.", eq(r"\sum_k \tilde u_k", swapped))
    ev.identity("FD-37 exchange of the sums in sum_k u~_k", sp.Sum(cand.subs(k, i), (i, 1, N)), swapped, simplify=_zero_swap,
                metric=r"$\sum_k \tilde u_k$ minus the same with the sums exchanged, general $N$",
                key="fd-37-exchange-of-the-sums-in-sum-k-u-k")
    ev.identity("FD-37 u~ lies on the simplex", swapped, 1, simplify=_zero(normalised=(u,)),
                metric=r"$\sum_j u_j (\sum_i e^{-M_{ij}/\gamma}) / (\sum_l e^{-M_{lj}/\gamma}) - 1$ with $\sum u = 1$, general $N$",
                key="fd-37-u-lies-on-the-simplex")


def _printed_37_needs_a_symmetric_cost(ev: Evidence, der) -> None:
    r"""(37) as printed is :math:`\tilde u` for symmetric :math:`M`, and not even a distribution on a non-symmetric
    :math:`N = 2` instance."""
    pr = ut_printed()
    ev.step(r"(37) as printed normalises with $M(t', t'')$ (row $t'$ of $M$) instead of $M(t'', t')$ (column $t'$):", eq(r"\tilde u_{(37)}(t_k)", pr))
    ev.identity("FD-37 (37) as printed = u~ for symmetric M (footnote 9)", _symmetrise(pr), _symmetrise(der), simplify=_zero(),
                metric=r"(37) printed minus derived with $M_{ij} = A_{ij} + A_{ji}$, general $N$",
                key="fd-37-37-as-printed-u-for-symmetric-m-footnote-9")
    p1, d1 = _eval(pr.subs(k, 1)), _eval(der.subs(k, 1))
    s_pr = _eval(pr.subs(k, 1)) + _eval(pr.subs(k, 2))
    ev.step(r"Non-symmetric $M$ ($N = 2$, $\gamma = 1/2$): (37) as printed differs from the minimiser and is not even a "
            "distribution:", rf"\tilde u_{{(37)}}(t_1) = {p1:.6f},\ \tilde u(t_1) = {d1:.6f},\ \sum_t\tilde u_{{(37)}}(t) = {s_pr:.6f}")
    ev.at_least("fd-37-37-as-printed-needs-symmetric-m", "FD-37 (37) as printed needs symmetric M",
                abs(1 - s_pr), 1e-6,
                r"records the assumption: (37) is the minimiser for symmetric $M$ only (more precisely, when every column of "
                r"$e^{-M/\gamma}$ has the same sum as the matching row)",
                method="symbolic", metric=r"$|1 - \sum_t \tilde u_{(37)}(t)|$ on a non-symmetric $N = 2$ instance",
                strict=True, shown="> 1e-6", numerical_class="roundoff", evidence="float")


def _mean_38_holds_for_any_cost(ev: Evidence, cand) -> None:
    r"""(38) as printed is the mean of :math:`\tilde u` along any direction, for any :math:`M`."""
    mean_der = sp.Sum(cand.subs(k, i) * a[i], (i, 1, N))
    mean_pr = sp.Sum(sp.Sum(u[j] * sp.exp(-M[i, j] / gam) / sp.Sum(sp.exp(-M[l, j] / gam), (l, 1, N)), (j, 1, N)) * a[i], (i, 1, N))
    ev.step(r"(38) along a direction $v$ ($a_i = \langle t_i, v\rangle$), as printed:", eq(r"\langle\tilde\mu, v\rangle_{(38)}", mean_pr))
    ev.identity("FD-37 (38) = mean of u~, any M", mean_pr, mean_der, simplify=_zero(),
                metric=r"(38) printed minus $\sum_i \tilde u_i a_i$, general $N$, no symmetry assumed",
                key="fd-37-38-mean-of-u-any-m")


def _preference_tends_to_u_under_footnote_9(ev: Evidence) -> None:
    r""":math:`\gamma \to 0`: the diagonal weight of each column tends to 1 under footnote 9's strict column condition,
    and not with a tie."""
    d1_, d2_ = sp.symbols("Delta_1 Delta_2", positive=True)
    w_jj = 1 / (1 + sp.exp(-d1_ / gam) + sp.exp(-d2_ / gam))
    lim = sp.limit(w_jj, gam, 0, "+")
    ev.step(r"$\gamma \to 0$: in column $j$ the softmax weight of $i = j$ is $1 / \sum_k e^{-(M_{kj} - M_{jj})/\gamma}$; with the "
            r"gaps $\Delta_k = M_{kj} - M_{jj} > 0$ for $k \ne j$ (footnote 9: $M(t,t) < M(t',t)$), each term "
            r"$e^{-\Delta_k/\gamma} \to 0$, so the weight $\to 1$ and $\tilde u \to u$. Explicit $N = 3$:", eq(r"\lim_{\gamma\to0^+}" + sp.latex(w_jj), lim))
    ev.identity("FD-37 gamma -> 0: diagonal weight -> 1 under footnote 9", lim, 1,
                key="fd-37-gamma-0-diagonal-weight-1-under-footnote-9")
    lim_tie = sp.limit(w_jj.subs(d1_, 0), gam, 0, "+")
    ev.step(r"If the diagonal is not the strict column minimum (a tie $\Delta_1 = 0$, as in the grouped cost of FD-G), "
            r"the weight tends to $1/2$ and $\tilde u$ does not tend to $u$:", eq(r"\lim_{\gamma\to0^+}\big(\cdot\big)\big|_{\Delta_1=0}", lim_tie))
    ev.check("FD-37 the strict diagonal condition is needed", "symbolic", "limit of the diagonal weight with one tie",
             str(lim_tie), "!= 1", lim_tie != 1, r"a tie in a column keeps mass off the diagonal for every $\gamma$",
             key="fd-37-the-strict-diagonal-condition-is-needed", numerical_class="exact", evidence="proof")
    ev.step(r"The condition needed is on columns ($M_{jj} < M_{ij}$, $i \ne j$, for every $j$ with $u_j > 0$), exactly "
            r"footnote 9's $M(t,t) < M(t',t)$; symmetry is not needed for the limit of the derived $\tilde u$. (37) as printed "
            r"would need the row condition $M_{jj} < M_{ji}$ instead; the two agree for symmetric $M$. Non-negativity of $M$ "
            r"is never used: adding a constant to $M$ changes $\mathcal W_\gamma$ by that constant only.")


# =============================================================================================
# FD-22: (39)-(43), the quadratic model, lambda* ~ alpha z, (44) and (22)
# =============================================================================================
def _lambda_star(al, ga, Sig, z, I):
    r""":math:`\lambda^* = (I + (\alpha/\gamma)\bar\Sigma)^{-1}\alpha z` (Appendix D, before (44))."""
    return (I + (al / ga) * Sig).inv() * al * z


def ot_attention_steps(*, candidate=_lambda_star) -> Evidence:
    r"""For small :math:`\alpha/\gamma` the minimiser of (21) is (22):

    .. math::

        \lambda^* = (I + (\alpha/\gamma)\bar\Sigma)^{-1}\alpha z + O(\alpha^3/\gamma^2) = \alpha z + O(\alpha^2/\gamma),

        p^*(t_k) = \nabla\mathcal W^*(\alpha T z)_k = \sum_j u_j \frac{e^{(\alpha\langle t_k, z\rangle - M_{kj})/\gamma}}
        {\sum_l e^{(\alpha\langle t_l, z\rangle - M_{lj})/\gamma}} \quad (= (22)),

    via the cumulant steps (39)-(43) for general :math:`N` (:math:`\bar\Sigma = \sum_t u(t)\Sigma_t`,
    :math:`\sum_t u(t)\mu_t = \tilde\mu`).

    Source: 004_830fd89135933577.txt, Sec 9 (21)-(22), Appendix D (35)-(36), (39)-(44).
    """
    ev = Evidence()
    _column_cumulant_expansion(ev)
    _column_means_average_to_the_true_preference(ev)
    _quadratic_model_is_solved_by_the_candidate(ev, candidate)
    _attention_22_is_the_gradient_at_alpha_z(ev)
    return ev


def _column_cumulant_expansion(ev: Evidence) -> None:
    r"""(39)-(42): :math:`\log\sum_i e^{(t_i^\top\lambda - M_{ij})/\gamma} = \log Z + K_t(\lambda)`, :math:`K_t` the cumulant
    of :math:`q_t`; (42)'s summation index corrected (erratum)."""
    m = sp.IndexedBase("m")  # m_i = M_ij for the fixed column j
    Z = sp.Sum(sp.exp(-m[i] / gam), (i, 1, N))
    lhs39 = sp.Sum(sp.exp((s * a[i] - m[i]) / gam), (i, 1, N))
    ev.step(r"Fix a column $j$ (the template carrying $u$'s mass), write $m_i = M_{ij}$, $\lambda = sv$ and "
            r"$a_i = \langle t_i, v\rangle$. (39): pull $Z = \sum_i e^{-m_i/\gamma}$ out, $q_i = e^{-m_i/\gamma} / Z$.", eq(r"\sum_i e^{(t_i^\top\lambda - M_{ij})/\gamma}", lhs39))
    rhs39 = Z * sp.Sum(sp.exp(-m[i] / gam) / Z * sp.exp(s * a[i] / gam), (i, 1, N))
    ev.identity("FD-22 (39): sum_i e^{(s a_i - m_i)/gamma} = Z sum_i q_i e^{s a_i/gamma}", lhs39, rhs39,
                simplify=lambda e: _zero()(sp.powsimp(sp.expand(e), combine="exp")),
                metric=r"difference of the two sums, general $N$ (so the log of both sides gives (39))",
                key="fd-22-39-sum-i-e-s-a-i-m-i-gamma-z-sum-i-q-i-e-s")
    Kf = sp.log(sp.Sum(q[i] * sp.exp(s * a[i] / gam), (i, 1, N)))
    mean = sp.Sum(q[i] * a[i], (i, 1, N))
    var = sp.Sum(q[i] * (a[i] - mean) ** 2, (i, 1, N))
    d0, d1, d2 = (sp.diff(Kf, s, r).subs(s, 0).doit() for r in (0, 1, 2))
    ev.step(r"(40): the cumulant $\log M_t(\lambda/\gamma)$ along $\lambda = sv$; its derivatives at $s = 0$ ($\sum_i q_i = 1$):",
            eq(r"K_t(s)", Kf))
    ev.identity("FD-22 (40) order 0: log M_t(0) = 0", d0, 0, simplify=_zero(normalised=(q,)), metric=r"$K_t(0)$, $\sum q = 1$",
                key="fd-22-40-order-0-log-m-t-0-0")
    ev.identity("FD-22 (40)-(41) order 1: mu_t^T v / gamma", d1, mean / gam, simplify=_zero(normalised=(q,)),
                metric=r"$K_t'(0) - \sum_i q_i a_i / \gamma$, general $N$", key="fd-22-40-41-order-1-mu-t-t-v-gamma")
    ev.identity("FD-22 (40), (42) order 2: v^T Sigma_t v / gamma^2", d2, var / gam**2, simplify=_zero(normalised=(q,)),
                metric=r"$K_t''(0) - \sum_i q_i (a_i - \mu_t^\top v)^2 / \gamma^2$, general $N$; printed (42) compared, see errata",
                key="fd-22-40-42-order-2-v-t-sigma-t-v-gamma-2")
    # (42) as printed sums over t (the subscript) instead of t'
    q2 = sp.IndexedBase("Q")  # Q[t, t'] = q_t(t')
    mu_t = lambda tt: sp.Sum(q2[tt, i] * a[i], (i, 1, N))  # noqa: E731
    der42 = sp.Sum(q2[j, i] * (a[i] - mu_t(j)) ** 2, (i, 1, N))  # fixed t = j, summed over t' = i
    pr42 = sp.Sum(q2[l, i] * (a[i] - mu_t(l)) ** 2, (l, 1, N))  # printed: summed over t, t' left free (= i)
    Qv = ERRATUM_42_Q
    v_der = _explicit(der42.subs({j: 1}), 2, {q2: Qv, a: ERRATUM_42_A})
    v_pr = _explicit(pr42.subs({i: 1}), 2, {q2: Qv, a: ERRATUM_42_A})
    ev.step(r"(42) as printed sums over $t$, the subscript of $q_t$, leaving $t'$ free; on $N = 2$ ($t = t_1$ vs $t' = t_1$):",
            rf"v^\top\Sigma_{{t_1}}v = {v_der:.6f},\quad (42)_{{\rm printed}} = {v_pr:.6f}")
    if abs(v_der - v_pr) > 1e-12:
        ev.errata.append(Erratum(
            source=SOURCE_004, equation="(42)",
            printed=r"\Sigma_{\mathbf t} = \sum_{\mathbf t\in\mathcal A} q_{\mathbf t}(\mathbf t')(\mathbf t' - \mu_{\mathbf t})(\mathbf t' - \mu_{\mathbf t})^\top",
            corrected=r"\Sigma_{\mathbf t} = \sum_{\mathbf t'\in\mathcal A} q_{\mathbf t}(\mathbf t')(\mathbf t' - \mu_{\mathbf t})(\mathbf t' - \mu_{\mathbf t})^\top",
            note="summation index: the covariance of q_t sums over t', not over t (the printed sum is a function of t', "
                 f"not the covariance of q_t). Computed on N = 2: covariance {v_der:.6f} vs printed {v_pr:.6f}."))


def _column_means_average_to_the_true_preference(ev: Evidence) -> None:
    r"""(43): :math:`\sum_t u(t)\mu_t = \tilde\mu` for any :math:`M` (column-normalised :math:`q`); as printed
    (row-normalised) for symmetric :math:`M`."""
    uq = sp.Sum(u[j] * sp.Sum(sp.exp(-M[i, j] / gam) / sp.Sum(sp.exp(-M[l, j] / gam), (l, 1, N)) * a[i], (i, 1, N)), (j, 1, N))
    mu38 = sp.Sum(ut_derived(i) * a[i], (i, 1, N))
    ev.step(r"(43) with $q_j(i) = e^{-M_{ij}/\gamma} / \sum_l e^{-M_{lj}/\gamma}$ (column $j$, as (36) requires):",
            eq(r"\sum_j u_j\langle\mu_{t_j}, v\rangle", uq))
    ev.identity("FD-22 (43): sum_t u(t) mu_t = mu~ (any M)", uq, mu38, simplify=_zero_swap,
                metric=r"$\sum_j u_j \mu_j^\top v - \sum_i \tilde u_i a_i$ (exchange of finite sums), general $N$",
                key="fd-22-43-sum-t-u-t-mu-t-mu-any-m")
    uq_pr = sp.Sum(u[j] * sp.Sum(sp.exp(-M[j, i] / gam) / sp.Sum(sp.exp(-M[j, l] / gam), (l, 1, N)) * a[i], (i, 1, N)), (j, 1, N))
    ev.identity("FD-22 (43) as printed (row-normalised q_t) = (38) for symmetric M", _symmetrise(uq_pr), _symmetrise(mu38),
                simplify=_zero_swap, metric=r"(43) printed minus (38) with $M_{ij} = A_{ij} + A_{ji}$, general $N$",
                key="fd-22-43-as-printed-row-normalised-q-t-38-for")


def _quadratic_model_is_solved_by_the_candidate(ev: Evidence, candidate) -> None:
    r"""The quadratic model of (36) has gradient :math:`z - (I/\alpha + \bar\Sigma/\gamma)\lambda`, solved by the candidate
    :math:`\lambda^* = (I + (\alpha/\gamma)\bar\Sigma)^{-1}\alpha z` (checked in :math:`d = 2`),
    :math:`= \alpha z + O(\alpha/\gamma)`."""
    d = sp.Symbol("d", integer=True, positive=True)
    Sig, lam = sp.MatrixSymbol("Sigmabar", d, d), sp.MatrixSymbol("lambda", d, 1)
    z, mut, mbar = sp.MatrixSymbol("z", d, 1), sp.MatrixSymbol("mutilde", d, 1), sp.MatrixSymbol("mbar", d, 1)
    I = sp.Identity(d)
    J = lam.T * (mut + z) - lam.T * lam / (2 * alpha) - (mbar.T * lam + lam.T * Sig * lam / (2 * gam))
    ev.step(r"Substituting (39)-(40) into (36) and dropping the constant $\sum_t u(t)\log Z(t)$ and the remainder "
            r"$\gamma\,O(\|\lambda/\gamma\|^3)$: the quadratic model ($\bar m = \sum_t u(t)\mu_t$, "
            r"$\bar\Sigma = \sum_t u(t)\Sigma_t$).",
            eq(r"J(\lambda)", J))
    grad = J.diff(lam).subs(Sig.T, Sig).doit()
    ev.step(r"Its gradient ($\bar\Sigma$ symmetric); with $\bar m = \tilde\mu$ by (43) the constant terms cancel:", eq(r"\nabla J", grad))
    target = (z - lam / alpha - Sig * lam / gam).subs(mut, mbar)
    ev.identity("FD-22 gradient of the model = z - (I/alpha + Sigmabar/gamma) lambda", grad.subs(mut, mbar), target,
                simplify=_mat_zero,
                metric=r"$\nabla J$ with $\bar m = \tilde\mu$ minus $z - \lambda/\alpha - \bar\Sigma\lambda/\gamma$, general $d$ "
                       "(MatrixSymbol)",
                key="fd-22-gradient-of-the-model-z-i-alpha-sigmabar")
    ev.identity("FD-22 I/alpha + Sigmabar/gamma = (I + (alpha/gamma) Sigmabar)/alpha", I / alpha + Sig / gam,
                (I + (alpha / gam) * Sig) / alpha, simplify=_mat_zero,
                metric=r"$I/\alpha + \bar\Sigma/\gamma - (I + (\alpha/\gamma)\bar\Sigma)/\alpha$, expanded, is the zero matrix, "
                       r"general $d$",
                key="fd-22-i-alpha-sigmabar-gamma-i-alpha-gamma")
    # explicit d = 2 check of the candidate, and its expansion in c = alpha/gamma
    s11, s12, s22, z1, z2, c = sp.symbols("sigma11 sigma12 sigma22 z1 z2 c", real=True)
    Sg = sp.Matrix([[s11, s12], [s12, s22]])
    Zv = sp.Matrix([z1, z2])
    cand = candidate(alpha, gam, Sg, Zv, sp.eye(2))
    resid = Zv - (sp.eye(2) / alpha + Sg / gam) * cand
    ev.step(r"Explicit $d = 2$ (symmetric symbolic $\bar\Sigma$): the closed form printed before (44),", eq(r"\lambda^*", sp.simplify(cand)))
    ev.identity("FD-22 d=2: lambda* = (I + alpha/gamma Sigmabar)^{-1} alpha z solves the model", resid, sp.zeros(2, 1),
                simplify=_mat_zero,
                metric=r"$z - (I/\alpha + \bar\Sigma/\gamma)\lambda^*$, entrywise",
                key="fd-22-d-2-lambda-i-alpha-gamma-sigmabar-1-alpha")
    lam_c = candidate(alpha, alpha / c, Sg, Zv, sp.eye(2))
    ser = lam_c.applyfunc(lambda e: sp.collect(sp.expand(sp.series(e, c, 0, 2).removeO()), c))
    first = alpha * Zv - c * alpha * Sg * Zv
    ev.step(r"Expanding in $c = \alpha/\gamma$: $\lambda^* = \alpha z - (\alpha^2/\gamma)\bar\Sigma z + O((\alpha/\gamma)^2\alpha)$, "
            r"so $\lambda^* \to \alpha z$ with relative error $O(\alpha/\gamma)$, which gives (44):", eq(r"\lambda^*", ser))
    ev.identity("FD-22 d=2: lambda* = alpha z - c alpha Sigmabar z + O(c^2)", ser, first,
                simplify=_mat_zero,
                metric=r"order-1 Taylor polynomial in $c = \alpha/\gamma$ of $\lambda^*$ minus $(\alpha z - c\alpha\bar\Sigma z)$",
                key="fd-22-d-2-lambda-alpha-z-c-alpha-sigmabar-z-o-c")
    ev.step(r"The dropped remainder $\gamma\,O(\|\lambda/\gamma\|^3)$ changes the gradient by $O(\|\lambda\|^2/\gamma^2)$, i.e. "
            r"$\lambda^*$ by $O(\alpha^3/\gamma^2)$. Since $\bar\Sigma \preceq \max\|t\|^2 I$, the error of $\lambda^* \approx \alpha z$ "
            r"is bounded by a constant ($\|z\|$, the template scale) times $\alpha/\gamma$ relative to $\alpha$: $\alpha/\gamma$ "
            r"small suffices, $\alpha$ small alone does not (it is smaller still when $\gamma$ is below the cost gaps, which make "
            r"$\bar\Sigma$ small).")


def _attention_22_is_the_gradient_at_alpha_z(ev: Evidence) -> None:
    r"""(22) as printed is :math:`\nabla\mathcal W^*(\alpha Tz)` for any :math:`M`; (44) as printed agrees with it only for
    symmetric :math:`M`."""
    p35 = sp.Sum(u[j] * sp.exp((alpha * a[k] - M[k, j]) / gam) / sp.Sum(sp.exp((alpha * a[l] - M[l, j]) / gam), (l, 1, N)), (j, 1, N))
    p22 = sp.Sum(u[j] * sp.exp((alpha * a[k] - M[k, j]) / gam) / sp.Sum(sp.exp((alpha * a[l] - M[l, j]) / gam), (l, 1, N)), (j, 1, N))
    p44 = sp.Sum(u[j] * sp.exp((alpha * a[k] - M[k, j]) / gam) / sp.Sum(sp.exp((alpha * a[l] - M[j, l]) / gam), (l, 1, N)), (j, 1, N))
    grad_at = grad_derived().replace(lambda w: isinstance(w, sp.Indexed) and w.base == g, lambda w: alpha * a[w.indices])
    ev.step(r"(35) at $\lambda = \alpha z$ is $\nabla\mathcal W^*(\alpha Tz)$; write $a_i = \langle t_i, z\rangle$ (so $v = z$):", eq(r"p^*(t_k)", grad_at))
    ev.identity("FD-22 (22) as printed = grad W*(alpha T z), any M", p22, grad_at, simplify=_zero(),
                metric=r"(22) printed ($Z_i$ with $M(t', t_i)$) minus derived, general $N$",
                key="fd-22-22-as-printed-grad-w-alpha-t-z-any-m")
    ev.identity("FD-22 (44) as printed = (22) for symmetric M", _symmetrise(p44), _symmetrise(p35), simplify=_zero(),
                metric=r"(44) printed (denominator $M(t', t'')$) minus (22), with $M_{ij} = A_{ij} + A_{ji}$, general $N$",
                key="fd-22-44-as-printed-22-for-symmetric-m")
    e44, e22 = _eval(p44.subs(k, 1), {a: [1.0, -2.0]}), _eval(p22.subs(k, 1), {a: [1.0, -2.0]})
    ev.step(r"For non-symmetric $M$, (44) and (35)/(36) as printed (which use $M(t', t'')$) differ from (22), which has the "
            r"orientation the derivation gives ($N = 2$, $\alpha = 1$, $\gamma = 1/2$):",
            rf"p_{{(44)}}(t_1) = {e44:.6f},\quad p_{{(22)}}(t_1) = {e22:.6f}")


# =============================================================================================
# FD-G: the grouped cost
# =============================================================================================
def group_cost(*, candidate=None) -> Evidence:
    r"""With :math:`M(t, t') = 0` inside a group, :math:`+\infty` across, :math:`t_i` the only input template of its group
    :math:`\mathcal G` and :math:`\langle t, z\rangle` equal on :math:`\mathcal G`, (22) gives :math:`p^*(t) = u_i/|\mathcal G|`
    on :math:`\mathcal G`; to first order in unequal inner products :math:`\langle t,z\rangle = s + \delta_t` it moves by
    :math:`\frac{u_i}{|\mathcal G|}\frac{\alpha}{\gamma}(\delta_t - \bar\delta_{\mathcal G})`.

    Source: 004_830fd89135933577.txt, Sec 9 (paragraph after (22)).
    """
    ev = Evidence()
    G = sp.Symbol("G", integer=True, positive=True)  # |G|
    sg, ui = sp.symbols("s u_i", real=True)
    de = sp.IndexedBase("delta")
    eps = sp.Symbol("epsilon", real=True)
    ev.step(r"(22) for $t$ in the group $\mathcal G$ of $t_i$, with $M = 0$ inside a group and $+\infty$ across: every term with "
            r"$t_j \notin \mathcal G$ has $e^{-\infty/\gamma} = 0$, and so has every $t' \notin \mathcal G$ inside $Z_i$; $t_i$ is the "
            r"only input template in $\mathcal G$.",
            r"p^*(t) = u_i \frac{e^{\alpha\langle t,z\rangle/\gamma}}{\sum_{t'\in\mathcal G} e^{\alpha\langle t',z\rangle/\gamma}}")
    ev.identity("FD-G exp(-M/gamma) = 0 across groups", sp.exp(-sp.oo / gam), 0,
                key="fd-g-exp-m-gamma-0-across-groups")
    pt = ui * sp.exp(alpha * (sg + eps * de[k]) / gam) / sp.Sum(sp.exp(alpha * (sg + eps * de[l]) / gam), (l, 1, G))
    equal = pt.subs(eps, 0).doit()
    cand = ui / G if candidate is None else candidate(ui, G)
    ev.step(r"With equal inner products $\langle t, z\rangle = s$ on $\mathcal G$ ($|\mathcal G| = G$ symbolic):", eq(r"p^*(t_k)", sp.simplify(equal)))
    ev.identity("FD-G p*(t) = u_i/|G|", equal, cand,
                metric=r"(22) on the group with equal inner products minus the candidate, general $|\mathcal G|$",
                key="fd-g-p-t-u-i-g")
    first = _in_range(sp.diff(pt, eps).subs(eps, 0).doit())
    dbar = sp.Sum(de[l], (l, 1, G)) / G
    ev.step(r"Unequal inner products $s + \epsilon\delta_t$: first order in $\epsilon$,", eq(r"\partial_\epsilon p^*(t_k)|_0", sp.simplify(first)))
    ev.identity("FD-G first-order move = u_i/|G| (alpha/gamma)(delta_t - mean delta)", first,
                ui / G * (alpha / gam) * (de[k] - dbar), simplify=lambda e: sp.simplify(sum_expand(sp.simplify(e), _K)),
                metric=r"$\partial p^*(t_k)/\partial\epsilon$ at 0 minus $\frac{u_i}{|\mathcal G|}\frac{\alpha}{\gamma}(\delta_k - \bar\delta)$, "
                       r"general $|\mathcal G|$",
                key="fd-g-first-order-move-u-i-g-alpha-gamma-delta-t")
    ev.step(r"So the weights stay near $u_i/|\mathcal G|$ only while $\alpha\cdot$(spread of $\langle t, z\rangle$ on "
            r"$\mathcal G$)$/\gamma$ is small; 'approximately equal inner products' must be read on the scale $\gamma/\alpha$. "
            r"The grouped cost violates footnote 9's strict $M(t,t) < M(t',t)$ (ties inside a group), which is what lets mass "
            "spread inside the group.")
    # the printed definition of the cost
    same, other = sp.Integer(0), sp.oo  # printed: M(t,t') = 0 in a group, 'otherwise M(t,t) = oo'
    ev.step(r"As printed, the cost across groups is written $M(t, t) = \infty$, which would assign the diagonal both 0 (same "
            r"group) and $\infty$.", rf"M(t,t) \in \{{{sp.latex(same)}, {sp.latex(other)}\}}")
    if same != other:
        ev.errata.append(Erratum(
            source=SOURCE_004, equation="Sec 9, grouped-cost example",
            printed=r"\text{otherwise, } M(\mathbf t, \mathbf t) = \infty",
            corrected=r"\text{otherwise, } M(\mathbf t, \mathbf t') = \infty",
            note="the cost across groups concerns pairs t, t' in different groups; as printed the diagonal would be "
                 "both 0 (t and t are in the same group) and infinity."))
    return ev
