"""FD-FIG3: the paper's Figure 3 redrawn from exact solves (d = 2), and what "close" means.

The paper's exact points are not given; we draw one instance on the figure's scale (five
templates within the unit square, weights labelled, ||z|| ~ 1) and, so that the conclusion does
not rest on one picture, an ensemble of 200 random d = 2 instances on the same scale
(templates ~ N(0, I/2), u ~ Dirichlet(1), z ~ N(0, I/2)).

"Close" is made precise as the relative error e(alpha) = ||h_(16) - h_hat|| / ||h_hat - mu||: the
error of (16) as a fraction of the shift away from mu that it is meant to capture.  Thresholds,
fixed before looking at the numbers: e <= 0.25 at alpha = 0.5 and 1 (median over the ensemble,
and on the drawn instance), and the median of e increasing in alpha.
"""

from __future__ import annotations

import numpy as np

from attnverify import context, dual
from attnverify.batched import solve_dual
from attnverify.evidence import Evidence, Figure, Inconclusive, Table, slug
from attnverify.primal import solve_primal_cvxpy
from checks._common import require

ALPHAS = [0.1, 0.25, 0.5, 1.0, 2.0]
CLOSE = 0.25
T_FIG = np.array([[0.0, 0.0], [1.0, 0.1], [0.2, 0.9], [0.9, 1.0], [0.5, 0.45]])
U_FIG = np.array([0.3, 0.15, 0.2, 0.1, 0.25])
Z_FIG = np.array([0.9, 0.6])


def _exact_h(T, u, z, a):
    sol = solve_dual(T, u, z, a, rtol=1e-12)
    if not sol.converged:
        raise Inconclusive(f"the batched dual solver did not converge on (7) at alpha={a}")
    return dual.h_hat(T, u, sol.lam)


def _rel_err(T, u, z, a):
    h = _exact_h(T, u, z, a)
    h16 = dual.attention_16(T, u, z, a)
    return float(np.linalg.norm(h16 - h) / np.linalg.norm(h - T.T @ u))


def figure_3() -> Evidence:
    ev = Evidence()
    T, u, z = T_FIG, U_FIG, Z_FIG
    mu = T.T @ u
    e_fig = [_rel_err(T, u, z, a) for a in ALPHAS]
    # the exact h_hat drawn is confirmed by a direct primal solve (CVXPY)
    dev = max(float(np.linalg.norm(_exact_h(T, u, z, a) - T.T @ require(solve_primal_cvxpy(T, u, z, a)).p)) for a in ALPHAS)
    ev.at_most("the-drawn-exact-h-hat-agrees-with-a-direct",
               "the drawn exact h_hat agrees with a direct primal solve", dev, 1e-4,
               "Clarabel's gap <= 1e-8 puts p within ~1.4e-4 in l1 (Pinsker); templates have norm <= 1.5",
               method="cvxpy", metric="max ||h_hat(Newton on (7)) - E_p_cvxpy[t]||",
               numerical_class="iterative", evidence="float")
    rng = context.rng("fig3")
    E = []
    for _ in range(200):
        Tr = rng.normal(size=(5, 2)) / np.sqrt(2)
        ur = rng.dirichlet(np.ones(5))
        zr = rng.normal(size=2) / np.sqrt(2)
        E.append([_rel_err(Tr, ur, zr, a) for a in ALPHAS])
    E = np.array(E)
    med = np.median(E, axis=0)
    i05, i1 = ALPHAS.index(0.5), ALPHAS.index(1.0)
    for name, val in [("drawn instance", max(e_fig[i05], e_fig[i1])), ("ensemble median", max(med[i05], med[i1]))]:
        ev.at_most(f"16-close-to-exact-h-hat-{slug(name)}",
                   f"(16) close to the exact h_hat at alpha = 0.5 and 1 ({name})", val, CLOSE,
                   "'close' = the error is at most a quarter of the shift from mu that (16) is meant to capture; "
                   "fixed before the numbers were seen",
                   method="newton",
                   metric="max over alpha in {0.5, 1} of ||h_(16) - h_hat|| / ||h_hat - mu||",
                   numerical_class="iterative", evidence="float")
    mono = float(np.min(np.diff(med)))
    ev.at_least("the-error-grows-with-alpha-ensemble-median", "the error grows with alpha (ensemble median)",
                mono, 0, "Fig 3's caption: the approximation improves as alpha decreases", method="newton",
                metric="min over consecutive alphas of the increase of median e(alpha)", strict=True,
                numerical_class="iterative", evidence="float")
    frac_mono = float(np.mean(np.all(np.diff(E, axis=1) > 0, axis=1)))
    ev.tables.append(Table("FD-FIG3: e(alpha) = ||h_(16) - h_hat|| / ||h_hat - mu||",
                           ["instance"] + [f"alpha={a:g}" for a in ALPHAS],
                           [["drawn (figure)"] + e_fig, ["ensemble median (200)"] + list(med),
                            ["ensemble 90th percentile"] + list(np.quantile(E, 0.9, axis=0))]))
    ev.notes.append(f"In {100 * frac_mono:.0f}% of the 200 random instances e(alpha) increases at every step of the alpha grid.")
    ev.notes.append("Closeness is not scale-free: scaling the templates by c is the same as scaling alpha by c^2 "
                    "(alpha <t, z> with z on the template scale), so 'close at alpha = 0.5, 1' holds for templates "
                    "and evidence of norm ~1, as in the figure, not in general.")
    ev.figures.append(_draw(T, u, z, mu))
    if max(med[i05], med[i1]) > CLOSE:
        ev.finding = (
            f"On the figure's scale the approximation (16) is close at alpha = 0.5 (median e = {med[i05]:.2f}) but "
            f"not at alpha = 1: there the median error is {med[i1]:.2f} of the shift h_hat - mu (90th percentile "
            f"{np.quantile(E, 0.9, axis=0)[i1]:.2f}), so 'a good approximation at alpha = 0.5, 1' holds for favourable "
            f"instances (the drawn one: e = {e_fig[i1]:.2f}) but not typically. What holds in general is the order: "
            "the error is O(alpha^2) (FD-16) and grows with alpha.")
    return ev


def _draw(T, u, z, mu) -> Figure:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(ALPHAS), figsize=(3.0 * len(ALPHAS), 3.2), sharey=True)
    for ax, a in zip(axes, ALPHAS):
        h = _exact_h(T, u, z, a)
        h16 = dual.attention_16(T, u, z, a)
        ax.scatter(T[:, 0], T[:, 1], c="tab:orange", zorder=3)
        for t, w in zip(T, u):
            ax.annotate(f"{w:.2f}", t, textcoords="offset points", xytext=(3, 4), fontsize=7)
        ax.annotate("", xy=mu + z, xytext=mu, arrowprops=dict(arrowstyle="->", color="navy"))
        ax.plot(*mu, "k+", ms=8)
        ax.plot(*h, "s", mfc="none", mec="red", ms=10, mew=1.5, label="exact (10), lambda* of (7)")
        ax.plot(*h16, "s", color="purple", ms=5, label="approximation (16)")
        ax.set_title(f"alpha = {a:g}", fontsize=9)
        ax.set_aspect("equal")
        ax.set_xlim(-0.2, 2.0)
        ax.set_ylim(-0.2, 1.7)
    axes[0].legend(fontsize=6, loc="upper left")
    path = context.save_figure(fig, "fd-fig3")
    return Figure(path, "FD-FIG3: templates (orange, preference weights labelled), mu (+), evidence z (arrow), "
                        "exact h_hat (red square) and (16) (purple) for each alpha, as in the paper's Figure 3.")
