r"""FD-FIG3: the paper's Figure 3 redrawn from exact solves (d = 2), and what "close" means.

The paper's exact points are not given; we draw one instance on the figure's scale (five
templates within the unit square, weights labelled, :math:`\|z\| \approx 1`) and, so that the
conclusion does not rest on one picture, an ensemble of 200 random d = 2 instances on the same scale
(templates :math:`\sim N(0, I/2)`, :math:`u \sim \mathrm{Dirichlet}(1)`, :math:`z \sim N(0, I/2)`).

The ensemble's scale is a judgement call (the paper fixes none), and by the exact scaling law of
(7) (derivations/scaling.py) it is :math:`\alpha` in disguise: the closeness checks carry their
sensitivity to it over a declared range, and the claim records the verdict along the scale (``invariance``).

"Close" is made precise as the relative error

.. math::
    e(\alpha) = \frac{\|h_{(16)} - \hat h\|}{\|\hat h - \mu\|}:

the error of (16) as a fraction of the shift away from :math:`\mu` that it is meant to capture.
Thresholds, fixed before looking at the numbers: :math:`e \le 0.25` at :math:`\alpha` = 0.5 and 1
(median over the ensemble, and on the drawn instance), and the median of e increasing in :math:`\alpha`.
"""

from __future__ import annotations

import numpy as np

from attnverify import context, dual
from attnverify.batched import solve_dual_instance
from attnverify.evidence import Evidence, Figure, Inconclusive, Table, slug
from attnverify.primal import solve_primal_cvxpy
from attnverify.checks._common import require
from attnverify.checks import fig3_scale as fs

ALPHAS = [0.1, 0.25, 0.5, 1.0, 2.0]
CLOSE = 0.25
CLOSE_ALPHAS = (0.5, 1.0)  # the alphas at which Fig 3 calls (16) close
T_FIG = np.array([[0.0, 0.0], [1.0, 0.1], [0.2, 0.9], [0.9, 1.0], [0.5, 0.45]])
U_FIG = np.array([0.3, 0.15, 0.2, 0.1, 0.25])
Z_FIG = np.array([0.9, 0.6])


def _exact_h(T, u, z, a):
    sol = solve_dual_instance(T, u, z, a, rtol=1e-12)
    if not sol.converged:
        raise Inconclusive(f"the batched dual solver did not converge on (7) at alpha={a}")
    return dual.h_hat(T, u, sol.lam)


def _rel_err(T, u, z, a):
    r""":math:`e(\alpha) = \|h_{(16)} - \hat h\| / \|\hat h - \mu\|` on one instance."""
    h = _exact_h(T, u, z, a)
    h16 = dual.attention_16(T, u, z, a)
    return float(np.linalg.norm(h16 - h) / np.linalg.norm(h - T.T @ u))


def figure_3() -> Evidence:
    r"""FD-FIG3. (16) is close to the exact :math:`\hat h` at :math:`\alpha` = 0.5 and 1 (on the drawn
    instance and in the median of the ensemble) and its error grows with :math:`\alpha`; the verdict
    "close" depends on the scale of the instances, which the paper does not fix."""
    ev = Evidence()
    T, u, z = T_FIG, U_FIG, Z_FIG
    mu = T.T @ u
    e_fig = [_rel_err(T, u, z, a) for a in ALPHAS]
    _drawn_exact_h_agrees_with_primal(ev, T, u, z)
    base = fs.ensemble(context.rng("fig3"))  # 200 instances at RMS template norm 1
    E = np.array([[_rel_err(Tr, ur, zr, a) for a in ALPHAS] for Tr, ur, zr in base])
    med = np.median(E, axis=0)
    _close_at_the_figure_scale(ev, e_fig, med, base)
    _scaling_law_holds_numerically(ev)
    flip = ev.checks[-2].sensitivity["flips_at"]  # the ensemble's, from its bisection
    _verdict_along_the_scale(ev, flip)
    _error_grows_with_alpha(ev, E, med, e_fig)
    ev.figures.append(_draw(T, u, z, mu))
    ev.finding = _what_holds(E, med, flip)
    return ev


def _drawn_exact_h_agrees_with_primal(ev: Evidence, T, u, z) -> None:
    r"""The exact :math:`\hat h` drawn (Newton on (7)) is confirmed by a direct primal solve (CVXPY)."""
    dev = max(float(np.linalg.norm(_exact_h(T, u, z, a) - T.T @ require(solve_primal_cvxpy(T, u, z, a)).p)) for a in ALPHAS)
    ev.at_most("the-drawn-exact-h-hat-agrees-with-a-direct",
               "the drawn exact h_hat agrees with a direct primal solve", dev, 1e-4,
               r"Clarabel's gap $\le 10^{-8}$ puts $p$ within $\approx 1.4 \times 10^{-4}$ in $\ell_1$ (Pinsker); "
               r"templates have norm $\le 1.5$",
               method="cvxpy", metric=r"max $\|\hat h(\text{Newton on (7)}) - E_{p_{\mathrm{cvxpy}}}[t]\|$",
               numerical_class="iterative", evidence="float")


def _close_at_the_figure_scale(ev: Evidence, e_fig, med, base) -> None:
    r"""At the figure's scale, :math:`\max_{\alpha \in \{0.5, 1\}} e(\alpha) \le` CLOSE on the drawn instance and
    for the ensemble median; each a judgement over the scale of the instances (by the scaling law,
    :math:`e(\sigma T, \sigma z, \alpha) = e(T, z, \alpha\sigma^2)`, checked numerically after)."""
    T, u, z = T_FIG, U_FIG, Z_FIG
    i05, i1 = ALPHAS.index(0.5), ALPHAS.index(1.0)
    close_alphas = CLOSE_ALPHAS
    # The verdict at another scale sigma of the instances: by the scaling law (derivations/scaling.py,
    # checked numerically below), e(sigma T, sigma z, alpha) = e(T, z, alpha sigma^2).
    drawn_at = lambda sc: max(_rel_err(T, u, z, a * sc**2) for a in close_alphas) <= CLOSE  # noqa: E731
    ensemble_at = lambda sc: max(np.median([_rel_err(Tr, ur, zr, a * sc**2) for Tr, ur, zr in base])  # noqa: E731
                                 for a in close_alphas) <= CLOSE
    for name, val, verdict_at in [("drawn instance", max(e_fig[i05], e_fig[i1]), drawn_at),
                                  ("ensemble median", max(med[i05], med[i1]), ensemble_at)]:
        ev.judged(f"16-close-to-exact-h-hat-{slug(name)}",
                  f"(16) close to the exact h_hat at alpha = 0.5 and 1 ({name})", val, fs.FIGURE_SCALE,
                  r"'close' = the error is at most a quarter of the shift from $\mu$ that (16) is meant to capture "
                  "(fixed before the numbers were seen), at the scale of the figure (RMS template norm 1)",
                  parameter="the scale of the instances (RMS template norm; the paper fixes none)",
                  declared_range=fs.SCALE_RANGE, why_this_range=fs.SCALE_RANGE_WHY, verdict_at=verdict_at,
                  grid=5, log=True, bisect=8, tolerance=CLOSE, method="newton",
                  metric=r"max over $\alpha \in \{0.5, 1\}$ of $\|h_{(16)} - \hat h\| / \|\hat h - \mu\|$",
                  numerical_class="iterative", evidence="float")


def _scaling_law_holds_numerically(ev: Evidence) -> None:
    r""":math:`e(\sigma T, \sigma z, \alpha) = e(T, z, \alpha\sigma^2)` on 40 instances at :math:`\sigma = 1.7`."""
    law = fs.law_residual(_rel_err, ALPHAS, 1.7)
    ev.at_most("scaling-law-numeric", "the scaling law e(sigma T, sigma z, alpha) = e(T, z, alpha sigma^2), numerically",
               law, 1e-8,
               r"both sides are solved to a relative gradient of $10^{-12}$ (round-off and solver accuracy far below "
               r"$10^{-8}$); a wrong law ($\alpha/\sigma$ in place of $\alpha/\sigma^2$) moves $e$ by $O(0.1)$ on this "
               "ensemble",
               method="newton",
               metric=r"max over 40 instances and the $\alpha$ grid, $\sigma = 1.7$, of the difference of $e$",
               numerical_class="iterative", evidence="float")


def _verdict_along_the_scale(ev: Evidence, flip) -> None:
    """The ensemble median at every scale of the grid (a table), and the verdict along the scale (``invariance``)."""
    close_alphas = CLOSE_ALPHAS
    by_scale = fs.median_error_by_scale(_rel_err, close_alphas)
    worst = by_scale.max(axis=1)
    ev.tables.append(Table("FD-FIG3: median $e$ over the ensemble at each scale (RMS template norm; the same draws, "
                           "rescaled)", ["scale"] + [f"alpha={a:g}" for a in close_alphas] + ["verdict (<= 0.25)"],
                           [[f"{sc:g}"] + [float(v) for v in row] + ["close" if row.max() <= CLOSE else "not close"]
                            for sc, row in zip(fs.SCALES, by_scale)]))
    ev.invariance = [{
        "transformation": r"the ensemble rescaled: $t_i \to \sigma t_i$, $z \to \sigma z$ ($\alpha$ fixed)",
        "leaves_unchanged": "nothing of the model: the paper fixes no scale for Figure 3, so every $\\sigma$ is an "
                            "equally valid reading of the figure; by the exact scaling law it is "
                            "$\\alpha \\to \\alpha\\sigma^2$",
        "parameter": r"scale $\sigma$ (RMS template norm)",
        "values": [{"parameter": float(sc), "metric": float(w)} for sc, w in zip(fs.SCALES, worst)],
        "metric": r"max over $\alpha \in \{0.5, 1\}$ of the ensemble median of $\|h_{(16)} - \hat h\| / \|\hat h - \mu\|$",
        "conclusion": (f"'close at $\\alpha$ = 0.5 and 1' holds for ensembles of RMS template norm below {flip:.2f} and "
                       "fails above: the verdict flips inside the declared range of scales, and the paper's figure "
                       "(no coordinates, templates drawn in the unit square) does not single one out")
        if flip is not None else "the verdict is the same at every scale tried",
    }]


def _error_grows_with_alpha(ev: Evidence, E, med, e_fig) -> None:
    r"""The ensemble median of :math:`e(\alpha)` increases along the :math:`\alpha` grid (Fig 3's caption)."""
    mono = float(np.min(np.diff(med)))
    ev.at_least("the-error-grows-with-alpha-ensemble-median", "the error grows with alpha (ensemble median)",
                mono, 0, r"Fig 3's caption: the approximation improves as $\alpha$ decreases", method="newton",
                metric=r"min over consecutive $\alpha$ of the increase of median $e(\alpha)$", strict=True,
                numerical_class="iterative", evidence="float")
    frac_mono = float(np.mean(np.all(np.diff(E, axis=1) > 0, axis=1)))
    ev.tables.append(Table(r"FD-FIG3: $e(\alpha) = \|h_{(16)} - \hat h\| / \|\hat h - \mu\|$",
                           ["instance"] + [f"alpha={a:g}" for a in ALPHAS],
                           [["drawn (figure)"] + e_fig, ["ensemble median (200)"] + list(med),
                            ["ensemble 90th percentile"] + list(np.quantile(E, 0.9, axis=0))]))
    ev.notes.append(f"In {100 * frac_mono:.0f}% of the 200 random instances $e(\\alpha)$ increases at every step of the "
                    "$\\alpha$ grid.")


def _what_holds(E, med, flip) -> str:
    """The finding: 'close' is a statement about alpha times the squared scale, which the paper does not fix."""
    i05, i1 = ALPHAS.index(0.5), ALPHAS.index(1.0)
    return (
        r"'A good approximation at $\alpha$ = 0.5, 1' is a statement about $\alpha$ times the squared scale of the "
        r"templates, not about $\alpha$: $e(\sigma T, \sigma z, \alpha) = e(T, z, \alpha\sigma^2)$ exactly. At RMS "
        f"template norm 1 the ensemble median error is {med[i05]:.2f} at $\\alpha$ = 0.5 and {med[i1]:.2f} at "
        f"$\\alpha$ = 1 (90th percentile {np.quantile(E, 0.9, axis=0)[i1]:.2f}); the verdict 'close' "
        f"($\\le {CLOSE}$) flips at RMS norm "
        + (f"{flip:.2f}" if flip is not None else "(none found)") +
        f", inside the declared range [{fs.SCALE_RANGE[0]:g}, {fs.SCALE_RANGE[1]:g}] of scales the figure can mean, "
        r"and the paper fixes no scale. What holds at every scale is the order: the error is $O(\alpha^2)$ (FD-16) and "
        r"grows with $\alpha$.")


def _draw(T, u, z, mu) -> Figure:
    plt = context.pyplot()

    fig, axes = plt.subplots(1, len(ALPHAS), figsize=(3.0 * len(ALPHAS), 3.2), sharey=True)
    for ax, a in zip(axes, ALPHAS):
        h = _exact_h(T, u, z, a)
        h16 = dual.attention_16(T, u, z, a)
        ax.scatter(T[:, 0], T[:, 1], c="tab:orange", zorder=3)
        for t, w in zip(T, u):
            ax.annotate(f"{w:.2f}", t, textcoords="offset points", xytext=(3, 4), fontsize=7)
        ax.annotate("", xy=mu + z, xytext=mu, arrowprops=dict(arrowstyle="->", color="navy"))
        ax.plot(*mu, "k+", ms=8)
        ax.plot(*h, "s", mfc="none", mec="red", ms=10, mew=1.5, label=r"exact (10), $\lambda^*$ of (7)")
        ax.plot(*h16, "s", color="purple", ms=5, label="approximation (16)")
        ax.set_title(rf"$\alpha = {a:g}$", fontsize=9)
        ax.set_aspect("equal")
        ax.set_xlim(-0.2, 2.0)
        ax.set_ylim(-0.2, 1.7)
    axes[0].legend(fontsize=6, loc="upper left")
    path = context.save_figure(fig, "fd-fig3")
    return Figure(path, r"FD-FIG3: templates (orange, preference weights labelled), $\mu$ (+), evidence $z$ (arrow), "
                        r"exact $\hat h$ (red square) and (16) (purple) for each $\alpha$, as in the paper's Figure 3.")
