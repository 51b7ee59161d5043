r"""EOS-SHARP on real data: full-batch GD on scikit-learn's digits drives the sharpness to :math:`2/\eta`.

Seed 002 (first abstract): "Full-batch gradient descent on neural networks drives the largest Hessian
eigenvalue to the threshold :math:`2/\eta`". The phenomenon (Cohen et al., *Gradient descent on neural networks
typically occurs at the edge of stability*, ICLR 2021) is reported where *progressive sharpening*
occurs: under gradient flow the sharpness would keep rising, so GD reaches :math:`2/\eta` and hovers there.
A network that never sharpens converges below the edge (the control, :func:`checks.eos_numeric.sharpness_gd`)
and does not test the claim.

Protocol (everything below is fixed in this module before the runs; the architecture, width and data
size were chosen on a pilot run for speed, the criterion is today's rule of ``eos_numeric``):

* data: the first ``N_TRAIN`` images of a stratified split of the digits (pixels / 16), one-hot
  targets, loss :math:`L = \frac{1}{2n}\sum_i \|f(x_i) - y_i\|^2` (MSE, as in Cohen et al.);
* networks: two of the Edge-of-Stability literature, a tanh MLP and a ReLU MLP, 64-32-32-10,
  PyTorch's default initialisation, seeds ``SEEDS`` (the seed sets the initialisation), float64;
* progressive sharpening, measured first and reported separately: GD with a small step,
  :math:`2/\eta_s = K_{SMALL} S_0` (far above the sharpness, so GD follows gradient flow), for
  ``T_SMALL`` steps; :math:`S_{ps}` is the largest sharpness it reaches;
* the test: learning rates with :math:`2/\eta = f\,S_{ps}`, :math:`f \in` ``FRACTIONS`` (edges above
  :math:`S_0`, below what progressive sharpening reaches: the regime of the claim), each run until
  the gradient-flow time at which the small run reached :math:`f S_{ps}`, then ``HOVER`` steps more
  (time to hover after reaching the edge);
* sharpness :math:`S_t = \lambda_{\max}(\nabla^2 L)` by Lanczos on exact Hessian-vector products
  (double backward; :func:`attnverify.training.top_eigenvalue`), every ``EVERY`` steps, each with
  its Weinstein residual; cross-checked against plain power iteration.

The criterion (today's, with its tolerance made a parameter :math:`\varepsilon`, :math:`\varepsilon = 0.1` being today's rule): a run
is *at the edge* when it reaches :math:`S_t \ge (1-\varepsilon)\,2/\eta`, settles with the median of
:math:`S_t/(2/\eta)` over the last ``WINDOW`` steps within :math:`1 \pm \varepsilon`, and hovers with its 10th and
90th percentiles in :math:`[1 - 2\varepsilon, 1 + 2.5\varepsilon]`. The claim holds for an architecture
when every run (3 rates x 3 seeds) is at the edge. Passing is monotone in :math:`\varepsilon`, so each run
has a smallest passing :math:`\varepsilon`, and an architecture's flip point is the largest of its runs'.

History (so that a reader can judge the pre-registration): the run lengths were revised once, for run
time, after a first full run; the criterion and its declared range were not. That first protocol (test
runs of 1.5x the small run's gradient-flow time, window = their last quarter) gave flip points 0.101
(tanh MLP) and 0.098 (ReLU MLP), i.e. the same verdict.
"""

from __future__ import annotations

import math

import numpy as np

from attnverify import context, training
from attnverify.evidence import Evidence, Figure, Inconclusive, Table

# ---------------------------------------------------------------- the protocol (fixed before the runs)
ARCHS = ("tanh MLP", "ReLU MLP")  # two of Cohen et al.'s architectures
N_TRAIN = 256  # digits in the training set (a subset, as Cohen et al. use 5k of CIFAR-10)
WIDTH = 32  # two hidden layers of this width: ~3.5k parameters, ~1 ms per GD step here
SEEDS = (0, 1, 2)
K_SMALL = 8.0  # small-step run: 2/eta_s = 8 S_0, far above the sharpness it will reach (checked)
T_SMALL = 2000  # its steps: gradient-flow time eta_s T = 500 / S_0
FRACTIONS = (0.5, 0.7, 0.9)  # 2/eta = f S_ps: three edges between S_0 and the sharpened level
HOVER = 400  # a test run lasts until the time the small run reached f S_ps, then HOVER steps more
EVERY, EVERY_SMALL = 20, 100  # sharpness every 20 steps (11 points in the window), every 100 in the small run
RTOL = 1e-3  # Lanczos stops at a Weinstein residual of 1e-3 |lambda|: far below every tolerance used
WINDOW = 200  # the last 200 steps are the "settle / hover" window (they start >= 200 steps past the time
#                gradient flow reaches the edge)
EPS = 0.1  # today's rule: reach 0.9, median within [0.9, 1.1], percentiles within [0.8, 1.25]
EPS_RANGE = (0.05, 0.2)
EPS_WHY = (r"Cohen et al. describe the sharpness as hovering 'at, or just above' $2/\eta$ with oscillations of a few "
           r"per cent to ~10%; a tolerance under 5% is inside that oscillation, one over 20% would call "
           r"$0.8 \times 2/\eta$ 'at the edge', which is where GD converging below the edge (the control) sits")
SHARPENS = 2.0  # progressive sharpening = S_ps >= 2 S_0 (the control rises 1.29x: "does not sharpen")
SHARPENS_RANGE = (1.5, 2.5)
SHARPENS_WHY = ("the control network rises 1.29x and converges below the edge; Cohen et al.'s networks rise by "
                "factors of 3 to over 10; any factor in [1.5, 2.5] separates the two")


def _net(arch: str, torch):
    act = {"tanh MLP": torch.nn.Tanh, "ReLU MLP": torch.nn.ReLU}[arch]
    return torch.nn.Sequential(torch.nn.Linear(64, WIDTH), act(), torch.nn.Linear(WIDTH, WIDTH), act(),
                               torch.nn.Linear(WIDTH, 10))


def _data(torch):
    tr, _, _ = training.digits(N_TRAIN, 0, 0)
    X = torch.tensor(tr.X.reshape(len(tr.y), -1))
    Y = torch.nn.functional.one_hot(torch.tensor(tr.y), 10).to(X.dtype)
    return X, Y


def at_edge(S: np.ndarray, eta: float) -> dict:
    r"""The criterion's statistics on a sharpness trace ``S`` (rows: step, :math:`S_t`, ...) and the smallest
    :math:`\varepsilon` at which the run passes:
    :math:`\max(1 - \max r,\ |\mathrm{median} - 1|,\ (1 - q_{10})/2,\ (q_{90} - 1)/2.5)`, with
    :math:`r = S_t/(2/\eta)`."""
    steps = S[-1, 0]
    ratio = S[:, 1] / (2 / eta)
    win = ratio[S[:, 0] >= steps - WINDOW]
    hit = np.nonzero(ratio >= 1 - EPS)[0]
    med, q10, q90 = float(np.median(win)), float(np.quantile(win, 0.1)), float(np.quantile(win, 0.9))
    eps_min = max(1 - float(ratio.max()), abs(med - 1), (1 - q10) / 2, (q90 - 1) / 2.5, 0.0)
    return {"reach": int(S[hit[0], 0]) if len(hit) else None, "max": float(ratio.max()), "median": med,
            "q10": q10, "q90": q90, "eps_min": eps_min, "points": int(len(win))}


def sensitivity(flip: float, lo_hi, parameter: str, why: str) -> dict:
    """The sensitivity record of a judgement check whose verdict changes once, where the parameter
    crosses ``flip``: it flips inside the declared range when ``lo < flip < hi``."""
    lo, hi = lo_hi
    inside = lo < flip < hi
    return {"parameter": parameter, "declared_range": [lo, hi], "why_this_range": why,
            "flips_at": float(f"{flip:.4g}") if inside else None, "verdict_over_range": "flips" if inside else "stable"}


def _experiment(arch: str, seed: int, progress) -> dict:
    """The small-step run, then the three test runs, of one architecture and seed."""
    with training.deterministic(seed) as torch:
        X, Y = _data(torch)
        net = _net(arch, torch)
        init = [p.detach().clone() for p in net.parameters()]
        params = list(net.parameters())
        loss_fn = lambda: 0.5 * ((net(X) - Y) ** 2).sum(1).mean()  # noqa: E731
        S0 = training.top_eigenvalue(loss_fn, params, rtol=RTOL).value
        eta_s = 2 / (K_SMALL * S0)
        small = training.gradient_descent(loss_fn, params, eta_s, T_SMALL, EVERY_SMALL, progress, RTOL)
        S_ps = float(small.sharpness[:, 1].max())
        runs = []
        for f in FRACTIONS:
            with torch.no_grad():
                for p, p0 in zip(params, init):
                    p.copy_(p0)
            eta = 2 / (f * S_ps)
            t_f = small.sharpness[np.nonzero(small.sharpness[:, 1] >= f * S_ps)[0][0], 0] * eta_s  # gradient-flow time
            steps = int(math.ceil(t_f / eta)) + HOVER
            progress(f"{arch}, seed {seed}: 2/eta = {f} S_ps = {2 / eta:.3f}, {steps} steps", force=True)
            r = training.gradient_descent(loss_fn, params, eta, steps, EVERY, progress, RTOL)
            runs.append({"f": f, "eta": eta, "steps": steps, "run": r, **at_edge(r.sharpness, eta)})
        # cross-check of the last measurement of the last run by plain power iteration (independent of Lanczos)
        last = runs[-1]["run"].sharpness[-1]
        pw = training.top_eigenvalue(loss_fn, params, rtol=RTOL, method="power", maxit=400) if seed == SEEDS[0] else None
        hvp_err = _hvp_fd(torch, loss_fn, params) if seed == SEEDS[0] else None
    return {"arch": arch, "seed": seed, "S0": S0, "eta_s": eta_s, "small": small, "S_ps": S_ps, "runs": runs,
            "power": pw, "lanczos_last": last, "hvp_fd": hvp_err}


def _hvp_fd(torch, loss_fn, params):
    """Exact HVP against a central difference of the gradient, h and h/2 (Richardson error estimate)."""
    gen = training.generator(7)
    v = [torch.randn(p.shape, generator=gen) for p in params]
    Hv = training.flat(training.hvp(loss_fn, params, v))

    def grad_at(h):
        with torch.no_grad():
            for p, x in zip(params, v):
                p.add_(x, alpha=h)
        g = training.flat(torch.autograd.grad(loss_fn(), params))
        with torch.no_grad():
            for p, x in zip(params, v):
                p.add_(x, alpha=-h)
        return g

    fd = lambda h: (grad_at(h) - grad_at(-h)) / (2 * h)  # noqa: E731
    h = 1e-4
    f1, f2 = fd(h), fd(h / 2)
    trunc = 4 / 3 * np.linalg.norm(f1 - f2)  # Richardson: the error of FD(h) is ~4/3 |FD(h) - FD(h/2)|
    g0 = np.linalg.norm(training.flat(torch.autograd.grad(loss_fn(), params)))
    rnd = 8 * N_TRAIN * np.finfo(float).eps * (g0 + 1) / h  # rounding of the two gradients, divided by 2h
    return float(np.linalg.norm(f1 - Hv)), float(2 * trunc + rnd), float(np.linalg.norm(Hv))


def edge_of_stability() -> Evidence:
    """EOS-SHARP on the digits: 2 architectures x 3 seeds x (1 small-step run + 3 learning rates); a run is
    at the edge by today's criterion (module docstring), and every run of an architecture must be."""
    ev = Evidence()
    ev.step(r"Made precise (the reading of the Edge-of-Stability literature): where progressive sharpening occurs "
            r"(under a small step the sharpness keeps rising), full-batch GD with a learning rate whose edge $2/\eta$ "
            r"lies above the initial sharpness $S_0$ raises the sharpness $S_t = \lambda_{\max}(\nabla^2 L(\theta_t))$ "
            r"to $2/\eta$ and keeps it there. Networks that do not sharpen converge below the edge (the control).",
            r"2/\eta = f\,S_{ps},\ f \in \{0.5, 0.7, 0.9\},\quad S_{ps} = \max_t S_t \text{ under } 2/\eta_s = 8 S_0")
    ev.step(r"At the edge (tolerance $\varepsilon$, today's rule at $\varepsilon = 0.1$): $\max_t S_t \ge (1-\varepsilon)2/\eta$, "
            r"the median of $S_t/(2/\eta)$ over the last 200 steps within $1\pm\varepsilon$, its 10th/90th percentiles in "
            r"$[1-2\varepsilon, 1+2.5\varepsilon]$; every run of an architecture must pass.")
    progress = training.Progress("EOS-SHARP")
    exps = [_experiment(a, s, progress) for a in ARCHS for s in SEEDS]
    _record(ev, exps)
    ev.notes.append(f"Training time: {progress.summary()} (one torch thread).")
    return ev


def _record(ev: Evidence, exps: list[dict]) -> None:
    """The checks, tables, figure and finding of the runs ``exps`` (one per architecture and seed)."""
    _tabulate_runs(ev, exps)
    _sharpness_measurements_converged(ev, exps)
    _measurement_cross_checks_agree(ev, exps)
    _progressive_sharpening_with_edges_above_s0(ev, exps)
    flips = _every_run_at_the_edge(ev, exps)
    ev.figures.append(_draw(exps))
    ev.finding = _what_holds(exps, flips)
    ev.notes.append(f"Lanczos on exact HVPs; the sharpness was measured every {EVERY} steps (every {EVERY_SMALL} in the "
                    f"small-step runs); float64, one torch thread, seeds {list(SEEDS)} (initialisation).")


def _tabulate_runs(ev: Evidence, exps: list[dict]) -> None:
    """Two tables: the small-step runs (progressive sharpening) and every test run."""
    ps = training.RunLog(r"EOS-SHARP (digits), progressive sharpening: GD with a small step $2/\eta_s = 8 S_0$ "
                         f"for {T_SMALL} steps (reported separately; it sets the edges of the test runs)",
                         ["architecture", "seed", "S_0", "eta_s", "steps", "S_ps = max S_t", "S_ps / S_0",
                          "max S_t / (2/eta_s)", "loss at 0", "final loss", "s"])
    log = training.RunLog(r"EOS-SHARP (digits): every test run; ratio $= S_t / (2/\eta)$, window = last 200 steps",
                          ["architecture", "seed", "2/eta", "2/eta / S_0", "eta", "steps", "first step at 0.9 (2/eta)",
                           "max ratio", "median ratio", "10th pct", "90th pct", "smallest passing eps", "final loss",
                           "Lanczos not converged", "s"])
    for e in exps:
        sm = e["small"]
        ps.add(e["arch"], e["seed"], e["S0"], e["eta_s"], T_SMALL, e["S_ps"], e["S_ps"] / e["S0"],
               float(sm.sharpness[:, 1].max() * e["eta_s"] / 2), sm.loss[0], sm.loss[-1], sm.seconds)
        for r in e["runs"]:
            run = r["run"]
            log.add(e["arch"], e["seed"], f"{r['f']} S_ps", 2 / r["eta"] / e["S0"], r["eta"], r["steps"],
                    "never" if r["reach"] is None else r["reach"], r["max"], r["median"], r["q10"], r["q90"],
                    r["eps_min"], run.loss[-1], int((run.sharpness[:, 3] == 0).sum()), run.seconds)
    ev.tables += [ps.table(), log.table()]


def _sharpness_measurements_converged(ev: Evidence, exps: list[dict]) -> None:
    """Every Lanczos measurement reached its Weinstein residual (otherwise it is a lower bound only)."""
    bad = sum(int((r["run"].sharpness[:, 3] == 0).sum()) + int((e["small"].sharpness[:, 3] == 0).sum())
              for e in exps for r in e["runs"])
    total = sum(len(r["run"].sharpness) + len(e["small"].sharpness) for e in exps for r in e["runs"])
    ev.equal("lanczos-converged", "every sharpness measurement converged (Weinstein residual <= 1e-3 |lambda|)", bad, 0,
             "an unconverged measurement would be a lower bound only; none is allowed", method="scipy eigsh",
             metric=f"measurements not converged, of {total}", numerical_class="iterative", evidence="float")


def _measurement_cross_checks_agree(ev: Evidence, exps: list[dict]) -> None:
    """Lanczos agrees with plain power iteration, and the exact HVP with a central difference (first seed)."""
    worst_gap, worst_fd = 0.0, 0.0
    for e in exps:
        if e["power"] is None:
            continue
        pw, last = e["power"], e["lanczos_last"]
        # both are within their residuals of an eigenvalue; Lanczos targets the largest, power the largest modulus:
        # they must agree to within the sum of the two residual bounds
        worst_gap = max(worst_gap, abs(pw.value - last[1]) / (pw.residual + last[2]))
        err, tol, _ = e["hvp_fd"]
        worst_fd = max(worst_fd, err / tol)
    ev.at_most("lanczos-vs-power", "Lanczos and plain power iteration give the same top eigenvalue (end of a run)",
               worst_gap, 1.0, "each value is within its Weinstein residual of an eigenvalue; the same eigenvalue "
               "makes the gap at most the sum of the two residuals", method="power iteration",
               metric=r"max over architectures $|\lambda_{\mathrm{power}} - \lambda_{\mathrm{Lanczos}}| / "
                      r"(r_{\mathrm{power}} + r_{\mathrm{Lanczos}})$",
               numerical_class="iterative", evidence="float")
    ev.at_most("hvp-vs-finite-difference", "exact HVP (double backward) = central difference of the gradient",
               worst_fd, 1.0, r"truncation estimated by Richardson ($\tfrac43 |\mathrm{FD}(h) - \mathrm{FD}(h/2)|$, "
               r"doubled) plus the rounding of the gradients over $2h$", method="finite differences",
               metric=r"max over architectures $\|\mathrm{FD}(h) - Hv\|$ / bound, $h = 10^{-4}$",
               numerical_class="roundoff", evidence="float")


def _progressive_sharpening_with_edges_above_s0(ev: Evidence, exps: list[dict]) -> None:
    r"""The regime of the claim, per architecture: the small-step run sharpens progressively
    (:math:`S_{ps} \ge` SHARPENS :math:`S_0`, a judgement) below its own edge, and every tested edge
    lies above :math:`S_0`."""
    for arch in ARCHS:
        mine = [e for e in exps if e["arch"] == arch]
        rise = min(e["S_ps"] / e["S0"] for e in mine)
        below = max(float(e["small"].sharpness[:, 1].max() * e["eta_s"] / 2) for e in mine)
        key = arch.split()[0].lower()
        ev.check(f"{arch}: progressive sharpening occurs (small-step run: S_ps >= {SHARPENS:g} S_0, below its own edge)",
                 "torch", r"min over seeds of $S_{ps} / S_0$; max over seeds of $S_t/(2/\eta_s)$ in the small run",
                 f"{rise:.3f}; {below:.3f}", f">= {SHARPENS:g}; < 1", rise >= SHARPENS and below < 1,
                 "a network that does not sharpen does not test the claim; the small run must stay below its edge to "
                 "stand for gradient flow", key=f"sharpens-{key}", numerical_class="measured",
                 threshold_kind="judgement", evidence="float",
                 sensitivity=sensitivity(rise, SHARPENS_RANGE, r"sharpening factor $S_{ps}/S_0$ that counts as progressive "
                                         "sharpening", SHARPENS_WHY))
        edge_min = min(2 / r["eta"] / e["S0"] for e in mine for r in e["runs"])
        ev.check(f"{arch}: every tested edge 2/eta lies above the initial sharpness S_0", "torch",
                 r"min over runs of $(2/\eta) / S_0$", edge_min, "> 1", edge_min > 1,
                 r"below $S_0$ GD would start past the edge: 'drives to' would not be tested", key=f"edges-above-s0-{key}",
                 numerical_class="measured", evidence="float")


def _every_run_at_the_edge(ev: Evidence, exps: list[dict]) -> dict:
    r"""The decision, per architecture: every run is at the edge at today's :math:`\varepsilon` = EPS (a
    judgement, with the flip point as its sensitivity). Returns each architecture's flip point."""
    flips = {}
    for arch in ARCHS:
        rs = [r for e in exps if e["arch"] == arch for r in e["runs"]]
        flip = max(r["eps_min"] for r in rs)
        flips[arch] = flip
        key = arch.split()[0].lower()
        ev.check(f"{arch}: every run (3 learning rates x 3 seeds) reaches 2/eta and hovers there", "torch",
                 r"smallest tolerance $\varepsilon$ at which all 9 runs pass (reach $\ge 1-\varepsilon$, "
                 r"$|\mathrm{median}-1| \le \varepsilon$, 10th/90th pct in $[1-2\varepsilon, 1+2.5\varepsilon]$)",
                 flip, f"<= {EPS:g}", flip <= EPS,
                 r"today's rule ($\varepsilon = 0.1$), fixed before the runs; " + EPS_WHY, key=f"edge-{key}",
                 numerical_class="measured", threshold_kind="judgement", evidence="float",
                 sensitivity=sensitivity(flip, EPS_RANGE, r"tolerance $\varepsilon$ of 'at $2/\eta$'", EPS_WHY))
    return flips


def _what_holds(exps: list[dict], flips: dict) -> str:
    """The finding: both networks sharpen and GD holds the sharpness near the edge; the verdict along eps."""
    medians = [r["median"] for e in exps for r in e["runs"]]
    rises = {a: [e["S_ps"] / e["S0"] for e in exps if e["arch"] == a] for a in ARCHS}
    worst = max(flips.values())
    inside = [a for a in ARCHS if EPS_RANGE[0] < flips[a] < EPS_RANGE[1]]
    verdict = ("holds at every tolerance of the declared range" if worst <= EPS_RANGE[0] else
               "fails at every tolerance of the declared range for the "
               + " and ".join(a for a in ARCHS if flips[a] >= EPS_RANGE[1]) if worst >= EPS_RANGE[1] else
               f"flips inside the declared range [{EPS_RANGE[0]}, {EPS_RANGE[1]}] of the tolerance $\\varepsilon$: all "
               "runs of " + " and ".join(f"the {a} pass from $\\varepsilon = {flips[a]:.3f}$" for a in inside)
               + f", so the claim is at the edge within {worst:.0%} but not within today's {EPS:.0%} everywhere")
    tanh_above = max(r["median"] for e in exps if e["arch"] == ARCHS[0] for r in e["runs"]) - 1
    return (
        "On the digits (256 images, MSE) both networks sharpen progressively (under a small step the sharpness rises "
        + ", ".join(f"{min(v):.1f}-{max(v):.1f}x for the {a}" for a, v in rises.items())
        + r"), and with every edge placed between $S_0$ and that level, full-batch GD raises the sharpness to $2/\eta$ "
        r"and keeps it near there: over the 18 runs the median of $S_t/(2/\eta)$ over the last 200 steps is "
        f"{min(medians):.3f}-{max(medians):.3f} (the tanh MLP hovers up to {tanh_above:.0%} "
        "above the edge at the largest step, as Cohen et al. describe for MSE; the ReLU MLP sits at or a few per cent below it). "
        f"The verdict {verdict}. The control (a tanh MLP that sharpens by under a third) converges below the edge, so the "
        "criterion does not pass by construction; the unconditional reading ('for any learning rate') fails there. "
        "Reduced setting against Cohen et al.: 256 digits instead of 5k CIFAR-10 images, 3.5k-parameter MLPs instead of "
        "width-200 networks and CNNs, 400-1000 steps per run instead of ~10k, 3 seeds.")


def _draw(exps) -> Figure:
    plt = context.pyplot()

    fig, axes = plt.subplots(len(ARCHS), 3, figsize=(15, 4 * len(ARCHS)), squeeze=False)
    for row, arch in zip(axes, ARCHS):
        mine = [e for e in exps if e["arch"] == arch]
        a1, a2, a3 = row
        for e in mine:
            lw, al = (1.2, 1.0) if e["seed"] == SEEDS[0] else (0.6, 0.5)
            sm = e["small"]
            if e["seed"] == SEEDS[0]:
                a1.plot(sm.sharpness[:, 0] * e["eta_s"], sm.sharpness[:, 1], color="grey", lw=lw,
                        label=r"small step, $2/\eta_s = 8 S_0$")
            for i, r in enumerate(e["runs"]):
                c, S = f"C{i}", r["run"].sharpness
                if e["seed"] == SEEDS[0]:
                    a1.plot(S[:, 0] * r["eta"], S[:, 1], c, lw=lw, label=rf"$2/\eta = {r['f']}\,S_{{ps}}$")
                    a1.axhline(2 / r["eta"], color=c, ls="--", lw=0.8)
                a2.plot(S[:, 0] - S[-1, 0], S[:, 1] * r["eta"] / 2, c, lw=lw, alpha=al)
                a3.semilogy(np.arange(len(r["run"].loss)) * r["eta"], r["run"].loss, c, lw=lw, alpha=al)
        a1.set_title(f"{arch}: sharpness (seed {SEEDS[0]}); dashed: $2/\\eta$", fontsize=9)
        a1.set_xlabel(r"time $\eta t$")
        a1.set_ylabel(r"$S_t = \lambda_{\max}$")
        a1.legend(fontsize=7)
        a2.axhline(1, color="k", lw=0.8)
        a2.axhspan(1 - EPS, 1 + EPS, color="k", alpha=0.08)
        a2.axvline(-WINDOW, color="k", ls=":", lw=0.8)
        a2.set_title(rf"{arch}: $S_t/(2/\eta)$, all seeds; band $1\pm{EPS}$, window after the dotted line", fontsize=9)
        a2.set_xlabel("steps before the end of the run")
        a3.set_title(f"{arch}: training loss", fontsize=9)
        a3.set_xlabel(r"time $\eta t$")
    path = context.save_figure(fig, "eos-sharp-digits")
    return Figure(path, r"EOS-SHARP on the digits: sharpness against $2/\eta$ (left, one seed, with the small-step run "
                        r"that measures progressive sharpening), $S_t/(2/\eta)$ for every run (middle) and the loss (right).")


def control_no_sharpening() -> Evidence:
    r"""The control: today's tanh-MLP run (:func:`checks.eos_numeric.sharpness_gd`, 2-D synthetic data),
    a network that sharpens by under a third, whose edges :math:`2/\eta = 2, 4, 8\,S_0` lie above what it reaches.
    Expected (and checked): GD converges *below* the edge there, so the criterion above does not pass
    by construction; its measurement checks (exact HVP, power iteration) are kept."""
    from attnverify.checks.eos_numeric import sharpness_gd

    inner = sharpness_gd()
    ev = Evidence()
    table = next((t for t in inner.tables if any("median" in h for h in t.header) and "2/eta" in t.header[0]), None)
    if table is None:
        raise Inconclusive("control: checks.eos_numeric.sharpness_gd no longer reports its per-run table")
    col = next(i for i, h in enumerate(table.header) if h.startswith("median"))
    pre = [r for r in table.rows if "S_0" in str(r[0])]  # the pre-registered runs (not the post-hoc ones)
    medians = [float(r[col]) for r in pre]
    worst = max(medians)
    for c in inner.checks:  # its measurement checks carry over (failing ones too); its decision checks become this one
        if not c.name.startswith("2/eta ="):
            c.key = "control-" + c.key
            ev.checks.append(c)
    ev.check("control: a network that does not sharpen converges below the edge (tanh MLP, synthetic data)",
             "numpy", r"max over its 3 pre-registered runs of the median $S_t/(2/\eta)$ over the last quarter", worst,
             f"<= {1 - EPS_RANGE[1]:g}", worst <= 1 - EPS_RANGE[1],
             r"below $1 - \varepsilon$ for every $\varepsilon$ of the declared range: the criterion cannot call it "
             "'at the edge'",
             key="control-below-edge", numerical_class="measured", threshold_kind="judgement", evidence="float",
             sensitivity=sensitivity(1 - worst, EPS_RANGE, r"tolerance $\varepsilon$ of 'at $2/\eta$'", EPS_WHY))
    ev.tables += [Table("EOS-SHARP control (checks.eos_numeric.sharpness_gd): " + t.caption, t.header, t.rows)
                  for t in inner.tables]
    ev.figures += inner.figures
    ev.notes += ["Control: " + n for n in inner.notes]
    return ev
