r"""Numeric checks for the Edge-of-Stability claims (seed 002, first abstract).

EOS-REC, :func:`recurrence_numeric`
    :math:`\delta_{t+1} = (I - \eta \bar H_t)\,\delta_t` on non-quadratic losses, :math:`\bar H_t` by
    Gauss-Legendre quadrature; the :math:`2/\eta` boundary on random symmetric matrices.
EOS-LOSS, :func:`loss_change_numeric`
    the exact loss-change formula with :math:`\tilde H_t` by quadrature, its sign, the telescoping
    sum, the weighted mean on a two-cycle.
EOS-P2, :func:`period_two_numeric`
    complete orbit enumeration (polynomial roots) and root finding on :math:`G(G(x)) = x` on both
    sides of :math:`\eta_c`; bifurcation diagram.
EOS-SHARP, :func:`sharpness_gd`
    full-batch GD on a small tanh MLP, sharpness by power iteration on exact Hessian-vector products,
    against :math:`2/\eta`.

Round-off tolerances.  A float64 sum of N terms has error at most :math:`\approx N\varepsilon` times the
sum of the absolute values of its terms (Higham's :math:`\gamma_N`).  The test losses are written as
sums of K terms, so every quantity below carries its own absolute scale (sum of :math:`|\text{term}|`),
and a check holds the residual to :math:`8 (K + d)\varepsilon` times that scale (the factor 8 covers the
handful of products and the quadrature sum on top of the summation).  Quadrature uses 64
Gauss-Legendre nodes; its error is estimated by the difference from 32 nodes (an overestimate; zero up
to rounding for the polynomial losses, where 16 nodes are already exact) and added to the tolerance.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
from scipy.optimize import brentq

from attnverify import context
from attnverify.evidence import Evidence, Figure, Inconclusive, Table

EPS = np.finfo(float).eps


def _gauss(n: int):
    x, w = np.polynomial.legendre.leggauss(n)
    return (x + 1) / 2, w / 2  # on [0, 1]


GL16, GL32, GL64 = _gauss(16), _gauss(32), _gauss(64)


# ---------------------------------------------------------------------------
# test losses, as sums of K terms (values, gradients, Hessians per term)
# ---------------------------------------------------------------------------


@dataclass
class TermLoss:
    name: str
    d: int
    K: int
    terms: Callable  # theta -> (vals (K,), grads (K, d), hess (K, d, d))
    sample: Callable  # rng -> theta

    def __call__(self, th):
        v, g, H = self.terms(th)
        return v.sum(), g.sum(0), H.sum(0), np.abs(v).sum(), np.abs(g).sum(0), np.abs(H).sum(0)


def _rosenbrock():
    def terms(th):
        x, y = th
        v = np.array([(1 - x) ** 2, 100 * (y - x * x) ** 2])
        g = np.array([[-2 * (1 - x), 0.0], [-400 * x * (y - x * x), 200 * (y - x * x)]])
        H = np.array([[[2.0, 0.0], [0.0, 0.0]], [[-400 * (y - x * x) + 800 * x * x, -400 * x], [-400 * x, 200.0]]])
        return v, g, H

    return TermLoss("Rosenbrock (d=2)", 2, 2, terms, lambda rng: np.array([1.0, 1.0]) + 0.5 * rng.normal(size=2))


def _quartic(rng):
    B = rng.normal(size=(3, 3))
    A = B @ B.T / 3 + np.eye(3)
    c = 0.7

    def terms(th):
        v = np.concatenate([[0.5 * th @ A @ th], th ** 4 / 4, [c * th.prod()]])
        g = np.zeros((5, 3))
        g[0] = A @ th
        g[1:4] = np.diag(th ** 3)
        g[4] = c * np.array([th[1] * th[2], th[0] * th[2], th[0] * th[1]])
        H = np.zeros((5, 3, 3))
        H[0] = A
        for i in range(3):
            H[1 + i, i, i] = 3 * th[i] ** 2
        H[4] = c * np.array([[0, th[2], th[1]], [th[2], 0, th[0]], [th[1], th[0], 0]])
        return v, g, H

    return TermLoss("quartic + cubic coupling (d=3)", 3, 5, terms, lambda r: r.normal(size=3))


def _logistic(rng):
    n, d = 40, 5
    X = rng.normal(size=(n, d))
    y = np.sign(X @ rng.normal(size=d) + 0.5 * rng.normal(size=n))

    def terms(th):
        z = y * (X @ th)
        v = np.logaddexp(0, -z) / n
        sm = 0.5 * (1 - np.tanh(z / 2))  # sigma(-z), stable
        g = (-y * sm)[:, None] * X / n
        H = (sm * (1 - sm))[:, None, None] * X[:, :, None] * X[:, None, :] / n
        return v, g, H

    return TermLoss("logistic regression (n=40, d=5)", d, n, terms, lambda r: 0.5 * r.normal(size=d))


def _losses():
    rng = context.rng("eos-losses")
    return [_rosenbrock(), _quartic(rng), _logistic(rng)]


@dataclass
class StepData:
    L0: float
    L1: float
    g: np.ndarray
    delta: np.ndarray
    delta1: np.ndarray
    Hbar: np.ndarray
    Htil: np.ndarray
    H0: np.ndarray
    qerr_bar: np.ndarray  # |Hbar_64 - Hbar_32|
    qerr_til: np.ndarray
    tol_loss: float
    tol_rec: float


def _step(f: TermLoss, th, eta) -> StepData:
    """One GD step with everything the two formulas need, and their round-off tolerances."""
    L0, g, H0, L0a, ga, _ = f(th)
    delta = -eta * g
    th1 = th + delta
    L1, g1, _, L1a, g1a, H1a = f(th1)
    delta1 = -eta * g1

    def avgs(nodes):
        s, w = nodes
        Hs = [f(th + si * delta) for si in s]
        Hb = sum(wi * h[2] for wi, h in zip(w, Hs))
        Ht = sum(2 * (1 - si) * wi * h[2] for si, wi, h in zip(s, w, Hs))
        Hta = sum(2 * (1 - si) * wi * h[5] for si, wi, h in zip(s, w, Hs))
        Hba = sum(wi * h[5] for wi, h in zip(w, Hs))
        return Hb, Ht, Hba, Hta

    Hb, Ht, Hba, Hta = avgs(GL64)
    Hb16, Ht16, _, _ = avgs(GL32)  # error estimate of the 64-node rule (an overestimate: the 32-node error)
    c = 8 * (f.K + f.d) * EPS
    pos = EPS * np.abs(th1)  # rounding of the new iterate's coordinates
    tol_loss = (c * (L0a + L1a + eta * ga @ ga + eta ** 2 / 2 * ga @ Hta @ ga) + pos @ g1a
                + eta ** 2 / 2 * abs(g @ (Ht - Ht16) @ g))
    ad = np.abs(delta)
    tol_rec = (c * (eta * np.linalg.norm(g1a) + np.linalg.norm(delta) + eta * np.linalg.norm(Hba @ ad))
               + eta * np.linalg.norm(H1a @ pos) + eta * np.linalg.norm((Hb - Hb16) @ delta))
    return StepData(L0, L1, g, delta, delta1, Hb, Ht, H0, np.abs(Hb - Hb16), np.abs(Ht - Ht16), tol_loss, tol_rec)


def _samples(f: TermLoss, rng, n=150):
    r""":math:`(\theta, \eta)` pairs with :math:`\eta = 2u / (g^\top H g / \|g\|^2)`, :math:`u \sim U(0.3, 2.5)`:
    both sides of the edge."""
    out = []
    while len(out) < n:
        th = f.sample(rng)
        _, g, H, *_ = f(th)
        r = g @ H @ g / (g @ g)
        if not np.isfinite(r) or r <= 0:
            continue
        out.append((th, rng.uniform(0.3, 2.5) * 2 / r))
    return out


# ---------------------------------------------------------------------------
# EOS-REC
# ---------------------------------------------------------------------------


def _boundary_agreement(factor: float = 2.0, n: int = 4000, d: int = 4):
    r"""Random symmetric M with spectra in :math:`[-0.5, 3.5]/\eta`: is :math:`\|I - \eta M\|_2 < 1` the same
    as :math:`\operatorname{spec} M \subset (0, \mathrm{factor}/\eta)`?  Returns (#disagreements, #cases kept)."""
    rng = context.rng("eos-boundary")
    eta = 0.37
    bad = kept = 0
    for _ in range(n):
        Q, _ = np.linalg.qr(rng.normal(size=(d, d)))
        lam = rng.uniform(-0.5, 3.5, size=d) / eta
        # keep eigenvalues away from the boundaries 0 and 2/eta by more than rounding
        if np.min(np.abs(np.concatenate([lam, lam - 2 / eta]))) * eta < 1e-9:
            continue
        M = (Q * lam) @ Q.T
        contract = np.linalg.norm(np.eye(d) - eta * M, 2) < 1
        inside = bool(np.all((lam > 0) & (lam < factor / eta)))
        bad += int(contract != inside)
        kept += 1
    return bad, kept


def recurrence_numeric(*, boundary_factor: float = 2.0) -> Evidence:
    r"""EOS-REC. :math:`\delta_{t+1} = (I - \eta \bar H_t)\,\delta_t` with
    :math:`\bar H_t = \int_0^1 H(\theta_t + s\,\delta_t)\,ds` by Gauss-Legendre quadrature (64 nodes), on 150
    random :math:`(\theta, \eta)` per non-quadratic loss, :math:`\eta` on both sides of the edge.  The same
    residual with :math:`H(\theta_t)` in place of :math:`\bar H_t` is shown for contrast."""
    ev = Evidence()
    rng = context.rng("eos-rec")
    rows, worst = [], 0.0
    for f in _losses():
        ratios, naive = [], []
        for th, eta in _samples(f, rng):
            sd = _step(f, th, eta)
            res = np.linalg.norm(sd.delta1 - (sd.delta - eta * sd.Hbar @ sd.delta))
            ratios.append(res / sd.tol_rec)
            naive.append(np.linalg.norm(sd.delta1 - (sd.delta - eta * sd.H0 @ sd.delta)) / sd.tol_rec)
        worst = np.maximum(worst, np.max(ratios))
        rows.append([f.name, len(ratios), float(max(ratios)), float(np.median(ratios)), float(np.median(naive))])
    ev.at_most("step-recurrence-with-the-segment-averaged",
               "step recurrence with the segment-averaged Hessian holds to round-off (3 non-quadratic losses)",
               worst, 1.0,
               r"$\mathrm{tol} = 8 (K+d)\varepsilon \times$ (absolute scale of each side) + rounding of $\theta_{t+1}$ + "
               r"quadrature estimate $|\bar H_{64} - \bar H_{32}|$; see the module docstring",
               method="quadrature",
               metric=r"max over 450 steps of $\|\delta_{t+1} - (I - \eta \bar H_t)\,\delta_t\| / \mathrm{tol}$",
               numerical_class="roundoff", evidence="float")
    ev.tables.append(Table("EOS-REC: residual of the step recurrence in units of its round-off tolerance",
                           ["loss", "steps", "max (Hbar_t)", "median (Hbar_t)", "median with H(theta_t) instead"], rows))
    bad, kept = _boundary_agreement(boundary_factor)
    ev.equal("i-eta-m-2-1-exactly-when-spec-m-lies-in-0-2-eta",
             "||I - eta M||_2 < 1 exactly when spec M lies in (0, 2/eta) (random symmetric M)", bad, 0,
             "the spectral norm of a symmetric matrix is $\\max |\\text{eigenvalue}|$: no disagreement is allowed away "
             "from the boundary",
             method="numpy",
             metric=f"disagreements among {kept} random $4 \\times 4$ symmetric matrices, spectra in $[-0.5, 3.5]/\\eta$",
             numerical_class="exact", evidence="float")
    return ev


# ---------------------------------------------------------------------------
# EOS-LOSS
# ---------------------------------------------------------------------------


def _loss_formula(eta, g, H):
    return -eta * (g @ g) * (1 - eta * (g @ H @ g) / (g @ g) / 2)


def _two_cycle_weighted_mean(eta=2.04, burn=3000, T=40):
    r"""GD on :math:`L = x^2/2 + x^3/3 + x^4/4` past :math:`\eta_c = 2` converges to a stable two-cycle
    (EOS-P2); over an even number of steps there the :math:`\|g\|^2`-weighted mean of :math:`\hat h_t` (by
    quadrature) is :math:`2/\eta`."""
    Lp = lambda x: x + x * x + x ** 3
    L = lambda x: x * x / 2 + x ** 3 / 3 + x ** 4 / 4
    L2 = lambda x: 1 + 2 * x + 3 * x * x
    x = 0.05
    for _ in range(burn):
        x -= eta * Lp(x)
    s, w = GL32
    W = M = 0.0
    xs = [x]
    for _ in range(T):
        g = Lp(x)
        hh = float(np.sum(w * 2 * (1 - s) * L2(x - s * eta * g)))
        W += g * g
        M += g * g * hh
        x -= eta * g
        xs.append(x)
    # rounding: L_T - L_0 (each L ~ 1e-1, eps-level), hhat sums of 32 nodes of O(1) terms
    tol = 2 * 8 * 4 * EPS * (abs(L(xs[0])) + abs(L(xs[-1]))) / (eta ** 2 * W) + 64 * 4 * EPS * max(1, abs(M / W))
    return M / W, tol, abs(xs[-1] - xs[-3])


def _no_gap_numeric(n_grid=20001):
    r"""EOS-LOSS/nogap in floats, independently of the SymPy derivation: on the d = 2 step of
    :math:`L = x^4/12 + y^2 (1-x)^2/2` from (-1, 0) with :math:`\eta = 3`, :math:`\tilde H` by 64-node
    Gauss-Legendre, then certified lower bounds (grid minimum minus a Lipschitz slack) of
    :math:`\min_s \|H(s) - \tilde H\|_F` and of :math:`\min_s \lambda_{\max}(H(s)) - \hat h`."""
    def grad(t):
        x, y = t
        return np.array([x ** 3 / 3 - y * y * (1 - x), y * (1 - x) ** 2])

    def hess(t):
        x, y = t
        return np.array([[x * x + y * y, -2 * y * (1 - x)], [-2 * y * (1 - x), (1 - x) ** 2]])

    th0, eta = np.array([-1.0, 0.0]), 3.0
    g = grad(th0)
    delta = -eta * g
    s, w = GL64
    Ht = sum(wi * 2 * (1 - si) * hess(th0 + si * delta) for si, wi in zip(s, w))
    hh = g @ Ht @ g / (g @ g)
    ss = np.linspace(0, 1, n_grid)
    Hs = np.array([hess(th0 + si * delta) for si in ss])
    dist = np.sqrt(((Hs - Ht) ** 2).sum(axis=(1, 2)))
    top = np.linalg.eigvalsh(Hs)[:, -1]
    # on this segment |dH/ds|_F <= 2 |x'| (|x| + |1 - x|) <= 2 * 1 * 3 = 6 (x from -1 to 0, y = 0), and
    # lambda_max is 6-Lipschitz too: between grid points the minima are at most 6 h/2 lower
    slack = 6 * (ss[1] - ss[0]) / 2 + 64 * EPS
    return float(dist.min() - slack), float(top.min() - hh - slack), float(hh)


def loss_change_numeric(*, loss_formula=None) -> Evidence:
    r"""EOS-LOSS. :math:`L(\theta_{t+1}) - L(\theta_t) = -\eta \|g\|^2 (1 - \eta \hat h/2)`,
    :math:`\hat h = g^\top \tilde H g / \|g\|^2` with :math:`\tilde H = 2 \int_0^1 (1-s) H(\theta - s \eta g)\,ds`
    by quadrature, on 150 random :math:`(\theta, \eta)` per loss (both signs of the change), on GD
    trajectories (telescoping), and on a period-two orbit.  ``loss_formula(eta, g, H)`` is the formula
    under test (a mutant passes another)."""
    loss_formula = loss_formula or _loss_formula
    ev = Evidence()
    _loss_change_exact_on_random_steps(ev, loss_formula)
    _loss_change_telescopes_on_trajectories(ev, loss_formula)
    _htilde_is_no_pointwise_hessian(ev)
    _weighted_mean_on_two_cycle_is_the_edge(ev)
    return ev


def _loss_change_exact_on_random_steps(ev: Evidence, loss_formula) -> None:
    """On 150 random steps per loss: the formula holds to round-off with Htilde (not with the uniform
    average or the Hessian at the start), its sign is the sign of the change, and both signs occur."""
    rng = context.rng("eos-loss")
    rows, worst, mism, decided, n_dec, n_inc = [], 0.0, 0, 0, 0, 0
    for f in _losses():
        ratios, unif, second = [], [], []
        dec = inc = 0
        for th, eta in _samples(f, rng):
            sd = _step(f, th, eta)
            dL = sd.L1 - sd.L0
            ratios.append(abs(dL - loss_formula(eta, sd.g, sd.Htil)) / sd.tol_loss)
            unif.append(abs(dL - loss_formula(eta, sd.g, sd.Hbar)) / sd.tol_loss)
            second.append(abs(dL - loss_formula(eta, sd.g, sd.H0)) / sd.tol_loss)
            hh = sd.g @ sd.Htil @ sd.g / (sd.g @ sd.g)
            margin = eta * (sd.g @ sd.g) * abs(1 - eta * hh / 2)
            if margin > sd.tol_loss:  # the sign is decided beyond rounding
                decided += 1
                mism += int(np.sign(dL) != np.sign(eta * hh / 2 - 1))
                dec += int(dL < 0)
                inc += int(dL > 0)
        n_dec, n_inc = n_dec + dec, n_inc + inc
        worst = np.maximum(worst, np.max(ratios))
        rows.append([f.name, len(ratios), float(max(ratios)), float(np.median(unif)), float(np.median(second)), int(dec), int(inc)])
    ev.at_most("loss-change-eta-g-2-1-eta-hhat-2-exactly-hhat",
               "loss change = -eta ||g||^2 (1 - eta hhat/2) exactly, hhat from Htilde (3 losses, 450 steps)",
               worst, 1.0,
               r"$\mathrm{tol} = 8 (K+d)\varepsilon \times$ (sum of $|\text{terms}|$ of $L_t$, $L_{t+1}$ and the formula) "
               r"+ rounding of $\theta_{t+1}$ + quadrature estimate $|\tilde H_{64} - \tilde H_{32}|$",
               method="quadrature", metric=r"$\max |\Delta L - \text{formula}| / \mathrm{tol}$",
               numerical_class="roundoff", evidence="float")
    ev.equal("sign-of-the-loss-change-sign-of-eta-hhat-2-1",
             "sign of the loss change = sign of (eta hhat / 2 - 1)", int(mism), 0,
             "the formula is exact, so no mismatch is allowed once the margin exceeds the rounding tolerance",
             method="quadrature",
             metric=f"mismatches among {decided} steps whose sign is decided beyond rounding",
             numerical_class="exact", evidence="float")
    ev.at_least("both-signs-of-the-loss-change-occur-in-the",
                "both signs of the loss change occur in the sample (the sign test is not vacuous)",
                int(min(n_dec, n_inc)), 50,
                r"$\eta$ ranges over 0.3 to 2.5 times $2/(\text{curvature along } g)$, so both sides of the edge "
                "are sampled",
                method="quadrature", metric=r"$\min(\#\text{decreases}, \#\text{increases})$", numerical_class="exact",
                evidence="float")
    ev.tables.append(Table(r"EOS-LOSS: $|\Delta L - \text{formula}|$ / round-off tolerance, for three Hessian averages "
                           r"(only $\tilde H$, weight $2(1-s)$, is exact)",
                           ["loss", "steps", "max (Htilde)", "median (uniform Hbar)", "median (H(theta_t))",
                            "#decrease", "#increase"], rows))


def _loss_change_telescopes_on_trajectories(ev: Evidence, loss_formula) -> None:
    r""":math:`L(\theta_T) - L(\theta_0)` is the sum of the per-step formula along 60 GD steps, per loss."""
    trows, worst_t = [], 0.0
    for f, th0, k in zip(_losses(), [np.array([-1.2, 1.0]), np.ones(3), np.zeros(5)], (1.0, 1.9, 1.9)):
        _, g, H, *_ = f(th0)
        eta = k / np.linalg.eigvalsh(H)[-1]
        th, total, tol, L0 = th0.copy(), 0.0, 0.0, f(th0)[0]
        for _ in range(60):
            sd = _step(f, th, eta)
            total += loss_formula(eta, sd.g, sd.Htil)
            tol += sd.tol_loss
            th = th + sd.delta
        res = abs((f(th)[0] - L0) - total)
        worst_t = np.maximum(worst_t, res / tol)
        trows.append([f.name, f"{eta:.4g}", 60, float(f(th)[0] - L0), float(total), float(res / tol)])
    ev.at_most("telescoping-l-theta-t-l-theta-0-eta-sum-t-g-t-2",
               "telescoping: L(theta_T) - L(theta_0) = -eta sum_t ||g_t||^2 (1 - eta hhat_t/2) on GD trajectories",
               worst_t, 1.0, "per-step round-off tolerances add up along the trajectory",
               method="quadrature",
               metric="max over 3 trajectories ($T = 60$) of |difference| / (sum of per-step tolerances)",
               numerical_class="roundoff", evidence="float")
    ev.tables.append(Table("EOS-LOSS: telescoping on GD trajectories", ["loss", "eta", "T", "L_T - L_0", "sum of formula", "|diff|/tol"], trows))


def _htilde_is_no_pointwise_hessian(ev: Evidence) -> None:
    r"""As printed, :math:`\tilde H_t` would be the Hessian at a point of the step and :math:`\hat h_t` its top
    eigenvalue: on a d = 2 counterexample both certified lower bounds are above rounding."""
    dist, gap, hh = _no_gap_numeric()
    ev.at_most("nogap-numeric-htilde-is-the-hessian-at-a-point",
               "as printed: Htilde_t is the true Hessian at a point of the step (d = 2 counterexample, floats)", dist,
               64 * EPS, r"a certified lower bound of $\min_s \|H(s) - \tilde H_t\|_F$ (grid of 20001 points minus the "
               r"Lipschitz slack); equality somewhere would make it $\le$ rounding ($64\varepsilon$)", method="quadrature",
               metric=r"$\min_{s \in [0, 1]} \|H(\theta_t + s\,\delta_t) - \tilde H_t\|_F$ (lower bound)",
               numerical_class="roundoff", evidence="float")
    ev.at_most("nogap-numeric-hhat-is-the-top-eigenvalue",
               "as printed ('no gap'): hhat_t is the largest Hessian eigenvalue at a point of the step (floats)", gap,
               64 * EPS, rf"a certified lower bound of $\min_s \lambda_{{\max}}(H(s)) - \hat h_t$ ($\hat h_t = {hh:.15g}$); "
               r"no gap somewhere would make it $\le$ rounding", method="quadrature",
               metric=r"$\min_{s \in [0, 1]} \lambda_{\max}(H(\theta_t + s\,\delta_t)) - \hat h_t$ (lower bound)",
               numerical_class="roundoff", evidence="float")


def _weighted_mean_on_two_cycle_is_the_edge(ev: Evidence) -> None:
    r"""On a period-two orbit the :math:`\|g\|^2`-weighted mean of :math:`\hat h_t` is :math:`2/\eta` (no gap)."""
    mean, tol2, closed = _two_cycle_weighted_mean()
    gap = abs(mean - 2 / 2.04)
    ev.at_most("on-a-period-two-orbit-the-g-2-weighted-mean-of",
               "on a period-two orbit the ||g||^2-weighted mean of hhat_t equals 2/eta (no gap)", gap, tol2,
               f"$L_T = L_0$ on the orbit (closed to {closed:.1e}), so the telescoped identity leaves only rounding "
               r"of $L$ and of the 32-node $\hat h$ sums",
               method="quadrature",
               metric=r"$|\sum_t w_t \hat h_t / \sum_t w_t - 2/\eta|$, $L = x^2/2 + x^3/3 + x^4/4$, $\eta = 2.04$, "
                      "40 steps on the orbit",
               numerical_class="roundoff", evidence="float")


# ---------------------------------------------------------------------------
# EOS-P2
# ---------------------------------------------------------------------------

P = np.polynomial.Polynomial
EPS_GRID = [0.0025, 0.005, 0.01, 0.02, 0.04]
R_LOCAL = 0.6  # search box
RHO_LOCAL = 0.35  # an orbit 'near the fixed point': half-amplitude below this


def _kappa(h, a, b):
    return b / 6 - a * a / (2 * h)


@dataclass
class Model1D:
    name: str
    Lp: P  # L'
    h: float
    kappa: float


def _latex_name(name: str) -> str:
    """A model's name ("A: x^2/2 + x^4/4", the loss) with the loss as LaTeX, for report text."""
    label, loss = name.split(": ")
    return f"{label}: $L = {loss}$"


def _models_1d(kappa=None):
    kappa = kappa or _kappa
    out = []
    for name, Lp in (("A: x^2/2 + x^4/4", P([0, 1, 0, 1])), ("B: x^2/2 + x^3/3 + x^4/4", P([0, 1, 1, 1]))):
        h, a, b = Lp.deriv(1)(0), Lp.deriv(2)(0), Lp.deriv(3)(0)
        out.append(Model1D(name, Lp, h, kappa(h, a, b)))
    return out


def _orbits_poly(Lp: P, eta: float):
    r"""All real two-cycles with both points in :math:`[-R, R]`: roots of :math:`G(G(x)) - x` that are not fixed points."""
    G = P([0, 1]) - eta * Lp
    F = G(G) - P([0, 1])
    dF = F.deriv()
    xs = []
    for z in F.roots():
        if abs(z.imag) > 1e-6:
            continue
        x = z.real
        for _ in range(5):  # Newton polish on the real line
            if dF(x) != 0:
                x -= F(x) / dF(x)
        if abs(G(x) - x) > 1e-8 and abs(x) <= R_LOCAL and abs(G(x)) <= R_LOCAL:
            xs.append(x)
    return sorted(xs), G


def _orbits_brentq(Lp: P, eta: float):
    r"""Independent: bracket sign changes of :math:`G(G(x)) - x` on a grid and refine with brentq."""
    G = lambda x: x - eta * Lp(x)
    F = lambda x: G(G(x)) - x
    grid = np.linspace(-R_LOCAL, R_LOCAL, 4000)  # even count: the fixed point 0 is not a node
    Fv = F(grid)
    xs = []
    for i in np.nonzero(np.sign(Fv[:-1]) != np.sign(Fv[1:]))[0]:
        x = brentq(F, grid[i], grid[i + 1], xtol=1e-15, rtol=4 * EPS)
        if abs(G(x) - x) > 1e-8 and abs(G(x)) <= R_LOCAL:
            xs.append(x)
    return sorted(xs)


def _exists_side(kappa):
    r"""'below' if orbits exist for :math:`\eta < \eta_c` (:math:`\kappa > 0`), 'above' otherwise (derived in
    derivations.eos)."""
    return "below" if kappa > 0 else "above"


def _slope(rhos, resid, floor=1e-12):
    r"""Log-log slope of :math:`|\mathrm{resid}|` against :math:`\rho`; inf if the residual is at rounding level
    throughout."""
    resid = np.abs(np.asarray(resid))
    if not np.all(np.isfinite(resid)):  # a NaN residual must fail the slope test, not vanish
        return float("nan")
    if resid.max() <= floor:
        return np.inf
    keep = resid > floor
    return float(np.polyfit(np.log(np.asarray(rhos)[keep]), np.log(resid[keep]), 1)[0])


def _p2_1d(models, side_of=_exists_side, kappa_of=lambda m: m.kappa):
    r"""Per 1-D model and :math:`\eta`: orbits by two methods; returns rows and the check quantities."""
    rows, side_bad, method_gap, slopes, mu_bad, pts = [], 0, 0.0, {}, 0, {}
    for md in models:
        eta_c = 2 / md.h
        rh, res = [], []
        pts[md.name] = []
        for sgn in (-1, 1):
            for e in EPS_GRID:
                eta = eta_c * (1 + sgn * e)
                xs, G = _orbits_poly(md.Lp, eta)
                xb = _orbits_brentq(md.Lp, eta)
                if len(xs) != len(xb):
                    method_gap = np.inf
                elif xs:
                    method_gap = np.maximum(method_gap, float(np.max(np.abs(np.array(xs) - np.array(xb)))))
                side = "below" if sgn < 0 else "above"
                expect = side == side_of(kappa_of(md))
                local = sorted((abs(x - G(x)) / 2, x, G(x)) for x in xs if x < G(x) and abs(x - G(x)) / 2 <= RHO_LOCAL)
                side_bad += bool(local) != expect
                if local:
                    rho, x, y = local[0]  # the branch through the fixed point: smallest half-amplitude
                    mu = (1 - eta * md.Lp.deriv()(x)) * (1 - eta * md.Lp.deriv()(y))
                    mu_bad += int(np.sign(mu - 1) != np.sign(kappa_of(md)))
                    rh.append(rho)
                    res.append(2 / eta - md.h - kappa_of(md) * rho ** 2)
                    pts[md.name].append((eta, rho, mu))
                rows.append([md.name, f"{eta:.4f}", side, len(local), len(xs) // 2, len(xb) // 2,
                             f"{pts[md.name][-1][1]:.4f}" if local else "-", f"{pts[md.name][-1][2]:.4f}" if local else "-"])
        slopes[md.name] = _slope(rh, res)
    return rows, side_bad, method_gap, slopes, mu_bad, pts


# 2-D models: (grad, hess) vectorised over rows, with h = diag(H(0)) and kappa of the derivation
def _sep_grad(X):
    x, y = X[:, 0], X[:, 1]
    return np.stack([x + x ** 3, 3 * y + 3 * y ** 2 + 3 * y ** 3], 1)


def _sep_hess(X):
    x, y = X[:, 0], X[:, 1]
    z = np.zeros_like(x)
    return np.stack([np.stack([1 + 3 * x ** 2, z], 1), np.stack([z, 3 + 6 * y + 9 * y ** 2], 1)], 1)


def _cross_grad(X):
    x, y = X[:, 0], X[:, 1]
    return np.stack([x + 3 * x * y + y ** 2 + x ** 3, 2.5 * y + 1.5 * x ** 2 + 2 * x * y], 1)


def _cross_hess(X):
    x, y = X[:, 0], X[:, 1]
    return np.stack([np.stack([1 + 3 * y + 3 * x ** 2, 3 * x + 2 * y], 1), np.stack([3 * x + 2 * y, 2.5 + 2 * x], 1)], 1)


def _models_2d(kappa=None):
    r"""(name, grad, hess, h along the direction, direction index, :math:`\kappa` (general formula),
    :math:`\kappa` separable-only)."""
    kappa = kappa or _kappa
    sep = "x^2/2 + x^4/4 + 3y^2/2 + y^3 + 3y^4/4"
    cross = "x^2/2 + 5y^2/4 + 3x^2y/2 + xy^2 + x^4/4"
    return [
        (f"separable {sep}, e_1", _sep_grad, _sep_hess, 1.0, 0, kappa(1, 0, 6), kappa(1, 0, 6)),
        (f"separable {sep}, e_2", _sep_grad, _sep_hess, 3.0, 1, kappa(3, 6, 18), kappa(3, 6, 18)),
        # T_111 = 0, T_112 = 3, Q_1111 = 6, h = (1, 2.5): kappa_1 = 1 - 9/(2 * 2.5) = -0.8; separable part alone: +1
        # (T_122 = 2 does not enter kappa_1 but breaks x -> -x, so the orbit is not exactly on the axis)
        (f"coupled {cross}, e_1", _cross_grad, _cross_hess, 1.0, 0, 1 - 0.5 * 9 / 2.5, 1.0),
    ]


def _orbits_2d(grad, hess, eta, rng, n_starts=1600, R=R_LOCAL):
    r"""Vectorised Newton on :math:`F(x) = G(G(x)) - x` from a grid plus random starts; distinct local two-cycles."""
    g1 = np.linspace(-R, R, 30)
    X = np.concatenate([np.stack(np.meshgrid(g1, g1), -1).reshape(-1, 2), rng.uniform(-R, R, size=(n_starts - 900, 2))])
    G = lambda Z: Z - eta * grad(Z)
    JG = lambda Z: np.eye(2) - eta * hess(Z)
    for _ in range(40):
        Y = G(X)
        F = G(Y) - X
        J = JG(Y) @ JG(X) - np.eye(2)
        with np.errstate(all="ignore"):
            step = np.linalg.solve(J, F[..., None])[..., 0]
        step[~np.isfinite(step)] = 0
        X = np.clip(X - step, -10, 10)
    Y = G(X)
    ok = (np.linalg.norm(G(Y) - X, axis=1) < 1e-12) & (np.linalg.norm(Y - X, axis=1) > 1e-8)
    ok &= (np.abs(X).max(1) <= R) & (np.abs(Y).max(1) <= R)
    orbits = []
    for x, y in zip(X[ok], Y[ok]):
        if not any(min(np.linalg.norm(x - a), np.linalg.norm(x - b)) < 1e-9 for a, b in orbits):
            orbits.append((x, y))
    return orbits


def _p2_2d(models, rng, kappa_index=5):
    rows, side_bad, slopes, dir_slopes, pts = [], 0, {}, {}, {}
    for md in models:
        name, grad, hess, h, idx, *kap = md
        kappa = kap[kappa_index - 5]
        eta_c = 2 / h
        rh, res, r_perp = [], [], []
        pts[name] = []
        for sgn in (-1, 1):
            for e in EPS_GRID:
                eta = eta_c * (1 + sgn * e)
                orbs = _orbits_2d(grad, hess, eta, rng)
                # local orbits bifurcating along this eigen-direction: midpoint near 0, r mostly along e_idx
                along = [(x, y) for x, y in orbs if abs((x - y)[idx]) >= abs((x - y)[1 - idx])
                         and np.linalg.norm(x - y) / 2 <= RHO_LOCAL]
                side = "below" if sgn < 0 else "above"
                side_bad += bool(along) != (side == _exists_side(kappa))
                if along:
                    x, y = min(along, key=lambda o: np.linalg.norm(o[0] - o[1]))  # the branch through 0
                    r = (x - y) / 2
                    rho = float(np.linalg.norm(r))
                    rh.append(rho)
                    res.append(2 / eta - h - kappa * rho ** 2)
                    r_perp.append(abs(r[1 - idx]))
                    pts[name].append((eta, rho))
                rows.append([name, f"{eta:.4f}", side, len(along), f"{pts[name][-1][1]:.4f}" if along else "-",
                             f"{r_perp[-1]:.2e}" if along else "-"])
        slopes[name] = _slope(rh, res)
        dir_slopes[name] = _slope(rh, r_perp)
        rows.append([name, "slopes", "", "", f"law residual: {slopes[name]:.2f}", f"r_perp: {dir_slopes[name]:.2f}"])
    return rows, side_bad, slopes, dir_slopes, pts


def _exact_branch_1d(Lp: P, rhos):
    r"""The exact orbit branch, parametrised by :math:`\rho`: m from the sum equation (root nearest 0),
    :math:`\eta` from the difference equation."""
    etas = []
    m = P([0, 1])
    for rho in rhos:
        S = Lp(m + rho) + Lp(m - rho)
        roots = S.roots()
        mr = roots[np.argmin(np.abs(roots))].real
        etas.append(4 * rho / (Lp(mr + rho) - Lp(mr - rho)))
    return np.array(etas)


SLOPE_MIN = 3.0


def period_two_numeric(*, kappa=None, kappa_index: int = 5) -> Evidence:
    r"""EOS-P2. Two-cycles of :math:`G(x) = x - \eta L'(x)` near the fixed point 0, for
    :math:`\eta = \eta_c (1 \pm e)`, :math:`e \in \{0.0025, \dots, 0.04\}`: 1-D by complete enumeration (real
    roots of the degree-9 polynomial :math:`G(G(x)) - x`, Newton-polished) and independently by brentq on a
    grid; 2-D by vectorised Newton from 1600 starts.  Checked: orbits exist exactly on the side given by
    the sign of :math:`\kappa`; the half-amplitude law :math:`2/\eta = L'' + \kappa\rho^2` holds to
    :math:`O(\rho^4)` (log-log slope of the residual :math:`\ge 3`: a wrong :math:`\kappa` leaves an
    :math:`O(\rho^2)` residual, slope 2); the orbit multiplier exceeds 1 iff :math:`\kappa > 0` (sub- vs
    supercritical); in 2-D the orbit lies along an eigen-direction (:math:`r_\perp = o(\rho)`).
    ``kappa(h, a, b)`` and ``kappa_index`` select the formula under test (a mutant passes another)."""
    ev = Evidence()
    models, pts = _one_d_orbits_follow_the_derived_law(ev, kappa)
    models2, pts2 = _two_d_orbits_follow_the_derived_law(ev, kappa, kappa_index)
    ev.figures.append(_draw_p2(models, pts, models2, pts2))
    return ev


def _one_d_orbits_follow_the_derived_law(ev: Evidence, kappa):
    """1-D: the side, the two enumerations, the half-amplitude law and the multiplier; returns the models
    and the orbit points (for the figure)."""
    models = _models_1d(kappa)
    rows, side_bad, gap, slopes, mu_bad, pts = _p2_1d(models)
    ev.equal("1-d-period-two-orbits-exist-exactly-on-the-side",
             "1-D: period-two orbits exist exactly on the side of eta_c given by sign(kappa)", side_bad, 0,
             "the enumeration is complete (all real roots of a polynomial), so any contradiction counts",
             method="numpy roots",
             metric=r"number of $(\text{model}, \eta)$ pairs, out of 20, where orbit existence contradicts the derived side",
             numerical_class="exact", evidence="float")
    ev.at_most("1-d-polynomial-root-enumeration-and-brentq-find",
               "1-D: polynomial-root enumeration and brentq find the same orbits", gap, 1e-10,
               r"both are refined to $\approx 10^{-15}$; $10^{-10}$ allows for $F'(x) = \mu - 1 \approx 8\kappa\rho^2$ "
               "as small as 0.03 at the root",
               method="scipy brentq",
               metric=r"$\max |x_{\mathrm{roots}} - x_{\mathrm{brentq}}|$ over all orbits (inf if the counts differ)",
               numerical_class="iterative", evidence="float")
    worst = np.min(list(slopes.values()))
    ev.at_least("1-d-half-amplitude-law-2-eta-l-kappa-rho-2-o-rho",
                "1-D: half-amplitude law 2/eta = L'' + kappa rho^2 + O(rho^4)", worst, SLOPE_MIN,
                r"the derived remainder is $O(\rho^4)$ (slope 4); any other $\kappa$ leaves $c\rho^2$ (slope 2); "
                "3 separates them",
                method="numpy roots",
                metric=r"min over models of the log-log slope of $|2/\eta - L'' - \kappa\rho^2|$ vs $\rho$ "
                       "(inf = rounding level)",
                shown=f">= {SLOPE_MIN}", numerical_class="roundoff", evidence="float")
    ev.equal("1-d-orbit-multiplier-g-x-g-y-1-iff-kappa-0",
             "1-D: orbit multiplier G'(x)G'(y) > 1 iff kappa > 0 (subcritical unstable, supercritical stable)",
             int(mu_bad), 0,
             r"derived $\mu = 1 + 8\kappa\rho^2/L'' + O(\rho^4)$; the sign is decided at these amplitudes",
             method="numpy roots", metric="number of orbits whose multiplier is on the wrong side of 1",
             numerical_class="exact", evidence="float")
    ev.tables.append(Table(r"EOS-P2 (1-D): local two-cycles of $G(x) = x - \eta L'(x)$, $\eta_c = 2$",
                           ["model", "eta", "side of eta_c", "#local orbits (rho <= 0.35)", "#orbits in box (roots)",
                            "#orbits in box (brentq)", "rho", "multiplier"], rows))
    ev.notes.append(r"1-D $\kappa$: " + "; ".join(f"{_latex_name(m.name)}: $\\kappa = {m.kappa:g}$ "
                                                  f"({_exists_side(m.kappa)} $\\eta_c$)" for m in models))
    return models, pts


def _two_d_orbits_follow_the_derived_law(ev: Evidence, kappa, kappa_index: int):
    r"""2-D: the side (with the cross term in :math:`\kappa_1`), the half-amplitude law and the direction of
    the orbit; returns the models and the orbit points (for the figure)."""
    rng = context.rng("eos-p2")
    models2 = _models_2d(kappa)
    rows2, side_bad2, slopes2, dslopes, pts2 = _p2_2d(models2, rng, kappa_index)
    ev.equal("2-d-orbits-along-each-eigen-direction-exist",
             "2-D: orbits along each eigen-direction exist exactly on the side given by kappa_i (incl. the cross term)",
             side_bad2, 0,
             r"1600 Newton starts cover the local box densely ($30 \times 30$ grid + random); any contradiction counts",
             method="newton",
             metric=r"number of $(\text{model}, \eta)$ pairs, out of 30, contradicting the derived side",
             numerical_class="exact", evidence="float")
    w2 = np.min(list(slopes2.values()))
    ev.at_least("2-d-half-amplitude-law-with-kappa-1-q-1111-6-1-2",
                "2-D: half-amplitude law with kappa_1 = Q_1111/6 - 1/2 sum_k T_11k^2/h_k", w2, SLOPE_MIN,
                r"as in 1-D: $O(\rho^4)$ remainder for the right $\kappa$, $O(\rho^2)$ for a wrong one",
                method="newton", metric=r"min log-log slope of $|2/\eta - h_i - \kappa_i\rho^2|$ vs $\rho$",
                shown=f">= {SLOPE_MIN}", numerical_class="iterative", evidence="float")
    wd = np.min(list(dslopes.values()))
    ev.at_least("2-d-the-half-amplitude-vector-lies-along-the",
                "2-D: the half-amplitude vector lies along the eigen-direction: r_perp = O(rho^3)", wd, 2.5,
                r"derived $r = \rho e_i + O(\rho^3)$ (slope 3); a non-eigen direction gives $r_\perp \sim \rho$ (slope 1)",
                method="newton", metric=r"min log-log slope of $|r_\perp|$ vs $\rho$ (inf = exactly on the axis)",
                numerical_class="iterative", evidence="float")
    ev.tables.append(Table("EOS-P2 (2-D): local two-cycles along an eigen-direction",
                           ["model / direction", "eta", "side of eta_c", "#local orbits (rho <= 0.35)", "rho", "|r_perp|"], rows2))
    ev.notes.append(r"The coupled 2-D model has $\kappa_1 = -0.8$ (supercritical) although its separable part alone "
                    r"gives $+1$ (subcritical): the cross term $T_{112}$ changes the side on which the orbits appear.")
    return models2, pts2


def _draw_p2(models, pts, models2, pts2) -> Figure:
    plt = context.pyplot()

    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    for ax, md in zip(axes[:2], models):
        rr = np.linspace(1e-3, 0.32, 200)
        ax.plot(_exact_branch_1d(md.Lp, rr), rr, "k-", lw=1, label="exact branch (sum/difference eqs)")
        lead = 2 / (md.h + md.kappa * rr ** 2)
        ax.plot(lead, rr, "C1--", label=r"leading law $2/\eta = L'' + \kappa\rho^2$")
        P_ = np.array(pts[md.name])
        stable = P_[:, 2] < 1
        ax.plot(P_[stable, 0], P_[stable, 1], "o", color="C0", label="numeric orbit, stable")
        ax.plot(P_[~stable, 0], P_[~stable, 1], "o", mfc="none", color="C3", label="numeric orbit, unstable")
        ax.axvline(2 / md.h, color="grey", lw=0.8, ls=":")
        ax.set_title(f"{_latex_name(md.name)}\n$\\kappa = {md.kappa:g}$: "
                     f"{'subcritical' if md.kappa > 0 else 'supercritical'}", fontsize=9)
        ax.set_xlabel(r"learning rate $\eta$ ($\eta_c$ dotted)")
        ax.set_ylabel(r"half-amplitude $\rho$")
        ax.set_xlim(2 / md.h * 0.9, 2 / md.h * 1.1)
        ax.legend(fontsize=7)
    ax = axes[2]
    name, _, _, h, _, kap, kap_sep = models2[2]
    rr = np.linspace(1e-3, 0.32, 200)
    ax.plot(2 / (h + kap * rr ** 2), rr, "C1--", label=rf"general $\kappa_1 = {kap:g}$")
    ax.plot(2 / (h + kap_sep * rr ** 2), rr, "C2:", label=rf"separable part only, $\kappa = {kap_sep:g}$")
    P_ = np.array(pts2[name])
    ax.plot(P_[:, 0], P_[:, 1], "o", color="C0", label="numeric orbits (Newton, 2-D)")
    ax.axvline(2 / h, color="grey", lw=0.8, ls=":")
    ax.set_xlim(2 / h * 0.9, 2 / h * 1.1)
    ax.set_title(name + "\nthe cross term moves the orbits past $\\eta_c$", fontsize=9)
    ax.set_xlabel(r"learning rate $\eta$")
    ax.legend(fontsize=7)
    path = context.save_figure(fig, "eos-p2-bifurcation")
    return Figure(path, r"EOS-P2: bifurcation diagrams (half-amplitude $\rho$ of the local two-cycle against $\eta$). "
                        "Points: orbits found numerically; solid: exact branch; dashed: the derived leading law.")


# ---------------------------------------------------------------------------
# EOS-SHARP: full-batch GD on a small tanh MLP
# ---------------------------------------------------------------------------

# Decision rule, fixed before any training run was looked at (see sharpness_gd's docstring).
SHARP_K = (2, 4, 8)  # 2/eta = k * (sharpness at initialisation)
STEPS_PER_K = 5000  # T = 5000 k steps, i.e. the same gradient-flow time eta T = 10^4 / S_0 for each eta
EVERY = 50  # sharpness every 50 steps
REACH = 0.9  # must reach 0.9 * 2/eta
WINDOW = 0.25  # last quarter of training
SETTLE = (0.9, 1.1)  # median of S/(2/eta) over the window
BAND = (0.8, 1.25)  # 10th / 90th percentiles of S/(2/eta) over the window
N_PTS, WIDTH = 200, 50
POST_HOC = (0.8, 0.9)  # post-hoc runs (not part of the decision): 2/eta = frac x the converged sharpness
POST_STEPS = 10000


class MLP:
    r""":math:`f(x) = w_2^\top \tanh(W_1 x + b_1) + b_2`, loss :math:`\frac{1}{2n}\sum_i (f(x_i) - y_i)^2`;
    flat parameters."""

    def __init__(self, X, y, m):
        self.X, self.y, self.m = X, y, m
        self.n, self.d = X.shape
        self.P = m * self.d + 2 * m + 1

    def unpack(self, p):
        m, d = self.m, self.d
        return p[: m * d].reshape(m, d), p[m * d: m * d + m], p[m * d + m: m * d + 2 * m], p[-1]

    def loss_grad(self, p):
        W1, b1, w2, b2 = self.unpack(p)
        A = np.tanh(self.X @ W1.T + b1)
        e = A @ w2 + b2 - self.y
        dF = e / self.n
        dZ = np.outer(dF, w2) * (1 - A * A)
        return 0.5 * np.sum(e * e) / self.n, np.concatenate([(dZ.T @ self.X).ravel(), dZ.sum(0), A.T @ dF, [dF.sum()]])

    def hvp(self, p, v):
        """Exact Hessian-vector product by the R-operator (forward-over-reverse, by hand)."""
        W1, b1, w2, b2 = self.unpack(p)
        V1, c1, v2, c2 = self.unpack(v)
        A = np.tanh(self.X @ W1.T + b1)
        S = 1 - A * A
        dF = (A @ w2 + b2 - self.y) / self.n
        RA = S * (self.X @ V1.T + c1)  # R{A}
        RdF = (RA @ w2 + A @ v2 + c2) / self.n  # R{dF}
        dA = np.outer(dF, w2)
        RdZ = (np.outer(RdF, w2) + np.outer(dF, v2)) * S - 2 * dA * A * RA  # R{dA * S}
        return np.concatenate([(RdZ.T @ self.X).ravel(), RdZ.sum(0), RdF @ A + dF @ RA, [RdF.sum()]])

    def hessian(self, p):
        return np.array([self.hvp(p, e) for e in np.eye(self.P)])


def _problem(label="eos-sharp", n=N_PTS, m=WIDTH):
    rng = context.rng(label)
    X = rng.normal(size=(n, 2))
    y = np.sin(2 * X[:, 0]) * np.cos(X[:, 1])
    net = MLP(X, y, m)
    p0 = np.concatenate([rng.normal(size=m * 2) / np.sqrt(2), np.zeros(m), rng.normal(size=m) / np.sqrt(m), [0.0]])
    return net, p0, rng


def top_eig(net: MLP, p, v0, rtol=1e-3, maxit=300):
    r"""Power iteration on :math:`Hv`; stops when the residual :math:`\|Hv - \lambda v\| \le \mathrm{rtol}\,|\lambda|`
    (then :math:`\lambda` is within that residual of an eigenvalue, Weinstein's bound).  Returns
    (lam, v, residual, iterations)."""
    v = v0 / np.linalg.norm(v0)
    Hv = net.hvp(p, v)
    for it in range(1, maxit + 1):
        lam = v @ Hv
        res = np.linalg.norm(Hv - lam * v)
        if res <= rtol * abs(lam):
            return lam, v, res, it
        v = Hv / np.linalg.norm(Hv)
        Hv = net.hvp(p, v)
    return v @ Hv, v, np.linalg.norm(Hv - (v @ Hv) * v), maxit


def _hvp_checks(ev, net, p, rng):
    """Exact HVP vs the complex-step derivative of the analytic gradient (no cancellation) and vs a
    central difference with a Richardson error estimate."""
    v = rng.normal(size=net.P)
    Hv = net.hvp(p, v)
    hc = 1e-20
    cs = net.loss_grad(p + 1j * hc * v)[1].imag / hc  # exact to rounding: no subtraction
    rel_cs = float(np.linalg.norm(Hv - cs) / np.linalg.norm(Hv))
    ev.at_most("exact-hvp-r-operator-complex-step-derivative-of",
               "exact HVP (R-operator) = complex-step derivative of the gradient", rel_cs, 1e-10,
               r"the complex step has no subtractive cancellation (error $\approx\varepsilon$); both sides are sums over "
               r"$nm = 10^4$ products, $\gamma_N \approx 2 \times 10^{-12}$; $10^{-10}$ leaves a factor 50 for "
               "cancellation between the two Hessian parts",
               method="complex step",
               metric=r"$\|Hv - \operatorname{Im} \nabla L(p + i h v)/h\| / \|Hv\|$, $h = 10^{-20}$",
               numerical_class="roundoff", evidence="float")
    g = lambda q: net.loss_grad(q)[1]
    fd = lambda h: (g(p + h * v) - g(p - h * v)) / (2 * h)
    h = 1e-4
    f1, f2 = fd(h), fd(h / 2)
    trunc = 4 / 3 * np.linalg.norm(f1 - f2)  # Richardson: error of the h/2 difference ~ |f1 - f2|/3, of f1 ~ 4/3|f1 - f2|
    gabs = np.linalg.norm(np.abs(g(p))) + np.linalg.norm(v) * np.linalg.norm(Hv)
    rnd = 4 * net.n * EPS * gabs / h
    err = float(np.linalg.norm(f1 - Hv))
    ev.at_most("exact-hvp-central-difference-of-the-analytic",
               "exact HVP = central difference of the analytic gradient within its error bound", err,
               float(2 * trunc + rnd),
               r"truncation estimated by Richardson ($\tfrac43 |\mathrm{FD}(h) - \mathrm{FD}(h/2)|$, doubled) plus "
               r"rounding $4 n \varepsilon |g|/h$",
               method="finite differences",
               metric=r"$\|(g(p+hv) - g(p-hv))/(2h) - Hv\|$, $h = 10^{-4}$",
               numerical_class="roundoff", evidence="float")


def _train(net, p0, eta, steps, v0):
    p = p0.copy()
    v = v0
    S, L, it_max, bad = [], [], 0, 0
    for t in range(steps + 1):
        if t % EVERY == 0:
            lam, v, res, it = top_eig(net, p, v)
            it_max = max(it_max, it)
            bad += res > 1e-3 * abs(lam)
            S.append((t, lam))
        loss, g = net.loss_grad(p)
        L.append(loss)
        if not np.isfinite(loss):
            raise Inconclusive(f"GD diverged at eta = {eta:g}, step {t}")
        p -= eta * g
    return p, np.array(S), np.array(L), bad, it_max, v


def _decide(S, eta, steps):
    r"""The fixed decision rule on a sharpness trace S = [(step, :math:`S_t`)]: (reach step or None, median,
    10th and 90th percentile of :math:`S_t/(2/\eta)` over the last quarter, supported?)."""
    ratio = S[:, 1] / (2 / eta)
    win = ratio[S[:, 0] >= (1 - WINDOW) * steps]
    reach = S[np.nonzero(ratio >= REACH)[0][0], 0] if np.any(ratio >= REACH) else None
    med, q10, q90 = float(np.median(win)), float(np.quantile(win, 0.1)), float(np.quantile(win, 0.9))
    ok = reach is not None and SETTLE[0] <= med <= SETTLE[1] and BAND[0] <= q10 and q90 <= BAND[1]
    return reach, med, q10, q90, ok


def sharpness_gd() -> Evidence:
    r"""Full-batch GD on a 2-layer tanh MLP (width 50, 200 points :math:`x \sim N(0, I_2)`,
    :math:`y = \sin(2x_1)\cos(x_2)`, MSE), sharpness :math:`S_t = \lambda_{\max}(\nabla^2 L)` by power
    iteration on exact HVPs every 50 steps.

    Decision rule, fixed in this docstring before any training run was looked at:
    learning rates with :math:`2/\eta = k S_0`, :math:`k \in \{2, 4, 8\}` (:math:`S_0` = sharpness at
    initialisation, so GD must raise the sharpness by 2x-8x: 'drives' is tested, not inherited), each
    trained for 5000 k steps (the same gradient-flow time :math:`\eta T` for every :math:`\eta`).  The
    claim 'GD drives the largest Hessian eigenvalue to :math:`2/\eta`' is supported for a learning rate when

    * (reach)  :math:`S_t \ge 0.9\,(2/\eta)` at some measured step, and
    * (settle) the median of :math:`S_t/(2/\eta)` over the last quarter of training is in [0.9, 1.1], and
    * (hover)  its 10th and 90th percentiles there are within [0.8, 1.25]

    (Cohen et al. report the sharpness hovering at, or slightly above, :math:`2/\eta` with oscillations).
    A learning rate failing any of the three refutes the claim as stated (unconditionally).
    """
    ev = Evidence()
    _state_the_decision_rule(ev)
    t0 = time.time()
    net, p0, rng = _problem()
    _hvp_checks(ev, net, p0, rng)
    v0 = rng.normal(size=net.P)
    S0, v, _, _ = top_eig(net, p0, v0, rtol=1e-8, maxit=5000)
    rows, fails, traces = _pre_registered_runs(ev, net, p0, v, S0)
    S_inf, post = _post_hoc_runs(ev, net, p0, v, traces)
    if fails:
        ev.finding = _not_unconditionally(rows, fails, S0, S_inf, post)
    ev.figures.append(_draw_sharp(traces, S0))
    ev.notes.append(f"Initial sharpness $S_0 = {S0:.4f}$; run time {time.time() - t0:.1f} s. In the post-hoc runs the "
                    f"edge is only {POST_HOC[0] * S_inf / S0:.2f}-{POST_HOC[-1] * S_inf / S0:.2f} "
                    "times $S_0$ (this network sharpens by under a third in total), so 'reaching' it is a short climb.")
    return ev


def _state_the_decision_rule(ev: Evidence) -> None:
    """The claim made precise, the decision rule and the set-up, as steps."""
    ev.step(r"Made precise: the abstract states the phenomenon without conditions ('full-batch gradient descent on "
            r"neural networks drives the largest Hessian eigenvalue to $2/\eta$ ... from arbitrary initialization'). "
            r"We test it as stated: for learning rates whose edge lies above the initial sharpness $S_0$, the "
            r"sharpness $S_t = \lambda_{\max}(\nabla^2 L(\theta_t))$ must rise to and then stay near $2/\eta$.",
            r"2/\eta = k\,S_0,\ k\in\{2,4,8\},\quad T = 5000\,k\ \text{steps}\ (\eta T = 10^4/S_0)")
    ev.step(r"Made precise ('drives ... to'): reach $= \exists t: S_t \ge 0.9\cdot 2/\eta$; settle $=$ median of "
            r"$S_t/(2/\eta)$ over the last quarter in $[0.9, 1.1]$; hover $=$ its 10th/90th percentiles in $[0.8, 1.25]$. "
            r"Fixed before any run was looked at; the post-hoc runs further down are not part of the decision.")
    ev.step(r"Network and data (our choice; the abstract names none): 2-layer tanh MLP, width 50, 200 points "
            r"$x\sim N(0,I_2)$, $y = \sin(2x_1)\cos(x_2)$, loss $\frac{1}{2n}\sum_i (f(x_i)-y_i)^2$; sharpness by power "
            r"iteration on exact Hessian-vector products (R-operator), every 50 steps.")


def _pre_registered_runs(ev: Evidence, net: MLP, p0, v, S0):
    r"""The runs at :math:`2/\eta = k S_0`, :math:`k \in` SHARP_K: their table, the check that power iteration
    found the top eigenvalue, and the decision for each k. Returns (rows, failing k, traces)."""
    # the power-iteration sharpness is the top of the spectrum (dense Hessian from P HVPs)
    rows, fails, traces, dense_gap = [], [], {}, 0.0
    for k in SHARP_K:
        eta = 2 / (k * S0)
        p, S, L, bad, it_max, _ = _train(net, p0, eta, STEPS_PER_K * k, v)
        reach, med, q10, q90, ok = _decide(S, eta, STEPS_PER_K * k)
        if not ok:
            fails.append(k)
        Hd = net.hessian(p)
        top = np.linalg.eigvalsh((Hd + Hd.T) / 2)[-1]
        lam, _, res, _ = top_eig(net, p, v)
        dense_gap = max(dense_gap, abs(lam - top) / max(res, 1e-12 * abs(top)))
        traces[k] = (eta, S, L)
        rows.append([f"{k} S_0", f"{eta:.4g}", f"{2 / eta:.3f}", STEPS_PER_K * k, "never" if reach is None else int(reach),
                     med, q10, q90, float(L[0]), float(L[-1]), int(bad), int(it_max)])
    ev.tables.append(Table(r"EOS-SHARP: sharpness $S_t$ against $2/\eta$ (window = last quarter of training)",
                           ["2/eta", "eta", "2/eta value", "steps", "first step S >= 0.9 (2/eta)", "median S/(2/eta)",
                            "10th pct", "90th pct", "loss at 0", "final loss", "power-it. not converged", "max iters"], rows))
    ev.at_most("power-iteration-returns-the-top-hessian",
               "power iteration returns the top Hessian eigenvalue (dense Hessian at the end of each run)",
               dense_gap, 1.0,
               r"for unit $v$, some eigenvalue lies within $\|Hv - \lambda v\|$ of $\lambda$; it must be the largest",
               method="numpy eigvalsh",
               metric=r"$\max |\lambda_{\mathrm{power}} - \lambda_{\max}(\text{dense})|$ / Weinstein residual bound",
               numerical_class="iterative", evidence="float")
    for row, k in zip(rows, SHARP_K):
        med, q10, q90 = row[5], row[6], row[7]
        passed = k not in fails
        ev.check(f"2/eta = {k} S_0: sharpness rises to 2/eta and hovers there", "numpy",
                 r"reach step; median, 10th, 90th percentile of $S/(2/\eta)$ over the last quarter",
                 f"reach {row[4]}, median {med:.3f}, [{q10:.3f}, {q90:.3f}]",
                 f"reach; median in {list(SETTLE)}; percentiles in {list(BAND)}", passed,
                 "thresholds fixed before the runs (see the docstring): within 10% at the median, hovering within -20%/+25%",
                 key=f"2-eta-{k}-s-0-sharpness-rises-to-2-eta-and-hovers-there", numerical_class="iterative", evidence="float")
    return rows, fails, traces


def _post_hoc_runs(ev: Evidence, net: MLP, p0, v, traces):
    r"""Post hoc (added after the runs above were seen; not part of the decision): learning rates whose
    edge :math:`2/\eta` lies below the sharpness :math:`S_\infty` that the first run converged to, as in
    Cohen et al.  Returns (:math:`S_\infty`, the runs)."""
    S_inf = float(np.median(traces[SHARP_K[0]][1][-10:, 1]))
    post = {}
    for frac in POST_HOC:
        eta = 2 / (frac * S_inf)
        _, S, L, bad, it_max, _ = _train(net, p0, eta, POST_STEPS, v)
        reach, med, q10, q90, _ = _decide(S, eta, POST_STEPS)
        post[frac] = (eta, S, L, reach, med, q10, q90)
        traces[f"post {frac}"] = (eta, S, L)
    ev.tables.append(Table(r"EOS-SHARP, post hoc (chosen after the runs above, not part of the decision): $2/\eta$ below "
                           f"the sharpness $S_\\infty = {S_inf:.3f}$ that GD converged to at $2/\\eta = {SHARP_K[0]} S_0$",
                           ["2/eta", "eta", "steps", "first step S >= 0.9 (2/eta)", "median S/(2/eta)", "10th pct",
                            "90th pct", "final loss"],
                           [[f"{frac} S_inf", f"{e:.4g}", POST_STEPS, "never" if r is None else int(r), md, a, b, float(L[-1])]
                            for frac, (e, S, L, r, md, a, b) in post.items()]))
    return S_inf, post


def _not_unconditionally(rows, fails, S0, S_inf, post) -> str:
    """The finding when a pre-registered run fails: what holds is the conditional form."""
    failed = ", ".join(f"${k} S_0$" for k in fails)
    below = ", ".join(rf"${f} S_\infty$" for f in POST_HOC)
    return (
        f"Not unconditionally. For the pre-registered learning rates ($2/\\eta$ = {failed}, "
        f"$S_0 = {S0:.2f}$) the sharpness rose only from $S_0$ to about {S_inf:.2f} = {S_inf / S0:.2f} $S_0$ while the "
        f"loss converged ({rows[0][9]:.1e}), i.e. to {', '.join(f'{r[5]:.2f}' for r in rows)} of $2/\\eta$, and stayed "
        "there: GD converged below the edge, as gradient flow would. Post hoc, with $2/\\eta$ placed below that limit "
        f"({below}), the median of $S/(2/\\eta)$ over the last quarter was "
        f"{', '.join(f'{v[4]:.3f}' for v in post.values())}. What holds on this network is the conditional form "
        "(Cohen et al.): the sharpness is driven to $2/\\eta$ when $2/\\eta$ lies below the sharpness the gradient-flow "
        "trajectory would reach; otherwise GD converges to a minimum flatter than $2/\\eta$.")


def _draw_sharp(traces, S0) -> Figure:
    plt = context.pyplot()

    fig, (a1, a2) = plt.subplots(1, 2, figsize=(12, 4))
    for i, (k, (eta, S, L)) in enumerate(traces.items()):
        c = f"C{i}"
        tag = " (post hoc)" if isinstance(k, str) else ""
        a1.plot(S[:, 0] * eta, S[:, 1], c, lw=1, label=rf"$\eta = {eta:.3g}$" + tag)
        a1.axhline(2 / eta, color=c, ls="--", lw=0.8)
        a2.semilogy(np.arange(len(L)) * eta, L, c, lw=0.8)
    a1.set_xlabel(r"time $\eta t$")
    a1.set_ylabel("sharpness (largest Hessian eigenvalue)")
    a1.set_title(r"sharpness; dashed: $2/\eta$")
    a1.legend(fontsize=8)
    a2.set_xlabel(r"time $\eta t$")
    a2.set_ylabel("training loss")
    path = context.save_figure(fig, "eos-sharp")
    return Figure(path, f"EOS-SHARP: full-batch GD on a tanh MLP; sharpness by power iteration on exact HVPs "
                        f"(every {EVERY} steps) against $2/\\eta$ (dashed), $S_0 = {S0:.3f}$, time axis $\\eta t$; the "
                        "three pre-registered runs lie on top of each other (they follow gradient flow). Right: "
                        "training loss.")
