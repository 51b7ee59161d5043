r"""`make bench`: the exact dual solver for (7), side by side with what a researcher would write first.

In one run, on the same instances:
  (a) SciPy ``minimize`` per instance on -D: L-BFGS-B with the analytic gradient as one writes it
      first (SciPy's logsumexp and softmax, default settings), the same with a hand-fused
      value-and-gradient (default and tight settings), trust-exact with the analytic Hessian,
      Newton-CG with the analytic Hessian-vector product;
  (b) CVXPY/Clarabel on the primal (3), for a subsample;
  (c) the batched solver :func:`attnverify.batched.solve_dual_batched`.

Workloads.  The real-model shape of Section 8 of 004: per sentence of n tokens one template set
T = X / sqrt(d') (d = 384, d' = 32) shared by the queries of 12 heads, z = W_K^T W_Q x_k per head
(random weights scaled so that the attention scores have standard deviation 3, the spread of a
pretrained BERT's scores), u uniform, alpha = 1; n in {16, 64, 256}, enough sentences for 3072
queries.  Generic shapes (n, d) in {(16, 32), (64, 64), (128, 64)}: Gaussian templates, u with
one eighth padding zeros, 2048 queries sharing T.

Every method runs on one core: BLAS pinned to one thread, the batched solver with one worker (it is
timed once more on every core, as a throughput row that enters no ratio).  Each method is timed
after an untimed warm-up run, best of up to 3 runs (per-instance methods stop repeating once 2 s
are spent): a single cold run charged L-BFGS-B ~50% more for SciPy's first-call costs.
Reported per method: time per query and throughput (the batched solver on every query;
per-instance methods on a subsample, since they are per-instance anyway), accuracy reached
(||grad D|| / max(||b||, 1), and the distance to a reference lambda from the per-instance
full-space Newton of attnverify.dual at rtol 1e-14), peak traced memory, and the fraction of
this machine's one-core dense float64 matmul rate (measured in the same run, with the all-core
rate beside it) that the batched solver's counted matrix-product flops reach.  Then 1,000,000
queries at d = 384, n = 64 in a child process whose peak resident memory is read from the kernel.
Writes docs/bench.md and docs/figures/bench.png and prints ``speedup_vs_scipy=<ratio>`` last:
first-written L-BFGS-B time per query over the batched solver's, on the d = 384, n = 64 workload
(the ratio against the fused objective is printed just before).
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
from .batched import KAPPA_SINGLE, hessian_condition_bound, one_blas_thread, solve_dual_batched

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
    """W_K^T W_Q (d x d) for each of the 12 heads: z = W_K^T W_Q x."""
    # layer-normed x has unit-variance entries, so q_c, k_c ~ N(0, sd^2 d) = N(0, 3) and the score
    # <t_i, z> = q.k / sqrt(dh) has variance 3 * 3 = 9: standard deviation SCORE_STD = 3
    sd = np.sqrt(SCORE_STD / D_MODEL)
    WQ = rng.normal(size=(HEADS, DH, D_MODEL)) * sd
    WK = rng.normal(size=(HEADS, DH, D_MODEL)) * sd
    return np.einsum("hcd,hce->hde", WK, WQ)


def _sentence(rng, n: int, M: np.ndarray):
    """One sentence of n layer-normed hidden states: T = X/sqrt(d'), uniform u, and every query of every head."""
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
    lu = dual._log_u(u)

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
    with SciPy's own logsumexp (weights b = u) and softmax; default settings."""
    from scipy.special import logsumexp, softmax

    b = T.T @ u + z
    lu = dual._log_u(u)

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
    """L-BFGS-B asked for the batched solver's accuracy: projected-gradient target 1e-10 ||b|| / sqrt(d)
    (its gtol is a max-norm), no relative-reduction stop, generous iteration limits."""
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
    """||grad D(lambda_k)|| / max(||b_k||, 1) of (7) for every row, evaluated in R^d."""
    x = dual._log_u(u) + lam @ T.T
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


def _counted_flops(w: Workload, sol_by_head) -> tuple[float, float, float]:
    """Flops of the batched solver's matrix products (the dominant work), from its iteration counts;
    returns (total, the CG products' share of it, the largest bound on cond(H) over the heads)."""
    total = cg = 0.0
    kappa = 1.0
    for (T, u, Z), sol in zip(w.heads, sol_by_head):
        n, d, r = int((u > 0).sum()), T.shape[1], sol.rank
        per_query = 2 * n * d + 2 * r * d + 4 * n * r  # input logits, lambda, the verdict's gradient
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
        per_query_s=t_batched / w.m, queries=w.m, converged=int(conv.sum()),
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
    L = ["# Benchmark: exact solves of the dual (7)", "",
         "Generated by `make bench` (`python -m attnverify.bench`); every number below comes from one run.",
         "Method and workloads: see the docstring of `attnverify/bench.py`.", "",
         f"Machine: {machine['cpus']} cores, {machine['platform']}, Python {machine['python']}, "
         f"numpy {np.__version__}; load average at start {machine['load']}.",
         f"Dense float64 matmul ({machine['peak_size']}²), measured in this run: **{peak:.1f} GFLOP/s** on "
         f"{machine['cpus']} cores, **{machine['peak_one']:.1f} GFLOP/s** on one core (the batched solver's rows "
         "below run on one core, so their matrix-product rate is set against the one-core figure).", "",
         f"**Headline** (d = 384, n = 64, real-model shape): the batched solver takes {headline['batched_us']:.1f} µs per query; "
         f"SciPy L-BFGS-B as one writes it first (objective and analytic gradient as two functions, SciPy's "
         f"`logsumexp`/`softmax`, default settings) takes {headline['lbfgs_us']:.0f} µs: **speed-up {headline['ratio']:.0f}×**, "
         f"with the batched solver's largest relative gradient {headline['batched_grad']:.1e} against L-BFGS-B's median "
         f"{headline['lbfgs_grad']:.1e} (accuracy {'equal or better' if headline['better'] else 'WORSE'}). "
         f"Against L-BFGS-B with a hand-fused value-and-gradient ({headline['fused_us']:.0f} µs per query) the speed-up is "
         f"**{headline['fused_ratio']:.0f}×**; asked for the batched solver's accuracy (gtol 1e-10‖b‖, no relative-reduction "
         f"stop) fused L-BFGS-B takes {headline['tight_ratio']:.0f}× the batched solver's time and still stops at a median "
         f"relative gradient of {headline['tight_grad']:.1e}.", "",
         "Every method runs on one core (BLAS pinned to one thread, the batched solver with one worker), so the "
         "speed-ups compare like with like; each is timed after one untimed warm-up run, best of up to 3 runs "
         "(per-instance methods: fewer once 2 s are spent). The row \"batched, N threads\" is the same solver "
         "with one worker thread per core, for throughput; it enters no speed-up.", "",
         "Columns: time per query; throughput; queries timed; median and largest ‖∇D(λ)‖ / max(‖b‖, 1); "
         "largest ‖λ − λ_ref‖ / ‖λ_ref‖ against the per-instance full-space Newton at rtol 1e-14 (on the subsample); "
         "peak traced memory of one call (batched: one sentence's queries, inputs excluded); speed-up of the batched solver.", ""]
    for w in workloads:
        L += [f"## {w.name}, alpha = {w.alpha:g}", "",
              "| method | µs / query | queries / s | timed on | median rel. grad | max rel. grad | max rel. error | peak MiB | batched speed-up |",
              "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
        tb = w.results["batched (attnverify)"]["per_query_s"]
        for name, r in w.results.items():
            ratio = "—" if name.startswith("batched,") else f"{r['per_query_s'] / tb:.1f}×"
            L.append(f"| {name} | {r['per_query_s'] * 1e6:.1f} | {1 / r['per_query_s']:,.0f} | {r['queries']} | "
                     f"{r['rel_grad_median']:.1e} | {r['rel_grad_max']:.1e} | {_cell(r.get('rel_err_max'), '.1e')} | "
                     f"{_cell(r['mem_mib'], '.1f')} | {ratio} |")
        b = w.results["batched (attnverify)"]
        L += ["", f"Batched: {b['converged']} of {b['queries']} converged; mean {b['newton_mean']:.1f} Newton steps and "
              f"{b['cg_mean']:.1f} CG steps per query; counted matrix-product rate {b['gflops']:.1f} GFLOP/s = "
              f"{b['gflops'] / machine['peak_one']:.0%} of the one-core matmul peak "
              f"({b['gflops'] / peak:.0%} of the machine's); the CG products, {b['cg_flop_share']:.0%} of the counted "
              f"flops, {'ran in float32' if b['kappa'] <= KAPPA_SINGLE else 'ran in float64'} (bound on cond(H): "
              f"{b['kappa']:.3g}; float32 at most {KAPPA_SINGLE:g}) and count as flops like the rest.", ""]
    if million:
        L += ["## 1,000,000 queries (d = 384, n = 64, 12 heads per sentence)", "",
              f"{million['queries']:,d} queries solved in {million['solve_s']:.1f} s of solver time "
              f"({million['wall_s']:.1f} s wall, including generating the inputs); {million['converged']:,d} converged; "
              f"largest relative gradient {million['rel_grad_max']:.1e}; mean {million['newton_mean']:.1f} Newton steps. "
              f"Peak resident memory of the process: **{million['peak_rss_mib']:.0f} MiB** (bound: 4096 MiB). "
              "Per query only the verdict, iteration count, gradient and ‖λ* − αz‖/‖λ*‖ "
              f"(median {million['deviation_median']:.3f}) are kept; λ* of a sentence is dropped after use.", ""]
    L += ["![time per query](figures/bench.png)", ""]
    atomic.write_text(path, "\n".join(L))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m attnverify.bench", description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small workloads and subsamples, no million-query run")
    ap.add_argument("--million", type=int, default=1_000_000, help="queries in the memory run (0 to skip)")
    ap.add_argument("--million-worker", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--docs", default="docs", help="where bench.md and figures/bench.png go")
    a = ap.parse_args(argv)
    if a.million_worker:
        print(json.dumps(million_worker(a.million_worker)))
        return 0

    def log(msg):
        print(msg, file=sys.stderr, flush=True)

    load = os.getloadavg()[0]
    if load > 0.5:
        log(f"note: load average {load:.2f}: other work on this machine slows every method")
    peak_size = 1000 if a.quick else 2000
    peak = matmul_peak(peak_size)
    with one_blas_thread():
        peak_one = matmul_peak(peak_size)
    log(f"dense matmul: {peak:.1f} GFLOP/s on every core, {peak_one:.1f} GFLOP/s on one")
    q = 0.1 if a.quick else 1.0
    workloads = [real_model_workload(n, int(3072 * q)) for n in (16, 64, 256)]
    workloads += [generic_workload(n, d, int(2048 * q)) for n, d in ((16, 32), (64, 64), (128, 64))]
    for w in workloads:
        log(f"{w.name}: {w.m} queries")
        run_workload(w, 0.25 if a.quick else 1.0, log)
    million = None if a.quick or a.million == 0 else run_million(a.million, log)
    w64 = workloads[1]
    rb, rl = w64.results["batched (attnverify)"], w64.results["SciPy L-BFGS-B"]
    rt = w64.results["SciPy L-BFGS-B, fused, tight"]
    rf = w64.results["SciPy L-BFGS-B, fused objective"]
    headline = dict(batched_us=rb["per_query_s"] * 1e6, lbfgs_us=rl["per_query_s"] * 1e6,
                    tight_ratio=rt["per_query_s"] / rb["per_query_s"], tight_grad=rt["rel_grad_median"],
                    fused_ratio=rf["per_query_s"] / rb["per_query_s"], fused_us=rf["per_query_s"] * 1e6,
                    ratio=rl["per_query_s"] / rb["per_query_s"], batched_grad=rb["rel_grad_max"],
                    lbfgs_grad=rl["rel_grad_median"], better=rb["rel_grad_max"] <= rl["rel_grad_median"])
    from .certify import bench_certification  # issue 22: the cost of a ball-arithmetic certificate per query

    T64, u64, Z64 = w64.heads[0]
    Zc = Z64[:64 if a.quick else 256]
    cert = bench_certification(T64, u64, Zc, w64.alpha, solve_dual_batched(T64, u64, Zc, w64.alpha).lam)
    log(f"certification (arb, attnverify.certify) at d = {w64.d}, n = {w64.n}: {cert['us_per_instance']:.0f} us/query "
        f"on {cert['instances']} queries ({cert['us_per_instance'] / headline['batched_us']:.0f}x the batched solve), "
        f"{cert['certified']} certified, max radius {cert['max_radius_rel']:.1e} relative")
    docs = Path(a.docs)
    _figure(workloads, docs / "figures" / "bench.png")
    machine = dict(cpus=os.cpu_count(), platform=platform.platform(), python=platform.python_version(),
                   load=f"{load:.2f}", peak_size=peak_size, peak_one=peak_one)
    write_markdown(workloads, peak, million, headline, docs / "bench.md", machine)
    log(f"wrote {docs / 'bench.md'} and {docs / 'figures' / 'bench.png'}")
    if not headline["better"]:
        log("warning: the batched solver's accuracy is not equal or better than L-BFGS-B's on this workload")
    print(f"certify_us_per_instance={cert['us_per_instance']:.0f}")
    print(f"speedup_vs_scipy_fused_objective={headline['fused_ratio']:.1f}")
    print(f"speedup_vs_scipy={headline['ratio']:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
