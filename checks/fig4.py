r"""FD-FIG4: how far :math:`\lambda^*` is from :math:`\alpha z` in a real pretrained model (Fig 4, Appx C Figs 5-8).

Claim (Sec 8 of 004): for pretrained BERT (and T5), with Sec 8's reparameterisation (:math:`\alpha = 1`,
:math:`t_i = x_i/\sqrt{d'}`, :math:`z = K^\top(Q x_k + b_Q)`, u uniform over the sentence), the maximiser
:math:`\lambda^*` of the dual (7) "almost coincides" with its approximation :math:`\alpha z` (14): the
relative deviation

.. math::
    e_{\rm full} = \frac{\|\lambda^* - \alpha z\|}{\|\lambda^*\|}

is small, per layer (Fig 4, averaged over heads, red line = the mean) and per head (Figs 5-8).

**Threshold, fixed from the paper's text before the full run.**  "Small" is read as: the mean
of :math:`e_{\rm full}` is at most SMALL = 0.1 in every layer and in every head.  Reason: the paper
reports means (the red lines) and says :math:`\lambda^*` "almost coincides" with :math:`\alpha z`; a
10 % relative deviation is the loosest reading of "almost coincides" (the figure's histograms sit well
below 0.1-0.2), so a mean above 0.1 anywhere would contradict the claim as stated.

**Why the full-space ratio can be trivially small.**  Stationarity of (7) gives
:math:`\lambda^* = \alpha (z + \mu - E_p[t])`, so :math:`\lambda^* - \alpha z` lies in
:math:`S = \operatorname{span}\{t_i - \mu\}`, of dimension :math:`\le n - 1` (n = sentence length,
here :math:`\le 62`), while z lives in :math:`\mathbb{R}^d`, d = 384.  The component of z outside S is
reproduced exactly, and it inflates :math:`\|\lambda^*\|`.  So we also report the restricted ratio,
where the approximation is not exact by construction,

.. math::
    e_S = \frac{\|\lambda^* - \alpha z\|}{\|P_S \lambda^*\|},

and the share :math:`\|P_S z\| / \|z\|` of the evidence that the dual can act on.  The claim's status
follows :math:`e_{\rm full}` (the claim as stated); :math:`e_S` is reported as the finding.

Model and text: all-MiniLM-L6-v2 (6 layers x 12 heads, d = 384, d' = 32) on the sentences of
the Python documentation (attnverify.models.corpus) that the sweep config sweeps/fig4.toml names.
:math:`\lambda^*` by the exact batched Newton solver (attnverify.batched), every query of every head and
layer; non-converged queries are re-solved by attnverify.dual.solve_dual_newton, and any still
unconverged make the claim inconclusive.  Pretrained T5 (Figs 6-8) is not evaluated: no offline T5
weights are available.

**Where the numbers come from.**  The solves are the sweep of attnverify.sweep: one result file
per task (a shard of sentences x every layer and head) in .cache/sweeps/<hash>/.  This check runs
the missing tasks in-process (no cluster, no set-up) and then reads only the files, so if
`attnverify sweep sweeps/fig4.toml --scheduler ...` has already produced them on a Dask cluster,
they are reused as they are: the report's numbers are the files' numbers either way.

Source: 004_830fd89135933577.txt, Sec 8, Fig 4; Appx C, Figs 5-8.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path

import numpy as np

from attnverify import context, models, sweep
from attnverify.evidence import Evidence, Figure, Inconclusive, Table

CONFIG = Path(__file__).resolve().parents[1] / "sweeps" / "fig4.toml"
MODEL = "all-MiniLM-L6-v2"
ALPHA = 1.0  # Sec 8's value; the config's alpha grid must contain it
SMALL = 0.1  # "small": fixed before the full run, see the module docstring
# "Small" is a judgement call: the range over which it is read, declared before the run.
SMALL_RANGE = (0.05, 0.2)
SMALL_RANGE_WHY = ("5 % is the strictest reading of 'almost coincides' that the paper's own histograms (Fig 4, "
                   "mass mostly below 0.1-0.2) could meet; 20 % the loosest that still means 'close' rather "
                   "than 'of the same order'")


def config(n_sentences: int | None = None) -> sweep.Config:
    """The sweep config (sweeps/fig4.toml), optionally with another corpus size (for tests)."""
    cfg = sweep.load_config(CONFIG)
    return cfg if n_sentences is None else dataclasses.replace(cfg, n_sentences=n_sentences)


N_CORPUS = config().n_sentences  # sentences in the real run (>= 500)


def solve_corpus(n_sentences: int | None = None, log=None, out=None) -> dict:
    r""":math:`\lambda^*` for every query of every head and layer (:math:`\alpha` = ALPHA, model MODEL), from the
    sweep's files.

    Missing task files are computed in-process first; returns per-query arrays and solver counts."""
    cfg = config(n_sentences)
    if MODEL not in cfg.models or ALPHA not in cfg.alpha:
        raise Inconclusive(f"{CONFIG.name} does not sweep {MODEL} at alpha = {ALPHA}")
    t0 = time.perf_counter()
    # one worker process per core through the sweep's Dask LocalCluster (in-process pool without dask)
    stats = sweep.run(cfg, out, local=not sweep.has_dask(), log=log)
    data = sweep.load(cfg, stats.out)
    keep = (data["model"] == cfg.models.index(MODEL)) & (data["alpha"] == ALPHA)
    r = {k: data[k][keep] for k in ("layer", "head", "full", "restricted", "full13", "restricted13", "z_share", "n",
                                    "status", "iterations")}
    ck = (data["cross_model"] == cfg.models.index(MODEL)) & (data["cross_alpha"] == ALPHA)
    st = r.pop("status")
    counts = dict(queries=int(len(st)), batched_unconverged=int((st > 0).sum()),
                  newton_resolved=int((st == 1).sum()), unconverged=int((st == 2).sum()),
                  max_iterations=int(r.pop("iterations").max()))
    try:
        shown = stats.out.relative_to(sweep.ROOT)
    except ValueError:
        shown = stats.out
    r.update(counts=counts, n_sentences=cfg.n_sentences, layers=cfg.layers_of(MODEL), heads=cfg.heads_of(MODEL),
             cross=list(zip(data["cross_layer"][ck].tolist(), data["cross_diff"][ck].tolist(),
                            data["cross_tol"][ck].tolist())),
             compute_seconds=sum(m["seconds"] for m in data["meta"]), seconds=time.perf_counter() - t0,
             solve_seconds=sum(m.get("solve_seconds", float("nan")) for m in data["meta"]),
             tasks=stats.tasks, reused=stats.reused, computed=stats.computed, out=str(shown))
    r["n_layers"], r["n_heads"] = len(r["layers"]), len(r["heads"])
    return r


def _stderr(msg):
    print(msg, file=sys.stderr, flush=True)


def fig4(n_sentences: int | None = None) -> Evidence:
    r"""FD-FIG4.  For all-MiniLM-L6-v2 on real text, in every layer and every head, the mean over the
    queries of :math:`\|\lambda^* - \alpha z\| / \|\lambda^*\|` is at most SMALL = 0.1 (the claim as
    stated); reported alongside: :math:`\|\lambda^* - \alpha z\| / \|P_S \lambda^*\|`, on the span
    :math:`S = \operatorname{span}\{t_i - \mu\}` of the centred templates.

    Source: 004_830fd89135933577.txt, Sec 8, Fig 4, Appx C Figs 5-8.
    """
    ev = Evidence()
    r = solve_corpus(n_sentences, log=_stderr)
    _require_every_layer_and_head(r)
    _describe_the_solves(ev, r)
    _batched_lambda_equals_newton_lambda(ev, r)
    m = Means.of(r)
    worst_head = _deviation_small_in_every_layer_and_head(ev, m)
    _tabulate_layers(ev, r, m)
    _compare_approximation_13(ev, r)
    _tabulate_heads(ev, r, m)
    _agreement_mostly_outside_s(ev, r, m)
    _findings(ev, r, m, worst_head)
    ev.notes.append("Pretrained T5 (the paper's Figs 6-8) was not evaluated: no T5 weights are available offline. With "
                    "T5, $u$ depends on the query (relative-position bias), and $z$ must carry a factor $\\sqrt{d'}$ "
                    "(FD-17).")
    ev.figures += _figures(r, m.layer_full, m.layer_s, m.head_full, m.head_s)
    return ev


@dataclasses.dataclass(frozen=True)
class Means:
    r"""Means over the queries of the two relative deviations: per layer k (``layer_full[k]``, of
    :math:`e_{\rm full}`, and ``layer_s[k]``, of :math:`e_S`) and per head (``head_full[k, h]``,
    ``head_s[k, h]``)."""

    layer_full: np.ndarray
    head_full: np.ndarray
    layer_s: np.ndarray
    head_s: np.ndarray

    @classmethod
    def of(cls, r: dict) -> "Means":
        """The means of a corpus solve ``r`` (:func:`solve_corpus`)."""
        full, rest, lay, head = r["full"], r["restricted"], r["layer"], r["head"]
        L, H = r["n_layers"], r["n_heads"]
        lm = np.array([full[lay == k].mean() for k in range(L)])
        hm = np.array([[full[(lay == k) & (head == h)].mean() for h in range(H)] for k in range(L)])
        lr = np.array([rest[lay == k].mean() for k in range(L)])
        hr = np.array([[rest[(lay == k) & (head == h)].mean() for h in range(H)] for k in range(L)])
        return cls(lm, hm, lr, hr)


def _require_every_layer_and_head(r: dict) -> None:
    """The sweep covers every layer and head of the model (the claim is about all of them)."""
    dims = sweep.MODELS[MODEL]
    if r["layers"] != tuple(range(dims["layers"])) or r["heads"] != tuple(range(dims["heads"])):
        raise Inconclusive(f"{CONFIG.name} sweeps layers {list(r['layers'])} and heads {list(r['heads'])}; "
                           "the claim is about every layer and head")


def _describe_the_solves(ev: Evidence, r: dict) -> None:
    r"""The text, the model and the solves as steps; inconclusive if any :math:`\lambda^*` is unknown."""
    c = r["counts"]
    L, H = r["n_layers"], r["n_heads"]
    ev.step(f"Text: {models.describe_text()}; {r['n_sentences']} sentences, {int(np.unique(r['n']).min())}-"
            f"{int(r['n'].max())} tokens with [CLS] and [SEP] ($u$ is uniform over all of them); each sentence "
            "runs through the model on its own (no padding).")
    ev.step(rf"Model: all-MiniLM-L6-v2 (BERT, {L} layers $\times$ {H} heads, $d = 384$, $d' = 32$), float64. For each "
            r"sentence, layer and head: $\alpha = 1$, templates $t_i = x_i/\sqrt{d'}$ (the layer's input), evidence "
            r"$z_k = K^\top(Q x_k + b_Q)$ for every query $k$; $\lambda^*$ of (7) by the exact batched Newton solver.",
            r"\lambda^*_k = \arg\max_\lambda \langle\lambda, \mu + z_k\rangle - \tfrac{1}{2}\|\lambda\|^2 - "
            r"\log\tfrac1n\sum_i e^{\langle t_i,\lambda\rangle}")
    ev.step(f"{c['queries']} queries solved ({r['compute_seconds']:.0f} s of one-thread compute, of which "
            f"{r['solve_seconds']:.1f} s in the stacked dual solver) by the sweep "
            f"{CONFIG.relative_to(sweep.ROOT) if CONFIG.is_relative_to(sweep.ROOT) else CONFIG.name}: {r['tasks']} "
            f"task files in {r['out']}, which this report reads (whether this run or a Dask cluster wrote them); "
            f"the batched solver left {c['batched_unconverged']} unconverged, "
            f"{c['newton_resolved']} of them converged when re-solved by full Newton; {c['unconverged']} remain; "
            f"at most {c['max_iterations']} Newton iterations.")
    if c["unconverged"]:
        raise Inconclusive(f"{c['unconverged']} of {c['queries']} queries did not converge: lambda* unknown for them")


def _batched_lambda_equals_newton_lambda(ev: Evidence, r: dict) -> None:
    r"""On the sample queries the sweep cross-solves, the batched :math:`\lambda^*` is the full-dimensional
    Newton :math:`\lambda^*` within the strong-concavity bound."""
    cx = max(v for _, v, _ in r["cross"]) if r["cross"] else np.nan
    ctol = max(t for _, _, t in r["cross"]) if r["cross"] else np.nan
    ev.check("batched lambda* = full-dimensional Newton lambda* on sample queries", "newton",
             rf"max $\|\lambda_{{\mathrm{{batched}}}} - \lambda_{{\mathrm{{Newton}}}}\|$ over {len(r['cross'])} queries "
             f"({sweep.N_CROSS} per layer)", cx, ctol,
             bool(r["cross"]) and all(v <= t for _, v, t in r["cross"]),
             r"(7) is $(1/\alpha)$-strongly concave, so $\|\lambda - \lambda^*\| \le \alpha\,\|\nabla D(\lambda)\|$; "
             r"the bound is $\alpha$ times the sum of the two solutions' gradient norms",
             key="batched-lambda-full-dimensional-newton-lambda-on", numerical_class="iterative", evidence="float")


def _deviation_small_in_every_layer_and_head(ev: Evidence, m: Means) -> tuple[int, int]:
    """The claim: the largest layer mean and the largest head mean of the deviation are at most SMALL
    (each a judgement call, with its sensitivity). Returns the (layer, head) of the largest head mean."""
    ev.judged("per-layer-fig-4-mean-lambda-alpha-z-lambda-is",
              "per layer (Fig 4): mean ||lambda* - alpha z|| / ||lambda*|| is small in every layer",
              float(m.layer_full.max()), SMALL,
              r"'almost coincides' read as a mean relative deviation $\le 0.1$, fixed from the paper's text before the run",
              parameter="the threshold 'small' on the mean relative deviation", declared_range=SMALL_RANGE,
              why_this_range=SMALL_RANGE_WHY, method="newton", metric="max over layers of the mean relative deviation",
              numerical_class="iterative", evidence="float")
    kk, hh = np.unravel_index(np.argmax(m.head_full), m.head_full.shape)
    ev.judged("per-head-fig-5-mean-lambda-alpha-z-lambda-is",
              "per head (Fig 5): mean ||lambda* - alpha z|| / ||lambda*|| is small in every head",
              float(m.head_full.max()), SMALL, "the same threshold, head by head",
              parameter="the threshold 'small' on the mean relative deviation", declared_range=SMALL_RANGE,
              why_this_range=SMALL_RANGE_WHY, method="newton",
              metric=f"max over heads of the mean relative deviation (layer {kk}, head {hh})",
              numerical_class="iterative", evidence="float")
    return kk, hh


def _tabulate_layers(ev: Evidence, r: dict, m: Means) -> None:
    """Fig 4's analogue: per layer, the mean, median and 90th percentile of both deviations, and the share of z in S."""
    full, rest, share, lay = r["full"], r["restricted"], r["z_share"], r["layer"]
    rows = []
    for k in range(r["n_layers"]):
        sel = lay == k
        rows.append([k, int(sel.sum()), m.layer_full[k], float(np.median(full[sel])), float(np.quantile(full[sel], 0.9)),
                     m.layer_s[k], float(np.median(rest[sel])), float(np.quantile(rest[sel], 0.9)),
                     float(share[sel].mean())])
    ev.tables.append(Table(r"FD-FIG4 per layer (Fig 4 analogue): $e_{\mathrm{full}} = \|\lambda^* - z\| / \|\lambda^*\|$, "
                           r"$e_S = \|\lambda^* - z\| / \|P_S \lambda^*\|$, share $= \|P_S z\| / \|z\|$",
                           ["layer", "queries", "mean e_full", "median e_full", "90% e_full", "mean e_S", "median e_S",
                            "90% e_S", "mean share"], rows))


def _compare_approximation_13(ev: Evidence, r: dict) -> None:
    r"""The same deviations for (13), :math:`\lambda_{13} = \alpha(I + \alpha\Sigma)^{-1} z`, per layer and overall."""
    lay, rest = r["layer"], r["restricted"]
    f13, r13 = r["full13"], r["restricted13"]
    rows13 = [[k, float(f13[lay == k].mean()), float(np.median(f13[lay == k])), float(r13[lay == k].mean()),
               float(np.median(r13[lay == k]))] for k in range(r["n_layers"])]
    ev.tables.append(Table(r"FD-FIG4 per layer, the same for (13): $e^{13}_{\mathrm{full}} = \|\lambda^* - \lambda_{13}\| "
                           r"/ \|\lambda^*\|$, $e^{13}_S = \|\lambda^* - \lambda_{13}\| / \|P_S \lambda^*\|$, "
                           r"$\lambda_{13} = \alpha (I + \alpha \Sigma)^{-1} z$, $\Sigma = \mathrm{Cov}_u(t)$ of the sentence",
                           ["layer", "mean e13_full", "median e13_full", "mean e13_S", "median e13_S"], rows13))
    ev.step(rf"(13) as the approximation: mean $e^{{13}}_{{\mathrm{{full}}}} = {f13.mean():.3f}$ (median "
            rf"{np.median(f13):.3f}), restricted to $S$ mean $e^{{13}}_S = {r13.mean():.3f}$ (median "
            rf"{np.median(r13):.3f}), against $e_S = {rest.mean():.3f}$ for $\alpha z$: "
            + (r"the quadratic cumulant brings $\lambda$ closer to $\lambda^*$." if r13.mean() < rest.mean() else
               r"the quadratic cumulant does not bring $\lambda$ closer to $\lambda^*$ here: $\Sigma = \mathrm{Cov}_u(t)$ "
               r"weighs every token equally, while the attention $\tilde p$ that the exact solution tilts by is peaked."),
            r"\lambda_{13} = \alpha(I + \alpha\Sigma)^{-1}z,\qquad \lambda_{13} - \alpha z \in S")


def _tabulate_heads(ev: Evidence, r: dict, m: Means) -> None:
    """Fig 5's analogue: the mean of both deviations in every head."""
    L, H = r["n_layers"], r["n_heads"]
    ev.tables.append(Table(r"FD-FIG4 per head (Fig 5 analogue): mean $e_{\mathrm{full}}$ / mean $e_S$",
                           ["layer"] + [f"head {h}" for h in range(H)],
                           [[k] + [f"{m.head_full[k, h]:.3f} / {m.head_s[k, h]:.3f}" for h in range(H)]
                            for k in range(L)]))


def _agreement_mostly_outside_s(ev: Evidence, r: dict, m: Means) -> None:
    r"""Why :math:`e_{\rm full}` is small: :math:`\lambda^* - \alpha z \in S`, and most of z lies outside S,
    where the dual reproduces it exactly; inside S the deviation :math:`e_S` is the finding."""
    full, rest, share = r["full"], r["restricted"], r["z_share"]
    lr, hr = m.layer_s, m.head_s
    trivially = float(share.mean())
    ev.step(rf"Why $e_{{\mathrm{{full}}}}$ is small: on average only {100 * trivially:.0f}% of $\|z\|$ lies in $S$ "
            rf"($\dim S \le n - 1 \le {int(r['n'].max()) - 1}$ of $d = 384$), and outside $S$, $\lambda^* = \alpha z$ "
            f"exactly. Inside $S$, where the approximation is not exact by construction, the mean relative deviation is "
            f"{rest.mean():.3f} (layers: {', '.join(f'{v:.3f}' for v in lr)}; max head mean {hr.max():.3f}).",
            r"\lambda^* - \alpha z \in S = \operatorname{span}\{t_i - \mu\},\qquad e_S = "
            r"\frac{\|\lambda^*-\alpha z\|}{\|P_S\lambda^*\|} \ge e_{\rm full}")
    ev.notes.append(f"Restricted to $S$ (the finding): mean $e_S = {rest.mean():.3f}$, median {np.median(rest):.3f}, 90th "
                    f"percentile {np.quantile(rest, 0.9):.3f}; {100 * np.mean(rest > SMALL):.0f}% of queries have "
                    f"$e_S > {SMALL}$. Layer means of $e_S$: {', '.join(f'{v:.3f}' for v in lr)}; head means of $e_S$ "
                    f"range {hr.min():.3f}-{hr.max():.3f}. So the full-space agreement (mean "
                    rf"$e_{{\mathrm{{full}}}} = {full.mean():.3f}$) comes largely from the {100 * (1 - trivially):.0f}% "
                    "of $z$ outside $S$, which the dual reproduces exactly.")


def _findings(ev: Evidence, r: dict, m: Means, worst_head: tuple[int, int]) -> None:
    """What is true: the verdicts flip inside the declared range of 'small', and the agreement is mostly
    the trivial part outside S."""
    c = r["counts"]
    L, H = r["n_layers"], r["n_heads"]
    lm, hm, lr, hr = m.layer_full, m.head_full, m.layer_s, m.head_s
    rest, r13 = r["restricted"], r["restricted13"]
    kk, hh = worst_head
    trivially = float(r["z_share"].mean())
    big = [(k, h, hm[k, h]) for k in range(L) for h in range(H) if hm[k, h] > SMALL]
    lo, hi = SMALL_RANGE
    ev.part_finding("FD-FIG4/layers", (
        rf"The largest layer mean of $\|\lambda^* - \alpha z\| / \|\lambda^*\|$ is {lm.max():.3f} (layers: "
        f"{', '.join(f'{v:.3f}' for v in lm)}): 'small' at the threshold 0.1, but the verdict flips at "
        f"{lm.max():.3f}, inside the declared range [{lo:g}, {hi:g}] of readings of 'almost coincides'."))
    ev.part_finding("FD-FIG4/heads", (
        f"The largest head mean is {hm.max():.3f} (layer {kk}, head {hh}); {len(big)} of {L * H} head means exceed 0.1; "
        f"the verdict flips at {hm.max():.3f}, inside the declared range [{lo:g}, {hi:g}]."))
    ev.finding = (
        f"On all-MiniLM-L6-v2 (a 6-layer distilled BERT, not the paper's BERT) over {r['n_sentences']} sentences "
        rf"({c['queries']} queries), in the paper's split of the constants, the layer means of $\|\lambda^* - z\| / "
        rf"\|\lambda^*\|$ are {', '.join(f'{v:.3f}' for v in lm)} and the head means reach {hm.max():.3f}: whether that "
        f"is 'small' depends on the reading of 'almost coincides' (the verdicts flip at {lm.max():.3f} and "
        f"{hm.max():.3f}, inside [{lo:g}, {hi:g}]). "
        r"More importantly, the agreement is mostly the trivial part: $\lambda^* - \alpha z$ lies in the span $S$ of the "
        rf"centred templates ($\dim S \le n - 1 \ll d = 384$), only {100 * trivially:.0f}% of $\|z\|$ lies in $S$, and "
        rf"restricted to $S$ the deviation $\|\lambda^* - z\| / \|P_S \lambda^*\|$ has mean {rest.mean():.3f} (layer means "
        rf"{lr.min():.3f}-{lr.max():.3f}, head means up to {hr.max():.3f}): where the dual acts, $\lambda^*$ and "
        rf"$\alpha z$ differ by {rest.mean():.0%} of $\lambda^*$'s part in $S$ on average. The quadratic-cumulant form "
        rf"(13), $\lambda_{{13}} = \alpha (I + \alpha \Sigma)^{{-1}} z$, is closer: restricted to $S$ its mean deviation "
        f"is {r13.mean():.3f}.")


def _figures(r, lm, lr, hm, hr):
    plt = context.pyplot()

    full, rest, lay, head = r["full"], r["restricted"], r["layer"], r["head"]
    L, H = r["n_layers"], r["n_heads"]
    bins = np.linspace(0, max(0.6, float(np.quantile(rest, 0.99))), 61)
    fig, axes = plt.subplots(1, L, figsize=(2.6 * L, 2.4), sharey=True)
    for k, ax in enumerate(axes):
        ax.hist(full[lay == k], bins=bins, color="tab:blue", alpha=0.7, density=True, label=r"$e_{\mathrm{full}}$")
        ax.hist(rest[lay == k], bins=bins, color="tab:orange", alpha=0.5, density=True, label=r"$e_S$ (in $S$)")
        ax.hist(r["restricted13"][lay == k], bins=bins, color="tab:green", histtype="step", density=True,
                label=r"$e^{13}_S$: (13) in $S$")
        ax.axvline(lm[k], color="red")
        ax.axvline(lr[k], color="red", ls="--")
        ax.axvline(SMALL, color="grey", ls=":")
        ax.set_title(f"layer {k}", fontsize=9)
        ax.set_xlabel("relative deviation", fontsize=8)
    axes[0].legend(fontsize=7)
    f1 = Figure(context.save_figure(fig, "fd-fig4-layers"),
                "FD-FIG4 (Fig 4 analogue, all-MiniLM-L6-v2): distribution over all queries and heads of each layer of "
                r"$e_{\mathrm{full}} = \|\lambda^* - z\| / \|\lambda^*\|$ (blue) and of the same deviation relative to "
                r"the part of $\lambda^*$ in the span $S$ of the centred templates, $e_S$ (orange); red lines: means "
                r"(solid $e_{\mathrm{full}}$, dashed $e_S$); green outline: the deviation of (13)'s $\lambda_{13}$ in $S$, "
                r"$e^{13}_S$; grey dotted: the threshold SMALL = 0.1.")
    fig, axes = plt.subplots(L, H, figsize=(1.5 * H, 1.3 * L), sharex=True)
    for k in range(L):
        for h in range(H):
            ax = axes[k, h]
            sel = (lay == k) & (head == h)
            ax.hist(full[sel], bins=bins, color="tab:blue", alpha=0.7, density=True)
            ax.hist(rest[sel], bins=bins, color="tab:orange", alpha=0.5, density=True)
            ax.axvline(hm[k, h], color="red", lw=0.8)
            ax.axvline(hr[k, h], color="red", lw=0.8, ls="--")
            ax.set_yticks([])
            ax.tick_params(labelsize=5)
            if k == 0:
                ax.set_title(f"head {h}", fontsize=7)
            if h == 0:
                ax.set_ylabel(f"layer {k}", fontsize=7)
    f2 = Figure(context.save_figure(fig, "fd-fig4-heads"),
                r"FD-FIG4 (Fig 5 analogue, all-MiniLM-L6-v2): per head, $e_{\mathrm{full}}$ (blue) and $e_S$ (orange), "
                "red lines at the means.")
    return [f1, f2]
