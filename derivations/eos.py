r"""SymPy re-derivations for the Edge-of-Stability abstract (first abstract of seed 002).

The paper itself is not available, only its abstract, so every formula here is our precise
reading of a sentence of the abstract; the derivations record, as steps starting with "Made
precise", which parts of the statement we had to fix ourselves and how.

* EOS-REC, :func:`step_recurrence`: :math:`\delta_{t+1} = (I - \eta\bar H_t)\,\delta_t`, boundary :math:`2/\eta`;
* EOS-LOSS, :func:`loss_change`: :math:`L(\theta_{t+1}) - L(\theta_t) = -\eta\|g\|^2 (1 - \eta\hat h/2)`, exact;
* EOS-P2, :func:`period_two`: fixed points / two-cycles from the edge coupling; the
  half-amplitude equation :math:`2/\eta = L'' + \kappa\rho^2 + O(\rho^4)`.

Generality: the one-dimensional statements are proved for an undefined smooth L (SymPy
``Function``); the d-dimensional ones are reduced to one dimension along the segment (a
directional statement: :math:`\varphi(s) = L(\theta + s\delta)` and :math:`\psi_v(s) = \langle v, \nabla L(\theta + s\delta)\rangle`),
with the chain rule :math:`\frac{d}{ds}\nabla L(\theta + s\delta) = H(\theta + s\delta)\,\delta` confirmed on a generic
explicit function in :math:`d = 3` (SymPy cannot carry a multivariate undefined function through this
chain rule without leaving spurious dummies).  The quadratic model is done for general d with
``MatrixSymbol``.  The period-two reduction is general in one dimension (arbitrary derivatives
:math:`L'', L''', L''''` at the fixed point) and done for a generic cubic + quartic potential in :math:`d = 2`
and :math:`d = 3` (explicit small cases of the index-free formula stated in the steps).
"""

from __future__ import annotations

import itertools
from typing import Callable

import sympy as sp

from attnverify.evidence import Erratum, Evidence, Inconclusive, full_simplify
from attnverify.sources import SOURCE_002


eta = sp.Symbol("eta", positive=True)
s = sp.Symbol("s", real=True)
theta, delta = sp.symbols("theta delta", real=True)
Lf = sp.Function("L")


# ---------------------------------------------------------------------------
# shared pieces
# ---------------------------------------------------------------------------


def _chain_rule_generic(ev: Evidence, d: int = 3) -> bool:
    r""":math:`\frac{d}{ds}\nabla L(x + sv) = H(x + sv)\,v` and :math:`\frac{d^2}{ds^2} L(x + sv) = v^\top H(x + sv)\,v`,
    identically in :math:`s`, for a generic explicit :math:`L` in :math:`d` variables (all monomials up to degree 4 with
    free coefficients plus non-polynomial terms): the directional statement used to reduce :math:`d` dimensions to one."""
    xs = sp.symbols(f"x1:{d + 1}", real=True)
    vs = sp.symbols(f"v1:{d + 1}", real=True)
    w = sp.symbols(f"w1:{d + 1}", real=True)
    monos = [m for k in range(1, 5) for m in itertools.combinations_with_replacement(xs, k)]
    coeffs = sp.symbols(f"c0:{len(monos)}")
    L = sum(c * sp.Mul(*m) for c, m in zip(coeffs, monos))
    L += sp.exp(sum(wi * xi for wi, xi in zip(w, xs))) + sp.log(1 + xs[0] ** 2) * sp.sin(sp.Mul(*xs))
    at = {xi: xi + s * vi for xi, vi in zip(xs, vs)}
    grad = [sp.diff(L, xi) for xi in xs]
    H = sp.Matrix(d, d, lambda i, j: sp.diff(L, xs[i], xs[j]))
    v = sp.Matrix(vs)
    ok = True
    for i in range(d):
        lhs = sp.diff(grad[i].xreplace(at), s)
        rhs = (H.xreplace(at) * v)[i]
        ok &= sp.expand(lhs - rhs) == 0
    lhs2 = sp.diff(L.xreplace(at), s, 2)
    rhs2 = (v.T * H.xreplace(at) * v)[0, 0]
    ok &= sp.expand(lhs2 - rhs2) == 0
    ev.check(f"chain rule along a segment (generic L, d = {d})", "symbolic",
             r"$\frac{d}{ds}\nabla L(x+sv) - H(x+sv)v$ and $\frac{d^2}{ds^2} L(x+sv) - v^\top H(x+sv) v$, expanded, for a "
             f"generic quartic polynomial ({len(monos)} free coefficients) plus "
             r"$e^{\langle w,x\rangle} + \log(1+x_1^2)\sin(x_1 x_2 x_3)$",
             "0" if ok else "nonzero", "exact", ok, "a symbolic identity holds exactly or not at all",
             key=f"chain-rule-along-a-segment-generic-l-d-{d}", numerical_class="exact", evidence="proof")
    return ok


def _edge_coupling(ev: Evidence) -> tuple[sp.Expr, sp.Symbol]:
    r""":math:`E_c(x, y) = L(x) + L(y) - c\,(x - y)^2` (one coordinate of the :math:`d`-dimensional coupling, which is a
    sum over coordinates in the coupling term): :math:`x`-criticality is a GD step iff :math:`c = 1/(2\eta)`."""
    x, y, c = sp.symbols("x y c", real=True)
    E = Lf(x) + Lf(y) - c * (x - y) ** 2
    ev.step(r"Made precise: the abstract does not define the 'edge coupling'. We take the functional on "
            r"consecutive iterate pairs $E_c(x,y) = L(x) + L(y) - c\,\|x-y\|^2$ and fix $c$ by the GD update "
            r"(written here in one coordinate; in $d$ dimensions each coordinate of $\nabla_x E_c$ is the same).",
            sp.Eq(sp.Symbol("E_c"), E))
    dEx = sp.diff(E, x)
    y_sol = sp.solve(dEx, y)
    ev.step(r"Criticality in the first argument, $\partial_x E_c = 0$, solved for the next iterate $y$.",
            sp.Eq(y, y_sol[0]))
    # a GD step is y = x - eta L'(x) for every L: match the coefficient of L'(x)
    g = sp.Symbol("g")
    gap = (y_sol[0] - (x - eta * Lf(x).diff(x))).subs(Lf(x).diff(x), g)
    c_sol = sp.solve(sp.diff(gap, g), c)
    ev.step(r"Matching $y = x - \eta L'(x)$ for every $L$ fixes the coefficient uniquely.", sp.Eq(c, c_sol[0]) if c_sol else "")
    ok = len(y_sol) == 1 and len(c_sol) == 1 and full_simplify(c_sol[0] - 1 / (2 * eta)) == 0
    ev.check("the edge-coupling coefficient is uniquely fixed by GD: c = 1/(2 eta)", "symbolic",
             r"solutions $c$ of $\frac{d}{dg}[y(c) - (x - \eta g)] = 0$", str(c_sol), "exactly one, = 1/(2 eta)", ok,
             "a linear equation has one solution or none; the value is compared exactly",
             key="the-edge-coupling-coefficient-is-uniquely-fixed", numerical_class="exact", evidence="proof")
    return E.subs(c, 1 / (2 * eta)), c


# ---------------------------------------------------------------------------
# EOS-REC
# ---------------------------------------------------------------------------


def step_recurrence(*, candidate: Callable | None = None, boundary_factor=2) -> Evidence:
    r"""EOS-REC. For gradient descent :math:`\theta_{t+1} = \theta_t - \eta\nabla L(\theta_t)` on a :math:`C^2` loss,
    the steps :math:`\delta_t = \theta_{t+1} - \theta_t` obey exactly

    :math:`\delta_{t+1} = (I - \eta\bar H_t)\,\delta_t`,  :math:`\bar H_t = \int_0^1 \nabla^2 L(\theta_t + s\delta_t)\,ds`,

    and along an eigen-direction of curvature :math:`h` the factor :math:`1-\eta h` has modulus :math:`<1` iff
    :math:`0 < h < 2/\eta` (stability boundary :math:`2/\eta`); for the quadratic model :math:`\bar H_t = H`.
    In one dimension :math:`\bar H_t = L''(\xi_t)` for an interior point :math:`\xi_t` of the step; in :math:`d \ge 2`
    only the quadratic forms :math:`v^\top\bar H_t v` localise to single points, the matrix does not.

    Source: 002_45411e362948ee22.txt, first abstract ("differencing its criticality condition
    yields a step recurrence with stability boundary 2/eta"; "the mean value theorem localizes each
    to the true Hessian at an interior point of the step segment").
    """
    ev = Evidence()
    ev.step(r"Made precise: 'step recurrence' = the exact linear recurrence for consecutive GD steps "
            r"$\delta_t = \theta_{t+1}-\theta_t$ with the segment-averaged Hessian $\bar H_t$; 'stability boundary "
            r"$2/\eta$' = the one-step factor $1-\eta h$ along a curvature $h$ has modulus $<1$ iff $0<h<2/\eta$.")
    _criticality_differenced(ev)
    _mean_value_form_of_the_step_recurrence(ev, candidate)
    _quadratic_model_recurrence(ev)
    _stability_boundary(ev, boundary_factor)
    _localisation(ev)
    return ev


def _criticality_differenced(ev: Evidence) -> None:
    r"""Differencing the criticality of consecutive pairs:
    :math:`\nabla L(\theta_{t+1}) - \nabla L(\theta_t) = -(\delta_{t+1} - \delta_t)/\eta`."""
    E, _ = _edge_coupling(ev)
    ev.step(r"Criticality on consecutive pairs, $\partial_x E(\theta_t,\theta_{t+1}) = 0$ and "
            r"$\partial_x E(\theta_{t+1},\theta_{t+2}) = 0$, differenced:",
            r"\nabla L(\theta_{t+1}) - \nabla L(\theta_t) = -\tfrac{1}{\eta}\,(\delta_{t+1} - \delta_t)")
    # the differencing, checked in one coordinate: L'(x) = (x - y)/eta at each critical pair
    x, y, g = sp.symbols("x y g", real=True)
    x0, x1, x2 = sp.symbols("theta_t theta_t+1 theta_t+2", real=True)
    gsol = sp.solve(sp.diff(E, x).subs(Lf(x).diff(x), g), g)[0]  # L'(x) at a critical pair
    crit = lambda a, b: gsol.subs({x: a, y: b}, simultaneous=True)
    diff_lhs = crit(x1, x2) - crit(x0, x1)
    ev.identity("differenced criticality: grad L(theta_{t+1}) - grad L(theta_t) = -(delta_{t+1} - delta_t)/eta",
                diff_lhs, -((x2 - x1) - (x1 - x0)) / eta, key="differenced-criticality-grad-l-theta-t-1-grad-l")


def _mean_value_form_of_the_step_recurrence(ev: Evidence, candidate: Callable | None) -> None:
    """FTC along the segment (1-D, undefined L), the chain rule in d dimensions and the recurrence with the
    segment-averaged Hessian."""
    psi = sp.diff(Lf(theta + s * delta), s) / delta  # = L'(theta + s delta)
    dpsi = sp.diff(psi, s)
    ev.step(r"One dimension, general smooth $L$: $\psi(s) = L'(\theta + s\delta)$ has derivative "
            r"$\psi'(s) = \delta\,L''(\theta+s\delta)$, so $\psi$ is an antiderivative of the integrand and the "
            r"fundamental theorem of calculus gives $L'(\theta+\delta) - L'(\theta) = \delta\int_0^1 L''(\theta+s\delta)\,ds$.",
            sp.Eq(sp.Derivative(sp.Symbol(r"\psi"), s), dpsi))
    ok_ftc = full_simplify(dpsi - delta * sp.diff(Lf(theta + s * delta), s, 2) / delta ** 2) == 0
    ok_ftc &= full_simplify(psi.subs(s, 1) - psi.subs(s, 0) - (sp.diff(Lf(theta + delta), delta) - sp.diff(Lf(theta), theta))) == 0
    ev.check("FTC along the segment (1-D, undefined L): psi' = delta L''(theta + s delta), psi(1) - psi(0) = L'(theta+delta) - L'(theta)",
             "symbolic", "simplify of both differences", "0" if ok_ftc else "nonzero", "exact", ok_ftc,
             "a symbolic identity holds exactly or not at all",
             key="ftc-along-the-segment-1-d-undefined-l-psi-delta", numerical_class="exact", evidence="proof")
    ev.step(r"$d$ dimensions, as a directional statement: for every fixed $v$, $\psi_v(s) = v^\top\nabla L(\theta_t + s\delta_t)$ "
            r"is a scalar function with $\psi_v'(s) = v^\top\nabla^2L(\theta_t+s\delta_t)\,\delta_t$ (chain rule, checked next "
            r"on a generic function); the 1-D step applied to $\psi_v$ for all $v$ gives the mean-value form.",
            r"\nabla L(\theta_{t+1}) - \nabla L(\theta_t) = \bar H_t\,\delta_t,\qquad \bar H_t = \int_0^1 \nabla^2 L(\theta_t + s\,\delta_t)\,ds")
    _chain_rule_generic(ev)
    _recurrence_identity(ev, candidate)


def _quadratic_model_recurrence(ev: Evidence) -> None:
    r"""Quadratic model, general :math:`d`: :math:`\bar H_t = H` and :math:`\delta_{t+1} = (I - \eta H)\,\delta_t`."""
    d = sp.Symbol("d", integer=True, positive=True)
    H = sp.MatrixSymbol("H", d, d)
    b = sp.MatrixSymbol("b", d, 1)
    th = sp.MatrixSymbol(r"\theta_t", d, 1)
    grad = lambda z: H * z + b
    d0 = -eta * grad(th)
    d1 = -eta * grad(th + d0)
    res = sp.expand(d1 - (sp.Identity(d) - eta * H) * d0).doit()
    ev.step(r"Quadratic model $L = \tfrac12\theta^\top H\theta + b^\top\theta$: the gradient is affine, so $\bar H_t = H$ "
            r"exactly and the recurrence has constant coefficients.", r"\delta_{t+1} = (I - \eta H)\,\delta_t")
    okq = res == sp.ZeroMatrix(d, 1) or res == 0
    ev.check("quadratic model: delta_{t+1} = (I - eta H) delta_t (general d)", "symbolic",
             r"$\operatorname{expand}(\delta_{t+1} - (I-\eta H)\delta_t)$, MatrixSymbol $H$ of size $d \times d$", str(res),
             "exact", okq,
             "a symbolic identity holds exactly or not at all",
             key="quadratic-model-delta-t-1-i-eta-h-delta-t", numerical_class="exact", evidence="proof")


def _stability_boundary(ev: Evidence, boundary_factor) -> None:
    r"""The stability region :math:`0 < h <` ``boundary_factor`` :math:`/\eta`, and the factor :math:`-1` at the boundary
    :math:`h = 2/\eta`."""
    _stability_evidence(ev, boundary_factor / eta)
    hs = sp.Symbol("h", real=True)
    ev.step(r"Made precise for $d \ge 2$: for symmetric $\bar H_t$, $\|I-\eta\bar H_t\|_2 = \max_i|1-\eta\lambda_i(\bar H_t)|$, "
            r"which is $<1$ iff $\operatorname{spec}\bar H_t \subset (0, 2/\eta)$. At the boundary $h = 2/\eta$ the factor is "
            r"$-1$: the step flips sign without shrinking (the period-two threshold of EOS-P2).",
            sp.Eq(1 - eta * hs, (1 - eta * hs).subs(hs, 2 / eta)))
    ev.identity("factor at the boundary h = 2/eta is -1", (1 - eta * hs).subs(hs, 2 / eta), -1,
                key="factor-at-the-boundary-h-2-eta-is-1")


def _stability_evidence(ev: Evidence, boundary: sp.Expr) -> bool:
    r""":math:`|1 - \eta h| < 1` solved for :math:`h`; compared with the candidate interval :math:`(0, \mathrm{boundary})`."""
    h = sp.Symbol("h", real=True)
    sol = sp.solve_univariate_inequality(sp.Abs(1 - eta * h) < 1, h, relational=False)
    ev.step(r"Eigen-direction (scalar) recurrence $c_{t+1} = (1-\eta h)\,c_t$: the set of curvatures $h$ with "
            r"$|1-\eta h|<1$, solved by SymPy.", (sp.Symbol(r"\{h : |1-\eta h|<1\}"), sol))
    ok = sol == sp.Interval.open(0, boundary)
    ev.check("stability region of the step recurrence is 0 < h < boundary", "symbolic",
             f"`solve_univariate_inequality(|1 - eta h| < 1) == Interval.open(0, {boundary})`", str(sol), "exact",
             ok, "two intervals with symbolic endpoints are equal or not",
             key="stability-region-of-the-step-recurrence-is-0-h", numerical_class="exact", evidence="proof")
    return ok


def _recurrence_identity(ev: Evidence, candidate: Callable | None = None) -> bool:
    r""":math:`\delta_{t+1} - M\delta_t = 0` with :math:`M` = ``candidate(Hbar)`` (default :math:`I - \eta\bar H`), general
    :math:`d`."""
    d = sp.Symbol("d", integer=True, positive=True)
    Hb = sp.MatrixSymbol(r"\bar{H}_t", d, d)
    g = sp.MatrixSymbol("g_t", d, 1)
    I = sp.Identity(d)
    delta_t = -eta * g
    grad_next = g + Hb * delta_t  # mean-value form of the gradient difference
    delta_next = -eta * grad_next
    M = (candidate or (lambda H: I - eta * H))(Hb)
    ev.step(r"GD in $d$ dimensions: $\delta_t = -\eta g_t$ and, by the mean-value form, "
            r"$\nabla L(\theta_{t+1}) = g_t + \bar H_t\delta_t$; hence $\delta_{t+1} = -\eta\nabla L(\theta_{t+1})$.",
            (sp.Symbol(r"\delta_{t+1}"), delta_next))
    res = sp.expand(delta_next - M * delta_t).doit()
    ok = res == sp.ZeroMatrix(d, 1) or res == 0
    ev.check("step recurrence delta_{t+1} = (I - eta Hbar_t) delta_t (general d)", "symbolic",
             r"$\operatorname{expand}(\delta_{t+1} - (I - \eta\bar H_t)\delta_t)$ with MatrixSymbol of symbolic size $d$", str(res),
             "exact", ok, "a symbolic identity holds exactly or not at all",
             key="step-recurrence-delta-t-1-i-eta-hbar-t-delta-t", numerical_class="exact", evidence="proof")
    return ok


def segment_counterexample():
    r"""The :math:`d = 2` counterexample to a matrix mean value theorem on one GD step (EOS-REC, EOS-LOSS):
    :math:`L(x,y) = x^4/12 + y^2(1-x)^2/2`, :math:`\theta_t = (-1, 0)`, :math:`\eta = 3`.

    Returns the gradient :math:`g` at :math:`\theta_t`, the step's end :math:`\theta_{t+1}` and the Hessian
    :math:`H(s) = \nabla^2 L(\theta_t + s\delta_t)` on the step segment, :math:`s\in[0,1]` (SymPy, exact)."""
    x, y = sp.symbols("x y", real=True)
    L = x ** 4 / 12 + y ** 2 * (1 - x) ** 2 / 2
    th0 = sp.Matrix([-1, 0])
    g0 = sp.Matrix([sp.diff(L, v) for v in (x, y)]).subs({x: th0[0], y: th0[1]})
    th1 = th0 - 3 * g0
    H = sp.hessian(L, (x, y))
    seg = {x: th0[0] + s * (th1[0] - th0[0]), y: th0[1] + s * (th1[1] - th0[1])}
    return g0, th1, H.subs(seg)


def _localisation(ev: Evidence) -> None:
    r"""The mean-value localisation: exact for scalars, false for the matrix :math:`\bar H` in :math:`d \ge 2`."""
    ev.step(r"Made precise ('the mean value theorem localizes each to the true Hessian at an interior point'): "
            r"in 1-D, $L''$ continuous gives $\bar H_t = L''(\xi_t)$ with $\xi_t$ between $\theta_t$ and $\theta_{t+1}$ "
            r"(mean value theorem for integrals). In $d$ dimensions this holds for each quadratic form, "
            r"$v^\top\bar H_t v = v^\top\nabla^2 L(\theta_t + s_v\delta_t)\,v$, with a point $s_v$ that depends on $v$; "
            r"the matrix $\bar H_t$ itself need not equal the Hessian at any point of the segment. Counterexample:",
            r"L(x,y) = \tfrac{x^4}{12} + \tfrac{y^2(1-x)^2}{2},\quad \theta_t = (-1,0),\ \eta = 3")
    g0, th1, Hs = segment_counterexample()
    Hbar = Hs.applyfunc(lambda e: sp.integrate(e, (s, 0, 1)))
    ev.step(r"Its GD step ends at $\theta_{t+1} = (0,0)$; on the segment the Hessian is $H(s)$ and its average is $\bar H_t$.",
            sp.Eq(sp.Symbol(r"\bar H_t"), Hbar, evaluate=False))
    sols = sp.solve(list(Hs - Hbar), s, dict=True)
    inside = [sl for sl in sols if sl[s].is_real and 0 <= sl[s] <= 1]
    ok = th1 == sp.Matrix([0, 0]) and inside == [] and Hbar.is_diagonal()
    ev.check("d = 2 counterexample: no s in [0, 1] with H(theta_t + s delta_t) = Hbar_t", "symbolic",
             r"`solve(H(s) - Hbar = 0, s)` restricted to $[0, 1]$", str(inside), "empty", ok,
             r"the entries need $s^2$-type equations with different roots ($1 - 1/\sqrt 3$ vs $\sqrt{7/3} - 1$): "
             "a finite solve is exact",
             key="d-2-counterexample-no-s-in-0-1-with-h-theta-t-s", numerical_class="exact", evidence="proof")
    # the scalar localisation along the step direction does hold (IVT on a continuous function)
    q = Hs[0, 0]
    s_star = [r for r in sp.solve(sp.Eq(q, Hbar[0, 0]), s) if 0 < r < 1]
    ev.check("the Rayleigh quotient along the step localises: e1^T H(s*) e1 = e1^T Hbar e1 for an interior s*", "symbolic",
             r"interior roots of $e_1^\top H(s) e_1 = e_1^\top \bar H e_1$", str(s_star), "exactly one root in (0, 1)",
             len(s_star) == 1, r"$q(s)$ is monotone on $[0, 1]$ here, so the mean is attained at exactly one interior point",
             key="the-rayleigh-quotient-along-the-step-localises", numerical_class="exact", evidence="proof")


# ---------------------------------------------------------------------------
# EOS-LOSS
# ---------------------------------------------------------------------------


def loss_change(*, candidate: Callable | None = None) -> Evidence:
    r"""EOS-LOSS. For GD on a :math:`C^2` loss, with :math:`g = \nabla L(\theta_t)` and
    :math:`\tilde H_t = 2\int_0^1 (1-s)\,\nabla^2 L(\theta_t - s\eta g)\,ds` (a weighted average: the weights
    :math:`2(1-s)` integrate to 1), exactly

    :math:`L(\theta_{t+1}) - L(\theta_t) = -\eta\|g\|^2\,(1 - \eta\hat h_t/2)`,  :math:`\hat h_t = g^\top\tilde H_t g/\|g\|^2`,

    so the loss decreases iff :math:`\hat h_t < 2/\eta`; summed over steps,
    :math:`L(\theta_T) - L(\theta_0) = -\eta\sum_t\|g_t\|^2(1-\eta\hat h_t/2)`, equivalently the
    :math:`\|g_t\|^2`-weighted mean of :math:`\hat h_t` equals :math:`2/\eta - 2(L(\theta_0)-L(\theta_T))/(\eta^2\sum_t\|g_t\|^2)`.
    :math:`\tilde H_t` and :math:`\bar H_t` (EOS-REC) are different averages (weights :math:`2(1-s)` vs 1).

    Source: 002_45411e362948ee22.txt, first abstract ("a second-order expansion yields a loss-change
    formula whose telescoping sum forces curvature toward 2/eta"; "the two formulas involve different
    Hessian averages").
    """
    ev = Evidence()
    ev.step(r"Made precise: the abstract's 'second-order expansion' is made exact by Taylor's theorem with integral "
            r"remainder; the Hessian average that makes it exact (not only to second order) is $\tilde H_t$ with weight "
            r"$2(1-s)$, and $\hat h_t$ is its Rayleigh quotient along the gradient.",
            r"\tilde H_t = 2\int_0^1 (1-s)\,\nabla^2L(\theta_t - s\eta g)\,ds,\qquad \hat h_t = \frac{g^\top\tilde H_t g}{\|g\|^2}")
    _taylor_with_integral_remainder_along_the_step(ev)
    _loss_formula_evidence(ev, candidate)
    _remainder_is_exact_for_the_exponential(ev)
    _htilde_not_hbar_makes_the_formula_exact(ev)
    _sign_evidence(ev, 2 / eta)
    _telescoped_formula_gives_the_mean_curvature(ev)
    ev.step(r"Localisation: the weight $2(1-s)\ge 0$ integrates to 1, so by the mean value theorem for integrals "
            r"$\hat h_t = u^\top\nabla^2L(\theta_t - \zeta_t\eta g)\,u$, $u = g/\|g\|$, for some $\zeta_t\in(0,1)$ "
            r"(a Rayleigh quotient along the step, not an eigenvalue); the point differs from EOS-REC's (1/3 vs 1/2 for a cubic).")
    _no_gap(ev)
    return ev


def _taylor_with_integral_remainder_along_the_step(ev: Evidence) -> None:
    r""":math:`\varphi(1) - \varphi(0) = \varphi'(0) + \int_0^1 (1 - s)\,\varphi''(s)\,ds` for general :math:`\varphi`,
    applied to the GD segment; the weights :math:`2(1 - s)` integrate to 1."""
    phi = sp.Function(r"\varphi")
    F = phi(s) + (1 - s) * sp.diff(phi(s), s)
    ev.step(r"Taylor with integral remainder for a general smooth scalar $\varphi$: $F(s) = \varphi(s) + (1-s)\varphi'(s)$ "
            r"is an antiderivative of $(1-s)\varphi''(s)$, so $\varphi(1) - \varphi(0) = \varphi'(0) + \int_0^1(1-s)\varphi''(s)\,ds$.",
            sp.Eq(sp.Derivative(sp.Symbol("F"), s), sp.diff(F, s)))
    ev.identity("F'(s) = (1 - s) phi''(s) (general phi)", sp.diff(F, s), (1 - s) * sp.diff(phi(s), s, 2),
                key="f-s-1-s-phi-s-general-phi")
    ev.identity("F(1) - F(0) = phi(1) - phi(0) - phi'(0)", F.subs(s, 1) - F.subs(s, 0),
                phi(1) - phi(0) - sp.diff(phi(s), s).subs(s, 0), key="f-1-f-0-phi-1-phi-0-phi-0")
    ev.step(r"With $\varphi(s) = L(\theta_t - s\eta g)$ (the GD segment): $\varphi'(0) = -\eta\|g\|^2$ and "
            r"$\varphi''(s) = \eta^2 g^\top\nabla^2 L(\theta_t - s\eta g)\,g$ (chain rule, checked on a generic function):",
            r"L(\theta_{t+1}) - L(\theta_t) = -\eta\|g\|^2 + \eta^2\, g^\top\Big[\int_0^1(1-s)\nabla^2L(\theta_t-s\eta g)\,ds\Big] g "
            r"= -\eta\|g\|^2 + \tfrac{\eta^2}{2}\, g^\top\tilde H_t\, g")
    _chain_rule_generic(ev)
    w = sp.integrate(2 * (1 - s), (s, 0, 1))
    ev.identity("the weights 2(1 - s) integrate to 1 (Htilde is an average of Hessians)", w, 1,
                key="the-weights-2-1-s-integrate-to-1-htilde-is-an")


def _remainder_is_exact_for_the_exponential(ev: Evidence) -> None:
    r"""Exactness (not only second order) on :math:`L = \exp`, with the remainder integrated in closed form."""
    x = sp.Symbol("x", real=True)
    L = sp.exp(x)
    lhs = L.subs(x, theta + delta) - L.subs(x, theta)
    rhs = sp.diff(L, x).subs(x, theta) * delta + sp.integrate((1 - s) * sp.diff(L, x, 2).subs(x, theta + s * delta) * delta ** 2, (s, 0, 1))
    ev.step(r"Exactness (not only second order) on a non-polynomial loss, $L = e^x$: the remainder integral evaluated in closed form.",
            sp.Eq(sp.Symbol(r"\int_0^1 (1-s)\,e^{\theta+s\delta}\delta^2 ds"), sp.simplify(rhs - delta * sp.exp(theta))))
    ev.identity("exact for L = exp: L(theta+delta) - L(theta) = L'(theta) delta + int_0^1 (1-s) L''(theta+s delta) delta^2 ds",
                lhs, rhs, key="exact-for-l-exp-l-theta-delta-l-theta-l-theta")


def _htilde_not_hbar_makes_the_formula_exact(ev: Evidence) -> None:
    r"""Cubic :math:`L`: :math:`\bar H` is :math:`L''` at the midpoint, :math:`\tilde H` at the first third; only
    :math:`\tilde H` makes the formula exact."""
    x = sp.Symbol("x", real=True)
    a3 = sp.Symbol("a", nonzero=True)
    Lc = a3 * x ** 3 / 6
    L2 = sp.diff(Lc, x, 2)
    Hbar = sp.integrate(L2.subs(x, theta + s * delta), (s, 0, 1))
    Htil = sp.integrate(2 * (1 - s) * L2.subs(x, theta + s * delta), (s, 0, 1))
    ev.step(r"The two averages differ (cubic $L = a x^3/6$, $L'' = a x$): $\bar H$ is $L''$ at the midpoint, "
            r"$\tilde H$ at the first third of the step.",
            sp.Eq(sp.Tuple(sp.Symbol(r"\bar H"), sp.Symbol(r"\tilde H")), sp.Tuple(sp.factor(Hbar), sp.factor(Htil))))
    exact_dL = Lc.subs(x, theta + delta) - Lc.subs(x, theta)
    wrong = sp.diff(Lc, x).subs(x, theta) * delta + Hbar * delta ** 2 / 2
    miss = sp.factor(sp.simplify(exact_dL - wrong))
    ok = full_simplify(Hbar - L2.subs(x, theta + delta / 2)) == 0 and full_simplify(Htil - L2.subs(x, theta + delta / 3)) == 0 and miss != 0
    ev.check("Htilde (weight 2(1-s)) makes the formula exact; the uniform average Hbar does not", "symbolic",
             r"cubic $L$: $\bar H - L''(\theta + \delta/2)$, $\tilde H - L''(\theta + \delta/3)$, and the miss of the "
             r"$\bar H$-formula",
             f"miss = {miss}", "first two 0, miss != 0", ok, "exact symbolic comparison",
             key="htilde-weight-2-1-s-makes-the-formula-exact-the", numerical_class="exact", evidence="proof")


def _telescoped_formula_gives_the_mean_curvature(ev: Evidence) -> None:
    r"""Telescoping (general :math:`T`): the :math:`\|g_t\|^2`-weighted mean of :math:`\hat h_t` is
    :math:`2/\eta - 2 (L_0 - L_T)/(\eta^2 \sum_t \|g_t\|^2)`."""
    t, T = sp.symbols("t T", integer=True, nonnegative=True)
    Lb, Wb, Hb = sp.IndexedBase("L"), sp.IndexedBase("w"), sp.IndexedBase(r"\hat{h}")
    tele = sp.Sum(Lb[t + 1] - Lb[t], (t, 0, T - 1)).doit()
    ev.step(r"Telescoping (general $T$), with $w_t = \|g_t\|^2$ and the per-step identity in each summand:",
            sp.Eq(sp.Sum(Lb[t + 1] - Lb[t], (t, 0, T - 1)), tele))
    ev.identity("telescoping sum of loss changes = L_T - L_0 (general T)", tele, Lb[T] - Lb[0],
                key="telescoping-sum-of-loss-changes-l-t-l-0-general")
    ev.step("Hence the summed formula:", r"L(\theta_T) - L(\theta_0) = -\eta\sum_{t=0}^{T-1}\|g_t\|^2\Big(1-\frac{\eta\hat h_t}{2}\Big)")
    W, M, L0, LT = sp.symbols("W M L_0 L_T", real=True)  # W = sum w_t, M = sum w_t hhat_t
    Msol = sp.solve(sp.Eq(LT - L0, -eta * W + eta ** 2 / 2 * M), M)[0]
    ev.step(r"Made precise ('forces curvature toward $2/\eta$'): with $W = \sum_t\|g_t\|^2$ and $M = \sum_t\|g_t\|^2\hat h_t$, "
            r"the summed formula is linear in $M$ and gives the $\|g\|^2$-weighted mean of $\hat h_t$ exactly:",
            sp.Eq(M / W, sp.expand(Msol / W)))
    ev.identity("weighted mean of hhat_t = 2/eta - 2 (L_0 - L_T)/(eta^2 sum ||g_t||^2)", Msol / W,
                2 / eta - 2 * (L0 - LT) / (eta ** 2 * W), key="weighted-mean-of-hhat-t-2-eta-2-l-0-l-t-eta-2")
    ev.step(r"Consequences: if $L \ge L_{\inf}$ and $\hat h_t \le (2-\epsilon)/\eta$ for all $t$, then "
            r"$\sum_t\|g_t\|^2 \le 2(L_0 - L_{\inf})/(\eta\epsilon)$ (the gradients are square-summable); and if the "
            r"loss stays bounded while $\sum_t\|g_t\|^2 \to \infty$ (GD does not converge), the weighted mean of "
            r"$\hat h_t$ tends to $2/\eta$ exactly (no gap). On a period-two orbit ($L_T = L_0$, $T$ even) it equals $2/\eta$.",
            r"\hat h_t \le \frac{2-\epsilon}{\eta}\ \Rightarrow\ 1 - \frac{\eta\hat h_t}{2} \ge \frac{\epsilon}{2}")
    eps_ = sp.Symbol("epsilon", positive=True)
    ev.identity("per-step factor at hhat = (2 - epsilon)/eta equals epsilon/2", 1 - eta * ((2 - eps_) / eta) / 2, eps_ / 2,
                key="per-step-factor-at-hhat-2-epsilon-eta-equals")


def _no_gap(ev: Evidence) -> None:
    r"""EOS-LOSS/nogap: what the mean value theorem gives for the loss formula's average :math:`\tilde H` (:math:`d = 2`)."""
    g0, _, Hs = segment_counterexample()
    Ht = Hs.applyfunc(lambda e: sp.integrate(2 * (1 - s) * e, (s, 0, 1)))
    ev.step(r"'No gap', as printed: the mean value theorem 'localizes' $\tilde H_t$ to the true Hessian at an interior "
            r"point, so that the curvature the telescoped formula forces is 'the Hessian eigenvalue' itself. On "
            r"EOS-REC's $d = 2$ counterexample (the same step, now with the weight $2(1-s)$), $H(s)$ and $\tilde H_t$:",
            sp.Eq(sp.Tuple(sp.Symbol("H(s)"), sp.Symbol(r"\tilde H_t")), sp.Tuple(Hs, Ht), evaluate=False))
    sols = sp.solve(list(Hs - Ht), s, dict=True)
    inside = [sl for sl in sols if sl[s].is_real and 0 <= sl[s] <= 1]
    ev.at_least("nogap-htilde-is-the-hessian-at-a-point",
                "as printed: the loss formula's average Htilde_t is the true Hessian at a point of the step "
                "(d = 2 counterexample)", len(inside), 1,
                r"a finite solve is exact: the diagonal entries $(1 - s)^2 = 1/2$ and $(2 - s)^2 = 17/6$ have different "
                r"roots in $[0, 1]$", method="symbolic",
                metric=r"number of $s \in [0, 1]$ with $H(\theta_t + s\delta_t) = \tilde H_t$", numerical_class="exact",
                evidence="proof")
    u = g0 / g0.norm()
    hh = sp.nsimplify((u.T * Ht * u)[0])
    lam = list(Hs.eigenvals())
    gap = sp.minimum(sp.Max(*lam) - hh, s, sp.Interval(0, 1))
    zeta = [r for r in sp.solve(sp.Eq((u.T * Hs * u)[0], hh), s) if 0 < r < 1]
    ev.step(r"The gradient is an eigenvector here ($g \parallel e_1$), so $\hat h_t = e_1^\top\tilde H_t e_1$ is a "
            r"Hessian eigenvalue at the interior point $s = \zeta$, but the smaller one: the largest eigenvalue on the "
            r"whole step exceeds it by at least",
            r"\hat h_t = " + sp.latex(hh) + r",\quad \zeta = " + sp.latex(zeta) + r",\quad \min_{s\in[0,1]}"
            r"\lambda_{\max}(H(s)) - \hat h_t = " + sp.latex(gap))
    ev.at_most("nogap-hhat-is-the-top-eigenvalue",
               "as printed ('no gap'): the forced curvature hhat_t is the largest Hessian eigenvalue at a point of "
               "the step (d = 2 counterexample)", float(gap), 0,
               r"exact: SymPy's minimum of $\lambda_{\max}(H(s)) - \hat h_t$ over the closed interval $[0, 1]$; 0 would "
               "mean no gap at some point", method="symbolic",
               metric=r"$\min_{s \in [0, 1]} \lambda_{\max}(H(\theta_t + s\delta_t)) - \hat h_t$", numerical_class="exact",
               evidence="proof")
    ev.part_finding("EOS-LOSS/nogap",
                    r"False as printed for $d \ge 2$: on a $d = 2$ step ($L = x^4/12 + y^2 (1 - x)^2/2$, "
                    r"$\theta_t = (-1, 0)$, $\eta = 3$) the loss formula's average $\tilde H_t$ is the Hessian at no point "
                    f"of the step, and the curvature it forces, $\\hat h_t = {hh}$, stays {gap} below the largest Hessian "
                    r"eigenvalue everywhere on the step. What is true: $\hat h_t = u^\top H(\theta_t - \zeta_t\eta g_t)\,u$, "
                    r"$u = g_t/\|g_t\|$, for some interior $\zeta_t$ (a Rayleigh quotient along the step, "
                    r"$\le \lambda_{\max}$ there, = the Hessian in 1-D), and the telescoped formula forces the "
                    r"$\|g_t\|^2$-weighted mean of these to $2/\eta$ with no gap when GD does not converge: the largest "
                    r"eigenvalue at those points is bounded only from below (its weighted mean is at least $2/\eta$).")
    if inside == [] and gap > 0:
        ev.errata.append(Erratum(
            source="002_45411e362948ee22.txt", equation="first abstract ('exact forcing of the Hessian eigenvalue "
                                                         "with no gap')",
            printed=r"\tilde H_t = \nabla^2 L(\xi_t),\ \xi_t \in (\theta_t, \theta_{t+1})\ \Rightarrow\ "
                    r"\text{the forced curvature is the Hessian eigenvalue, no gap}",
            corrected=r"\hat h_t = u_t^\top \nabla^2 L(\theta_t - \zeta_t\eta g_t)\,u_t \le "
                      r"\lambda_{\max}\big(\nabla^2 L(\theta_t - \zeta_t\eta g_t)\big),\ u_t = g_t/\|g_t\|,\ "
                      r"\zeta_t\in(0,1)\ \text{(a Rayleigh quotient; equality in } d = 1)",
            note=f"d = 2 counterexample L = x^4/12 + y^2 (1-x)^2/2 from (-1, 0), eta = 3: Htilde_t is the Hessian at no "
                 f"point of the step, and lambda_max exceeds hhat_t = {hh} by at least {gap} everywhere on it."))


def _loss_formula_evidence(ev: Evidence, candidate: Callable | None = None) -> bool:
    r"""Derived :math:`\Delta L = -\eta G_2 + (\eta^2 / 2)\, G_2 \hat h` against ``candidate(eta, G2, hhat)``
    (:math:`G_2 = \|g\|^2`)."""
    G2, hh = sp.symbols(r"\|g\|^2 \hat{h}", positive=True)
    derived = -eta * G2 + eta ** 2 / 2 * G2 * hh  # from phi(1) - phi(0) = phi'(0) + int (1-s) phi''
    cand = (candidate or (lambda e, G, h: -e * G * (1 - e * h / 2)))(eta, G2, hh)
    ev.step(r"Collecting terms: the claimed closed form, with $\hat h = g^\top\tilde H g/\|g\|^2$.",
            sp.Eq(sp.Symbol(r"L(\theta_{t+1}) - L(\theta_t)"), cand))
    return ev.identity("loss change = -eta ||g||^2 (1 - eta hhat / 2), exact", derived, cand,
                       key="loss-change-eta-g-2-1-eta-hhat-2-exact")


def _sign_evidence(ev: Evidence, boundary: sp.Expr) -> bool:
    r""":math:`\{\hat h > 0 : \Delta L < 0\}` solved; compared with :math:`(0, \mathrm{boundary})`."""
    hh = sp.Symbol(r"\hat{h}", positive=True)
    G2 = sp.Symbol(r"\|g\|^2", positive=True)
    dL = -eta * G2 * (1 - eta * hh / 2)
    # hhat > 0 by assumption (the sign question is about positive curvature)
    dec = sp.reduce_inequalities([dL < 0], hh).canonical
    inc = sp.reduce_inequalities([dL > 0], hh).canonical
    ev.step(r"Sign of the loss change ($g \ne 0$): the curvatures $\hat h>0$ for which the loss decreases and increases.",
            r"\Delta L < 0 \iff " + sp.latex(dec) + r",\qquad \Delta L > 0 \iff " + sp.latex(inc))
    ok = dec == (hh < boundary) and inc == (hh > boundary)
    ev.check("the loss change flips sign exactly at hhat = boundary", "symbolic",
             f"`reduce_inequalities(Delta L < 0), (Delta L > 0)` for $\\hat h > 0$ equal to $\\hat h < {sp.latex(boundary)}$, "
             f"$\\hat h > {sp.latex(boundary)}$",
             f"{dec}, {inc}", "exact",
             ok, "intervals with symbolic endpoints are equal or not",
             key="the-loss-change-flips-sign-exactly-at-hhat", numerical_class="exact", evidence="proof")
    return ok


# ---------------------------------------------------------------------------
# EOS-P2
# ---------------------------------------------------------------------------

h_, a_, b_, c_ = sp.symbols("h a b c", real=True)  # L'', L''', L'''', L^(5) at the fixed point
rho = sp.Symbol("rho", positive=True)


def kappa_1d(h=h_, a=a_, b=b_):
    r"""Half-amplitude coefficient :math:`\kappa` in :math:`2/\eta = L'' + \kappa\rho^2 + O(\rho^4)` (1-D)."""
    return b / 6 - a ** 2 / (2 * h)


def period_two(*, kappa_candidate: Callable | None = None, kappa_formula: Callable | None = None) -> Evidence:
    r"""EOS-P2. Critical points of the edge coupling :math:`E(x,y) = L(x) + L(y) - \|x-y\|^2/(2\eta)` are the
    pairs with :math:`y = G(x)`, :math:`x = G(y)`, :math:`G(\theta) = \theta - \eta\nabla L(\theta)`: fixed points (:math:`x=y`,
    :math:`\nabla L = 0`) and period-two orbits (:math:`x \ne y`). Writing the orbit as :math:`\{m + r, m - r\}`, near a
    fixed point :math:`\theta^*` with Hessian :math:`H` (distinct eigenvalues :math:`h_i>0`) the midpoint is :math:`m = O(\rho^2)`,
    :math:`r = \rho e_i + O(\rho^3)` for an eigenvector :math:`e_i`, and the half-amplitude :math:`\rho` alone satisfies

    :math:`2/\eta = h_i + \kappa_i\rho^2 + O(\rho^4)`, :math:`\kappa_i = Q_{iiii}/6 - \tfrac12\sum_k T_{iik}^2/h_k`

    (:math:`T, Q` = third and fourth derivative tensors in the eigenbasis; in 1-D
    :math:`\kappa = L''''/6 - L'''^2/(2L'')`). Orbits exist for :math:`\eta < \eta_c = 2/h_i` if :math:`\kappa_i > 0`
    (subcritical: unstable orbits, multiplier :math:`1 + 8\kappa\rho^2/h`) and for :math:`\eta > \eta_c` if
    :math:`\kappa_i < 0` (supercritical: stable orbits).

    Source: 002_45411e362948ee22.txt, first abstract ("setting both gradients of the edge coupling to
    zero classifies fixed points and period-two orbits; near a fixed point, the problem reduces to a
    function of the half-amplitude alone, which determines which directions support period-two orbits
    and on which side of the critical learning rate they appear").
    """
    ev = Evidence()
    ev.step(r"Made precise: edge coupling $E(x,y) = L(x)+L(y) - \|x-y\|^2/(2\eta)$ (coefficient fixed in EOS-REC); "
            r"orbit $\{m+r, m-r\}$ with half-amplitude $\rho = \|r\|$; 'near a fixed point' = $\rho\to 0$ with $\eta\to\eta_c$; "
            r"'which side' = the sign of $\eta - \eta_c$ on the orbit branch, decided by the sign of $\kappa$ derived below.")
    _critical_pairs_are_fixed_points_or_two_cycles(ev)
    sol, kappa, kappa4 = _amplitude_1d(ev, kappa_candidate)
    _side_evidence(ev)
    _orbit_multiplier(ev, sol, kappa, kappa4)
    _model_losses_of_the_numeric_check(ev)
    ev.step(r"$d$ dimensions (eigenbasis $H = \operatorname{diag}(h_k)$, third/fourth derivative tensors $T, Q$): "
            r"with $r = \rho e_1 + O(\rho^3)$, $m = -\tfrac12\rho^2 H^{-1}T(e_1,e_1,\cdot) + O(\rho^4)$ the same reduction gives",
            r"\frac{2}{\eta} = h_1 + \kappa_1\rho^2 + O(\rho^4),\qquad \kappa_1 = \frac{Q_{1111}}{6} - \frac12\sum_k \frac{T_{11k}^2}{h_k}")
    _directions(ev)
    for d in (2, 3):
        _lyapunov_schmidt(ev, d, kappa_formula)
    ev.step(r"Separable losses ($T_{11k} = 0$ for $k\ne 1$) reduce to the 1-D formula per coordinate; at a minimum "
            r"($h_k > 0$) the cross terms $T_{11k}$ lower $\kappa_1$ and push the orbits to the supercritical side. Checked in general form: "
            r"1-D with arbitrary $L'', L''', L'''', L^{(5)}$; in $d$ dimensions, explicit generic cases $d = 2, 3$.")
    return ev


def _critical_pairs_are_fixed_points_or_two_cycles(ev: Evidence) -> None:
    """grad E = 0 iff y = G(x) and x = G(y); with x = m + r, y = m - r the two conditions are a sum and a
    difference equation."""
    x, y = sp.symbols("x y", real=True)
    gx, gy = sp.symbols("g_x g_y", real=True)  # grad L(x), grad L(y): arbitrary (one coordinate)
    E = Lf(x) + Lf(y) - (x - y) ** 2 / (2 * eta)
    dEx = sp.diff(E, x).subs(Lf(x).diff(x), gx)
    dEy = sp.diff(E, y).subs(Lf(y).diff(y), gy)
    sol = sp.solve([dEx, dEy], [y, gy], dict=True)
    ev.step(r"Both gradients of $E$ set to zero:", sp.Tuple(sp.Eq(dEx, 0), sp.Eq(dEy, 0)))
    # y = G(x), and L'(y) = -L'(x) makes y - eta L'(y) = x, i.e. x = G(y)
    ok = (len(sol) == 1 and full_simplify(sol[0][y] - (x - eta * gx)) == 0
          and full_simplify(sol[0][y] - eta * sol[0][gy] - x) == 0)
    ev.check("grad E = 0 <=> y = G(x) and x = G(y)", "symbolic", "solve(dE/dx = dE/dy = 0) for (y, L'(y))",
             str(sol), "y = x - eta L'(x), L'(y) = -L'(x)  (i.e. x = y - eta L'(y))", ok, "exact solve of a linear system",
             key="grad-e-0-y-g-x-and-x-g-y", numerical_class="exact", evidence="proof")
    ev.step(r"Hence $y = G(x)$ and $L'(y) = -L'(x)$, i.e. $x = G(y)$: $x = y$ gives a fixed point ($\nabla L(x) = 0$), "
            r"$x\ne y$ a period-two orbit. With $x = m + r$, $y = m - r$ the two conditions become a sum and a difference equation:",
            r"\nabla L(m+r) + \nabla L(m-r) = 0,\qquad \nabla L(m+r) - \nabla L(m-r) = \tfrac{4}{\eta}\,r")
    m, r = sp.symbols("m r", real=True)
    e1 = (dEx + dEy).subs({gx: Lf(x).diff(x), gy: Lf(y).diff(y)})
    e2 = (dEx - dEy).subs({gx: Lf(x).diff(x), gy: Lf(y).diff(y)})
    sub = {x: m + r, y: m - r}
    ev.identity("sum of the two conditions", e1.subs(sub).doit(), (Lf(x).diff(x) + Lf(y).diff(y)).subs(sub).doit(),
                key="sum-of-the-two-conditions")
    ev.identity("difference of the two conditions", e2.subs(sub).doit(), ((Lf(x).diff(x) - Lf(y).diff(y)) - 4 * r / eta).subs(sub).doit(),
                key="difference-of-the-two-conditions")


def _orbit_multiplier(ev: Evidence, sol: dict, kappa: sp.Expr, kappa4: sp.Expr) -> None:
    r"""The orbit's stability multiplier :math:`G'(m + \rho)\,G'(m - \rho) = 1 + 8\kappa\rho^2/L'' + O(\rho^4)` on the branch."""
    xx = sp.Symbol("x", real=True)
    Lpp = h_ + a_ * xx + b_ * xx ** 2 / 2 + c_ * xx ** 3 / 6
    two_over_eta = h_ + kappa * rho ** 2 + kappa4 * rho ** 4
    mser = sum(v * rho ** (2 * i + 2) for i, v in enumerate(sol.values()))
    mu = (1 - 2 / two_over_eta * Lpp.subs(xx, mser + rho)) * (1 - 2 / two_over_eta * Lpp.subs(xx, mser - rho))
    mu2 = sp.expand(sp.series(mu, rho, 0, 3).removeO())
    ev.step(r"Orbit multiplier $\mu = G'(m+\rho)G'(m-\rho)$ on the branch: $\kappa<0$ gives stable orbits past $\eta_c$ "
            r"(supercritical flip), $\kappa>0$ unstable orbits before $\eta_c$ (subcritical).",
            sp.Eq(sp.Symbol(r"\mu"), mu2 + sp.Order(rho ** 4)))
    ev.identity("orbit multiplier mu = 1 + 8 kappa rho^2 / L'' + O(rho^4)", mu2, 1 + 8 * kappa * rho ** 2 / h_,
                key="orbit-multiplier-mu-1-8-kappa-rho-2-l-o-rho-4")


def _model_losses_of_the_numeric_check(ev: Evidence) -> None:
    r""":math:`\kappa` and :math:`\eta_c` of the numeric check's model losses; the symmetric quartic is exact (:math:`m = 0`)."""
    th = sp.Symbol("theta", real=True)
    cq = sp.Symbol("c", real=True)
    for name, L in (("quartic", th ** 2 / 2 + cq * th ** 4 / 4), ("cubic+quartic", th ** 2 / 2 + th ** 3 / 3 + th ** 4 / 4)):
        d2, d3, d4 = (sp.diff(L, th, k).subs(th, 0) for k in (2, 3, 4))
        ev.step(f"Model {name}: $L = {sp.latex(L)}$, $\\eta_c = {sp.latex(2 / d2)}$,", sp.Eq(sp.Symbol(r"\kappa"), kappa_1d(d2, d3, d4)))
    # the symmetric quartic is exact: m = 0 and 2/eta = 1 + c rho^2 with no remainder
    Lp = th + cq * th ** 3
    ev.identity("symmetric quartic: m = 0 solves the sum equation and 2/eta = 1 + c rho^2 exactly",
                (Lp.subs(th, rho) - Lp.subs(th, -rho)) / (2 * rho) + (Lp.subs(th, rho) + Lp.subs(th, -rho)), 1 + cq * rho ** 2,
                key="symmetric-quartic-m-0-solves-the-sum-equation")


def _amplitude_1d(ev: Evidence, kappa_candidate: Callable | None = None):
    r"""Order-by-order solution of the sum/difference equations; returns (the midpoint coefficients
    :math:`\{m_2, m_4\}`, :math:`\kappa`, :math:`\kappa_4`)."""
    x, m = sp.symbols("x m", real=True)
    Lp = h_ * x + a_ * x ** 2 / 2 + b_ * x ** 3 / 6 + c_ * x ** 4 / 24  # L' to O(x^5)
    m2, m4 = sp.symbols("m_2 m_4")
    mser = m2 * rho ** 2 + m4 * rho ** 4
    Ssum = sp.expand(Lp.subs(x, mser + rho) + Lp.subs(x, mser - rho))
    sol = sp.solve([Ssum.coeff(rho, 2), Ssum.coeff(rho, 4)], [m2, m4], dict=True)[0]
    ev.step(r"Sum equation $L'(m+\rho) + L'(m-\rho) = 0$ with $L'(x) = hx + \tfrac a2x^2 + \tfrac b6x^3 + \tfrac c{24}x^4 + O(x^5)$ "
            r"($h, a, b, c = L'', L''', L'''', L^{(5)}$ at the fixed point) solved order by order for the midpoint:",
            sp.Eq(sp.Symbol("m"), (m2 * rho ** 2 + m4 * rho ** 4).subs(sol)))
    D = sp.expand((Lp.subs(x, mser + rho) - Lp.subs(x, mser - rho)) / (2 * rho))
    Dser = sp.expand(sp.series(D.subs(sol), rho, 0, 5).removeO())
    kappa, kappa4 = sp.factor(Dser.coeff(rho, 2)), sp.factor(Dser.coeff(rho, 4))
    ev.step(r"Difference equation $\big(L'(m+\rho) - L'(m-\rho)\big)/(2\rho) = 2/\eta$ with $m = m(\rho)$: a function of the "
            r"half-amplitude $\rho$ alone.", sp.Eq(2 / eta, h_ + kappa * rho ** 2 + kappa4 * rho ** 4 + sp.Order(rho ** 6)))
    ok0 = Dser.coeff(rho, 0) == h_ and Dser.coeff(rho, 1) == 0 and Dser.coeff(rho, 3) == 0
    cand = (kappa_candidate or kappa_1d)()
    ev.identity("half-amplitude coefficient kappa = L''''/6 - L'''^2/(2 L'')", kappa, cand,
                key="half-amplitude-coefficient-kappa-l-6-l-2-2-l")
    ev.check("leading term of the half-amplitude equation is L'' (so eta_c = 2/L'') and it is even in rho", "symbolic",
             r"coefficients of $\rho^0$, $\rho^1$, $\rho^3$ of the expansion", str([Dser.coeff(rho, k) for k in (0, 1, 3)]),
             "[h, 0, 0]", ok0, "exact coefficient comparison",
             key="leading-term-of-the-half-amplitude-equation-is-l", numerical_class="exact", evidence="proof")
    return sol, kappa, kappa4


def _side_evidence(ev: Evidence, side: Callable | None = None) -> bool:
    r"""For each sign of :math:`\kappa`, solve :math:`\rho^2 = (2/\eta - h)/\kappa > 0` for :math:`\eta`; compare with
    ``side(sign)``."""
    hp = sp.Symbol("h", positive=True)
    side = side or (lambda sgn: "below" if sgn > 0 else "above")
    ok = True
    for sgn, kap in ((1, sp.Symbol("kappa", positive=True)), (-1, sp.Symbol("kappa", negative=True))):
        sol = sp.reduce_inequalities([(2 / eta - hp) / kap > 0], eta).canonical  # eta > 0 by assumption
        derived = "below" if sol == (eta < 2 / hp) else "above" if sol == (eta > 2 / hp) else str(sol)
        ev.step(f"Where the orbits exist for $\\kappa {'> 0' if sgn > 0 else '< 0'}$: the learning rates with "
                r"$\rho^2 = (2/\eta - L'')/\kappa > 0$.", sol)
        good = derived == side(sgn)
        ok &= good
        ev.check(f"period-two orbits appear {side(sgn)} eta_c = 2/L'' when kappa {'>' if sgn > 0 else '<'} 0", "symbolic",
                 "`reduce_inequalities((2/eta - h)/kappa > 0, eta > 0)`", str(sol), f"eta {side(sgn)} 2/h", good,
                 "interval endpoints compared exactly",
                 key=f"period-two-orbits-{side(sgn)}-eta-c", numerical_class="exact", evidence="proof")
    return ok


def _lyapunov_schmidt(ev: Evidence, d: int, kappa_formula: Callable | None = None) -> bool:
    r"""Generic cubic+quartic potential in :math:`d` variables, :math:`H = \operatorname{diag}(h_1..h_d)` (eigenbasis, WLOG
    by rotation): solve the sum/difference equations order by order for an orbit bifurcating along :math:`e_1`;
    compare :math:`\kappa_1` with :math:`Q_{1111}/6 - \tfrac12\sum_k T_{11k}^2 / h_k` (or the candidate)."""
    xs = sp.symbols(f"x1:{d + 1}", real=True)
    hs = sp.symbols(f"h1:{d + 1}", positive=True)
    cub = list(itertools.combinations_with_replacement(range(d), 3))
    qua = list(itertools.combinations_with_replacement(range(d), 4))
    cc, qq = sp.symbols(f"t0:{len(cub)}"), sp.symbols(f"q0:{len(qua)}")
    L = sum(h * x ** 2 / 2 for h, x in zip(hs, xs))
    L += sum(c * sp.Mul(*[xs[i] for i in m]) for c, m in zip(cc, cub))
    L += sum(q * sp.Mul(*[xs[i] for i in m]) for q, m in zip(qq, qua))
    grad = [sp.diff(L, x) for x in xs]
    mu = sp.symbols(f"mu1:{d + 1}")
    w = sp.symbols(f"w2:{d + 1}")
    k = sp.Symbol("kappa_1")
    m = [mi * rho ** 2 for mi in mu]
    r = [rho] + [wi * rho ** 3 for wi in w]
    lam = hs[0] + k * rho ** 2  # = 2/eta
    P = {x: mi + ri for x, mi, ri in zip(xs, m, r)}
    Mn = {x: mi - ri for x, mi, ri in zip(xs, m, r)}
    sums = [sp.expand(gi.xreplace(P) + gi.xreplace(Mn)) for gi in grad]
    diffs = [sp.expand(gi.xreplace(P) - gi.xreplace(Mn) - 2 * lam * ri) for gi, ri in zip(grad, r)]
    low = [e.coeff(rho, j) for e in sums for j in (0, 1)] + [e.coeff(rho, j) for e in diffs for j in (0, 1, 2)]
    eqs = [e.coeff(rho, 2) for e in sums] + [e.coeff(rho, 3) for e in diffs]
    sol = sp.solve(eqs, list(mu) + [k] + list(w), dict=True)
    if len(sol) != 1:
        raise Inconclusive(f"Lyapunov-Schmidt system in d={d} has {len(sol)} solutions")
    sol = sol[0]
    origin = {x: 0 for x in xs}
    T = lambda i, j, l: sp.diff(L, xs[i], xs[j], xs[l]).subs(origin)
    Q1111 = sp.diff(L, xs[0], 4).subs(origin)
    formula = (kappa_formula or (lambda T, Q, hs: Q / 6 - sp.Rational(1, 2) * sum(T(0, 0, l) ** 2 / hs[l] for l in range(d))))(T, Q1111, hs)
    ok = all(sp.expand(e) == 0 for e in low)
    res = full_simplify(sol[k] - formula)
    ok &= res == 0
    ev.check(f"d = {d}, generic cubic + quartic: kappa_1 = Q_1111/6 - 1/2 sum_k T_11k^2/h_k, orbit along e_1", "symbolic",
             r"lower orders vanish for $r = \rho e_1 + O(\rho^3)$, $m = O(\rho^2)$; residual of $\kappa_1$", str(res), "exact", ok,
             "exact order-by-order solution of a polynomial system",
             key=f"d-{d}-generic-cubic-quartic-kappa-1-q-1111-6-1-2-sum-k-t", numerical_class="exact", evidence="proof")
    if d == 2:
        ev.step(r"The transverse correction $r_2 = w_2\rho^3$ needs $h_k \ne h_1$ (non-resonance): in $d=2$ the "
                r"denominator of $w_2$ is", sp.factor(sp.denom(sp.together(sol[w[0]]))))
    return ok


def _directions(ev: Evidence, d: int = 3) -> bool:
    r"""Order :math:`\rho` of the difference equation: :math:`He = (2/\eta)|_{\rho=0}\, e`, :math:`\|e\| = 1`: :math:`e` is
    an eigenvector."""
    hs = sp.symbols(f"h1:{d + 1}", positive=True)
    es = sp.symbols(f"e1:{d + 1}", real=True)
    lam0 = sp.Symbol("lambda_0", real=True)
    eqs = [(h - lam0) * e for h, e in zip(hs, es)] + [sum(e ** 2 for e in es) - 1]
    sols = sp.solve(eqs, list(es) + [lam0], dict=True)
    # with h_i distinct: the solutions are e = +-e_i, lambda_0 = h_i
    generic = {hh: v for hh, v in zip(hs, (1, 3, 7))}  # distinct values to read off the solution set
    got = sorted({(tuple(abs(sl[e]) for e in es), sl[lam0].subs(generic)) for sl in sols})
    want = sorted({(tuple(int(i == j) for j in range(d)), generic[hs[i]]) for i in range(d)})
    ok = got == want
    ev.step(r"Which directions: at order $\rho$ the difference equation reads $H e = \lambda_0 e$, $\|e\|=1$, "
            r"$\lambda_0 = \lim 2/\eta$: the half-amplitude direction must be an eigenvector $e_i$ and $\eta_c = 2/h_i$.",
            r"(H - \lambda_0 I)\,e = 0,\ \|e\| = 1\ \Rightarrow\ e = \pm e_i,\ \lambda_0 = h_i")
    ev.check(f"order-rho equation: half-amplitude directions are exactly the eigenvectors (d = {d}, distinct h_i)", "symbolic",
             r"`solve((H - lambda_0) e = 0, |e| = 1)` against $\{(\pm e_i, h_i)\}$", str(got), str(want), ok,
             "finite solution sets compared",
             key=f"order-rho-equation-half-amplitude-{d}-distinct-h-i", numerical_class="exact", evidence="proof")
    return ok
