r"""`make bench`: the exact dual solver for (7), side by side with what a researcher would write first.

In one run, on the same instances:
  (a) SciPy ``minimize`` per instance on -D: L-BFGS-B with the analytic gradient as one writes it
      first (SciPy's logsumexp and softmax, default settings), the same with a hand-fused
      value-and-gradient (default and tight settings), trust-exact with the analytic Hessian,
      Newton-CG with the analytic Hessian-vector product;
  (b) CVXPY/Clarabel on the primal (3), for a subsample;
  (c) the batched solver :func:`attnverify.batched.solve_dual_batched`.

Workloads.  The real-model shape of Section 8 of 004: per sentence of n tokens one template set
:math:`T = X / \sqrt{d'}` (:math:`d = 384`, :math:`d' = 32`) shared by the queries of 12 heads,
:math:`z = W_K^\top W_Q x_k` per head (random weights scaled so that the attention scores have standard
deviation 3, the spread of a pretrained BERT's scores), u uniform, :math:`\alpha = 1`;
:math:`n \in \{16, 64, 256\}`, enough sentences for 3072 queries.  Generic shapes
:math:`(n, d) \in \{(16, 32), (64, 64), (128, 64)\}`: Gaussian templates, u with one eighth padding zeros,
2048 queries sharing T.

Every method runs on one core: BLAS pinned to one thread, the batched solver with one worker (it is
timed once more on every core, as a throughput row that enters no ratio).  Each method is timed
after an untimed warm-up run, best of up to 3 runs (per-instance methods stop repeating once 2 s
are spent): a single cold run charged L-BFGS-B ~50% more for SciPy's first-call costs.
Reported per method: time per query and throughput (the batched solver on every query;
per-instance methods on a subsample, since they are per-instance anyway), accuracy reached
(:math:`\|\nabla D\| / \max(\|b\|, 1)`, and the distance to a reference :math:`\lambda` from the per-instance
full-space Newton of attnverify.dual at rtol 1e-14), peak traced memory, and the fraction of
this machine's one-core dense float64 matmul rate (measured in the same run, with the all-core
rate beside it) that the batched solver's counted matrix-product flops reach.  Then 1,000,000
queries at :math:`d = 384`, :math:`n = 64` in a child process whose peak resident memory is read from the
kernel.
Writes docs/bench.md and docs/figures/bench.png and prints ``speedup_vs_scipy=<ratio>`` last:
first-written L-BFGS-B time per query over the batched solver's, on the :math:`d = 384`, :math:`n = 64`
workload (the ratio against the fused objective is printed just before).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import resource
import subprocess
import sys
import time
import tracemalloc
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy.optimize import minimize

from . import atomic, context, dual
from .batched import KAPPA_SINGLE, hessian_condition_bound, one_blas_thread, solve_dual_batched, solve_stacked
from .certificate import log_u

HEADS, DH, D_MODEL, SCORE_STD = 12, 32, 384, 3.0


@dataclass
class Workload:
    name: str
    n: int
    d: int
    heads: list  # [(T, u, Z)], each T shared by the rows of its Z
    alpha: float = 1.0
    results: dict = field(default_factory=dict)

    @property
    def m(self):
        return sum(len(Z) for _, _, Z in self.heads)


def _head_maps(rng) -> np.ndarray:
    r""":math:`W_K^\top W_Q` (d, d) for each of the 12 heads: :math:`z = W_K^\top W_Q x`."""
    # layer-normed x has unit-variance entries, so q_c, k_c ~ N(0, sd^2 d) = N(0, 3) and the score
    # <t_i, z> = q.k / sqrt(dh) has variance 3 * 3 = 9: standard deviation SCORE_STD = 3
    sd = np.sqrt(SCORE_STD / D_MODEL)
    WQ = rng.normal(size=(HEADS, DH, D_MODEL)) * sd
    WK = rng.normal(size=(HEADS, DH, D_MODEL)) * sd
    return np.einsum("hcd,hce->hde", WK, WQ)


def _sentence(rng, n: int, M: np.ndarray):
    r"""One sentence of n layer-normed hidden states: :math:`T = X/\sqrt{d'}`, uniform u, and every query of
    every head."""
    X = rng.normal(size=(n, D_MODEL))
    X = (X - X.mean(1, keepdims=True)) / X.std(1, keepdims=True)
    Z = np.concatenate([X @ M[h].T for h in range(HEADS)])  # (12 n, d)
    return X / np.sqrt(DH), np.full(n, 1.0 / n), Z


def real_model_workload(n: int, queries: int = 3072, seed: int = 0) -> Workload:
    rng = np.random.default_rng([context.SEED, seed, n])
    M = _head_maps(rng)
    heads = [_sentence(rng, n, M) for _ in range(max(1, queries // (HEADS * n)))]
    return Workload(f"real-model n={n}, d={D_MODEL}", n, D_MODEL, heads)


def generic_workload(n: int, d: int, queries: int = 2048, seed: int = 1) -> Workload:
    rng = np.random.default_rng([context.SEED, seed, n, d])
    T = rng.normal(size=(n, d)) / np.sqrt(d) * 2
    u = rng.dirichlet(np.ones(n))
    u[rng.choice(n, n // 8, replace=False)] = 0
    u /= u.sum()
    Z = rng.normal(size=(queries, d))
    return Workload(f"generic n={n}, d={d}", n, d, [(T, u, Z)])


# --- per-instance SciPy, as one would write it ------------------------------------------------

def _negD(T, u, z, alpha):
    b = T.T @ u + z
    lu = log_u(u)

    def fun(lam):
        x = lu + T @ lam
        mx = x.max()
        e = np.exp(x - mx)
        s = e.sum()
        p = e / s
        return -(lam @ b - lam @ lam / (2 * alpha) - (mx + np.log(s))), -(b - lam / alpha - T.T @ p)

    def hess(lam):
        p = dual.tilted(T, u, lam)
        Tc = T - T.T @ p
        return np.eye(len(lam)) / alpha + (Tc * p[:, None]).T @ Tc

    def hessp(lam, v):
        p = dual.tilted(T, u, lam)
        tv = T @ v
        return v / alpha + T.T @ (p * (tv - p @ tv))

    return fun, hess, hessp


def scipy_lbfgsb_first(T, u, z, alpha):
    """L-BFGS-B as one writes it first: the objective and the analytic gradient as two functions,
    with SciPy's own logsumexp (weights ``b=u``) and softmax; default settings."""
    from scipy.special import logsumexp, softmax

    b = T.T @ u + z
    lu = log_u(u)

    def negD(lam):
        return -(lam @ b - lam @ lam / (2 * alpha) - logsumexp(T @ lam, b=u))

    def grad(lam):
        return -(b - lam / alpha - T.T @ softmax(lu + T @ lam))

    return minimize(negD, np.zeros_like(z), jac=grad, method="L-BFGS-B").x


def scipy_lbfgsb(T, u, z, alpha):
    """L-BFGS-B with a hand-fused value-and-gradient (one exp per evaluation); default settings."""
    fun, _, _ = _negD(T, u, z, alpha)
    return minimize(fun, np.zeros_like(z), jac=True, method="L-BFGS-B").x


def scipy_lbfgsb_tight(T, u, z, alpha):
    r"""L-BFGS-B asked for the batched solver's accuracy: projected-gradient target
    :math:`10^{-10}\|b\| / \sqrt d` (its gtol is a max-norm), no relative-reduction stop, generous iteration limits."""
    fun, _, _ = _negD(T, u, z, alpha)
    gtol = 1e-10 * max(np.linalg.norm(T.T @ u + z), 1) / np.sqrt(len(z))
    opts = {"gtol": gtol, "ftol": 0.0, "maxiter": 20000, "maxfun": 40000}
    return minimize(fun, np.zeros_like(z), jac=True, method="L-BFGS-B", options=opts).x


def scipy_trust_exact(T, u, z, alpha):
    fun, hess, _ = _negD(T, u, z, alpha)
    gtol = 1e-10 * max(np.linalg.norm(T.T @ u + z), 1)
    return minimize(fun, np.zeros_like(z), jac=True, hess=hess, method="trust-exact", options={"gtol": gtol}).x


def scipy_newton_cg(T, u, z, alpha):
    fun, _, hessp = _negD(T, u, z, alpha)
    return minimize(fun, np.zeros_like(z), jac=True, hessp=hessp, method="Newton-CG", options={"xtol": 1e-14}).x


def cvxpy_primal(T, u, z, alpha):
    from .primal import solve_primal_cvxpy

    p = solve_primal_cvxpy(T, u, z, alpha).p
    return alpha * (T.T @ u + z - T.T @ p)


PER_INSTANCE = {  # name -> (function, subsample size)
    "SciPy L-BFGS-B": (scipy_lbfgsb_first, 96),
    "SciPy L-BFGS-B, fused objective": (scipy_lbfgsb, 96),
    "SciPy L-BFGS-B, fused, tight": (scipy_lbfgsb_tight, 48),
    "SciPy Newton-CG (Hessian-vector)": (scipy_newton_cg, 24),
    "SciPy trust-exact (Hessian)": (scipy_trust_exact, 6),
    "CVXPY/Clarabel primal": (cvxpy_primal, 4),
}


def _rel_grad(T, u, z, alpha, lam):
    b = T.T @ u + z
    g = b - lam / alpha - T.T @ dual.tilted(T, u, lam)
    return float(np.linalg.norm(g) / max(np.linalg.norm(b), 1.0))


def _rel_grads(T, u, Z, alpha, lam):
    r""":math:`\|\nabla D(\lambda_k)\| / \max(\|b_k\|, 1)` of (7) for every row, evaluated in :math:`\mathbb R^d`."""
    x = log_u(u) + lam @ T.T
    p = np.exp(x - x.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    b = T.T @ u + Z
    return np.linalg.norm(b - lam / alpha - p @ T, axis=1) / np.maximum(np.linalg.norm(b, axis=1), 1.0)


def _subsample(w: Workload, k: int):
    """k queries spread over the workload's sentences and heads (deterministic)."""
    out = []
    flat = [(T, u, Z[j]) for T, u, Z in w.heads for j in range(len(Z))]
    for i in np.linspace(0, len(flat) - 1, min(k, len(flat))).astype(int):
        out.append(flat[i])
    return out


def _io_flops(n, d, r):
    r"""Per query, outside the Newton loop: :math:`z_q = Q^\top z` and :math:`\lambda = \alpha z + Q (w - \alpha z_q)`
    (when :math:`S \ne \mathbb R^d`), and the start (13) (an :math:`r \times r` solve per query)."""
    return (4 * r * d if r < d else 0) + 2 * r * r


def _counted_flops(w: Workload, sol_by_head) -> tuple[float, float, float]:
    """Flops of the batched solver's matrix products (the dominant work), from its iteration counts;
    returns (total, the CG products' share of it, the largest bound on :math:`\mathrm{cond}(H)` over the heads)."""
    total = cg = 0.0
    kappa = 1.0
    for (T, u, Z), sol in zip(w.heads, sol_by_head):
        n, d, r = int((u > 0).sum()), T.shape[1], sol.rank
        per_query = _io_flops(n, d, r)
        newton = 6 * n * r  # E_p[a], Jacobi diagonal (float32), line-search logits; backtracking not counted
        cg += sol.cg_iterations.sum() * 4 * n * r
        A = (T[u > 0] - T.T @ u) @ sol.basis
        kappa = max(kappa, hessian_condition_bound(A, w.alpha))
        total += len(Z) * per_query + sol.iterations.sum() * newton + sol.cg_iterations.sum() * 4 * n * r
    return total, (cg / total if total else 0.0), kappa


def matmul_peak(size: int = 2000, repeats: int = 3) -> float:
    """Dense float64 matmul rate of this machine, GFLOP/s (best of a few)."""
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(size, size)), rng.normal(size=(size, size))
    a @ b
    best = min(_timed(lambda: a @ b)[1] for _ in range(repeats))
    return 2 * size**3 / best / 1e9


def _timed(f):
    t = time.perf_counter()
    out = f()
    return out, time.perf_counter() - t


def _peak_traced(f) -> float:
    tracemalloc.start()
    f()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak / 2**20


def _best_time(f, budget_s: float = 2.0, repeats: int = 3, warmup=None):
    """Result and best wall time of up to `repeats` runs of f (fewer once `budget_s` is spent).
    An untimed warm-up (`warmup`, else f itself) comes first, so no method pays for first-call
    imports and caches."""
    (warmup or f)()
    out, best, spent = None, np.inf, 0.0
    for _ in range(repeats):
        res, t = _timed(f)
        spent += t
        if t < best:
            out, best = res, t
        if spent > budget_s:
            break
    return out, best


def run_workload(w: Workload, sub_scale: float, log) -> None:
    """Every method on one core (BLAS pinned to one thread, the batched solver with workers=1), so the
    speed-ups compare like with like; the batched solver on all cores is timed as an extra row."""
    with one_blas_thread():
        _run_workload(w, sub_scale, log)


def _run_workload(w: Workload, sub_scale: float, log) -> None:
    alpha = w.alpha
    sols, t_batched = _best_time(lambda: [solve_dual_batched(T, u, Z, alpha, workers=1) for T, u, Z in w.heads],
                                 budget_s=np.inf)
    conv = np.concatenate([s.converged for s in sols])
    # accuracy recomputed here in R^d, independently of the solver's own verdict
    relg = np.concatenate([_rel_grads(T, u, Z, alpha, s.lam) for (T, u, Z), s in zip(w.heads, sols)])
    lam_b = {}
    for (T, u, Z), s in zip(w.heads, sols):
        for j in range(len(Z)):
            lam_b[id(T), j] = s.lam[j]
    flops, cg_share, kappa = _counted_flops(w, sols)
    T0, u0, Z0 = w.heads[0]
    mem_b = _peak_traced(lambda: solve_dual_batched(T0, u0, Z0, alpha)) - Z0.nbytes / 2**20
    w.results["batched (attnverify)"] = dict(
        per_query_s=t_batched / w.m, queries=w.m, converged=int(conv.sum()), flops_per_query=flops / w.m,
        rel_grad_median=float(np.median(relg)), rel_grad_max=float(relg.max()),
        mem_mib=mem_b, gflops=flops / t_batched / 1e9, cg_flop_share=cg_share, kappa=kappa,
        newton_mean=float(np.mean(np.concatenate([s.iterations for s in sols]))),
        cg_mean=float(np.mean(np.concatenate([s.cg_iterations for s in sols]))))
    log(f"  batched: {t_batched / w.m * 1e6:9.1f} us/query on {w.m} queries, {conv.sum()} converged, "
        f"max rel grad {relg.max():.1e}")
    cores = os.cpu_count() or 1
    if cores > 1:
        sols_c, t_cores = _best_time(lambda: [solve_dual_batched(T, u, Z, alpha, workers=cores) for T, u, Z in w.heads],
                                     budget_s=np.inf)
        relg_c = np.concatenate([_rel_grads(T, u, Z, alpha, s.lam) for (T, u, Z), s in zip(w.heads, sols_c)])
        w.results[f"batched, {cores} threads"] = dict(
            per_query_s=t_cores / w.m, queries=w.m, rel_grad_median=float(np.median(relg_c)),
            rel_grad_max=float(relg_c.max()), mem_mib=float("nan"))
        log(f"  batched on {cores} threads: {t_cores / w.m * 1e6:9.1f} us/query")
    # reference lambda for the subsample: per-instance full-space Newton at the float64 floor
    refs = {}
    for name, (fn, k) in PER_INSTANCE.items():
        sub = _subsample(w, max(2, int(k * sub_scale)))
        lams, t = _best_time(lambda: [fn(T, u, z, alpha) for T, u, z in sub], warmup=lambda: fn(*sub[0][:3], alpha))
        grads, dists, dist_b = [], [], []
        for (T, u, z), lam in zip(sub, lams):
            key = (id(T), z.tobytes())
            if key not in refs:
                refs[key] = dual.solve_dual_newton(T, u, z, alpha, rtol=1e-14).lam
            ref = refs[key]
            grads.append(_rel_grad(T, u, z, alpha, lam))
            dists.append(np.linalg.norm(lam - ref) / np.linalg.norm(ref))
        T1, u1, z1 = sub[0]
        mem = _peak_traced(lambda: fn(T1, u1, z1, alpha))
        w.results[name] = dict(per_query_s=t / len(sub), queries=len(sub), rel_grad_median=float(np.median(grads)),
                               rel_grad_max=float(np.max(grads)), rel_err_max=float(np.max(dists)), mem_mib=mem)
        log(f"  {name}: {t / len(sub) * 1e6:9.1f} us/query on {len(sub)} queries, "
            f"median rel grad {np.median(grads):.1e}, max rel error {np.max(dists):.1e}")
    # the batched solver against the same references
    errs = []
    for T, u, Z in w.heads:
        for j in range(len(Z)):
            key = (id(T), Z[j].tobytes())
            if key in refs:
                errs.append(np.linalg.norm(lam_b[id(T), j] - refs[key]) / np.linalg.norm(refs[key]))
    w.results["batched (attnverify)"]["rel_err_max"] = float(np.max(errs)) if errs else float("nan")


# --- the sweep workload: what FD-FIG4 runs ----------------------------------------------------------

SWEEP_SENTENCES = 40  # a fixed subset of the FD-FIG4 corpus: every 500 / 40-th sentence


def sweep_workload(n_sentences: int = SWEEP_SENTENCES, corpus_size: int = 500):
    r"""MiniLM's actual (T, u, Z) per (sentence, layer) for every (corpus_size / n_sentences)-th sentence of the
    FD-FIG4 corpus (the real sentence lengths; 6 layers, 12 heads, :math:`\alpha = 1`): a list of problems."""
    from . import models, sweep

    sents = models.corpus(corpus_size)[:: max(1, corpus_size // n_sentences)][:n_sentences]
    model = "all-MiniLM-L6-v2"
    W = sweep._weights(model)
    heads = list(range(sweep.MODELS[model]["heads"]))
    probs = []
    for sentence in sents:
        hs = sweep._hidden_states(sentence)
        probs += [sweep.layer_problem(W[layer], hs[layer], heads, len(heads)) for layer in range(len(W))]
    return probs


def run_sweep_workload(probs, log) -> dict:
    r"""Today's per-(sentence, layer) calls against one stacked solve, side by side, one core; and their
    agreement: the largest :math:`\|\lambda_{\text{call}} - \lambda_{\text{stacked}}\| - (B_{\text{call}} +
    B_{\text{stacked}})` (:math:`\le 0`: within the certified bounds)."""
    m = sum(len(Z) for _, _, Z in probs)
    with one_blas_thread():
        per, t_per = _best_time(lambda: [solve_dual_batched(T, u, Z, 1.0, workers=1) for T, u, Z in probs],
                                budget_s=np.inf)
        st, t_st = _best_time(lambda: solve_stacked([(T, u, Z, 1.0) for T, u, Z in probs]), budget_s=np.inf)
    excess = max(float(np.max(np.linalg.norm(a.lam - b.lam, axis=1) - (a.bound + b.bound))) for a, b in zip(per, st))
    conv = (int(sum(a.converged.sum() for a in per)), int(sum(b.converged.sum() for b in st)))
    flops = 0.0
    for (T, u, Z), sol in zip(probs, st):  # the matrix products, counted as in _counted_flops
        n, d, r = T.shape[0], T.shape[1], sol.rank
        flops += len(Z) * _io_flops(n, d, r) + sol.iterations.sum() * 6 * n * r + sol.cg_iterations.sum() * 4 * n * r
    ns = sorted({T.shape[0] for T, _, _ in probs})
    out = dict(problems=len(probs), queries=m, n_min=ns[0], n_max=ns[-1], per_call_s=t_per, stacked_s=t_st,
               ratio=t_per / t_st, excess=excess, converged=conv, flops_per_query=flops / m)
    log(f"  sweep workload: {len(probs)} (sentence, layer) problems, {m} queries, n = {ns[0]}..{ns[-1]}: per call "
        f"{t_per / m * 1e6:.1f} us/query, stacked {t_st / m * 1e6:.1f} us/query, ratio {t_per / t_st:.2f}; "
        f"agreement excess over the bounds {excess:.1e}")
    return out


# --- one million queries in a child process -----------------------------------------------------

def million_worker(total: int, n: int = 64) -> dict:
    """Solve `total` real-model-shape queries sentence by sentence, keeping per-query summaries only."""
    rng = np.random.default_rng([context.SEED, 99])
    M = _head_maps(rng)
    per = HEADS * n
    k = (total + per - 1) // per
    conv = np.zeros(k * per, bool)
    iters = np.zeros(k * per, np.int16)
    relg = np.zeros(k * per)
    dev = np.zeros(k * per)  # ||lambda* - alpha z|| / ||lambda*||, the quantity of Fig 4
    t_solve = 0.0
    t0 = time.perf_counter()
    for s in range(k):
        T, u, Z = _sentence(rng, n, M)
        sol, t = _timed(lambda: solve_dual_batched(T, u, Z, 1.0))
        t_solve += t
        sl = slice(s * per, (s + 1) * per)
        conv[sl], iters[sl] = sol.converged, sol.iterations
        relg[sl] = sol.grad_norm / np.maximum(np.linalg.norm(T.T @ u + Z, axis=1), 1.0)
        dev[sl] = np.linalg.norm(sol.lam - Z, axis=1) / np.linalg.norm(sol.lam, axis=1)
        if s % 200 == 0:
            print(f"    {s * per:>9,d} / {k * per:,d} queries", file=sys.stderr, flush=True)
    return dict(queries=int(k * per), converged=int(conv.sum()), solve_s=t_solve, wall_s=time.perf_counter() - t0,
                rel_grad_max=float(relg.max()), newton_mean=float(iters.mean()), deviation_median=float(np.median(dev)),
                peak_rss_mib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def run_million(total: int, log) -> dict:
    log(f"1,000,000-query run: {total:,d} queries (d = {D_MODEL}, n = 64) in a child process")
    out = subprocess.run([sys.executable, "-m", "attnverify.bench", "--million-worker", str(total)],
                         stdout=subprocess.PIPE, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


# --- report -------------------------------------------------------------------------------------

def _figure(workloads, path: Path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    methods = list(workloads[0].results)
    fig, ax = plt.subplots(figsize=(9, 4))
    width = 0.8 / len(methods)
    for i, mname in enumerate(methods):
        ax.bar(np.arange(len(workloads)) + i * width, [w.results[mname]["per_query_s"] * 1e6 for w in workloads],
               width, label=mname)
    ax.set_yscale("log")
    ax.set_ylabel("time per query (µs, log scale)")
    ax.set_xticks(np.arange(len(workloads)) + 0.4 - width / 2, [w.name.replace(", ", "\n") for w in workloads], fontsize=8)
    ax.legend(fontsize=7)
    ax.set_title("Exact solves of the dual (7): time per query")
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)
    atomic.write_bytes(path, buf.getbuffer())


def _cell(x, fmt: str) -> str:
    """A table cell: the number formatted, or a dash where there is none."""
    return "—" if x is None or np.isnan(x) else format(x, fmt)


def write_markdown(workloads, peak, million, headline, path: Path, machine: dict):
    """docs/bench.md: the header with the headline, one table per workload, the sweep workload, the
    distance to the floor, the million-query run and the figure."""
    L = _md_header(peak, headline, machine)
    for w in workloads:
        L += _md_workload_table(w, peak, machine)
    if machine.get("sweep"):
        L += _md_sweep_table(machine["sweep"], machine)
    L += _md_floor_note()
    if million:
        L += _md_million_run(million)
    L += ["![time per query](figures/bench.png)", ""]
    atomic.write_text(path, "\n".join(L))


def _md_header(peak, headline, machine: dict) -> list:
    """The page's opening: how it was generated, the machine and its matmul rates, the headline, the method."""
    return ["# Benchmark: exact solves of the dual (7)", "",
            "Generated by `make bench` (`python -m attnverify.bench`); every number below comes from one run.",
            "Method and workloads: see the docstring of `attnverify/bench.py`.", "",
            f"Machine: {machine['cpus']} cores, {machine['platform']}, Python {machine['python']}, "
            f"numpy {np.__version__}; load average at start {machine['load']}.",
            f"Dense float64 matmul ({machine['peak_size']}²), measured in this run: **{peak:.1f} GFLOP/s** on "
            f"{machine['cpus']} cores, **{machine['peak_one']:.1f} GFLOP/s** on one core (the batched solver's rows "
            "below run on one core, so their matrix-product rate is set against the one-core figure).", "",
            *_md_headline(headline),
            "Every method runs on one core (BLAS pinned to one thread, the batched solver with one worker), so the "
            "speed-ups compare like with like; each is timed after one untimed warm-up run, best of up to 3 runs "
            "(per-instance methods: fewer once 2 s are spent). The row \"batched, N threads\" is the same solver "
            "with one worker thread per core, for throughput; it enters no speed-up.", "",
            "Columns: time per query; throughput; queries timed; median and largest ‖∇D(λ)‖ / max(‖b‖, 1); "
            "largest ‖λ − λ_ref‖ / ‖λ_ref‖ against the per-instance full-space Newton at rtol 1e-14 (on the subsample); "
            "peak traced memory of one call (batched: one sentence's queries, inputs excluded); speed-up of the batched solver.", ""]


def _md_headline(headline) -> list:
    """The headline paragraph: the batched solver against first-written, fused and tight L-BFGS-B at
    :math:`d = 384`, :math:`n = 64`."""
    return [f"**Headline** (d = 384, n = 64, real-model shape): the batched solver takes {headline['batched_us']:.1f} µs per query; "
            f"SciPy L-BFGS-B as one writes it first (objective and analytic gradient as two functions, SciPy's "
            f"`logsumexp`/`softmax`, default settings) takes {headline['lbfgs_us']:.0f} µs: **speed-up {headline['ratio']:.0f}×**, "
            f"with the batched solver's largest relative gradient {headline['batched_grad']:.1e} against L-BFGS-B's median "
            f"{headline['lbfgs_grad']:.1e} (accuracy {'equal or better' if headline['better'] else 'WORSE'}). "
            f"Against L-BFGS-B with a hand-fused value-and-gradient ({headline['fused_us']:.0f} µs per query) the speed-up is "
            f"**{headline['fused_ratio']:.0f}×**; asked for the batched solver's accuracy (gtol 1e-10‖b‖, no relative-reduction "
            f"stop) fused L-BFGS-B takes {headline['tight_ratio']:.0f}× the batched solver's time and still stops at a median "
            f"relative gradient of {headline['tight_grad']:.1e}.", ""]


def _md_workload_table(w: Workload, peak, machine: dict) -> list:
    """One workload's section: a row per method, then the batched solver's iteration counts and flop rate."""
    L = [f"## {w.name}, alpha = {w.alpha:g}", "",
         "| method | µs / query | queries / s | timed on | median rel. grad | max rel. grad | max rel. error | peak MiB | batched speed-up | × floor |",
         "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    tb = w.results["batched (attnverify)"]["per_query_s"]
    floor = w.results["batched (attnverify)"]["flops_per_query"] / (machine["peak_one"] * 1e9)
    for name, r in w.results.items():
        ratio = "—" if name.startswith("batched,") else f"{r['per_query_s'] / tb:.1f}×"
        L.append(f"| {name} | {r['per_query_s'] * 1e6:.1f} | {1 / r['per_query_s']:,.0f} | {r['queries']} | "
                 f"{r['rel_grad_median']:.1e} | {r['rel_grad_max']:.1e} | {_cell(r.get('rel_err_max'), '.1e')} | "
                 f"{_cell(r['mem_mib'], '.1f')} | {ratio} | {r['per_query_s'] / floor:.1f} |")
    b = w.results["batched (attnverify)"]
    L += ["", f"Batched: {b['converged']} of {b['queries']} converged; mean {b['newton_mean']:.1f} Newton steps and "
          f"{b['cg_mean']:.1f} CG steps per query; counted matrix-product rate {b['gflops']:.1f} GFLOP/s = "
          f"{b['gflops'] / machine['peak_one']:.0%} of the one-core matmul peak "
          f"({b['gflops'] / peak:.0%} of the machine's); the CG products, {b['cg_flop_share']:.0%} of the counted "
          f"flops, {'ran in float32' if b['kappa'] <= KAPPA_SINGLE else 'ran in float64'} (bound on cond(H): "
          f"{b['kappa']:.3g}; float32 at most {KAPPA_SINGLE:g}) and count as flops like the rest.", ""]
    return L


def _md_sweep_table(sw: dict, machine: dict) -> list:
    """The FD-FIG4 workload: per-(sentence, layer) calls against one stacked call, and their agreement."""
    fl = sw["flops_per_query"] / (machine["peak_one"] * 1e9)
    return ["## sweep: the FD-FIG4 workload (MiniLM's own T and Z, real sentence lengths)", "",
            f"{sw['problems']} (sentence, layer) problems of every {500 // SWEEP_SENTENCES}-th sentence of the FD-FIG4 "
            f"corpus ({sw['queries']:,d} queries, n = {sw['n_min']}-{sw['n_max']} tokens, d = 384, 12 heads, alpha = 1), "
            "solved in one run on one core, first as the sweep did (one `solve_dual_batched` call per sentence and "
            "layer), then by one `solve_stacked` call (grouped by length, chunked by bytes).", "",
            "| method | µs / query | queries / s | converged | × floor |", "|---|---:|---:|---:|---:|",
            f"| per (sentence, layer) call | {sw['per_call_s'] / sw['queries'] * 1e6:.1f} | "
            f"{sw['queries'] / sw['per_call_s']:,.0f} | {sw['converged'][0]} | {sw['per_call_s'] / sw['queries'] / fl:.1f} |",
            f"| stacked | {sw['stacked_s'] / sw['queries'] * 1e6:.1f} | {sw['queries'] / sw['stacked_s']:,.0f} | "
            f"{sw['converged'][1]} | {sw['stacked_s'] / sw['queries'] / fl:.1f} |", "",
            f"Stacked over per-call: **{sw['ratio']:.2f}×** per query.  The two agree within their certified bounds "
            f"(largest ||λ_call − λ_stacked|| − (B_call + B_stacked) = {sw['excess']:.1e} ≤ 0).", "",
            _md_stacking_limit(sw, fl), ""]


def _md_stacking_limit(sw: dict, floor_s: float) -> str:
    """What stacking can save at most: the per-call cost per query (per-call minus stacked time), set against
    the stacked solve's own time and its matrix-product floor; a ratio of 2 needs the first to reach the second."""
    per, st = sw["per_call_s"] / sw["queries"] * 1e6, sw["stacked_s"] / sw["queries"] * 1e6
    return (f"**What stacking can remove.**  Stacking saves only the fixed cost of a call (its Python and NumPy "
            f"dispatch, paid per Newton and CG step of each call): here {per - st:.1f} µs per query (per-call minus "
            f"stacked).  A ratio of 2 would need the stacked solve to cost no more than that, {per - st:.1f} µs per "
            f"query, against the {st:.1f} µs measured, of which the matrix products alone take {floor_s * 1e6:.1f} µs "
            f"at this run's one-core rate; the rest is the per-element work of the exponentials, the line search "
            f"and the error bounds, which does not shrink with stacking.")


def _md_floor_note() -> list:
    """What the "× floor" column measures, and the floor measured for the fast-solver issue."""
    return ["**Distance to the floor.**  \"× floor\" is the time per query over the matrix products alone at this run's "
            "one-core matmul rate (the counted flops of the batched solver: input and output products, Newton and CG "
            "products); the rest is fixed per-call and per-step cost (NumPy dispatch, exponentials, line search). For "
            "reference, the floor measured for the issue \"A fast exact dual solver\" was about 9.5 µs per query at "
            "d = 384, n = 64 (fixed costs plus the matrix products at the one-core rate).", ""]


def _md_million_run(million: dict) -> list:
    """The 1,000,000-query run: solver and wall time, verdicts, and the peak resident memory."""
    return ["## 1,000,000 queries (d = 384, n = 64, 12 heads per sentence)", "",
            f"{million['queries']:,d} queries solved in {million['solve_s']:.1f} s of solver time "
            f"({million['wall_s']:.1f} s wall, including generating the inputs); {million['converged']:,d} converged; "
            f"largest relative gradient {million['rel_grad_max']:.1e}; mean {million['newton_mean']:.1f} Newton steps. "
            f"Peak resident memory of the process: **{million['peak_rss_mib']:.0f} MiB** (bound: 4096 MiB). "
            "Per query only the verdict, iteration count, gradient and ‖λ* − αz‖/‖λ*‖ "
            f"(median {million['deviation_median']:.3f}) are kept; λ* of a sentence is dropped after use.", ""]


def main(argv=None) -> int:
    a = _arguments(argv)
    if a.million_worker:
        print(json.dumps(million_worker(a.million_worker)))
        return 0
    log = _log
    load = os.getloadavg()[0]
    if load > 0.5:
        log(f"note: load average {load:.2f}: other work on this machine slows every method")
    peak_size = 1000 if a.quick else 2000
    peak, peak_one = _matmul_peaks(peak_size, log)
    workloads = _run_all_workloads(a.quick, log)
    million = None if a.quick or a.million == 0 else run_million(a.million, log)
    sweep_res = _sweep_row(a.quick, log)
    w64 = workloads[1]
    headline = _headline(w64)
    cert = _certification_cost(w64, a.quick, headline, log)
    docs = Path(a.docs)
    _figure(workloads, docs / "figures" / "bench.png")
    machine = dict(cpus=os.cpu_count(), platform=platform.platform(), python=platform.python_version(),
                   load=f"{load:.2f}", peak_size=peak_size, peak_one=peak_one, sweep=sweep_res)
    write_markdown(workloads, peak, million, headline, docs / "bench.md", machine)
    log(f"wrote {docs / 'bench.md'} and {docs / 'figures' / 'bench.png'}")
    if not headline["better"]:
        log("warning: the batched solver's accuracy is not equal or better than L-BFGS-B's on this workload")
    _print_ratios(cert, headline, sweep_res)
    return 0


def _arguments(argv):
    """The command line of ``python -m attnverify.bench``."""
    ap = argparse.ArgumentParser(prog="python -m attnverify.bench", description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small workloads and subsamples, no million-query run")
    ap.add_argument("--million", type=int, default=1_000_000, help="queries in the memory run (0 to skip)")
    ap.add_argument("--million-worker", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--docs", default="docs", help="where bench.md and figures/bench.png go")
    return ap.parse_args(argv)


def _log(msg):
    print(msg, file=sys.stderr, flush=True)


def _matmul_peaks(peak_size: int, log) -> tuple[float, float]:
    """This machine's dense matmul rate on every core and on one core, GFLOP/s."""
    peak = matmul_peak(peak_size)
    with one_blas_thread():
        peak_one = matmul_peak(peak_size)
    log(f"dense matmul: {peak:.1f} GFLOP/s on every core, {peak_one:.1f} GFLOP/s on one")
    return peak, peak_one


def _run_all_workloads(quick: bool, log) -> list:
    """The real-model workloads (:math:`n = 16, 64, 256`) and the generic ones, each run by every method."""
    q = 0.1 if quick else 1.0
    workloads = [real_model_workload(n, int(3072 * q)) for n in (16, 64, 256)]
    workloads += [generic_workload(n, d, int(2048 * q)) for n, d in ((16, 32), (64, 64), (128, 64))]
    for w in workloads:
        log(f"{w.name}: {w.m} queries")
        run_workload(w, 0.25 if quick else 1.0, log)
    return workloads


def _sweep_row(quick: bool, log):
    """The sweep workload's measurements, or None (with a note) where torch or the model is missing."""
    try:
        return run_sweep_workload(sweep_workload(2 if quick else SWEEP_SENTENCES), log)
    except Exception as e:  # no torch / model: the sweep row is left out, with a note
        log(f"note: sweep workload skipped ({e})")
        return None


def _headline(w64: Workload) -> dict:
    """The headline ratios on the :math:`d = 384`, :math:`n = 64` workload: the batched solver against L-BFGS-B."""
    rb, rl = w64.results["batched (attnverify)"], w64.results["SciPy L-BFGS-B"]
    rt = w64.results["SciPy L-BFGS-B, fused, tight"]
    rf = w64.results["SciPy L-BFGS-B, fused objective"]
    return dict(batched_us=rb["per_query_s"] * 1e6, lbfgs_us=rl["per_query_s"] * 1e6,
                tight_ratio=rt["per_query_s"] / rb["per_query_s"], tight_grad=rt["rel_grad_median"],
                fused_ratio=rf["per_query_s"] / rb["per_query_s"], fused_us=rf["per_query_s"] * 1e6,
                ratio=rl["per_query_s"] / rb["per_query_s"], batched_grad=rb["rel_grad_max"],
                lbfgs_grad=rl["rel_grad_median"], better=rb["rel_grad_max"] <= rl["rel_grad_median"])


def _certification_cost(w64: Workload, quick: bool, headline: dict, log) -> dict:
    """Issue 22: the cost of a ball-arithmetic certificate per query, on the first sentence of the
    :math:`n = 64` workload."""
    from .certify import bench_certification

    T64, u64, Z64 = w64.heads[0]
    Zc = Z64[:64 if quick else 256]
    cert = bench_certification(T64, u64, Zc, w64.alpha, solve_dual_batched(T64, u64, Zc, w64.alpha).lam)
    log(f"certification (arb, attnverify.certify) at d = {w64.d}, n = {w64.n}: {cert['us_per_instance']:.0f} us/query "
        f"on {cert['instances']} queries ({cert['us_per_instance'] / headline['batched_us']:.0f}x the batched solve), "
        f"{cert['certified']} certified, max radius {cert['max_radius_rel']:.1e} relative")
    return cert


def _print_ratios(cert: dict, headline: dict, sweep_res) -> None:
    """The machine-readable last lines on stdout; ``speedup_vs_scipy=<ratio>`` comes last."""
    print(f"certify_us_per_instance={cert['us_per_instance']:.0f}")
    print(f"speedup_vs_scipy_fused_objective={headline['fused_ratio']:.1f}")
    if sweep_res:
        print(f"sweep_stacked_speedup={sweep_res['ratio']:.2f}")
    print(f"speedup_vs_scipy={headline['ratio']:.1f}")


if __name__ == "__main__":
    sys.exit(main())
