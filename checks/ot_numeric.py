r"""Numeric checks of Section 9 / Appendix D of 004: entropic OT (20) against POT, the conjugate
(33)-(34), Prop 1 (37)-(38), the OT-based attention (21)-(22) and the grouped cost.

Main results: :func:`sinkhorn_vs_pot` (FD-20), :func:`conjugate_numeric` (FD-33),
:func:`true_preference_numeric` (FD-37), :func:`exact_vs_22` (FD-22), :func:`grouped_cost` (FD-G); each is
followed by the proof steps it calls.

Instances: templates of A drawn :math:`\mathcal N(0, I/d)` times a scale, preference u Dirichlet (with zeros
where said), cost M = squared Euclidean distances between templates (symmetric, non-negative, zero diagonal and
strictly smallest in each column: the assumptions of footnote 9), unless a check needs another.
Randomness comes from attnverify.context.rng only. Tolerances are derived in each check's `why`.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize

from attnverify import context
from attnverify import ot_attention as ota
from attnverify.evidence import Evidence, Figure, Inconclusive, Table
from attnverify.checks._common import require

EPS = np.finfo(float).eps
SINK_TOL = 1e-13  # Sinkhorn stopping rule: l1 marginal error


# -- instances and small helpers -------------------------------------------------------------------
def _sqdist(T):
    return ((T[:, None, :] - T[None, :, :]) ** 2).sum(-1)


def _instance(rng, N, d, zeros=0, scale=1.0):
    T = scale * rng.normal(size=(N, d)) / np.sqrt(d)
    u = rng.dirichlet(np.ones(N))
    if zeros:
        u[rng.choice(N, zeros, replace=False)] = 0.0
        u /= u.sum()
    return T, u, _sqdist(T)


def _nonsymmetric(rng, M, strength=0.6):
    """Add an antisymmetric-looking perturbation that keeps the diagonal 0 and every column's diagonal minimal."""
    N = len(M)
    E = strength * rng.uniform(0, 1, size=(N, N)) * M.mean()
    E[np.diag_indices(N)] = 0.0
    return M + np.triu(E)


def _pot():
    try:
        import ot  # noqa: F401
    except ImportError as e:  # pragma: no cover
        raise Inconclusive("POT not installed: pip install pot") from e
    return ot


def _pot_plan(p, u, M, gamma, stop=1e-12, iters=400_000):
    r"""POT's log-domain Sinkhorn on the support of u; returns the full plan, its value (20) and
    :math:`\langle M, X\rangle` as returned by ot.sinkhorn2 (warm-started from the potentials of the first call, so
    it only re-evaluates that plan)."""
    ot = _pot()
    c = u > 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # POT's exp overflow warning in its error check is harmless in log domain
        P, log = ot.sinkhorn(p, u[c], M[:, c], gamma, method="sinkhorn_log", numItermax=iters, stopThr=stop, log=True)
        lin2 = float(ot.sinkhorn2(p, u[c], M[:, c], gamma, method="sinkhorn_log", numItermax=iters, stopThr=stop,
                                  warmstart=(log["log_u"], log["log_v"])))
    X = np.zeros_like(M)
    X[:, c] = P
    s = X > 0
    W = float(np.sum(M[s] * X[s]) + gamma * np.sum(X[s] * np.log(X[s])))
    return X, W, lin2


def _marg_errs(X, p, u):
    return np.concatenate([X.sum(1) - p, X.sum(0) - u])


def _gap_eigen(X, p, u):
    r"""Smallest non-zero eigenvalue of :math:`G = \begin{pmatrix}\operatorname{diag} p & X\\ X^\top &
    \operatorname{diag} u\end{pmatrix}` (supports only): the conditioning of the marginal map in the potentials;
    first-order sensitivity :math:`\|dX\|_1 \le 2 \|d\,\mathrm{marg}\|_2 / \lambda_2(G)`."""
    r, c = p > 0, u > 0
    Xs = X[np.ix_(r, c)]
    G = np.block([[np.diag(p[r]), Xs], [Xs.T, np.diag(u[c])]])
    ev = np.linalg.eigvalsh(G)
    return float(ev[ev > 1e-14 * ev.max()][0])


def _osc(v):
    v = v[np.isfinite(v)]
    return float(v.max() - v.min())


def _slope(x, y):
    return float(np.polyfit(np.log(x), np.log(y), 1)[0])


# =====================================================================================================
# FD-20: log-domain Sinkhorn against POT
# =====================================================================================================
def sinkhorn_vs_pot() -> Evidence:
    r"""FD-20: :math:`W_\gamma(p, u; M)` of (20) by our log-domain Sinkhorn against POT (ot.sinkhorn /
    ot.sinkhorn2, method sinkhorn_log) on random instances; plain POT at a :math:`\gamma` where
    :math:`e^{-M/\gamma}` underflows; the limit :math:`\gamma \to 0` against the exact OT cost (ot.emd2)."""
    ot = _pot()
    ev = Evidence()
    t0 = time.perf_counter()
    log_domain_sinkhorn_matches_pot(ev)
    p, u, M0 = _small_gamma_instance()
    plain_sinkhorn_underflows_log_domain_does_not(ev, ot, p, u, M0)
    entropic_cost_brackets_exact_ot_cost(ev, ot, p, u, M0)
    ev.notes.append(f"FD-20 numeric run time {time.perf_counter() - t0:.1f} s.")
    return ev


def log_domain_sinkhorn_matches_pot(ev: Evidence) -> None:
    """Value (20), linear part and plan of our Sinkhorn against POT's sinkhorn_log on 12 random instances."""
    rng = context.rng("fd20-sinkhorn")
    rows, worst_W, worst_lin, worst_X = [], 0.0, 0.0, 0.0
    for gamma in (1.0, 0.3, 0.1, 0.03):
        for rep in range(3):
            N = 6
            T, u, M = _instance(rng, N, 2, zeros=1 if rep == 2 else 0)
            if rep == 1:  # (20) holds for any cost: one non-symmetric M per gamma (a transposed M would differ)
                M = M + 0.5 * np.triu(M, 1)
            p = rng.dirichlet(np.ones(N))
            r = require(ota.sinkhorn_log(p, u, M, gamma, tol=SINK_TOL))
            X, W_pot, lin2 = _pot_plan(p, u, M, gamma)
            e_me, e_pot = _marg_errs(r.plan, p, u), _marg_errs(X, p, u)
            lam2 = _gap_eigen(r.plan, p, u)
            dmarg = np.linalg.norm(e_me) + np.linalg.norm(e_pot)
            rnd = 64 * EPS * N * N * (1 + np.abs(M).max())
            tol_X = 4 * dmarg / lam2 + rnd  # first-order plan sensitivity, x2 for the second-order remainder
            tol_W = (_osc(r.f) * np.abs(e_me[:N]).sum() + _osc(r.g) * np.abs(e_me[N:]).sum()
                     + _osc(r.f) * np.abs(e_pot[:N]).sum() + _osc(r.g) * np.abs(e_pot[N:]).sum()) + rnd
            tol_lin = np.abs(M).max() * tol_X + rnd
            dX = float(np.abs(r.plan - X).sum())
            dW, dlin = abs(r.value - W_pot), abs(r.linear - lin2)
            worst_X, worst_W, worst_lin = max(worst_X, dX / tol_X), max(worst_W, dW / tol_W), max(worst_lin, dlin / tol_lin)
            rows.append([gamma, int((u > 0).sum()), r.iterations, r.value, W_pot, dW, tol_W, r.linear, lin2, dX, tol_X])
    ev.at_most("fd-20-value-w-gamma-20-ours-pot-s-plan-evaluated",
               "FD-20 value W_gamma (20): ours = POT's plan evaluated in (20)", worst_W, 1.0,
               r"$\mathrm{tol}_i$ = sum over both solvers of $\operatorname{osc}(f)\,\|\text{row error}\|_1 + "
               r"\operatorname{osc}(g)\,\|\text{column error}\|_1$ ($W$ is stationary in $X$: a marginal error $e$ moves it "
               r"by at most $\langle \text{potential} - \text{const}, e\rangle$) $+ 64\varepsilon N^2 (1 + \max M)$ round-off",
               method="pot",
               metric=r"max over 12 instances of $|W_{\mathrm{ours}} - (\langle M,X_{\mathrm{POT}}\rangle + \gamma \sum "
                      r"X_{\mathrm{POT}} \log X_{\mathrm{POT}})| / \mathrm{tol}_i$",
               numerical_class="iterative", evidence="float")
    ev.at_most("fd-20-linear-part-m-x-ours-ot-sinkhorn2-which",
               "FD-20 linear part: <M, X_ours> = ot.sinkhorn2 (which omits the entropy)", worst_lin, 1.0,
               r"$\mathrm{tol}_i = \max|M| \cdot$ (plan tolerance below): the linear term is not stationary, so it moves "
               "with the plan",
               method="pot", metric=r"max over instances of $|\langle M,X_{\mathrm{ours}}\rangle - \mathrm{sinkhorn2}| / "
                                    r"\mathrm{tol}_i$",
               numerical_class="iterative", evidence="float")
    ev.at_most("fd-20-plans-agree-entrywise", "FD-20 plans agree entrywise", worst_X, 1.0,
               r"$\mathrm{tol}_i = 4 (\|e_{\mathrm{ours}}\|_2 + \|e_{\mathrm{POT}}\|_2) / \lambda_2(G)$ ($e$ the marginal "
               r"errors), $G = \begin{pmatrix}\operatorname{diag} p & X\\ X^\top & \operatorname{diag} u\end{pmatrix}$: "
               r"$dX_{ij} = X_{ij} (df_i + dg_j)/\gamma$ and $G\,(df, dg)/\gamma = d\,\mathrm{marg}$ to first order, "
               r"$\times 2$ for the remainder",
               method="pot", metric=r"max over instances of $\|X_{\mathrm{ours}} - X_{\mathrm{POT}}\|_1 / \mathrm{tol}_i$",
               numerical_class="iterative", evidence="float")
    ev.tables.append(Table("FD-20: our log-domain Sinkhorn vs POT (sinkhorn_log), N = 6",
                           ["gamma", "|supp u|", "iterations", "W_ours (20)", "W_POT (20)", "|dW|", "tol", "<M,X> ours",
                            "ot.sinkhorn2", "||dX||_1", "tol_X"], rows))
    ev.notes.append(r"Convention: (20) uses $H(X) = -\sum X \log X$ with no '+1' term. POT minimises $\langle M,X\rangle "
                    r"+ \mathrm{reg} \sum X \log X$, the same objective, so the plans coincide and (20) $= \langle M,X^*\rangle "
                    r"+ \gamma \sum X^* \log X^*$; ot.sinkhorn2 returns only $\langle M,X^*\rangle$ (its docstring: 'without "
                    r"the entropic contribution'), which differs from (20) by $\gamma H(X^*)$. The '+1' convention "
                    r"$-\gamma \sum X (\log X - 1)$ would give the same plan and $W - \gamma$.")


def _small_gamma_instance():
    r"""(p, u, M0) of FD-20's small-:math:`\gamma` and :math:`\gamma \to 0` checks, from their own stream: Sinkhorn's
    iteration count at :math:`\gamma = 10^{-3}` varies from :math:`\sim 10^3` to :math:`\sim 10^4` between draws
    (POT's sinkhorn_log costs ~0.1 ms per iteration); this draw needs :math:`\sim 3\cdot 10^3`."""
    rs = context.rng("fd20-small-gamma-2")
    T, u, M0 = _instance(rs, 6, 2)
    p = rs.dirichlet(np.ones(6))
    return p, u, M0


def plain_sinkhorn_underflows_log_domain_does_not(ev: Evidence, ot, p, u, M0) -> None:
    r"""At :math:`\gamma = 10^{-3}` with :math:`M \ge 1` plain POT Sinkhorn fails (:math:`e^{-M/\gamma}` underflows);
    ours = POT sinkhorn_log."""
    M = M0 + 1.0  # every entry >= 1: exp(-M/gamma) <= e^-1000 underflows to 0 at gamma = 1e-3; the plan is unchanged
    gamma = 1e-3
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        with np.errstate(all="ignore"):
            Pp = ot.sinkhorn(p, u, M, gamma, method="sinkhorn", numItermax=100_000, stopThr=1e-13)
    msgs = sorted({str(x.message).split(".")[0][:60] for x in w})
    plain_err = float(np.abs(np.nan_to_num(Pp, nan=0.0).sum(1) - p).sum()) if np.all(np.isfinite(Pp)) else np.inf
    r = ota.sinkhorn_log(p, u, M, gamma, tol=SINK_TOL)
    X, W_pot, lin2 = _pot_plan(p, u, M, gamma)
    tol_W = _osc(r.f) * (np.abs(_marg_errs(r.plan, p, u)).sum() + np.abs(_marg_errs(X, p, u)).sum()) + 64 * EPS * 36 * 3
    ev.at_least("fd-20-small-gamma-plain-pot-sinkhorn-fails", "FD-20 small gamma: plain POT Sinkhorn fails",
                plain_err, 0.1,
                r"$e^{-M/\gamma} \le e^{-1000}$ underflows to 0 in float64 (smallest normal $\sim 10^{-308}$), so the "
                f"scaling algorithm divides by 0; POT warned: {msgs}",
                method="pot", metric=r"$\|X_{\mathrm{plain}} \mathbf 1 - p\|_1$ ($\infty$ if NaN) for $\gamma = 10^{-3}$, "
                                     r"$M \ge 1$",
                strict=True, shown="> 0.1", numerical_class="iterative", evidence="float")
    ev.check("FD-20 small gamma: log-domain ours = POT sinkhorn_log", "pot",
             r"$|W_{\mathrm{ours}} - W_{\mathrm{POT}}|$ at $\gamma = 10^{-3}$",
             abs(r.value - W_pot), tol_W, abs(r.value - W_pot) <= tol_W and r.converged,
             "same bound as above (potential oscillation x marginal errors, plus round-off)",
             key="fd-20-small-gamma-log-domain-ours-pot-sinkhorn", numerical_class="iterative", evidence="float")
    ev.notes.append(r"$\gamma = 10^{-3}$, $M \ge 1$: plain POT returned a plan with row-marginal error "
                    f"{plain_err:.3g} and warnings "
                    f"{msgs}; our log-domain Sinkhorn converged in {r.iterations} iterations to W = {r.value:.12f} "
                    f"(POT sinkhorn_log: {W_pot:.12f}).")


def entropic_cost_brackets_exact_ot_cost(ev: Evidence, ot, p, u, M0) -> None:
    r""":math:`\gamma \to 0`: :math:`W_0 - \gamma\log(N^2) \le W_\gamma \le W_0`, :math:`W_0` the exact OT cost
    (ot.emd2)."""
    W0 = float(ot.emd2(p, u, M0))
    viol = []
    for g_ in (1e-1, 1e-2, 1e-3):
        Wg = require(ota.sinkhorn_log(p, u, M0, g_, tol=SINK_TOL)).value
        viol.append(max(Wg - W0, (W0 - g_ * np.log(36)) - Wg))
        ev.notes.append(rf"$\gamma = {g_:g}$: $W_\gamma = {Wg:.10f}$, exact OT $W_0$ (ot.emd2) $= {W0:.10f}$, "
                        rf"bound $\gamma \log(N^2) = {g_ * np.log(36):.2e}$")
    ev.at_most("fd-20-gamma-0-w-0-gamma-log-n-2-w-gamma-w-0",
               "FD-20 gamma -> 0: W_0 - gamma log(N^2) <= W_gamma <= W_0", max(viol), 1e-9,
               r"$0 \le H(X) \le \log(N^2)$ on $U(p,u)$ gives the bound exactly (derivation FD-20); $10^{-9}$ covers the "
               r"Sinkhorn marginal error $10^{-13}$ times the potentials and the LP solver's $10^{-9}$-level accuracy",
               method="pot",
               metric=r"max over $\gamma \in \{10^{-1}, 10^{-2}, 10^{-3}\}$ of the violation of the two-sided bound",
               numerical_class="iterative", evidence="float")


# =====================================================================================================
# FD-33: the conjugate by direct maximisation
# =====================================================================================================
def conjugate_numeric() -> Evidence:
    r"""FD-33: :math:`W^*(g) = \max_p \langle g,p\rangle - W_\gamma(p,u;M)` computed by L-BFGS over the simplex with
    Sinkhorn inside, compared with the corrected (33) and printed (33); the maximiser with (34) index by index; the
    gradient by central finite differences; Fenchel-Young with W from POT."""
    ev = Evidence()
    rows, worst = [], {"val": 0.0, "arg": 0.0, "fd": 0.0, "fy": 0.0, "34": 0.0}
    for N, gamma, u, M, sym, g in conjugate_cases():
        ratios, row = _conjugate_case(N, gamma, u, M, sym, g)
        for k, r in ratios.items():
            worst[k] = max(worst[k], r)
        rows.append(row)
    maximum_and_maximiser_are_corrected_33_34(ev, worst)
    gradient_is_34_and_fenchel_young_holds(ev, worst)
    ev.tables.append(Table("FD-33: conjugate by direct maximisation against (33)/(34), corrected and as printed",
                           ["N", "gamma", "M symmetric", "max_p <g,p> - W", "(33) corrected", "(33) as printed",
                            "||argmax - (34) corr.||_inf", "||argmax - (34) printed||_inf", "proj. grad r", "|FY gap|"], rows))
    ev.notes.append("(33) as printed is affine in p (p(t) sits outside the inner sum; see errata) and misses the maximum by "
                    "O(1); (34) as printed is right for symmetric M and wrong for the non-symmetric instance (last row), "
                    "where the column-normalised form matches the maximiser.")
    return ev


def _conjugate_case(N, gamma, u, M, sym, g):
    """One FD-33 instance: the ratios of each comparison to its tolerance (keys of conjugate_numeric's worst) and
    the table row."""
    warm = {}

    def vg(p, g=g, u=u, M=M, gamma=gamma, warm=warm):
        r = ota.sinkhorn_log(p, u, M, gamma, tol=SINK_TOL, init=warm.get("f"))
        warm["f"] = r.f  # warm start: consecutive p differ little, so Sinkhorn needs few iterations
        return g @ p - r.value, g - r.f

    p_hat, rr = _optimise_simplex(vg, N, sign=-1.0)
    val = vg(p_hat)[0]
    Wc, W33 = ota.ot_conjugate(g, u, M, gamma), _printed_33(g, u, M, gamma)
    grad, g34 = ota.ot_conjugate_grad(g, u, M, gamma), _printed_34(g, u, M, gamma)
    sk = require(ota.sinkhorn_log(p_hat, u, M, gamma, tol=SINK_TOL))
    sink_err = _osc(sk.f) * np.abs(_marg_errs(sk.plan, p_hat, u)).sum()
    tol_val = rr**2 / (2 * gamma) + sink_err + 64 * EPS * (1 + abs(Wc))
    tol_arg = rr / gamma + 1e-9
    ratios = {"val": abs(val - Wc) / tol_val, "arg": np.abs(p_hat - grad).max() / tol_arg}
    if sym:
        ratios["34"] = np.abs(g34 - grad).max() / (64 * EPS)
    # central finite differences of the closed form, h = 1e-4 gamma
    h = 1e-4 * gamma
    fd = np.array([(ota.ot_conjugate(g + h * e, u, M, gamma) - ota.ot_conjugate(g - h * e, u, M, gamma)) / (2 * h)
                   for e in np.eye(N)])
    tol_fd = 4 * (h**2 * 0.1 / (6 * gamma**2) + EPS * (1 + abs(Wc)) / h)
    ratios["fd"] = np.abs(fd - grad).max() / tol_fd
    # Fenchel-Young: W(grad W*(g)) + W*(g) = <g, grad W*(g)>, W by POT
    X, Wp, _ = _pot_plan(grad, u, M, gamma)
    r2 = require(ota.sinkhorn_log(grad, u, M, gamma, tol=SINK_TOL))
    fy = abs(Wp + Wc - g @ grad)
    tol_fy = _osc(r2.f) * np.abs(_marg_errs(X, grad, u)).sum() + 64 * EPS * (1 + abs(Wp) + abs(Wc))
    ratios["fy"] = fy / tol_fy
    row = [N, gamma, "yes" if sym else "no", val, Wc, W33, float(np.abs(p_hat - grad).max()),
           float(np.abs(p_hat - g34).max()), rr, fy]
    return ratios, row


def maximum_and_maximiser_are_corrected_33_34(ev: Evidence, worst: dict) -> None:
    """The numeric maximum is the corrected (33), its maximiser the corrected (34); (34) as printed for symmetric M."""
    ev.at_most("fd-33-w-g-by-direct-maximisation-33-corrected",
               "FD-33 W*(g) by direct maximisation = (33) corrected", worst["val"], 1.0,
               r"$\mathrm{tol}_i = r^2/(2\gamma) + \operatorname{osc}(f)\,\|e\|_1$ + round-off ($e$ the marginal error): "
               r"$\langle g,p\rangle - W$ is $\gamma$-strongly concave ($\nabla W^*$ is $1/\gamma$-Lipschitz), so a "
               r"projected gradient $r$ at the returned $p$ bounds the value gap by $r^2/(2\gamma)$. The '+1' entropy "
               r"convention would put the maximum $\gamma$ away from (33): it is ruled out",
               method="scipy",
               metric=r"max over 4 instances of $|\max_p(\langle g,p\rangle - W_\gamma(p)) - \gamma(H(u) + \sum_j u_j "
                      r"\operatorname{LSE}_i((g_i - M_{ij})/\gamma))| / \mathrm{tol}_i$",
               numerical_class="iterative", evidence="float")
    ev.at_most("fd-33-argmax-grad-w-34-corrected-index-by-index",
               "FD-33 argmax = grad W* (34, corrected) index by index", worst["arg"], 1.0,
               r"$\mathrm{tol}_i = r/\gamma + 10^{-9}$: strong concavity turns the measured projected gradient $r$ into a "
               r"distance; $10^{-9}$ covers the Sinkhorn potentials (marginals $10^{-13}$) entering $r$",
               method="scipy", metric=r"max over instances of $\|\hat p - \nabla W^*(g)\|_\infty / \mathrm{tol}_i$",
               numerical_class="iterative", evidence="float")
    ev.at_most("fd-33-34-as-printed-grad-w-symmetric-m", "FD-33 (34) as printed = grad W*, symmetric M",
               worst["34"], 1.0,
               r"for symmetric $M$ the two formulas are the same numbers summed in another order: round-off only",
               method="numpy",
               metric=r"max over the symmetric instances of $\|(34)_{\mathrm{printed}} - \nabla W^*\|_\infty / "
                      r"(64\varepsilon)$",
               numerical_class="roundoff", evidence="float")


def gradient_is_34_and_fenchel_young_holds(ev: Evidence, worst: dict) -> None:
    r"""Central differences of :math:`W^*` are (34); :math:`W(\nabla W^*(g)) + W^*(g) = \langle g, \nabla W^*(g)\rangle`
    with W from POT."""
    ev.at_most("fd-33-central-finite-differences-of-w-34", "FD-33 central finite differences of W* = (34)",
               worst["fd"], 1.0,
               r"$\mathrm{tol}_i = 4 (h^2 \max|W'''|/6 + \varepsilon |W^*|/h)$, $h = 10^{-4}\gamma$, $|W'''| \le "
               r"0.1/\gamma^2$ along a coordinate (third cumulant of a Bernoulli $\le 1/(6\sqrt 3)$, times $1/\gamma^2$)",
               method="numpy", metric=r"max over instances of $\|\mathrm{FD}(W^*) - \nabla W^*\|_\infty / \mathrm{tol}_i$",
               numerical_class="roundoff", evidence="float")
    ev.at_most("fd-33-fenchel-young-equality-at-p-grad-w-g-w-by",
               "FD-33 Fenchel-Young equality at p = grad W*(g), W by POT", worst["fy"], 1.0,
               r"equality holds exactly at the maximiser; $\mathrm{tol}_i = \operatorname{osc}(f)\,\|e_{\mathrm{POT}}\|_1$ "
               "+ round-off (POT's marginal error)",
               method="pot", metric=r"max over instances of $|W_{\mathrm{POT}}(\nabla W^*) + W^*(g) - \langle g, \nabla "
                                    r"W^*\rangle| / \mathrm{tol}_i$",
               numerical_class="iterative", evidence="float")


def conjugate_cases():
    """The four instances (N, gamma, u, M, symmetric, g) of FD-33 (also certified by checks.certified)."""
    rng = context.rng("fd33-conjugate")
    cases = []
    for N, gamma, zeros, sym in ((5, 0.5, 0, True), (5, 0.2, 1, True), (6, 1.0, 0, True), (4, 0.5, 0, False)):
        T, u, M = _instance(rng, N, 2, zeros=zeros, scale=0.6)  # costs <~ 4: Sinkhorn needs <~ 10^3 iterations
        if not sym:
            M = _nonsymmetric(rng, M)
        cases.append((N, gamma, u, M, sym, rng.normal(size=N)))
    return cases


def _softmax(th):
    e = np.exp(th - th.max())
    return e / e.sum()


def _optimise_simplex(value_grad, N, sign):
    r"""Minimise :math:`\mathrm{sign}\cdot F(p)` over the open simplex, :math:`p = \operatorname{softmax}(\theta)`;
    value_grad(p) -> (F, dF/dp). Returns :math:`\hat p` and the projected gradient norm
    :math:`r = \|P_{\mathrm{tangent}}\, \partial F/\partial p\|_2` there."""

    def fun(th):
        p = _softmax(th)
        F, gp = value_grad(p)
        gp = sign * gp
        return sign * F, p * (gp - p @ gp)

    res = minimize(fun, np.zeros(N), jac=True, method="L-BFGS-B", options={"gtol": 1e-11, "ftol": 1e-16, "maxiter": 500})
    p = _softmax(res.x)
    _, gp = value_grad(p)
    return p, float(np.linalg.norm(gp - gp.mean()))


def _printed_33(g, u, M, gamma):
    r"""(33) as printed: :math:`\gamma \big(H(u) + \sum_t u(t) \log \sum_{t'} \exp((p(t) - M(t,t'))/\gamma)\big)`."""
    c = u > 0
    A = (g[c][:, None] - M[c, :]) / gamma
    return float(gamma * (-np.sum(u[c] * np.log(u[c])) + u[c] @ ota.lse(A, axis=1)))


def _printed_34(g, u, M, gamma):
    r"""(34) as printed: :math:`\sum_{t'} u(t')\, e^{(p(t) - M(t,t'))/\gamma} / \sum_{t''} e^{(p(t'') -
    M(t',t''))/\gamma}`."""
    c = u > 0
    logden = ota.lse((g[None, :] - M[c, :]) / gamma, axis=1)  # one per t' (row t' of M)
    return np.exp(ota.lse((g[:, None] - M[:, c]) / gamma - logden[None, :] + np.log(u[c])[None, :], axis=1))


# =====================================================================================================
# FD-37: the minimiser of W_gamma(., u; M) and gamma -> 0
# =====================================================================================================
def true_preference_numeric() -> Evidence:
    r"""FD-37: :math:`\arg\min_p W_\gamma(p,u;M)` by L-BFGS with POT's Sinkhorn inside, against (37)-(38);
    stationarity of (37) through our Sinkhorn's potential; :math:`\gamma \to 0` with and without footnote 9's
    assumptions."""
    ev = Evidence()
    rng = context.rng("fd37-preference")
    worst = {"argmin": 0.0, "mean": 0.0, "stat": 0.0, "sym": 0.0}
    rows = []
    ns_gap = None
    for N, gamma, zeros, sym in ((5, 0.3, 1, True), (5, 1.0, 0, True), (6, 0.5, 2, True), (5, 0.5, 0, False)):
        ratios, gap, row = _preference_case(rng, N, gamma, zeros, sym)
        for k, r in ratios.items():
            worst[k] = max(worst[k], r)
        ns_gap = gap if gap is not None else ns_gap
        rows.append(row)
    minimiser_is_column_normalised_37(ev, worst)
    if ns_gap is not None:
        printed_37_needs_symmetric_cost(ev, ns_gap)
    ev.tables.append(Table(r"FD-37: $\arg\min_p W_\gamma(p,u;M)$ (L-BFGS over the simplex, POT inside) against (37)",
                           ["N", "gamma", "M symmetric", "||p_hat - u~||_inf", "||p_hat - (37) printed||_inf",
                            "sum (37) printed", "||T^T p_hat - (38)||", "osc f(u~)", "proj. grad r"], rows))
    true_preference_limit_as_gamma_vanishes(ev, rng)
    return ev


def _preference_case(rng, N, gamma, zeros, sym):
    """One FD-37 instance: ratios to the tolerances (keys of true_preference_numeric's worst), the gap of the printed
    (37) for a non-symmetric M (else None), and the table row."""
    T, u, M = _instance(rng, N, 2, zeros=zeros, scale=0.6)
    if not sym:
        M = _nonsymmetric(rng, M)
    p_hat, rr = _optimise_simplex(_pot_value_grad(u, M, gamma), N, sign=1.0)
    ut, u37 = ota.true_preference(u, M, gamma), _printed_37(u, M, gamma)
    tol = rr / gamma + 1e-9
    ratios = {"argmin": np.abs(p_hat - ut).max() / tol}
    mean_hat, mean38 = T.T @ p_hat, _mean_38(T, u, M, gamma)
    ratios["mean"] = np.linalg.norm(mean_hat - mean38) / (np.linalg.norm(T, 2) * np.sqrt(N) * tol)
    r = require(ota.sinkhorn_log(ut, u, M, gamma, tol=SINK_TOL))
    lam2 = _gap_eigen(r.plan, ut, u)
    tol_stat = 4 * gamma * np.linalg.norm(_marg_errs(r.plan, ut, u)) / lam2 + 64 * EPS * (1 + np.abs(M).max())
    ratios["stat"] = _osc(r.f) / tol_stat
    gap = None
    if sym:
        ratios["sym"] = np.abs(u37 - ut).max() / (64 * EPS)
    else:
        gap = float(np.abs(u37 - p_hat).max()), float(u37.sum()), tol
    row = [N, gamma, "yes" if sym else "no", float(np.abs(p_hat - ut).max()), float(np.abs(p_hat - u37).max()),
           float(u37.sum()), float(np.linalg.norm(mean_hat - mean38)), _osc(r.f), rr]
    return ratios, gap, row


def minimiser_is_column_normalised_37(ev: Evidence, worst: dict) -> None:
    r"""The numeric argmin is :math:`\tilde u` (column-normalised (37)), stationary through Sinkhorn's potential;
    (38) its mean."""
    ev.at_most("fd-37-numeric-argmin-of-w-gamma-u-m-u-column",
               "FD-37 numeric argmin of W_gamma(., u; M) = u~ (column-normalised (37))", worst["argmin"], 1.0,
               r"$\mathrm{tol}_i = r/\gamma + 10^{-9}$: $W_\gamma(\cdot, u)$ is $\gamma$-strongly convex on the simplex (its "
               r"conjugate's gradient is $1/\gamma$-Lipschitz), $r$ = measured projected gradient (POT potentials) at "
               r"$\hat p$",
               method="pot", metric=r"max over 4 instances of $\|\hat p - \tilde u\|_\infty / \mathrm{tol}_i$",
               numerical_class="iterative", evidence="float")
    ev.at_most("fd-37-37-as-printed-u-for-symmetric-m", "FD-37 (37) as printed = u~ for symmetric M", worst["sym"],
               1.0, r"identical numbers summed in another order for symmetric $M$: round-off only",
               method="numpy", metric=r"max over symmetric instances $\|\tilde u_{(37)} - \tilde u\|_\infty / (64\varepsilon)$",
               numerical_class="roundoff", evidence="float")
    ev.at_most("fd-37-37-is-stationary-the-sinkhorn-potential-f",
               "FD-37 (37) is stationary: the Sinkhorn potential f at p = u~ is constant", worst["stat"], 1.0,
               r"$\mathrm{tol}_i = 4\gamma \|e\|_2 / \lambda_2(G)$ + round-off ($e$ the marginal error): the potentials are "
               r"fixed by the marginals up to that first-order error ($\times 2$ for the remainder)",
               method="sinkhorn", metric=r"max over instances of $\operatorname{osc}(f(\tilde u)) / \mathrm{tol}_i$ "
                                         r"($\nabla_p W = f + \text{const}$)",
               numerical_class="iterative", evidence="float")
    ev.at_most("fd-37-38-mean-of-the-numeric-minimiser", "FD-37 (38) = mean of the numeric minimiser",
               worst["mean"], 1.0,
               r"the mean is linear in $p$: $\|T^\top dp\| \le \|T\|_2 \|dp\|_2 \le \|T\|_2 \sqrt N \|dp\|_\infty$",
               method="pot", metric=r"max over instances of $\|T^\top \hat p - (38)\| / (\|T\|_2 \sqrt N\, \mathrm{tol}_i)$",
               numerical_class="iterative", evidence="float")


def printed_37_needs_symmetric_cost(ev: Evidence, ns_gap) -> None:
    """On a non-symmetric M with footnote 9's column condition the printed (37) misses the minimiser."""
    ev.at_least("fd-37-37-as-printed-needs-symmetric-m-non",
                "FD-37 (37) as printed needs symmetric M (non-symmetric instance)", ns_gap[0],
                100 * ns_gap[2],
                f"records the assumption; there the printed (37) sums to {ns_gap[1]:.6f}, not 1",
                method="pot",
                metric=r"$\|\tilde u_{(37)} - \hat p\|_\infty$ on a non-symmetric $M$ with footnote 9's column condition",
                strict=True, shown=f"> 100 tol = {100 * ns_gap[2]:.1e}",
                numerical_class="iterative", evidence="float")


def true_preference_limit_as_gamma_vanishes(ev: Evidence, rng) -> None:
    r""":math:`\gamma \to 0`: :math:`\tilde u \to u` at rate :math:`e^{-\Delta/\gamma}` under footnote 9; no limit with
    ties; the printed (37) loses the limit for a non-symmetric M that keeps the column condition."""
    N = 5
    T, u, M = _instance(rng, N, 2)
    c = u > 0
    gaps = M[:, c] - np.diag(M)[c][None, :]
    gaps[np.asarray(c).nonzero()[0], np.arange(c.sum())] = np.inf
    Delta = float(gaps.min())  # smallest column gap M_ij - M_jj, i != j
    gammas = Delta / np.linspace(2, 40, 12)
    e_sym, bound = limit_is_u_under_footnote_9(ev, u, M, gammas, Delta)
    e_tie = limit_is_not_u_with_ties(ev, u, gammas)
    e_ns, e_ns37 = printed_37_loses_the_limit_for_nonsymmetric_cost(ev, u, M, gammas, bound)
    ev.figures.append(_gamma_limit_figure(gammas, e_sym, bound, e_tie, e_ns, e_ns37))
    ev.tables.append(Table(r"FD-37: $\|\tilde u_\gamma - u\|_1$ as $\gamma \to 0$", ["gamma", "symmetric (footnote 9)", "bound",
                                                                         "ties", "non-sym., derived", "non-sym., (37) printed"],
                           [[float(g_), float(a), float(b), float(c_), float(d_), float(e_)]
                            for g_, a, b, c_, d_, e_ in zip(gammas[::3], e_sym[::3], bound[::3], e_tie[::3], e_ns[::3], e_ns37[::3])]))


def limit_is_u_under_footnote_9(ev: Evidence, u, M, gammas, Delta):
    r""":math:`\|\tilde u - u\|_1 \le 2(N-1) e^{-\Delta/\gamma}` on a squared-distance cost; returns the distances and
    the bound."""
    N = len(u)
    e_sym = np.array([np.abs(ota.true_preference(u, M, g_) - u).sum() for g_ in gammas])
    bound = 2 * (N - 1) * np.exp(-Delta / gammas) + 8 * N * EPS  # + the round-off of the computed u~
    ratio = float(np.max(e_sym / bound))
    ev.at_most("fd-37-gamma-0-under-footnote-9-u-u-1-2-n-1-e",
               "FD-37 gamma -> 0 under footnote 9: ||u~ - u||_1 <= 2(N-1) e^{-Delta/gamma}", ratio, 1.0,
               r"proven bound: $\|\tilde u - u\|_1 \le \sum_j u_j \|P_{\cdot j} - e_j\|_1 = 2 \sum_j u_j (1 - P_{jj})$ and "
               r"$1 - P_{jj} \le \sum_{i \ne j} e^{-(M_{ij} - M_{jj})/\gamma}$, $\Delta$ = min column gap; $8N\varepsilon$ "
               r"for the round-off of the computed $\tilde u$ ($N$ sums of terms $\le 1$)",
               method="numpy",
               metric=r"max over 12 $\gamma \in [\Delta/40, \Delta/2]$ of $\|\tilde u_\gamma - u\|_1 / (2(N-1) "
                      r"e^{-\Delta/\gamma} + 8N\varepsilon)$",
               numerical_class="roundoff", evidence="float")
    above = e_sym > 1e-12  # fit where the decay is not hidden by round-off
    rate = -float(np.polyfit(1 / gammas[above], np.log(e_sym[above]), 1)[0])
    ev.notes.append(r"$\gamma \to 0$ (symmetric $M$, footnote 9): $\|\tilde u - u\|_1$ decays like "
                    rf"$e^{{-\mathrm{{rate}}/\gamma}}$ with fitted rate {rate:.4f}; the smallest column gap is "
                    rf"$\Delta = {Delta:.4f}$.")
    return e_sym, bound


def limit_is_not_u_with_ties(ev: Evidence, u, gammas):
    r"""With ties (a grouped cost) :math:`\tilde u` keeps equal weight on each group: it does not tend to u."""
    G = np.array([0, 0, 1, 1, 1])
    Mg = np.where(G[:, None] == G[None, :], 0.0, 1.0)
    e_tie = np.array([np.abs(ota.true_preference(u, Mg, g_) - u).sum() for g_ in gammas])
    ev.at_least("fd-37-without-the-strict-diagonal-condition-u",
                "FD-37 without the strict diagonal condition u~ does not tend to u", float(e_tie[-1]), 1e-3,
                r"with ties the column softmax keeps equal weight on every tied row for all $\gamma$: $\tilde u$ tends to "
                r"$u$ spread uniformly over each group, which differs from $u$ unless $u$ is already uniform on groups",
                method="numpy",
                metric=r"$\|\tilde u_\gamma - u\|_1$ at the smallest $\gamma$ for a cost with ties (0 inside groups, 1 "
                       "across)",
                strict=True, shown="> 1e-3", numerical_class="roundoff", evidence="float")
    return e_tie


def printed_37_loses_the_limit_for_nonsymmetric_cost(ev: Evidence, u, M, gammas, bound):
    r"""One column of M shifted by a constant: the derived :math:`\tilde u` still tends to u, the printed (37) does
    not."""
    # non-symmetric with the column condition: shift one column by a constant. The derived u~ is unchanged (each
    # column's softmax is shift invariant), but row j of M now has entries below M_jj: the printed (37), which
    # normalises rows, loses its limit.
    jj = int(np.argmax(u))
    Mn = M.copy()
    Mn[:, jj] += 2 * M.max()
    e_ns = np.array([np.abs(ota.true_preference(u, Mn, g_) - u).sum() for g_ in gammas])
    e_ns37 = np.array([np.abs(_printed_37(u, Mn, g_) - u).sum() for g_ in gammas])
    ev.check("FD-37 non-symmetric M: (37) as printed does not tend to u, the derived u~ does", "numpy",
             r"$\|(37)_{\mathrm{printed}} - u\|_1$ at the smallest $\gamma$ (derived: see row)", float(e_ns37[-1]), "> 1e-3",
             e_ns37[-1] > 1e-3 and bool(np.all(e_ns <= bound)),
             r"$M + c\, \mathbf 1 e_j^\top$ (one column shifted by $c = 2\max M$) keeps footnote 9's column condition, "
             r"so the derived $\tilde u$ (unchanged by the shift) obeys the bound above, but breaks the row condition "
             r"$M_{jj} < M_{ji}$ that the printed (37) needs; $10^{-3}$ is far above the bound at the smallest $\gamma$",
             key="fd-37-non-symmetric-m-37-as-printed-does-not", numerical_class="roundoff", evidence="float")
    return e_ns, e_ns37


def _gamma_limit_figure(gammas, e_sym, bound, e_tie, e_ns, e_ns37) -> Figure:
    plt = context.pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.8))
    ax.semilogy(1 / gammas, e_sym, "o-", label="symmetric M, footnote 9 (derived = printed (37))")
    ax.semilogy(1 / gammas, bound, "k--", lw=0.8, label=r"bound $2(N-1)e^{-\Delta/\gamma}$")
    ax.semilogy(1 / gammas, e_tie, "s-", label="cost with ties (grouped): no limit")
    ax.semilogy(1 / gammas, e_ns, "^-", label="non-symmetric M, column-normalised u~")
    ax.semilogy(1 / gammas, e_ns37, "v:", label="non-symmetric M, (37) as printed")
    ax.set_xlabel(r"$1/\gamma$")
    ax.set_ylabel(r"$\|\tilde u_\gamma - u\|_1$")
    ax.legend(fontsize=7)
    ax.set_ylim(1e-18, 10)
    path = context.save_figure(fig, "fd-37-gamma-limit")
    return Figure(path, r"FD-37: distance of the true preference $\tilde u$ from $u$ as $\gamma \to 0$. With footnote "
                        r"9's strict column condition it decays like $e^{-\Delta/\gamma}$; with ties it does not; for a "
                        r"non-symmetric $M$ the printed (37) does not converge to $u$ while the column-normalised form "
                        "does.")


def _printed_37(u, M, gamma):
    r"""(37) as printed: :math:`\sum_{t'} u(t')\, e^{-M(t,t')/\gamma} / \sum_{t''} e^{-M(t',t'')/\gamma}`."""
    return _printed_34(np.zeros(len(u)), u, M, gamma)


def _pot_value_grad(u, M, gamma):
    ot = _pot()
    c = u > 0

    def vg(p):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            P, log = ot.sinkhorn(p, u[c], M[:, c], gamma, method="sinkhorn_log", numItermax=400_000, stopThr=SINK_TOL, log=True)
        s = P > 0
        W = float(np.sum(M[:, c][s] * P[s]) + gamma * np.sum(P[s] * np.log(P[s])))
        return W, gamma * np.asarray(log["log_u"])  # grad_p W = f = gamma log_u, up to a constant

    return vg


def _mean_38(T, u, M, gamma):
    r"""(38) as printed: :math:`\sum_{t,t'} u(t')\, \frac{e^{-M(t,t')/\gamma}}{\sum_{t''} e^{-M(t'',t')/\gamma}}\, t`."""
    c = u > 0
    A = -M[:, c] / gamma
    W = np.exp(A - ota.lse(A, axis=0)[None, :]) * u[c][None, :]
    return T.T @ W.sum(1)


# =====================================================================================================
# FD-22: the exact minimiser of (21) against (22)
# =====================================================================================================
def exact_vs_22() -> Evidence:
    r"""FD-22: (21) solved exactly through its dual (36) (SciPy trust-region Newton), primal value by POT to close the
    duality gap, and the error of (22) along :math:`\alpha \to 0`, :math:`\alpha/\gamma \to 0` jointly and
    separately."""
    ev = Evidence()
    rng = context.rng("fd22-attention")
    pb = _fd22_instance(rng)
    t0 = time.perf_counter()
    exact_solve_closes_the_duality_gap(ev, pb)
    printed_44_equals_22_for_symmetric_cost(ev, pb)
    A_alpha, eA, B_gamma, eB, sA, sB = error_of_22_is_second_order(ev, pb)
    c, C_alpha, eC, eCt = alpha_small_alone_does_not_make_22_exact(ev, pb)
    eAn, e44n = printed_44_needs_symmetric_cost_22_does_not(ev, pb, rng, A_alpha)
    where_22_breaks(ev, pb, Paths22(A_alpha=A_alpha, eA=eA, B_gamma=B_gamma, eB=eB, sA=sA, sB=sB, c=c, C_alpha=C_alpha,
                                    eC=eC, eCt=eCt, eAn=eAn, e44n=e44n))
    ev.notes.append(f"FD-22 numeric run time {time.perf_counter() - t0:.1f} s.")
    return ev


@dataclass(frozen=True)
class Problem21:
    """One instance of (21): templates T (N, d), preference u (N,), query z (d,), cost M (N, N)."""

    T: np.ndarray
    u: np.ndarray
    z: np.ndarray
    M: np.ndarray


@dataclass(kw_only=True)
class Paths22:
    r""":math:`\|p^* - p_{(22)}\|_1` along FD-22's paths: :math:`\alpha \to 0` at :math:`\gamma = 1` (A, fitted slope
    sA), :math:`\alpha/\gamma \to 0` at :math:`\alpha = 1` (B, slope sB), :math:`\alpha \to 0` at
    :math:`\alpha/\gamma = c` fixed (C: footnote-9 cost eC, cost with ties eCt), and the A path on a non-symmetric M
    for (22) (eAn) and for (44) as printed (e44n)."""

    A_alpha: np.ndarray
    eA: np.ndarray
    B_gamma: np.ndarray
    eB: np.ndarray
    sA: float
    sB: float
    c: float
    C_alpha: np.ndarray
    eC: np.ndarray
    eCt: np.ndarray
    eAn: np.ndarray
    e44n: np.ndarray


def exact_solve_closes_the_duality_gap(ev: Evidence, pb: Problem21) -> None:
    r"""Primal (21) at :math:`p^*` (W by POT) = dual (36) at :math:`\lambda^*`: the exact solve is certified by its
    duality gap."""
    T, u, z, M = pb.T, pb.u, pb.z, pb.M
    gap_rows, worst_gap = [], 0.0
    # gamma >= 0.3 here: at smaller gamma p* has entries ~1e-10 and Sinkhorn (ours and POT's) needs > 10^5 iterations
    for a, g_ in ((0.1, 1.0), (1.0, 1.0), (1.0, 0.3), (0.03, 0.3), (3.0, 0.5)):
        sol = require(ota.solve_ot_dual(T, u, z, M, a, g_))
        X, Wp, _ = _pot_plan(sol.p, u, M, g_)
        P = ota.ot_primal_objective(sol.p, T, u, z, M, a, g_, Wp)
        r = require(ota.sinkhorn_log(sol.p, u, M, g_, tol=SINK_TOL))
        e = np.abs(_marg_errs(X, sol.p, u))
        N = len(u)
        tol = a / 2 * sol.grad_norm**2 + _osc(r.f) * e[:N].sum() + _osc(r.g) * e[N:].sum() + 64 * EPS * (1 + abs(P))
        worst_gap = max(worst_gap, abs(P - sol.value) / tol)
        gap_rows.append([a, g_, P, sol.value, P - sol.value, tol, sol.grad_norm])
    ev.at_most("fd-22-exact-solve-primal-21-at-p-w-by-pot-dual",
               "FD-22 exact solve: primal (21) at p* (W by POT) = dual (36) at lambda*", worst_gap, 1.0,
               r"at $p = \nabla W^*(T\lambda)$ the gap is exactly $\frac{\alpha}{2}\|\nabla D(\lambda)\|^2$ (Fenchel-Young); "
               r"plus POT's value error $\operatorname{osc}(f)\,\|\text{row error}\|_1 + \operatorname{osc}(g)\,\|\text{column "
               r"error}\|_1$ and round-off. A closed gap certifies $p^*$ as the minimiser of (21)",
               method="pot", metric=r"max over 5 $(\alpha, \gamma)$ of $|P(p^*) - D(\lambda^*)| / \mathrm{tol}$",
               numerical_class="iterative", evidence="float")
    ev.tables.append(Table("FD-22: duality gap of the exact solve (primal value with POT's Sinkhorn)",
                           ["alpha", "gamma", "primal (21)", "dual (36) + gamma H(u)", "gap", "tol", "||grad D||"], gap_rows))


def printed_44_equals_22_for_symmetric_cost(ev: Evidence, pb: Problem21) -> None:
    """(44) as printed and (22) are the same numbers for a symmetric M."""
    T, u, z, M = pb.T, pb.u, pb.z, pb.M
    d44 = max(float(np.abs(_printed_44(T, u, z, M, a, g_) - ota.ot_attention(T, u, z, M, a, g_, return_weights=True)[1]).max())
              for a, g_ in ((0.1, 1.0), (1.0, 0.1)))
    ev.at_most("fd-22-44-as-printed-22-symmetric-m-float", "FD-22 (44) as printed = (22) for symmetric M", d44,
               64 * EPS, "the same numbers summed in another order: round-off only", method="numpy",
               metric=r"$\max |p_{(44)} - p_{(22)}|$", numerical_class="roundoff", evidence="float")


def error_of_22_is_second_order(ev: Evidence, pb: Problem21):
    r""":math:`\|p^* - p_{(22)}\|_1 = O(\alpha^2)` at :math:`\gamma = 1` and :math:`O((\alpha/\gamma)^2)` at
    :math:`\alpha = 1` (fitted slopes)."""
    T, u, z, M = pb.T, pb.u, pb.z, pb.M
    A_alpha = np.logspace(-3, -1.5, 7)
    eA = np.array([_err22(T, u, z, M, a, 1.0)[0] for a in A_alpha])
    B_gamma = np.logspace(1.5, 3.0, 7)
    eB = np.array([_err22(T, u, z, M, 1.0, g_)[0] for g_ in B_gamma])
    sA, sB = _slope(A_alpha, eA), _slope(1.0 / B_gamma, eB)
    ev.within("fd-22-alpha-0-at-gamma-1-alpha-gamma-0-jointly-p",
              "FD-22 alpha -> 0 at gamma = 1 (alpha/gamma -> 0 jointly): ||p* - (22)||_1 = O(alpha^2)", sA,
              2, 0.1,
              r"theory: $\lambda^* - \alpha z = -(\alpha^2/\gamma) \bar\Sigma z + O(\alpha^3/\gamma^2)$ and $p$ depends on "
              r"$T\lambda/\gamma$, so the error is $c\,\alpha^2 (1 + O(\alpha/\gamma))$; over $\alpha/\gamma \le 3\cdot10^{-2}$ "
              "the slope moves by < 0.05",
              method="scipy",
              metric=r"fitted log-log slope of $\|p^* - p_{(22)}\|_1$ against $\alpha$, $\alpha \in [10^{-3}, 3\cdot10^{-2}]$",
              shown="2 +- 0.1", numerical_class="iterative", evidence="float")
    ev.within("fd-22-alpha-gamma-0-at-alpha-1-alpha-not-small-p",
              "FD-22 alpha/gamma -> 0 at alpha = 1 (alpha not small): ||p* - (22)||_1 = O((alpha/gamma)^2)",
              sB, 2, 0.1,
              r"same expansion: $\alpha$ enters only through $\alpha/\gamma$ (and $\|z\|$, the template scale); the fitted "
              r"range has $\alpha/\gamma \le 3\cdot10^{-2}$",
              method="scipy", metric=r"fitted log-log slope against $\alpha/\gamma$, $\gamma \in [30, 1000]$",
              shown="2 +- 0.1", numerical_class="iterative", evidence="float")
    return A_alpha, eA, B_gamma, eB, sA, sB


def alpha_small_alone_does_not_make_22_exact(ev: Evidence, pb: Problem21):
    r""":math:`\alpha \to 0` at fixed :math:`\alpha/\gamma`: the error falls for the footnote-9 cost, stalls for a cost
    with ties."""
    T, u, z, M = pb.T, pb.u, pb.z, pb.M
    c = 0.5
    C_alpha = np.logspace(-2.5, 0, 8)
    eC = np.array([_err22(T, u, z, M, a, a / c)[0] for a in C_alpha])
    groups = np.array([0, 0, 1, 1, 2, 2, 3, 3])
    Mt = np.where(groups[:, None] == groups[None, :], 0.0, 4.0)
    eCt = np.array([_err22(T, u, z, Mt, a, a / c)[0] for a in C_alpha])
    ev.at_least("fd-22-alpha-0-alone-alpha-gamma-1-2-fixed-does",
                "FD-22 alpha -> 0 alone (alpha/gamma = 1/2 fixed) does not make (22) exact", float(eCt[0]),
                1e-3,
                r"with ties $q_t$ keeps a non-vanishing covariance as $\gamma \to 0$, so $\lambda^* - \alpha z$ stays "
                r"$O(\alpha\,(\alpha/\gamma))$ relative to $\alpha$: the condition $\alpha/\gamma$ small is needed, $\alpha$ "
                "small is not enough",
                method="scipy",
                metric=r"$\|p^* - p_{(22)}\|_1$ at $\alpha = 10^{-2.5}$, $\gamma = 2\alpha$, for a cost with ties (0 in "
                       "pairs, 4 across)",
                strict=True, shown="> 1e-3", numerical_class="iterative", evidence="float")
    ev.notes.append(rf"$\alpha \to 0$ with $\alpha/\gamma = {c}$ fixed: for the squared-distance cost (footnote 9) the "
                    rf"error still falls ({eC[-1]:.2e} at $\alpha = 1$ to {eC[0]:.2e} at $\alpha = 10^{{-2.5}}$) only "
                    r"because $\gamma \to 0$ concentrates every $q_t$ on its own template ($\bar\Sigma \to 0$ like "
                    r"$e^{-\Delta/\gamma}$); for a cost with "
                    f"ties it stalls at {eCt[0]:.2e}.")
    return c, C_alpha, eC, eCt


def printed_44_needs_symmetric_cost_22_does_not(ev: Evidence, pb: Problem21, rng, A_alpha):
    r"""Non-symmetric M: (22) as printed is still :math:`O(\alpha^2)`; (44) as printed misses the minimiser."""
    T, u, z, M = pb.T, pb.u, pb.z, pb.M
    Mn = _nonsymmetric(rng, M)
    eAn = np.array([_err22(T, u, z, Mn, a, 1.0)[0] for a in A_alpha])
    e44n = np.array([float(np.abs(require(ota.solve_ot_dual(T, u, z, Mn, a, 1.0)).p - _printed_44(T, u, z, Mn, a, 1.0)).sum())
                     for a in A_alpha])
    sAn = _slope(A_alpha, eAn)
    ev.within("fd-22-non-symmetric-m-22-as-printed-still-o",
              "FD-22 non-symmetric M: (22) as printed still O(alpha^2)", sAn, 2, 0.1,
              r"(22) normalises with $M(t', t_i)$, the orientation the derivation gives for any $M$",
              method="scipy", metric="fitted slope for a non-symmetric M", shown="2 +- 0.1",
              numerical_class="iterative", evidence="float")
    ev.notes.append(r"Non-symmetric $M$: (44) as printed (denominator $M(t', t'')$) misses the exact minimiser by "
                    rf"{e44n[0]:.3f} in $\ell_1$ at $\alpha = 10^{{-3}}$ and does not improve as $\alpha \to 0$ "
                    rf"({e44n[-1]:.3f} at $\alpha = 10^{{-1.5}}$): "
                    r"(35), (36) and (44) as printed need symmetric $M$; (22) does not.")
    return eAn, e44n


def where_22_breaks(ev: Evidence, pb: Problem21, paths: Paths22) -> None:
    r"""The error of (22) over a 13 x 13 grid of :math:`(\alpha, \gamma)`: the figure, the path table and the regime
    notes."""
    T, u, z, M = pb.T, pb.u, pb.z, pb.M
    A_alpha, eA, B_gamma, eB = paths.A_alpha, paths.eA, paths.B_gamma, paths.eB
    C_alpha, eCt, c = paths.C_alpha, paths.eCt, paths.c
    al = np.logspace(-3, 1, 13)
    ga = np.logspace(-2, 2, 13)
    E = np.array([[_err22(T, u, z, M, a, g_)[0] for a in al] for g_ in ga])
    ev.figures.append(_fd22_figure(paths, al, ga, E))
    rows = [[f"alpha={a:.2e}, gamma=1", float(e)] for a, e in zip(A_alpha[::2], eA[::2])]
    rows += [[f"alpha=1, gamma={g_:.1f}", float(e)] for g_, e in zip(B_gamma[::2], eB[::2])]
    rows += [[f"alpha={a:.2e}, gamma={a / c:.2e} (ties)", float(e)] for a, e in zip(C_alpha[::2], eCt[::2])]
    ev.tables.append(Table(r"FD-22: $\|p^* - p_{(22)}\|_1$ along the paths; fitted orders "
                           rf"{paths.sA:.3f} ($\alpha$, $\gamma = 1$), {paths.sB:.3f} ($\alpha/\gamma$, $\alpha = 1$)",
                           ["path point", "||p* - p_(22)||_1"], rows))
    bad = E >= 0.05
    ratio = np.array([[a / g_ for a in al] for g_ in ga])
    G_ = np.array([[g_ for _ in al] for g_ in ga])
    safe = ratio[bad].min() if bad.any() else np.inf  # every grid point with a smaller alpha/gamma is fine
    exc = (ratio >= safe) & ~bad
    ev.notes.append(rf"Regime where (22) breaks on this instance ($\|z\| = {np.linalg.norm(z):.2f}$, templates of norm "
                    rf"$\sim${np.linalg.norm(T, axis=1).mean():.1f}; 'breaks' = $\ell_1$ error $\ge 0.05$): every "
                    rf"$(\alpha, \gamma)$ of the 13 x 13 grid with $\alpha/\gamma < {safe:.2g}$ has error < 0.05, whatever "
                    rf"$\alpha$; at larger $\alpha/\gamma$ the error exceeds 0.05 at {int(bad.sum())} of "
                    rf"{int((ratio >= safe).sum())} grid points, the exceptions all having "
                    rf"$\gamma \le {G_[exc].max() if exc.any() else float('nan'):.2g}$ (below the cost gaps, which pin "
                    r"each $q_t$ to its own template and make $\bar\Sigma$ small).")
    j = int(np.argmin(np.abs(al - 1e-2)))
    ev.notes.append(r"$\alpha/\gamma$ bounds the error but does not determine it: at $\alpha = 0.01$ the error is "
                    + ", ".join(rf"{E[i, j]:.1e} at $\gamma = {ga[i]:.2g}$" for i in (0, 3, 6, 9, 12))
                    + r"; it grows with $\gamma$ while $q_t$ spreads ($\bar\Sigma$ grows) and falls like "
                    r"$(\alpha/\gamma)^2$ once $\bar\Sigma$ has saturated.")


def _fd22_instance(rng, N=8, d=3, n=4) -> Problem21:
    T = 0.7 * rng.normal(size=(N, d))
    u = np.zeros(N)
    u[rng.choice(N, n, replace=False)] = rng.dirichlet(np.ones(n))
    z = rng.normal(size=d)
    return Problem21(T, u, z, _sqdist(T))


def _err22(T, u, z, M, a, g_):
    sol = ota.solve_ot_dual(T, u, z, M, a, g_)
    if not sol.converged:
        raise Inconclusive(f"dual (36) did not converge at alpha={a:g}, gamma={g_:g}: |grad| = {sol.grad_norm:.1e}")
    _, p22 = ota.ot_attention(T, u, z, M, a, g_, return_weights=True)
    return float(np.abs(sol.p - p22).sum()), sol, p22


def _printed_44(T, u, z, M, a, g_):
    return _printed_34(a * T @ z, u, M, g_)


def _fd22_figure(paths: Paths22, al, ga, E) -> Figure:
    A_alpha, eA, B_gamma, eB = paths.A_alpha, paths.eA, paths.B_gamma, paths.eB
    C_alpha, eC, eCt, c, eAn, e44n = paths.C_alpha, paths.eC, paths.eCt, paths.c, paths.eAn, paths.e44n
    plt = context.pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    ax = axes[0]
    ax.loglog(A_alpha, eA, "o-", label=r"$\gamma=1$, $x=\alpha$")
    ax.loglog(1 / B_gamma, eB, "s-", label=r"$\alpha=1$, $x=\alpha/\gamma$")
    ax.loglog(A_alpha, eAn, "^-", label=r"non-symmetric M, (22), $\gamma=1$")
    ax.loglog(A_alpha, e44n, "v:", label=r"non-symmetric M, (44) as printed")
    ref = eA[0] * (A_alpha / A_alpha[0]) ** 2
    ax.loglog(A_alpha, ref, "k--", lw=0.8, label="slope 2")
    ax.set_xlabel("x")
    ax.set_ylabel(r"$\|p^* - p_{(22)}\|_1$")
    ax.legend(fontsize=7)
    ax.set_title("(22) against the exact minimiser of (21)", fontsize=9)
    ax = axes[1]
    ax.loglog(C_alpha, eC, "o-", label="squared distances (footnote 9)")
    ax.loglog(C_alpha, eCt, "s-", label="cost with ties")
    ax.set_xlabel(r"$\alpha$ ($\alpha/\gamma=%g$ fixed)" % c)
    ax.set_ylabel(r"$\|p^* - p_{(22)}\|_1$")
    ax.legend(fontsize=7)
    ax.set_title(r"$\alpha\to0$ alone", fontsize=9)
    ax = axes[2]
    im = ax.pcolormesh(np.log10(al), np.log10(ga), np.log10(np.maximum(E, 1e-16)), shading="nearest", cmap="viridis")
    cs = ax.contour(np.log10(al), np.log10(ga), np.log10(np.maximum(E, 1e-16)), levels=[-6, -4, -2, np.log10(0.05)],
                    colors="w", linewidths=0.8)
    ax.clabel(cs, fmt=lambda v: f"1e{v:.1f}", fontsize=6)
    for k in (-2, 0, 2):
        ax.plot(np.log10(al), np.log10(al) - k, "r:", lw=0.7)
    ax.set_xlim(np.log10(al[0]), np.log10(al[-1]))
    ax.set_ylim(np.log10(ga[0]), np.log10(ga[-1]))
    ax.set_xlabel(r"$\log_{10}\alpha$")
    ax.set_ylabel(r"$\log_{10}\gamma$")
    ax.set_title(r"$\log_{10}\|p^*-p_{(22)}\|_1$ (red: $\alpha/\gamma=10^{-2},1,10^2$)", fontsize=9)
    fig.colorbar(im, ax=ax)
    path = context.save_figure(fig, "fd-22-orders")
    return Figure(path, "FD-22: error of the OT-based attention (22) against the exact minimiser of (21) (dual (36) by "
                        r"trust-region Newton, duality gap closed with POT). Left: order 2 in $\alpha$ at $\gamma = 1$ and "
                        r"in $\alpha/\gamma$ at $\alpha = 1$; (44) as printed fails for a non-symmetric $M$. Middle: "
                        r"$\alpha \to 0$ at fixed $\alpha/\gamma$. Right: the error over $(\alpha, \gamma)$.")


# =====================================================================================================
# FD-G: the grouped cost
# =====================================================================================================
def grouped_cost() -> Evidence:
    r"""FD-G: (22) and the exact minimiser of (21) on a grouped cost (0 inside, :math:`+\infty` or a finite L
    across)."""
    ev = Evidence()
    gi = _grouped(context.rng("fd-g"))
    p22, sol = weights_are_group_averages_of_u(ev, gi)
    finite_cost_deviates_like_exp_minus_l_over_gamma(ev, gi)
    unequal_inner_products_move_22_linearly(ev, gi)
    T, u, grp, target = gi.T, gi.u, gi.grp, gi.target
    ev.tables.append(Table("FD-G: weights on the groups (sizes 3, 2, 4; one input template per group)",
                           ["template", "group", "u", "u_i/|G|", "(22)", "exact (21)"],
                           [[t, int(grp[t]), float(u[t]), float(target[t]), float(p22[t]), float(sol.p[t])] for t in range(len(T))]))
    return ev


@dataclass(frozen=True)
class GroupedInstance:
    r"""FD-G's instance: templates T, preference u (on one template per group), query z, group labels grp, the
    predicted weights target = :math:`u_i/|G|` and the :math:`(\alpha, \gamma)` of the checks."""

    T: np.ndarray
    u: np.ndarray
    z: np.ndarray
    grp: np.ndarray
    target: np.ndarray
    alpha: float = 1.0
    gamma: float = 0.5


def weights_are_group_averages_of_u(ev: Evidence, gi: GroupedInstance):
    r"""With :math:`+\infty` across groups, (22) and the exact minimiser of (21) are both :math:`p^*(t) = u_i/|G|`;
    returns both."""
    T, u, z, grp, target, alpha, gamma = gi.T, gi.u, gi.z, gi.grp, gi.target, gi.alpha, gi.gamma
    Minf = _group_cost(grp, np.inf)
    _, p22 = ota.ot_attention(T, u, z, Minf, alpha, gamma, return_weights=True)
    d22 = float(np.abs(p22 - target).max())
    ev.at_most("fd-g-22-with-inf-across-groups-p-t-u-i-g", "FD-G (22) with +inf across groups: p*(t) = u_i/|G|",
               d22, 16 * len(T) * EPS, "exact identity; log-domain evaluation costs a few ulps per term",
               method="numpy", metric=r"$\max_t |p_{(22)}(t) - u_i/|G||$", numerical_class="roundoff",
               evidence="float")
    sol = require(ota.solve_ot_dual(T, u, z, Minf, alpha, gamma))
    dex = float(np.abs(sol.p - target).max())
    tol_ex = sol.grad_norm * alpha * np.abs(T).max() * len(T) / gamma + 1e-12
    ev.at_most("fd-g-exact-minimiser-of-21-inf-across-groups-p-t",
               "FD-G exact minimiser of (21), +inf across groups: p*(t) = u_i/|G|", dex, tol_ex,
               r"with equal $\langle t,z\rangle$ on every group, $\lambda = \alpha z$ is exactly stationary for (36) "
               r"($p(\alpha z) = \tilde u = u_i/|G|$ on groups, so $b - z - T^\top p = 0$): the exact minimiser is "
               r"$u_i/|G|$ for every $\alpha, \gamma$. Tolerance: $\|\lambda - \lambda^*\| \le \alpha \|\nabla D\|$ moves "
               r"$p$ by at most that times $N \max|t| / \gamma$",
               method="scipy", metric=r"$\max_t |p^*(t) - u_i/|G||$", numerical_class="iterative",
               evidence="float")
    return p22, sol


def finite_cost_deviates_like_exp_minus_l_over_gamma(ev: Evidence, gi: GroupedInstance) -> None:
    r"""A finite stand-in L for :math:`+\infty` moves (22) from :math:`u_i/|G|` by :math:`\sim e^{-L/\gamma}` (fitted
    slope -1)."""
    T, u, z, grp, target, alpha, gamma = gi.T, gi.u, gi.z, gi.grp, gi.target, gi.alpha, gi.gamma
    # the cross-group terms are e^{-L/gamma} times factors up to e^{alpha (max s - min s)/gamma}; start the grid where
    # N of those factors times e^{-L/gamma} is e^-6, so second-order terms are <= e^-6 relative
    sc = T @ z
    L0 = alpha * (sc.max() - sc.min()) / gamma + np.log(len(T)) + 6
    Ls = gamma * (L0 + np.array([0.0, 3.0, 6.0, 9.0, 12.0]))
    devL = np.array([np.abs(ota.ot_attention(T, u, z, _group_cost(grp, L), alpha, gamma, return_weights=True)[1] - target).max()
                     for L in Ls])
    sL = float(np.polyfit(Ls / gamma, np.log(devL), 1)[0])
    ev.within("fd-g-finite-stand-in-l-for-infinity-deviation",
              "FD-G finite stand-in L for infinity: deviation ~ exp(-L/gamma)", sL, -1, 0.02,
              r"the deviation is $e^{-L/\gamma} C (1 + O(R))$, $R = N e^{\alpha (\max s - \min s)/\gamma - L/\gamma} \le "
              r"e^{-6}$ on the grid, so the slope is $-1$ up to $\sim R/3$ per unit of $L/\gamma$",
              method="numpy",
              metric=r"fitted slope of $\log \max_t|p_{(22)}(t) - u_i/|G||$ against $L/\gamma$, "
                     rf"$L/\gamma \in [{L0:.1f}, {L0 + 12:.1f}]$",
              shown="-1 +- 0.02", numerical_class="roundoff", evidence="float")
    ev.notes.append(rf"FD-G finite stand-in: max deviation from $u_i/|G|$ is {devL[0]:.2e} at $L = {Ls[0]:.2f}$ and "
                    rf"{devL[-1]:.2e} at $L = {Ls[-1]:.2f}$ ($\gamma = {gamma}$).")


def unequal_inner_products_move_22_linearly(ev: Evidence, gi: GroupedInstance) -> None:
    r"""When :math:`\langle t,z\rangle` differs inside a group, (22) moves from :math:`u_i/|G|` by the first-order
    formula (and the figure)."""
    alpha, gamma = gi.alpha, gi.gamma
    spreads = np.logspace(-3, 0, 7)
    d22s, dexs, pred = [], [], []
    for sp_ in spreads:
        Ts, us, zs, gs = _group_instance(context.rng("fd-g"), spread=sp_)
        tg = np.array([us[gs == gs[t]].sum() / (gs == gs[t]).sum() for t in range(len(Ts))])
        Mi = _group_cost(gs, np.inf)
        _, q22 = ota.ot_attention(Ts, us, zs, Mi, alpha, gamma, return_weights=True)
        qex = require(ota.solve_ot_dual(Ts, us, zs, Mi, alpha, gamma)).p
        s = Ts @ zs
        lin = np.array([tg[t] * alpha / gamma * (s[t] - s[gs == gs[t]].mean()) for t in range(len(Ts))])
        d22s.append(np.abs(q22 - tg).max())
        dexs.append(np.abs(qex - tg).max())
        pred.append(np.abs(q22 - tg - lin).max() / max(np.abs(lin).max(), 1e-300))
    d22s, dexs, pred = map(np.array, (d22s, dexs, pred))
    s1 = _slope(spreads[:4], d22s[:4])
    ev.at_most("fd-g-unequal-inner-products-22-moves-linearly-by",
               "FD-G unequal inner products: (22) moves linearly, by u_i/|G| (alpha/gamma)(delta_t - mean delta)",
               float(pred[0]), 1e-2,
               r"second-order term is $O(\alpha \cdot \mathrm{spread} / \gamma)$ relative $= O(10^{-2})$ here at most",
               method="numpy",
               metric=r"relative error of the first-order formula at the smallest spread ($10^{-3}$)",
               numerical_class="roundoff", evidence="float")
    ev.notes.append(r"FD-G: fitted slope of the deviation of (22) against the spread of $\langle t,z\rangle$ in a group: "
                    f"{s1:.3f} " + r"(first order). At spread 1 ($\alpha \cdot \mathrm{spread} / \gamma = 2$) the deviation "
                    f"is {d22s[-1]:.3f} for (22) and "
                    f"{dexs[-1]:.3f} for the exact minimiser: 'approximately equal inner products' must be read on the "
                    r"scale $\gamma/\alpha$.")
    plt = context.pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    ax.loglog(alpha * spreads / gamma, d22s, "o-", label="(22)")
    ax.loglog(alpha * spreads / gamma, dexs, "s--", label="exact minimiser of (21)")
    ax.set_xlabel(r"$\alpha\cdot$spread of $\langle t,z\rangle$ in a group $/\gamma$")
    ax.set_ylabel(r"$\max_t\ |p(t) - u_i/|G||$")
    ax.legend(fontsize=8)
    path = context.save_figure(fig, "fd-g-spread")
    ev.figures.append(Figure(path, r"FD-G: grouped cost ($+\infty$ across groups). How far the weights move from "
                                   r"$u_i/|G|$ when the inner products inside a group differ."))


def _grouped(rng) -> GroupedInstance:
    T, u, z, grp = _group_instance(rng)
    target = np.array([u[grp == grp[t]].sum() / (grp == grp[t]).sum() for t in range(len(T))])
    return GroupedInstance(T, u, z, grp, target)


def _group_instance(rng, sizes=(3, 2, 4), d=3, spread=0.0):
    r"""One input template per group; the other members differ from it orthogonally to z (equal
    :math:`\langle t,z\rangle`), plus spread times :math:`\mathcal N(0,1)` along z when spread > 0."""
    z = np.zeros(d)
    z[0] = 1.0
    heads, T, grp = [], [], []
    for gi, size in enumerate(sizes):
        t0 = rng.normal(size=d)
        heads.append(len(T))
        for m in range(size):
            w = np.zeros(d) if m == 0 else np.concatenate([[0.0], rng.normal(size=d - 1)])
            T.append(t0 + w)
            grp.append(gi)
    T, grp = np.array(T), np.array(grp)
    if spread:
        T[:, 0] += spread * rng.normal(size=len(T)) * (np.arange(len(T)) != np.array(heads)[grp])
    u = np.zeros(len(T))
    u[heads] = rng.dirichlet(np.ones(len(sizes)))
    return T, u, z, grp


def _group_cost(grp, L):
    return np.where(grp[:, None] == grp[None, :], 0.0, L)
