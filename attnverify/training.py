r"""The training harness of the training-scale claims (EOS-SHARP, FD-VIT/reduced, GOAT-EXTRAP).

One place for what every training run needs:

* :func:`deterministic`: a context in which a run is reproducible bit for bit: one torch thread
  (``torch.set_num_threads(1)``: the reduction order, hence the rounding, depends on the thread
  count), ``torch.manual_seed``, ``torch.use_deterministic_algorithms(True)`` and a default dtype;
  the previous settings are restored on exit, so a run does not leak into the rest of ``verify``.
* :func:`digits`: the real data, scikit-learn's handwritten digits (1797 images of :math:`8 \times 8`, 10
  classes; shipped inside the package, so nothing is downloaded), with a fixed stratified split.
* :func:`hvp` and :func:`top_eigenvalue`: exact Hessian-vector products (double backward) and power
  iteration on them, with Weinstein's residual bound as the stopping rule.
* :func:`mean_ci` and :func:`paired_t`: Student-t intervals over seeds and the paired t-test.
* :class:`Progress`: one line on stderr every few seconds on long runs.
* :class:`RunLog`: one row per training run, ending as a :class:`~attnverify.evidence.Table`.

Precision: every run of this project trains in float64 (the default here); it costs little at
these sizes and keeps the sharpness measurements (EOS-SHARP) far above rounding.
"""

from __future__ import annotations

import contextlib
import math
import sys
import time
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Callable, Sequence

import numpy as np

from .evidence import Table

DTYPE = "float64"  # see the module docstring


@contextlib.contextmanager
def deterministic(seed: int, dtype: str = DTYPE):
    """Run the body with one torch thread, a fixed seed, deterministic kernels and ``dtype`` as the
    default floating type; restore the previous settings afterwards.

    Parameters
    ----------
    seed : the seed of torch's global generator for the body.
    dtype : ``"float64"`` or ``"float32"``.
    """
    import torch

    if dtype not in ("float64", "float32"):
        raise ValueError(f"dtype: expected float64 or float32, got {dtype!r}")
    threads, det, default = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled(), torch.get_default_dtype()
    fill = torch.utils.deterministic.fill_uninitialized_memory
    state = torch.random.get_rng_state()
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    # deterministic mode also fills every new tensor with NaN (to expose reads of uninitialised memory);
    # that costs 15% of a small model's step and changes no result of a correct kernel
    torch.utils.deterministic.fill_uninitialized_memory = False
    torch.set_default_dtype(getattr(torch, dtype))
    torch.manual_seed(seed)
    try:
        yield torch
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(det)
        torch.utils.deterministic.fill_uninitialized_memory = fill
        torch.set_default_dtype(default)
        torch.random.set_rng_state(state)


def generator(seed: int):
    """A torch generator of its own (data order, template mixing), independent of the global one."""
    import torch

    return torch.Generator().manual_seed(int(seed))


# ---------------------------------------------------------------------------------------- data
@dataclass(frozen=True)
class Split:
    X: np.ndarray  # (n, 8, 8) images scaled to [0, 1]
    y: np.ndarray  # (n,) labels 0..9


@lru_cache(maxsize=None)
def digits(n_train: int, n_val: int, n_test: int, seed: int = 0) -> tuple[Split, Split, Split]:
    """scikit-learn's digits, pixel values / 16, split into disjoint train / validation / test sets.

    The split is stratified by class (each part holds the classes in the proportions of the whole,
    rounded), drawn with a NumPy generator seeded by ``seed``, so it is the same on every machine.

    Raises
    ------
    ValueError : if the three sizes add up to more than the 1797 images.
    """
    from sklearn.datasets import load_digits

    d = load_digits()
    X, y = d.images / 16.0, d.target
    if n_train + n_val + n_test > len(y):
        raise ValueError(f"digits: {n_train} + {n_val} + {n_test} images asked for, only {len(y)} exist")
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(y))
    # stratified: each image gets its fractional rank within its class (in a random order); sorting by
    # it interleaves the classes, so every prefix, and so every part, holds them in proportion
    frac = np.empty(len(y))
    for c in range(10):
        idx = order[y[order] == c]
        frac[idx] = (np.arange(len(idx)) + 0.5) / len(idx)
    inter = np.lexsort((y, frac))
    cuts = np.cumsum([n_train, n_val, n_test])
    parts = np.split(inter[: cuts[-1]], cuts[:-1])
    return tuple(Split(X[p], y[p]) for p in parts)


# ---------------------------------------------------------------------------------------- curvature
def hvp(loss_fn: Callable, params: Sequence, vec: Sequence):
    """Exact Hessian-vector product of ``loss_fn()`` at ``params`` along ``vec`` (double backward)."""
    import torch

    loss = loss_fn()
    grads = torch.autograd.grad(loss, params, create_graph=True)
    dot = sum((g * v).sum() for g, v in zip(grads, vec))
    return [h.detach() for h in torch.autograd.grad(dot, params)]


@dataclass
class Eig:
    value: float  # Rayleigh quotient v^T H v of the returned unit vector
    residual: float  # ||H v - value v||: some eigenvalue lies within it (Weinstein)
    hvps: int  # Hessian-vector products spent
    converged: bool
    vector: np.ndarray  # the returned unit vector (warm start of the next call)


class _Flat:
    """Flat numpy view of a list of parameter tensors, for scipy's LinearOperator."""

    def __init__(self, params):
        self.shapes = [p.shape for p in params]
        self.sizes = [p.numel() for p in params]
        self.n = sum(self.sizes)

    def split(self, x):
        import torch

        parts = np.split(np.ascontiguousarray(x, dtype=float).ravel(), np.cumsum(self.sizes)[:-1])
        return [torch.from_numpy(c.copy()).reshape(s) for c, s in zip(parts, self.shapes)]


def top_eigenvalue(loss_fn: Callable, params: Sequence, v0: np.ndarray | None = None, rtol: float = 1e-3,
                   method: str = "lanczos", maxit: int = 300) -> Eig:
    r"""Largest Hessian eigenvalue :math:`\lambda_{\max}(\nabla^2 L)` (the sharpness) from exact
    Hessian-vector products (:func:`hvp`).

    ``method="lanczos"`` (default): scipy's ``eigsh(which="LA")``, implicitly restarted Lanczos,
    i.e. power iteration with the whole Krylov space kept instead of its last vector. It is what the
    Edge-of-Stability literature uses (Cohen et al. 2021), and it converges where plain power
    iteration stalls: at the edge several eigenvalues crowd near :math:`2/\eta`, so the power ratio
    :math:`\lambda_2/\lambda_1` is near 1 (measured: 140-200 power steps without reaching
    :math:`\mathrm{rtol} = 10^{-3}`, 13 HVPs for Lanczos). ``method="power"``: plain power iteration (largest
    *modulus*), kept as the independent cross-check. Either way the result carries the Weinstein residual
    of its vector, :math:`\|Hv - \lambda v\|`: an eigenvalue lies within it.

    Parameters
    ----------
    loss_fn : callable
        ``loss_fn()`` returns the loss L as a torch scalar, built from ``params``.
    params : sequence of torch.Tensor
        The parameters :math:`\theta` (the Hessian is :math:`\nabla^2 L(\theta)`).
    v0 : ndarray, optional
        Start vector (flat); warm-starts from the previous call's ``vector``.
    rtol : float
        Converged when the residual is at most :math:`\mathrm{rtol}\,|\lambda|`.
    method : {"lanczos", "power"}
    maxit : int
        Restarts (Lanczos) or power steps at most.

    Returns
    -------
    Eig
        value (the Rayleigh quotient :math:`v^\top H v`), residual :math:`\|Hv - \lambda v\|`, hvps (the
        Hessian-vector products spent), converged, vector (the unit vector v).

    Raises
    ------
    ValueError : if ``method`` is neither.
    """
    from scipy.sparse.linalg import ArpackNoConvergence, LinearOperator, eigsh

    fl = _Flat(params)
    count = [0]

    def mv(x):
        count[0] += 1
        return flat(hvp(loss_fn, params, fl.split(x)))

    if v0 is None:
        v0 = np.random.default_rng(12345).normal(size=fl.n)
    v0 = np.asarray(v0, dtype=float) / np.linalg.norm(v0)
    converged = True
    if method == "lanczos":
        op = LinearOperator((fl.n, fl.n), matvec=mv, dtype=float)
        try:
            _, V = eigsh(op, k=1, which="LA", v0=v0, tol=rtol / 10, ncv=min(fl.n, 12), maxiter=maxit)
            v = V[:, 0]
        except ArpackNoConvergence as e:  # keep what it has; the residual below says how good it is
            v = e.eigenvectors[:, 0] if e.eigenvectors.size else v0
            converged = False
    elif method == "power":
        v = v0
        for _ in range(maxit):
            Hv = mv(v)
            lam = float(v @ Hv)
            if np.linalg.norm(Hv - lam * v) <= rtol * abs(lam):
                break
            v = Hv / np.linalg.norm(Hv)
        else:
            converged = False
    else:
        raise ValueError(f"method: expected lanczos or power, got {method!r}")
    v = v / np.linalg.norm(v)
    Hv = mv(v)
    lam = float(v @ Hv)
    res = float(np.linalg.norm(Hv - lam * v))
    return Eig(lam, res, count[0], converged and res <= rtol * abs(lam), v)


def flat(tensors) -> np.ndarray:
    return np.concatenate([t.detach().reshape(-1).numpy() for t in tensors])


@dataclass
class GDRun:
    sharpness: np.ndarray  # (k, 4): step, lambda_max, Weinstein residual, converged (1/0)
    loss: np.ndarray  # (steps + 1,): the training loss before each step
    hvps: int
    seconds: float


def gradient_descent(loss_fn: Callable, params: Sequence, eta: float, steps: int, every: int,
                     progress: Progress | None = None, rtol: float = 1e-3) -> GDRun:
    r"""Full-batch gradient descent :math:`\theta_{t+1} = \theta_t - \eta\nabla L(\theta_t)` for ``steps``
    steps, in place on ``params``, with the sharpness :math:`S_t = \lambda_{\max}(\nabla^2 L(\theta_t))`
    measured (:func:`top_eigenvalue`, warm-started) every ``every`` steps and at the end.

    Parameters
    ----------
    loss_fn : callable
        ``loss_fn()`` returns the full-batch loss L as a torch scalar, built from ``params``.
    params : sequence of torch.Tensor
        The parameters :math:`\theta`, updated in place.
    eta : float
        The step size :math:`\eta`.
    steps : int
        Steps of gradient descent.
    every : int
        Measure the sharpness every ``every`` steps (and after the last).
    progress : Progress, optional
        Reports the loss and the sharpness every ``every`` steps.
    rtol : float
        The sharpness's tolerance (see :func:`top_eigenvalue`).

    Returns
    -------
    GDRun
        sharpness (k, 4): step, :math:`\lambda_{\max}`, Weinstein residual, converged (1/0); loss (steps + 1,):
        the loss before each step; hvps; seconds.

    Raises
    ------
    FloatingPointError : if the loss becomes non-finite (GD diverged).
    """
    import torch

    t0 = time.perf_counter()
    S, L, v, hv = [], [], None, 0
    for t in range(steps + 1):
        if t % every == 0 or t == steps:
            e = top_eigenvalue(loss_fn, params, v, rtol=rtol)
            v, hv = e.vector, hv + e.hvps
            S.append((t, e.value, e.residual, float(e.converged)))
        loss = loss_fn()
        L.append(float(loss.detach()))
        if not math.isfinite(L[-1]):
            raise FloatingPointError(f"GD diverged at eta = {eta:g}, step {t}")
        if t == steps:
            break
        grads = torch.autograd.grad(loss, params)
        with torch.no_grad():
            for p, g in zip(params, grads):
                p.add_(g, alpha=-eta)
        if progress is not None and t % every == 0:
            progress(f"step {t}/{steps}, loss {L[-1]:.4g}, sharpness {S[-1][1]:.4g} (2/eta = {2 / eta:.4g})")
    return GDRun(np.array(S), np.array(L), hv, time.perf_counter() - t0)


# ---------------------------------------------------------------------------------------- statistics
def mean_ci(values, level: float = 0.95) -> tuple[float, float, float]:
    """(mean, lower, upper): the Student-t interval for the mean of i.i.d. values (one per seed)."""
    from scipy import stats

    v = np.asarray(values, dtype=float)
    m = float(v.mean())
    if len(v) < 2:
        return m, -math.inf, math.inf
    half = float(stats.t.ppf(0.5 + level / 2, len(v) - 1) * v.std(ddof=1) / math.sqrt(len(v)))
    return m, m - half, m + half


def paired_t(a, b) -> tuple[float, float]:
    r"""(t statistic, two-sided p-value) of the paired t-test of :math:`\mathrm{mean}(a - b) = 0` (same seeds)."""
    from scipy import stats

    d = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    if np.all(d == d[0]):  # no spread: the test is degenerate; the sign decides
        return (math.copysign(math.inf, d[0]) if d[0] else 0.0), (0.0 if d[0] else 1.0)
    r = stats.ttest_rel(a, b)
    return float(r.statistic), float(r.pvalue)


def confidence_flip(a, b) -> float:
    r"""The confidence level at which the paired two-sided t-interval of :math:`\mathrm{mean}(a - b)` touches 0
    (:math:`= 1 - p` of the paired t-test): the interval excludes 0 exactly at levels below it."""
    return 1.0 - paired_t(a, b)[1]


# ---------------------------------------------------------------------------------------- logging
class Progress:
    """Print ``label: message`` to stderr at most every ``every`` seconds (and always the first time)."""

    def __init__(self, label: str, every: float = 5.0, stream=None):
        self.label, self.every, self.stream = label, every, stream or sys.stderr
        self.t0, self.cpu0 = time.perf_counter(), time.process_time()
        self.last = -math.inf

    def __call__(self, message: str, force: bool = False) -> None:
        now = time.perf_counter()
        if force or now - self.last >= self.every:
            self.last = now
            print(f"    [{self.label} {now - self.t0:5.1f} s] {message}", file=self.stream, flush=True)

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self.t0

    def summary(self) -> str:
        """Wall and CPU time so far (the machine may be shared: CPU time is the part that is this run's)."""
        return f"{self.seconds:.1f} s wall, {time.process_time() - self.cpu0:.1f} s CPU"


@dataclass
class RunLog:
    """One row per training run: the configuration columns, then the measured ones, then seconds."""

    caption: str
    header: list[str]
    rows: list[list[Any]] = field(default_factory=list)

    def add(self, *values) -> None:
        if len(values) != len(self.header):
            raise ValueError(f"RunLog {self.caption!r}: {len(values)} values for {len(self.header)} columns")
        self.rows.append([_plain(v) for v in values])

    def table(self) -> Table:
        return Table(self.caption, list(self.header), [list(r) for r in self.rows])


def _plain(v):
    """A JSON-friendly cell: numpy scalars as Python numbers, floats rounded to 4 significant digits."""
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        v = float(v)
        return float(f"{v:.4g}") if math.isfinite(v) else str(v)
    return v
