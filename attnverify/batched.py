r"""Many instances of the dual (7) that share one template set (the real-model shape), and many
such template sets stacked in one solve.

For one attention head, the n templates T (n, d) are shared by all queries; each query k has
its own evidence :math:`z_k` and (with padding) the same preference u.  We solve, for every k,

.. math::
    \lambda^*_k = \arg\max_\lambda\ \langle\lambda, \mu + z_k\rangle - \frac{1}{2\alpha}\|\lambda\|^2
                  - \log\sum_i u_i e^{\langle t_i,\lambda\rangle}.

**Structure.** Stationarity reads :math:`\lambda = \alpha (z + \mu - E_{p(\lambda)}[t])`.  Since
:math:`E_p[t] - \mu = \sum_i (p_i - u_i)(t_i - \mu)` and p, u live on :math:`\mathrm{supp}\,u`, the correction
:math:`\lambda^* - \alpha z` lies in :math:`S = \mathrm{span}\{t_i - \mu : u_i > 0\}`, of dimension
:math:`r \le \min(|\mathrm{supp}\,u| - 1, d)`.  With Q (d, r) an orthonormal basis of S (:math:`Q = I` when
:math:`r = d`), the solver iterates on the S-coordinates :math:`w = Q^\top\lambda` and returns
:math:`\lambda = \alpha z + Q(w - \alpha Q^\top z)` (:math:`\lambda = w` when :math:`r = d`).  With
:math:`a_i = Q^\top(t_i - \mu)` and :math:`z_q = Q^\top z`, the dual restricted to S is

.. math::
    \max_{w\in\mathbb R^r}\ \langle w, z_q\rangle - \frac{1}{2\alpha}\|w\|^2
        - \log\sum_i u_i e^{\beta_i + \langle a_i, w\rangle},
    \qquad \beta_i = \alpha \langle e_i, z\rangle,

(:math:`e_i`: what the numerical rank cut of S leaves of :math:`t_i - \mu`; 0 in exact arithmetic when
nothing is cut), with gradient :math:`z_q - w/\alpha - A^\top p` and negative Hessian
:math:`H = I/\alpha + \mathrm{Cov}_p(a)` (:math:`r \times r`).  Iterating on w rather than on the correction
:math:`w - \alpha z_q` keeps :math:`\lambda` free of the cancellation between :math:`\alpha z` and the
correction when :math:`\alpha` is large (then :math:`\lambda^*` stays bounded while :math:`\alpha z` grows).

**Method.** Truncated (inexact) Newton: each Newton system :math:`Hs = g` is solved by preconditioned
conjugate gradients (Jacobi preconditioner :math:`\mathrm{diag}\,H`), to the Eisenstat-Walker forcing tolerance
:math:`\|Hs - g\| \le \min(0.1, (\|g\|/\mathrm{scale})^{0.75})\|g\|`, which keeps Newton's local
superlinear convergence.  A Hessian-vector product is :math:`Hv = v/\alpha + A^\top(p \odot (Av -
\langle p, Av\rangle))`: because A is shared by every query of a template set, a CG step for a whole
chunk of queries is two dense matrix products.  CG works on :math:`H/a_{\max}^2` with
:math:`a_{\max} = \max_i\|a_i\|`, so its entries are :math:`O(1)` whatever the scale of the input (no
float32 overflow for templates of size :math:`10^{19}`).  Armijo backtracking on the dual value (with a
gradient-halving test where the value is at float64 resolution) globalises the method.  Only the CG
directions may be computed in float32 (when :math:`\mathrm{cond}(H) \le 10^3`, ``KAPPA_SINGLE``, so float32 still meets
the forcing tolerance); gradients, dual values, the line search and the verdict are float64.

**Verdict.** Iteration stops for a row when the certificate of :mod:`attnverify.certificate` holds
with the global bound, or when the gradient is at its float64 evaluation error (no further step
can help).  The verdict is then the certified one: ``converged`` only where the bound B on
:math:`\|\lambda - \lambda^*\|` is at most :math:`\mathrm{rtol}\,\|\lambda\|` and the relative duality gap at most
rtol.  The gradient's evaluation error :math:`\delta_1` is bounded from the sizes of the logits, of w and of
the templates (see :func:`_gradient_error`); the gradient outside Q is bounded by
:math:`\|E\|_F \|p\|_2`.  A query with :math:`z = 0` has :math:`\lambda^* = 0` exactly (:math:`p = u` is stationary).

**Stacking** (:func:`solve_stacked`).  B independent template sets are solved in one loop: T
padded to (B, n_max, d) with :math:`u_i = 0` (logit :math:`-\infty`, so :math:`p_i = 0` exactly), the per-problem
A padded to (B, n_max, r_max) with zero columns, queries padded to (B, m_max) and masked.  Padding is exact:
a zero column of A gives zero gradient (:math:`z_q` and w are 0 there and stay 0), a diagonal :math:`1/\alpha` block
of H, hence a zero CG residual and a zero Newton step in that direction; a template with :math:`u_i = 0`
gets :math:`p_i = 0` and contributes nothing to any sum; a masked query never enters the loop.  So every
stacked problem follows the same iteration as when solved alone (mathematically; BLAS may add the
zeros in another order, so results agree to rounding, well inside the certified bound).  Memory
is bounded: problems are grouped by similar n, and each group is cut into chunks of at most
``CHUNK_BYTES`` of working set.

Shapes: T (n, d), Z (m, d), u (n,) on the simplex (zeros = padding), :math:`\alpha > 0`.

Reference: 004_830fd89135933577.txt, Theorem 1, (7)-(10).
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from threadpoolctl import ThreadpoolController

from . import certificate, validate
from .certificate import log_u

EPS = np.finfo(float).eps
EPS32 = float(np.finfo(np.float32).eps)
# Eisenstat-Walker forcing: CG stops at ||H s - g|| <= min(FORCING_MAX, (||g||/scale)^FORCING_EXP) ||g||
# (measured on the `make bench` workloads: 0.1 and 0.75 take the fewest Newton steps for the same CG work)
FORCING_MAX, FORCING_EXP = 0.1, 0.75
# CG runs in float32 when cond(H) <= KAPPA_SINGLE (see hessian_condition_bound)
KAPPA_SINGLE = 1e3
# working set of one stacked chunk (bytes): ~12 float64 arrays of (queries x n) and (queries x r)
CHUNK_BYTES = 24 * 2**20


@dataclass
class BatchSolution:
    r"""Result of :func:`solve_dual_batched` (one row per query; SciPy's OptimizeResult is the model).

    Attributes: lam (m, d) the maximisers; converged (m,) the certified verdict; bound (m,) the
    certified bound on :math:`\|\lambda - \lambda^*\|`; rel_bound (m,) = bound / :math:`\|\lambda\|`; rel_gap (m,)
    a bound on the relative duality gap; iterations (m,) Newton steps; grad_norm (m,) :math:`\|\nabla D(\lambda)\|`
    as computed (S part and the bound outside it combined); rank :math:`r = \dim S`; cg_iterations (m,);
    basis (d, r) the orthonormal basis of S used; rtol; message (one line)."""

    lam: np.ndarray
    converged: np.ndarray
    iterations: np.ndarray
    grad_norm: np.ndarray
    rank: int
    cg_iterations: np.ndarray | None = None
    basis: np.ndarray | None = None
    bound: np.ndarray | None = None
    rel_bound: np.ndarray | None = None
    rel_gap: np.ndarray | None = None
    rtol: float = 1e-10
    message: str = ""
    p: np.ndarray | None = None  # (m, n) the tilted distributions at lam, from the solver's own logits (if asked)
    coords: np.ndarray | None = None  # (m, r) w = Q^T lam, the S-coordinates the solver iterated on
    zcoords: np.ndarray | None = None  # (m, r) Q^T z

    @property
    def success(self) -> bool:
        return bool(np.all(self.converged))


def centred_basis(T: np.ndarray, u: np.ndarray, rtol: float = 1e-12):
    r"""Orthonormal basis Q (d, r) of :math:`S = \mathrm{span}\{t_i - \mu : u_i > 0\}` (SVD, rank by rtol)."""
    on = u > 0
    Tc = T[on] - T.T @ u
    if Tc.shape[0] == 0:
        return np.zeros((T.shape[1], 0))
    _, s, Vt = np.linalg.svd(Tc, full_matrices=False)
    r = int(np.sum(s > rtol * max(s[0], 1e-300))) if s.size else 0
    return Vt[:r].T


def hessian_condition_bound(A, alpha) -> float:
    r""":math:`\mathrm{cond}(H) \le 1 + \alpha \max_i \|a_i\|^2` for :math:`H = I/\alpha + \mathrm{Cov}_p(a)`,
    whatever p:

    .. math::
        \lambda_{\max}(\mathrm{Cov}_p(a)) \le \lambda_{\max}(E_p[a a^\top]) \le \max_i \|a_i\|^2.

    A (n, r): the templates in S coordinates."""
    return 1.0 + alpha * float(np.max(np.sum(A * A, axis=1))) if A.size else 1.0


# ------------------------------------------------------------------ one template set, prepared
@dataclass
class TemplateSet:
    """What the solver needs of one (T, u): support, basis, S coordinates and the error constants."""

    d: int
    n_on: int
    r: int
    full: bool  # r = d: Q = I, lambda = w exactly
    Q: np.ndarray  # (d, r)
    A: np.ndarray  # (n_on, r): a_i = Q^T (t_i - mu)
    E: np.ndarray | None  # (n_on, d): t_i - mu - Q a_i (None when full)
    lu: np.ndarray  # (n_on,) log u on the support
    amax: float  # max ||a_i||
    spread: tuple  # (2 max ||a_i||, 2 max ||e_i||): logit-difference change per unit displacement in / outside S
    dmu: float  # bound on the rounding of mu = T^T u
    e_err: float  # bound on the error of the logit part alpha <e_i, z> per unit of alpha ||z||
    e_norm: float  # bound on ||E||_2 (computed ||E||_F plus its rounding)
    coupling: float  # bound on the off-S blocks of the Hessian (see certificate)
    Tc: np.ndarray  # (n_on, d) centred templates t_i - mu
    tcmax: float  # max ||t_i - mu||


def prepare(T: np.ndarray, u: np.ndarray) -> TemplateSet:
    """Basis of S, templates in S coordinates and the float64 error constants, for validated T, u."""
    on = u > 0
    n_on, d = int(on.sum()), T.shape[1]
    Ts, uo = T[on], u[on]
    mu = T.T @ u
    Tc = Ts - mu
    Q = centred_basis(T, u)
    r = Q.shape[1]
    full = r == d
    tcn = certificate.norm_rows(Tc)
    tcmax = float(tcn.max()) if n_on else 0.0
    e_err = (d + r + 4) * EPS * tcmax
    if full:  # S = R^d: no basis needed, nothing left out
        Q, A, E, e_norm, emax = np.eye(d), np.ascontiguousarray(Tc), None, 0.0, 0.0
    else:
        A = np.ascontiguousarray(Tc @ Q)
        E = Tc - A @ Q.T
        e_rows = certificate.norm_rows(E)
        emax = float(e_rows.max()) + e_err if n_on else 0.0
        e_norm = float(certificate.norm_rows(e_rows[None])[0]) + np.sqrt(n_on) * e_err
        if emax <= 1e3 * e_err:
            # nothing of substance was cut: E is the rounding of the basis.  Its logits alpha <e_i, z> are
            # then dropped (they are noise of the size of their own error, and would break exact symmetries),
            # and the logit error bound uses max ||e_i|| instead (see _gradient_error)
            E, e_err = None, emax
    amax = float(certificate.norm_rows(A).max()) if A.size else 0.0
    dmu = (n_on + 4) * EPS * float(uo @ certificate.norm_rows(Ts))
    return TemplateSet(d, n_on, r, full, Q, A, E, log_u(uo), amax, (2 * amax + 2 * e_err, 2 * emax), dmu, e_err, e_norm,
                       2 * amax * emax + emax**2, Tc, tcmax)


SMALL_LOGIT = 1.0  # tilt forms p - u by expm1 where every |y_i| <= SMALL_LOGIT


def tilt(y, U, return_ymax=False):
    r"""The tilted distribution for logits :math:`y_i = \langle t_i - \mu, \lambda\rangle` (..., n) and weights
    U (..., n) (u, 0 = padding): returns (K, p, p - u) with

    .. math::
        K = \log\sum_i u_i e^{y_i}, \qquad p_i = u_i e^{y_i} / e^K.

    p is the ratio :math:`u_i e^{y_i - m} / \sum_j u_j e^{y_j - m}` (:math:`m = \max_i y_i`): each
    :math:`p_i` to a few :math:`\epsilon` relative whatever the size of the logits (:math:`\log u` never
    enters an exponent, so its rounding is no logit error).  Where every :math:`|y_i| \le` ``SMALL_LOGIT``,
    :math:`p - u = u\,\mathrm{expm1}(y - K)` is formed without cancellation, so that
    :math:`\sum_i (p_i - u_i) a_i` is accurate when p is close to u; elsewhere p - u is the plain difference.
    Because :math:`\sum_i u_i y_i = 0` (the templates are centred), :math:`\max_i y_i \ge 0` and padded
    entries (:math:`y_i = 0, u_i = 0`) cannot change the shift."""
    m = y.max(axis=-1)
    e = np.exp(y - m[..., None])
    e *= U
    ssum = e.sum(axis=-1)
    K = m + np.log(ssum)
    P = e / ssum[..., None]
    Pm = P - U
    ymax = np.maximum(m, -y.min(axis=-1))  # max |y_i| (m >= 0)
    small = ymax <= SMALL_LOGIT
    if small.any():
        if small.all():
            Pm = np.expm1(y - K[..., None]) * U
        else:
            Us = np.broadcast_to(U, y.shape)[small]
            Pm[small] = np.expm1(y[small] - K[small][..., None]) * Us
    if return_ymax:
        return K, P, Pm, ymax
    return K, P, Pm


def tilt_error(dy, m1, m2, mean_norm, K, ymax, n, parts=False):
    r"""Bound on the float64 error of :math:`\sum_i (p_i - u_i) a_i` as formed by :func:`tilt` (per row).

    dy: bound :math:`\delta_y` on each logit's own error; :math:`m_1 = \sum_i |p_i - u_i| \|a_i\|`;
    :math:`m_2 = \sum_i p_i \|a_i\|^2`; mean_norm :math:`= \|\bar a\|`, :math:`\bar a = \sum_i p_i a_i`.
    First order in :math:`\delta_y` the sum moves by :math:`\sum_i p_i \delta_{y,i} (a_i - \bar a)`, at most
    :math:`\delta_y s` with :math:`s^2 = \mathrm{tr}\,\mathrm{Cov}_p(a)` (Cauchy-Schwarz; second order adds
    the factor 1.25 for :math:`\delta_y \le 0.1`).  A relative error common to every :math:`p_i` (the
    normalising sum, :math:`(n + 4)\epsilon`; or K's rounding, :math:`4\epsilon(1 + |K| + \max_i y_i)`, in
    the expm1 form) moves the sum along :math:`\bar a` only; each term carries a few :math:`\epsilon` of
    its own rounding (relative to :math:`p_i`, or to :math:`p_i - u_i` in the expm1 form, where the
    weights' own rounding :math:`u_i (1 + 2\epsilon)` adds as much), and the sum :math:`(n + 2)\epsilon\, m_1`."""
    sd = np.sqrt(np.maximum(m2 - mean_norm**2, 0.0) + 2 * (n + 4) * EPS * m2)
    first = np.where(dy <= 0.1, 1.25 * dy * sd, np.minimum(np.expm1(np.minimum(2 * dy, 700.0)), 2.0) * np.sqrt(m2))
    small = ymax <= SMALL_LOGIT
    common = np.where(small, 4 * EPS * (1 + np.abs(K) + ymax), 0.0) + (n + 4) * EPS
    # each term's own rounding: relative to p_i in the ratio form, to p_i - u_i in the expm1 form
    own = np.where(small, 6 * EPS * m1, 4 * EPS * sd)
    rest = (common + 4 * EPS) * mean_norm + own + (n + 2) * EPS * m1
    return (first, rest) if parts else first + rest


def full_gradient(ts: TemplateSet, Z, lam, alpha):
    r""":math:`\nabla D(\lambda)` of (7) evaluated in :math:`\mathbb R^d` for rows of lam (k, d), with a bound on
    its float64 error.

    Centred form

    .. math::
        g = z - \lambda/\alpha - \sum_i (p_i - u_i)(t_i - \mu):

    :math:`\mu` cancels exactly in the maths (:math:`\sum_i u_i (t_i - \mu) = 0`), so neither :math:`\mu` nor
    its rounding enters.  Returns (g (k, d), (delta, delta_perp), p (k, n_on), logits y (k, n_on)): delta
    bounds the error of g, delta_perp that of its part outside S; the last two (the rounding part of
    delta, the logit error :math:`\delta_y`) serve :func:`gap_at_computed_p`."""
    Z, lam = np.atleast_2d(Z), np.atleast_2d(lam)
    y = lam @ ts.Tc.T
    U = np.exp(ts.lu)
    K, P, Pm = tilt(y, U)
    c = Pm @ ts.Tc
    g = Z - lam / alpha
    g -= c
    lamn = certificate.norm_rows(lam)
    ymax = np.abs(y).max(axis=1)
    dy = 3 * EPS * ymax + (ts.d + 2) * EPS * ts.tcmax * lamn
    t2 = np.vecdot(ts.Tc, ts.Tc)
    cn = certificate.norm_rows(P @ ts.Tc)
    m1 = np.abs(Pm) @ np.sqrt(t2)
    rounding = (2 * (ts.d + 2) * EPS * (certificate.norm_rows(Z) + lamn / alpha + certificate.norm_rows(c))
                + (ts.n_on + 2) * EPS * m1 + (ts.n_on + 8) * EPS * cn)
    first, rest = tilt_error(dy, m1, P @ t2, cn, K, ymax, ts.n_on, parts=True)
    delta = first + rest + rounding
    # outside S an error of p moves c only through e_i (||E||_2 ||dp||_2, dp_i <= 2.5 dy p_i): the logit error
    # (large when ||lambda|| is, through the part of lambda outside S) barely reaches the gradient there
    delta_perp = rounding + ts.e_norm * np.minimum(2.5 * dy, 2.0) * np.sqrt(np.vecdot(P, P))
    return g, (delta, delta_perp, rest + rounding, dy), P, y


def certify_points(T, u, Z, lam, alpha, rtol: float = 1e-10, ts: TemplateSet | None = None) -> dict:
    r"""The certified verdict (attnverify.certificate) for any given points lam (k, d), evaluated in
    :math:`\mathbb R^d`.

    Independent of how lam was obtained (the per-instance Newton uses it; tests use it as a re-check).
    Returns dict(bound, rel_bound, rel_gap, converged, grad_norm) of arrays (k,)."""
    ts = prepare(np.asarray(T, float), np.asarray(u, float)) if ts is None else ts
    Z, lam = np.atleast_2d(np.asarray(Z, float)), np.atleast_2d(np.asarray(lam, float))
    g, (delta, delta_perp, delta_round, dy), P, y = full_gradient(ts, Z, lam, alpha)
    g1 = g @ ts.Q
    g2 = g - g1 @ ts.Q.T if not ts.full else np.zeros_like(g)
    gn1, gn2 = certificate.norm_rows(g1), certificate.norm_rows(g2)
    lamn = certificate.norm_rows(lam)
    # outside S: the computed part, its error, and the part of Q^T g the basis's rounding hides there
    g2b = gn2 + delta_perp + (ts.d + 2) * EPS * gn1 if not ts.full else np.zeros(len(lam))
    B, _ = certificate.bound(alpha, gn1, delta, g2b, np.zeros(len(lam)), lamn, rtol,
                             ts.A if ts.r else None, P, ts.spread, ts.coupling)
    K = certificate.log_partition(y, np.exp(ts.lu))
    Dval = np.vecdot(lam, Z) - certificate.half_sq_over_alpha(lam, alpha) - K
    gn = np.sqrt(gn1**2 + gn2**2)
    rel_gap = certificate.relative_gap(alpha, gn + delta + delta_perp, Dval + 0.5 * alpha * gn**2, Dval,
                                       gn + delta_round + delta_perp, dy, ts.n_on)
    zero = ~np.any(lam != 0, axis=1) & ~np.any(Z != 0, axis=1)  # z = 0 and lambda = 0: exact
    B[zero], rel_gap[zero] = 0.0, 0.0
    with np.errstate(divide="ignore", invalid="ignore"):
        rb = np.where(lamn > 0, B / np.where(lamn > 0, lamn, 1), np.where(B == 0, 0.0, np.inf))
    return dict(bound=B, rel_bound=rb, rel_gap=rel_gap, converged=(rb <= rtol) & (rel_gap <= rtol), grad_norm=gn)


# ------------------------------------------------------------------ public solvers
def solve_dual_batched(T, u, Z, alpha, rtol: float = 1e-10, maxiter: int = 100, chunk: int | None = None,
                       workers: int | None = None, return_p: bool = False) -> BatchSolution:
    r""":math:`\lambda^*` of (7) for every row of Z, sharing T and u (see the module docstring).

    Parameters
    ----------
    T : array_like, shape (n, d)
        Templates :math:`t_i` (rows).
    u : array_like, shape (n,)
        Preference on the simplex; zeros mark templates outside the support (padding).
    Z : array_like, shape (m, d) or (d,)
        Evidence :math:`z_k`, one query per row.
    alpha : float
        The regularisation :math:`\alpha > 0` of (3).
    rtol : float
        Certified relative accuracy: a row is converged when the bound B on
        :math:`\|\lambda - \lambda^*\|` is at most :math:`\mathrm{rtol}\,\|\lambda\|` and the relative duality gap
        at most rtol.
    maxiter : int
        Newton steps per query at most.
    chunk : int, optional
        Queries solved together (default: a working set of a few MB whatever n and d are, so memory is
        bounded for any m).
    workers : int, optional
        Threads solving chunks in parallel (default 1: measured by `make bench`, threads were not faster
        than one on the real-model shapes; pass more only for very large m and n).
    return_p : bool
        Also return p (m, n), the tilted distributions at lam computed from the solver's logits in S
        coordinates (free of the cancellation :math:`\langle t_i - \mu, \lambda\rangle` suffers when
        :math:`\lambda` is large outside S).

    Returns
    -------
    BatchSolution
        lam (m, d), converged, bound, rel_bound, rel_gap, iterations, grad_norm, rank, message.

    Examples
    --------
    >>> import numpy as np
    >>> T = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    >>> sol = solve_dual_batched(T, np.full(3, 1 / 3), [[0.3, -0.2]], 0.5)
    >>> bool(sol.converged[0]), bool(sol.rel_bound[0] <= 1e-10)
    (True, True)
    """
    T, u, Z, alpha = validate.batch(T, u, Z, alpha)
    ts = prepare(T, u)
    m = len(Z)
    if chunk is None:  # measured best near 1024 rows for n <= 256 (fewer, shorter tails); fewer when n is large
        chunk = int(np.clip(2**18 // max(ts.n_on, 1), 16, 1024))
    workers = 1 if workers is None else max(1, int(workers))
    parts = [(s, min(s + chunk, m)) for s in range(0, m, chunk)]
    d, r = T.shape[1], ts.r
    # outputs preallocated and filled chunk by chunk: memory is O(chunk) besides the (m, d) answer
    out = BatchSolution(np.empty((m, d)), np.zeros(m, bool), np.zeros(m, int), np.zeros(m), r, np.zeros(m, int), ts.Q,
                        np.zeros(m), np.zeros(m), np.zeros(m), rtol, "", np.zeros((m, len(u))) if return_p else None,
                        np.zeros((m, r)), np.zeros((m, r)))
    fields = ("lam", "converged", "iterations", "grad_norm", "cg_iterations", "bound", "rel_bound", "rel_gap", "coords",
              "zcoords")

    def run(i):
        s, e = parts[i]
        o = _solve_sets([ts], [Z[s:e]], np.array([alpha]), rtol, maxiter)[0]
        for k in fields:
            getattr(out, k)[s:e] = o[k]
        if return_p:
            out.p[s:e][:, u > 0] = o["p"]

    with one_blas_thread():
        if workers <= 1 or len(parts) <= 1:
            for i in range(len(parts)):
                run(i)
        else:
            with ThreadPoolExecutor(min(workers, len(parts))) as pool:
                list(pool.map(run, range(len(parts))))
    out.message = certificate.message(out.converged, out.rel_bound, rtol) if m else "no queries"
    return out


def solve_dual_instance(T, u, z, alpha, rtol: float = 1e-10, maxiter: int = 100):
    r""":math:`\lambda^*` of (7) for ONE instance (what `attnverify solve` and the checks call).

    The batched solver with one query; where it cannot certify its answer, the per-instance
    full-space Newton of :func:`attnverify.dual.solve_dual_newton` is tried and the better
    certified answer returned.

    Parameters
    ----------
    T : array_like, shape (n, d)
    u : array_like, shape (n,)
    z : array_like, shape (d,)
    alpha : float
    rtol : float
        Certified relative accuracy (see :func:`solve_dual_batched`).
    maxiter : int

    Returns
    -------
    attnverify.dual.DualSolution
        lam (d,), converged, bound, rel_bound, rel_gap, iterations, grad_norm, tol, message.

    Examples
    --------
    >>> sol = solve_dual_instance([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], [1/3, 1/3, 1/3], [0.3, -0.2], 1e10)
    >>> sol.converged, bool(sol.rel_bound <= 1e-10)
    (True, True)
    """
    from .dual import DualSolution, solve_dual_newton

    sol = solve_dual_batched(T, u, np.asarray(z, float)[None] if np.ndim(z) == 1 else z, alpha, rtol=rtol,
                             maxiter=maxiter, return_p=True)
    out = DualSolution(sol.lam[0], bool(sol.converged[0]), int(sol.iterations[0]), float(sol.grad_norm[0]),
                       rtol, float(sol.bound[0]), float(sol.rel_bound[0]), float(sol.rel_gap[0]), sol.message, sol.p[0])
    if not out.converged:
        ref = solve_dual_newton(T, u, z, alpha, rtol=rtol, maxiter=max(maxiter, 200))
        if ref.converged or ref.rel_bound < out.rel_bound:
            return ref
    return out


solve_dual = solve_dual_instance  # the former name (it solves one instance); kept for callers on other branches


def solve_stacked(problems, rtol: float = 1e-10, maxiter: int = 100, chunk_bytes: int | None = None):
    r"""Solve B independent template sets in one stacked loop (see "Stacking" in the module docstring).

    Parameters
    ----------
    problems : sequence of (T, u, Z, alpha)
        Each a template set (n_b, d) with its preference (n_b,), queries (m_b, d) and alpha_b.
    rtol, maxiter : as for :func:`solve_dual_batched` (the verdict is the same certified one).
    chunk_bytes : int, optional
        Working-set budget of one stacked chunk (default CHUNK_BYTES).

    Returns
    -------
    list of BatchSolution
        One per problem, as :func:`solve_dual_batched` would return it.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> probs = [(rng.normal(size=(n, 4)), np.full(n, 1 / n), rng.normal(size=(5, 4)), 1.0) for n in (3, 6)]
    >>> [bool(s.converged.all()) for s in solve_stacked(probs)]
    [True, True]
    """
    budget = CHUNK_BYTES if chunk_bytes is None else int(chunk_bytes)
    checked = [validate.batch(T, u, Z, a) for T, u, Z, a in problems]
    with one_blas_thread():  # the SVDs too: many small ones run slower on several threads
        sets = [prepare(T, u) for T, u, _, _ in checked]
    out = [None] * len(sets)
    # group by similar support size (and the CG precision), then chunk each group by bytes
    order = sorted(range(len(sets)), key=lambda i: (sets[i].n_on, sets[i].r))
    groups, cur = [], []
    for i in order:
        if cur and (sets[i].n_on > 1.25 * sets[cur[0]].n_on + 4):
            groups.append(cur)
            cur = []
        cur.append(i)
    if cur:
        groups.append(cur)
    pieces = {i: [] for i in range(len(sets))}
    with one_blas_thread():
        for g in groups:
            n_max = max(sets[i].n_on for i in g)
            r_max = max(sets[i].r for i in g)
            per_row = 8 * 14 * (n_max + r_max + 1)
            rows = max(16, budget // per_row)
            batch, size = [], 0
            items = [(i, s) for i in g for s in range(0, max(len(checked[i][2]), 1), rows)]
            for i, s in items:
                zi = checked[i][2][s:s + rows]
                batch.append((i, s, zi))
                size += len(zi)
                if size >= rows:
                    _run_batch(batch, sets, checked, rtol, maxiter, pieces)
                    batch, size = [], 0
            if batch:
                _run_batch(batch, sets, checked, rtol, maxiter, pieces)
    for i, ts in enumerate(sets):
        parts = [p for _, p in sorted(pieces[i], key=lambda t: t[0])]
        out[i] = _merge(parts, ts, rtol, len(checked[i][2]), ts.d)
    return out


def _run_batch(batch, sets, checked, rtol, maxiter, pieces):
    res = _solve_sets([sets[i] for i, _, _ in batch], [z for _, _, z in batch],
                      np.array([checked[i][3] for i, _, _ in batch]), rtol, maxiter)
    for (i, s, _), r in zip(batch, res):
        pieces[i].append((s, r))


def _merge(parts, ts, rtol, m, d) -> BatchSolution:
    def cat(k, dt=float):
        if len(parts) == 1:
            return parts[0][k]
        return np.concatenate([p[k] for p in parts]) if parts else np.zeros(0, dt)

    lam = cat("lam") if parts else np.zeros((0, d))
    conv = cat("converged", bool)
    rb = cat("rel_bound")
    out = BatchSolution(lam, conv, cat("iterations", int), cat("grad_norm"), ts.r, cat("cg_iterations", int), ts.Q,
                        cat("bound"), rb, cat("rel_gap"), rtol, certificate.message(conv, rb, rtol) if m else "no queries")
    if parts:
        out.coords, out.zcoords = (np.concatenate([p[k] for p in parts]) if len(parts) > 1 else parts[0][k]
                                   for k in ("coords", "zcoords"))
    return out


@lru_cache(maxsize=1)
def _blas_controller():
    return ThreadpoolController()  # finding the BLAS libraries costs ~0.4 ms; do it once


def one_blas_thread():
    """Context manager: BLAS limited to one thread inside it (restored on exit)."""
    return _blas_controller().limit(limits=1, user_api="blas")


# ------------------------------------------------------------------ the stacked core
def _solve_sets(sets, Zs, alphas, rtol, maxiter):
    """Solve the query blocks Zs[b] (m_b, d) of template sets sets[b] together; one dict per block."""
    out = []
    for ts, Z, a in zip(sets, Zs, alphas):
        zn = certificate.norm_rows(Z)
        zq = Z.copy() if ts.full else Z @ ts.Q
        out.append(dict(Z=Z, zn=zn, zq=zq, alpha=float(a), w=np.zeros((len(Z), ts.r)),
                        iterations=np.zeros(len(Z), int), cg_iterations=np.zeros(len(Z), int)))
    # problems with r >= 1 iterate; split by CG precision (one dtype per batched product)
    live = [b for b, ts in enumerate(sets) if ts.r > 0 and len(Zs[b])]
    for single in (True, False):
        grp = [b for b in live if (hessian_condition_bound(sets[b].A, alphas[b]) <= KAPPA_SINGLE) == single]
        if grp:
            _newton_group([sets[b] for b in grp], [out[b] for b in grp], rtol, maxiter,
                          np.float32 if single else np.float64)
    for ts, o in zip(sets, out):
        _finish(ts, o, rtol)
        _recertify_in_full_space(ts, o, rtol)
        o["coords"], o["zcoords"] = o.pop("w"), o.pop("zq")
        del o["Z"]
        o.pop("fin", None)
    return out


def _recertify_in_full_space(ts, o, rtol):
    r"""Rows the S-coordinate certificate leaves unconverged get the certificate of :func:`certify_points`
    for the same :math:`\lambda` (the gradient evaluated in :math:`\mathbb R^d`, without the bound on the
    basis's rounding outside S, which dominates when alpha is large and :math:`\|\lambda\|` small); each of
    the two bounds holds for this :math:`\lambda`, so the smaller one is kept.  The answer itself is unchanged."""
    bad = np.flatnonzero(~o["converged"])
    if not len(bad):
        return
    c = certify_points(None, None, o["Z"][bad], o["lam"][bad], o["alpha"], rtol, ts=ts)
    for k in ("bound", "rel_bound", "rel_gap"):
        o[k][bad] = np.minimum(o[k][bad], c[k])
    o["converged"][bad] = (o["rel_bound"][bad] <= rtol) & (o["rel_gap"][bad] <= rtol)


def _perp_norm(zn, zqn):
    r""":math:`\|z - QQ^\top z\| = \sqrt{\|z\|^2 - \|Q^\top z\|^2}`, scaled so that the squares cannot underflow."""
    with np.errstate(invalid="ignore", divide="ignore"):
        q = np.where(zn > 0, zqn / np.where(zn > 0, zn, 1), 0.0)
    return zn * np.sqrt(np.maximum(1 - q * q, 0.0))


def _pad(arrs, shape, fill=0.0, dtype=float):
    out = np.full(shape, fill, dtype)
    for b, a in enumerate(arrs):
        out[(b,) + tuple(slice(0, s) for s in a.shape)] = a
    return out


def _base_logits(ts, o):
    r""":math:`\alpha\langle e_i, z\rangle` for every query: the logits :math:`\langle t_i - \mu, \lambda\rangle`
    at :math:`w = 0`, minus :math:`\langle a_i, w\rangle` (0 when :math:`S = \mathbb R^d`, or when E is only the basis's rounding,
    see prepare)."""
    if ts.E is None:
        return np.zeros((len(o["Z"]), ts.n_on))
    base = o["Z"] @ ts.E.T
    base *= o["alpha"]
    return base


def _newton_group(sets, outs, rtol, maxiter, dt):
    """Truncated Newton on the stacked problems (B, K, .) of one CG precision; writes w, iterations, cg
    (and, in ``fin``, what the verdict needs of each row when it stopped)."""
    state, pb = _stacked_start(sets, outs, dt)
    rec = _StopRecord(outs, pb["A"].shape[2], pb["A"].shape[1])
    for step in range(maxiter + 1):
        s = state
        g, gm, abar, gn, delta1, g2b, lamn = _gradient_and_bounds(s, pb)
        ok = _certified_or_stalled(s, pb, gn, delta1, g2b, lamn, rtol)
        s["gprev"] = gn
        stop = s["act"] & ok
        if stop.any():
            rec.store(s, pb, stop, gm, gn)
        s["act"] = s["act"] & ~ok
        if not s["act"].any():
            break
        if step == maxiter:
            rec.store(s, pb, s["act"], gm, gn)
            break
        if 2 * np.count_nonzero(s["act"]) < s["act"].size:  # compact once half the slots are idle
            keepb, order, cnt = _repack_index(s["act"])
            state = {k: (_take(v, keepb, order) if v is not None else None) for k, v in s.items()}
            state["act"] = np.arange(order.shape[1])[None] < cnt[:, None]
            pb = {k: v[keepb] for k, v in pb.items()}
            g, gn, abar, delta1, g2b, lamn = (_take(v, keepb, order) for v in (g, gn, abar, delta1, g2b, lamn))
            s = state
        act = s["act"]
        # frozen slots get g = 0: CG returns 0 for them and Armijo keeps them where they are
        g = g * act[..., None]
        gsafe = np.where(act, gn, 1.0)
        step_, count = _newton_direction(s, pb, g, gsafe, abar, delta1, g2b, lamn, rtol, dt)
        s["cg"] += count * act
        s["w"], s["y"], s["P"], s["Pm"], s["K"], s["fa"], s["ymax"] = _armijo(s["w"], step_, g, gsafe, s["fa"], s["base"],
                                                                           s["zq"], pb, pb["U"][:, None, :], act)
        s["it"] += act
    rec.write_back(sets, outs)


def _stacked_start(sets, outs, dt):
    r"""The padded problems, their constants and the iteration state at the start point (13):
    :math:`w_0 = \alpha (I + \alpha\,\mathrm{Cov}_u(a))^{-1} z_q`, the S coordinates of
    :math:`\lambda_{13} = \alpha (I + \alpha\Sigma)^{-1} z` (:math:`\alpha z_q` to first order in
    :math:`\alpha`, and bounded as :math:`\alpha` grows, where :math:`\alpha z_q` is far from :math:`w^*`)."""
    B = len(sets)
    n = max(ts.n_on for ts in sets)
    r = max(ts.r for ts in sets)
    K = max(len(o["Z"]) for o in outs)
    A = _pad([ts.A for ts in sets], (B, n, r))
    # padded templates and queries: logit 0 and weight u = 0, so p_i = 0 exactly and they enter no sum
    base = (_pad([_base_logits(ts, o) for ts, o in zip(sets, outs)], (B, K, n))
            if any(ts.E is not None for ts in sets) else None)  # None: every base logit is 0
    zq = _pad([o["zq"] for o in outs], (B, K, r))
    zn = _pad([o["zn"] for o in outs], (B, K))
    valid = _pad([np.ones(len(o["Z"]), bool) for o in outs], (B, K), False, bool)
    valid &= _pad([np.any(o["Z"] != 0, axis=1) for o in outs], (B, K), False, bool)  # z = 0: lambda* = 0 exactly
    zperp = np.where([[not ts.full] for ts in sets], _perp_norm(zn, certificate.norm_rows(zq)), 0.0)
    pb = _problem_constants(sets, outs, A, dt)
    bi = np.repeat(np.arange(B)[:, None], K, 1)  # original (problem, row) of every slot
    ki = np.repeat(np.arange(K)[None], B, 0)
    ubar = pb["ubar"]
    M = np.einsum("bn,bni,bnj->bij", pb["U"], A, A) - ubar[:, :, None] * ubar[:, None, :]
    M *= pb["alpha"][:, None, None]
    M += np.eye(r)
    w = np.linalg.solve(M, zq.transpose(0, 2, 1)).transpose(0, 2, 1)
    w *= pb["alpha"][:, None, None]
    w *= valid[..., None]
    y = np.matmul(w, pb["AT"])
    if base is not None:
        y += base
    Kl, P, Pm, ym = tilt(y, pb["U"][:, None, :], True)
    fa = np.vecdot(w, zq) - _hsq(w, pb["alpha"]) - Kl
    state = dict(w=w, base=base, zq=zq, zn=zn, zperp=zperp, y=y, P=P, Pm=Pm, K=Kl, fa=fa, ymax=ym,
                 it=np.zeros((B, K), int), cg=np.zeros((B, K), int), bi=bi, ki=ki, act=valid.copy(),
                 gprev=np.full((B, K), np.inf))  # gprev: the previous step's gradient norm (stagnation test)
    return state, pb


def _gradient_and_bounds(s, pb):
    r"""The S-gradient :math:`g = z_q - w/\alpha - \sum_i (p_i - u_i) a_i` of every slot, its parts, its norm,
    the cheap bounds on its evaluation error (:func:`_gradient_error_cheap`) and :math:`\|\lambda\|`."""
    al = pb["alpha"][:, None, None]
    gm = np.matmul(s["Pm"], pb["A"])  # sum_i (p_i - u_i) a_i: the gradient's sum, without cancellation
    g = s["zq"] - s["w"] / al
    g -= gm
    abar = gm + pb["ubar"][:, None, :]  # E_p[a] (for the preconditioner and the error bound)
    gn = np.sqrt(np.vecdot(g, g))
    delta1, g2b = _gradient_error_cheap(pb, s["ymax"], s["w"], s["zq"], abar, gm, s["zn"], s["Pm"], s["K"])
    lamn = np.hypot(pb["alpha"][:, None] * s["zperp"], certificate.norm_rows(s["w"]))
    return g, gm, abar, gn, delta1, g2b, lamn


def _certified_or_stalled(s, pb, gn, delta1, g2b, lamn, rtol):
    r"""Where a slot may stop: the global bound certifies it, or the gradient is at its evaluation error and
    stopped decreasing (:math:`\delta_1` is a worst-case bound, so one more step is taken while it still helps)."""
    a1 = pb["alpha"][:, None]
    return (a1 * (gn + delta1 + g2b) <= rtol * lamn) | ((gn <= 2 * delta1) & ((gn > 0.25 * s["gprev"]) | (gn == 0)))


def _newton_direction(s, pb, g, gsafe, abar, delta1, g2b, lamn, rtol, dt):
    """The truncated-Newton step of every slot: Jacobi-preconditioned CG on the scaled system to the
    Eisenstat-Walker forcing tolerance (never tighter than the certificate needs).  Returns (step, CG counts)."""
    a1 = pb["alpha"][:, None]
    r = pb["A"].shape[2]
    sc = s["zn"] + pb["amax"][:, None]  # a scale-invariant gradient scale: ||z|| + max ||a_i||
    tgt = np.maximum(rtol * lamn / a1 - delta1 - g2b, 2 * delta1)
    forcing = np.minimum(FORCING_MAX, np.maximum((gsafe / sc) ** FORCING_EXP, pb["cgfloor"][:, None]))
    forcing = np.maximum(forcing, np.minimum(0.1 * tgt / gsafe, FORCING_MAX))
    c = pb["amax"][:, None, None]
    Pf = s["P"].astype(dt)
    abf = (abar / c).astype(dt)
    jac = np.matmul(Pf, pb["A2f"])
    jac -= abf * abf
    jac += pb["inv_ah"][:, None, None]
    np.reciprocal(jac, out=jac)
    gs = (g / gsafe[..., None]).astype(dt)
    shat, count = _pcg(Pf, pb["Af"], pb["ATf"], pb["inv_ah"], gs, jac, forcing.astype(dt), 2 * r + 10)
    step_ = shat.astype(float)
    step_ *= (gsafe / pb["amax"][:, None] / pb["amax"][:, None])[..., None]
    return step_, count


class _StopRecord:
    """What each row holds when it stops, in one flat record (problem b's rows from offs[b] on): one scatter
    per field, then handed back to the problems (w, iterations, cg_iterations and ``fin`` for the verdict)."""

    def __init__(self, outs, r, n):
        self.sizes = np.array([len(o["Z"]) for o in outs])
        self.offs = np.concatenate([[0], np.cumsum(self.sizes)[:-1]])
        tot = int(self.sizes.sum())
        self.rec = {k: np.zeros(tot) for k in ("gn1", "delta1", "g2b", "d_round", "dy", "pmn")}
        self.rec.update(w=np.zeros((tot, r)), it=np.zeros(tot, int), cg=np.zeros(tot, int), y=np.zeros((tot, n)),
                        P=np.zeros((tot, n)), done=np.zeros(tot, bool))

    def store(self, s, pb, mask, gm_all, gn_all):
        """Record the rows in mask, with the tight error bounds of :func:`_gradient_error` (for these rows only)."""
        bb, kk = s["bi"][mask], s["ki"][mask]
        pos = np.flatnonzero(mask.ravel()) // mask.shape[1]  # the (current) problem slot of each row
        # per-row problem constants (each row its own "problem", K = 1): only the small ones
        sub = {k: pb[k][pos] for k in ("alpha", "amax", "n_on", "r", "full", "e_err", "e_norm", "a2", "anorm", "ubar")}
        y, w, zq, P, Pm, Kl = (s[k][mask][:, None] for k in ("y", "w", "zq", "P", "Pm", "K"))
        zn = s["zn"][mask][:, None]
        gm = gm_all[mask][:, None]
        gn1 = gn_all[mask]
        delta1, g2b, (d_round, dy) = _gradient_error(sub, y, w, zq, gm + sub["ubar"][:, None, :], gm, zn, P, Pm, Kl,
                                                     parts=True)
        pmn = certificate.norm_rows(Pm[:, 0])
        at = self.offs[bb] + kk  # rows of the flat record
        for k, v in (("w", w[:, 0]), ("it", s["it"][mask]), ("cg", s["cg"][mask]), ("gn1", gn1), ("delta1", delta1[:, 0]),
                     ("g2b", g2b[:, 0]), ("d_round", d_round[:, 0]), ("dy", dy[:, 0]), ("pmn", pmn), ("y", y[:, 0]),
                     ("P", P[:, 0])):
            self.rec[k][at] = v
        self.rec["done"][at] = True

    def write_back(self, sets, outs):
        rec = self.rec
        for b, o in enumerate(outs):
            rows, rb, nb = slice(self.offs[b], self.offs[b] + self.sizes[b]), sets[b].r, sets[b].n_on
            o["w"][:] = rec["w"][rows, :rb]
            o["iterations"][:], o["cg_iterations"][:] = rec["it"][rows], rec["cg"][rows]
            o["fin"] = {k: rec[k][rows] for k in ("gn1", "delta1", "g2b", "d_round", "dy", "pmn", "done")}
            o["fin"]["y"], o["fin"]["P"] = rec["y"][rows, :nb], rec["P"][rows, :nb]


def _problem_constants(sets, outs, A, dt):
    B, n, r = A.shape
    amax = np.array([ts.amax for ts in sets])
    alpha = np.array([o["alpha"] for o in outs])
    kappa = 1 + alpha * amax**2
    Ah = A / amax[:, None, None]
    single = dt == np.float32
    return dict(
        A=A, AT=np.ascontiguousarray(A.transpose(0, 2, 1)), alpha=alpha, amax=amax,
        Af=Ah.astype(dt), ATf=np.ascontiguousarray(Ah.transpose(0, 2, 1)).astype(dt), A2f=(Ah * Ah).astype(dt),
        # clamped: where alpha amax^2 < 1e-300 the covariance part of H is below float64 resolution anyway
        inv_ah=np.minimum(1.0 / np.maximum(alpha * amax**2, 1e-300), 1e30 if dt == np.float32 else 1e300).astype(dt),
        # float32 CG resolves relative residuals down to ~kappa eps32
        cgfloor=100 * kappa * EPS32 if single else np.zeros(B),
        n_on=np.array([ts.n_on for ts in sets], float), r=np.array([ts.r for ts in sets], float),
        d=np.array([ts.d for ts in sets], float), full=np.array([ts.full for ts in sets]),
        dmu=np.array([ts.dmu for ts in sets]), e_err=np.array([ts.e_err for ts in sets]),
        e_norm=np.array([ts.e_norm for ts in sets]),
        a2=_pad([np.vecdot(ts.A, ts.A) for ts in sets], (B, n)),
        anorm=_pad([np.sqrt(np.vecdot(ts.A, ts.A)) for ts in sets], (B, n)),
        U=_pad([np.exp(ts.lu) for ts in sets], (B, n)),
        ubar=_pad([np.exp(ts.lu) @ ts.A for ts in sets], (B, r)),
    )


def _logit_error(pb, ymax, w, zq, abar, gm, zn):
    r"""What both gradient-error bounds start from: per row :math:`\alpha`, :math:`\|w\|`, :math:`\max_i\|a_i\|`,
    n, r (as columns), the bound :math:`\delta_y` on the logits' evaluation error (see :func:`_gradient_error`),
    and :math:`\|z_q\|`, :math:`\|\bar a\|`, :math:`\|g_m\|`."""
    al = pb["alpha"][:, None]
    wn = np.sqrt(np.vecdot(w, w))
    amax = pb["amax"][:, None]
    n = pb["n_on"][:, None]
    r = pb["r"][:, None]
    dy = 3 * EPS * ymax + (r + 2) * EPS * amax * wn + np.where(pb["full"][:, None], 0.0, al * zn * pb["e_err"][:, None])
    zqn = np.sqrt(np.vecdot(zq, zq))
    abn = np.sqrt(np.vecdot(abar, abar))
    gmn = np.sqrt(np.vecdot(gm, gm))
    return al, wn, amax, n, r, dy, zqn, abn, gmn


def _gradient_error_cheap(pb, ymax, w, zq, abar, gm, zn, Pm, K):
    r"""An upper bound on _gradient_error's :math:`(\delta_1, \gamma_2)` at a third of the cost, for the stopping
    test:

    .. math::
        \sum_i |p_i - u_i| \|a_i\| \le a_{\max} \|p - u\|_1, \quad \sum_i p_i \|a_i\|^2 \le a_{\max}^2, \quad
        \|p\|_2 \le 1, \quad \|p - u\|_2 \le \|p - u\|_1."""
    al, wn, amax, n, r, dy, zqn, abn, gmn = _logit_error(pb, ymax, w, zq, abar, gm, zn)
    l1 = 2.0  # ||p - u||_1 <= 2
    delta1 = (tilt_error(dy, amax * l1, amax**2 + 0 * l1, abn, K, ymax, n)
              + 2 * (r + 2) * EPS * (zqn + wn / al + gmn))
    g2b = pb["e_norm"][:, None] * (l1 + np.minimum(2.5 * dy + (n + 8) * EPS, 2.0))
    return delta1, g2b


def _gradient_error(pb, y, w, zq, abar, gm, zn, P, Pm, K, parts=False):
    r"""Bounds :math:`(\delta_1, \gamma_2)` per row: the float64 evaluation error of the S-gradient
    :math:`g_1 = z_q - w/\alpha - \sum_i (p_i - u_i) a_i`, and the size of the gradient outside the basis
    (:math:`\|E^\top p\|`).

    The logits y carry an error of :math:`\sim\epsilon |y_i|` (sums), :math:`(r + 2)\epsilon \|a_i\| \|w\|`
    (the product Aw) and, when :math:`S \ne \mathbb R^d`, :math:`\alpha\|z\|` times the rounding of :math:`e_i`;
    :func:`tilt_error` turns that into the error of the sum; the final combination adds a few
    :math:`\epsilon` of its terms."""
    ymax = np.abs(y).max(axis=-1)
    al, wn, amax, n, r, dy, zqn, abn, gmn = _logit_error(pb, ymax, w, zq, abar, gm, zn)
    m1 = np.einsum("bkn,bn->bk", np.abs(Pm), pb["anorm"])
    m2 = np.einsum("bkn,bn->bk", P, pb["a2"])
    first, rest = tilt_error(dy, m1, m2, abn, K, ymax, n, parts=True)
    rest = rest + 2 * (r + 2) * EPS * (zqn + wn / al + gmn)
    delta1 = first + rest
    # outside the basis: -sum_i p_i e_i = -sum_i (p_i - u_i) e_i (sum_i u_i e_i = 0), at most ||E||_2 ||p - u||_2,
    # plus what the rounding of p (dy) adds
    pmn = np.sqrt(np.vecdot(Pm, Pm))
    pn = np.sqrt(np.vecdot(P, P))
    g2b = pb["e_norm"][:, None] * (pmn + np.minimum(2.5 * dy + (n + 8) * EPS, 2.0) * pn)
    if parts:  # for the gap at the computed p: the rounding part and the logit error
        return delta1, g2b, (rest, dy)
    return delta1, g2b


def _hsq(w, alpha):
    r""":math:`\|w\|^2 / (2\alpha)` per row of (B, K, r), alpha (B,): no under/overflow at extreme :math:`\alpha`."""
    s = w * (1.0 / np.sqrt(2.0 * alpha))[:, None, None]
    return np.vecdot(s, s)


def _repack_index(act):
    """For compaction: problems that still have active slots, and per problem the active slots first."""
    cnt = act.sum(axis=1)
    keepb = np.flatnonzero(cnt > 0)
    K2 = int(cnt.max())
    order = np.argsort(~act[keepb], axis=1, kind="stable")[:, :K2]
    return keepb, order, cnt[keepb]


def _take(v, keepb, order):
    """v (B, K, ...) -> (len(keepb), K2, ...): the slots order[j] of problem keepb[j] (one flat gather)."""
    B, K = v.shape[:2]
    flat = (keepb[:, None] * K + order).ravel()
    return v.reshape((B * K,) + v.shape[2:])[flat].reshape(order.shape + v.shape[2:])


def _armijo(w, step, g, gn, fa, base, zq, pb, U, act):
    r"""Backtrack each row until f rises by :math:`10^{-4}\, t \langle g, s\rangle`; at float64 resolution of f,
    accept a step that halves the gradient instead.  Returns the new w, logits, p, p - u, K and f of each row."""
    alpha = pb["alpha"]
    AT, A = pb["AT"], pb["A"]
    t = np.ones(gn.shape)
    slope = np.vecdot(g, step)
    cand = w + step
    Y = np.matmul(cand, AT)
    if base is not None:
        Y += base
    Kl, P, Pm, ymax = tilt(Y, U, True)  # the next Newton step's p: kept, not recomputed
    lin = np.vecdot(cand, zq)
    f = lin - _hsq(cand, alpha) - Kl
    # float64 resolution of f: its terms (<w, z_q>, ||w||^2 / 2 alpha, the log-partition and its logits)
    resolution = 64 * EPS * (np.abs(fa) + np.abs(lin) + ymax + 1.0)
    bad = np.argwhere(act & (f < fa + 1e-4 * slope))
    for _ in range(60):
        if len(bad) == 0:
            break
        bb, kk = bad[:, 0], bad[:, 1]
        # Only where the Armijo increase is below the resolution of f may the test be replaced by
        # "the gradient halves"; elsewhere that non-monotone test can cycle (seen: n = 2, alpha = 100).
        flat = 1e-4 * t[bb, kk] * slope[bb, kk] <= resolution[bb, kk]
        if flat.any():
            fb, fk = bb[flat], kk[flat]
            # sum_i (p_i - u_i) a_i of the flat rows: one batched product per problem (gathering A per row costs more)
            gc = zq[fb, fk] - cand[fb, fk] / alpha[fb, None] - _rows_times(Pm, A, fb, fk)
            halved = np.zeros(len(bb), bool)
            halved[flat] = np.linalg.norm(gc, axis=1) <= 0.5 * gn[fb, fk]
            bad = bad[~halved]
            bb, kk = bad[:, 0], bad[:, 1]
            if len(bad) == 0:
                break
        t[bb, kk] /= 2
        cand[bb, kk] = w[bb, kk] + t[bb, kk, None] * step[bb, kk]
        Y[bb, kk] = np.einsum("ir,irn->in", cand[bb, kk], AT[bb])
        if base is not None:
            Y[bb, kk] += base[bb, kk]
        Kb, P[bb, kk], Pm[bb, kk], ymax[bb, kk] = tilt(Y[bb, kk], pb["U"][bb], True)
        Kl[bb, kk] = Kb
        lin_b = np.vecdot(cand[bb, kk], zq[bb, kk])
        sb = cand[bb, kk] * (1.0 / np.sqrt(2.0 * alpha[bb]))[:, None]
        f[bb, kk] = lin_b - np.vecdot(sb, sb) - Kb
        still = f[bb, kk] < fa[bb, kk] + 1e-4 * t[bb, kk] * slope[bb, kk]
        bad = bad[still]
    return cand, Y, P, Pm, Kl, f, ymax


def _rows_times(X, A, bb, kk):
    """X[b, k] @ A[b] for the rows (bb, kk) of X (B, K, n), A (B, n, r): per problem one matrix product of its rows."""
    out = np.empty((len(bb), A.shape[2]))
    order = np.argsort(bb, kind="stable")
    cuts = np.flatnonzero(np.diff(bb[order])) + 1
    for sel in np.split(order, cuts):
        out[sel] = X[bb[sel[0]], kk[sel]] @ A[bb[sel[0]]]
    return out


def _pcg(P, A, AT, inv_alpha, g, jacobi, rtol, maxcg):
    r"""Jacobi-preconditioned CG on :math:`Hs = g` for every slot (B, K, r) (:math:`\|g\| = 1` or 0); slots drop out
    once solved.  A, AT (B, n, r), (B, r, n); inv_alpha (B,): the scaled system
    :math:`I/(\alpha a_{\max}^2) + \mathrm{Cov}_p(a / a_{\max})`."""
    out = np.zeros_like(g)
    count = np.zeros(g.shape[:2], int)
    B, K = g.shape[:2]
    bi = np.repeat(np.arange(B)[:, None], K, 1)
    ki = np.repeat(np.arange(K)[None], B, 0)
    s = np.zeros_like(g)
    res = g.copy()
    zr = jacobi * res
    dvec = zr.copy()
    rz = np.vecdot(res, zr)
    tol2 = rtol * rtol
    cnt = np.zeros(g.shape[:2], int)
    live = np.vecdot(g, g) > 0
    done = ~live
    ia = inv_alpha[:, None, None]
    for _ in range(maxcg):
        cnt += ~done  # solved slots stay in the batch until compaction, frozen (zero direction)
        Ad = np.matmul(dvec, AT)
        c = np.vecdot(P, Ad)
        Ad -= c[..., None]
        Ad *= P
        Hd = np.matmul(Ad, A)
        Hd += ia * dvec
        dHd = np.vecdot(dvec, Hd)
        step = rz / np.where(dHd > 0, dHd, 1)  # frozen slots have dvec = 0, hence step 0
        s += step[..., None] * dvec
        res -= step[..., None] * Hd
        rr = np.vecdot(res, res)
        done = done | (rr <= tol2)
        ndone = np.count_nonzero(done)
        if ndone == done.size:
            break
        if 4 * ndone >= done.size:  # compact once a quarter of the slots are solved
            out[bi[done], ki[done]] = s[done]
            count[bi[done], ki[done]] = cnt[done]
            keepb, order, kc = _repack_index(~done)
            s, res, dvec, rz, P, jacobi, tol2, cnt, bi, ki = (_take(v, keepb, order) for v in
                                                             (s, res, dvec, rz, P, jacobi, tol2, cnt, bi, ki))
            A, AT, ia = A[keepb], AT[keepb], ia[keepb]
            done = ~(np.arange(order.shape[1])[None] < kc[:, None])
            # slots past a problem's count are repeats of solved ones: frozen
            dvec = dvec * ~done[..., None]
            res = res * ~done[..., None]
            rz = np.where(done, 1, rz)
        zr = jacobi * res
        rz_new = np.vecdot(res, zr)
        beta = rz_new / np.where(rz != 0, rz, 1)
        dvec *= beta[..., None]
        dvec += zr
        dvec *= ~done[..., None]
        rz = np.where(done, 1, rz_new)
    # every current slot (repeats of solved slots carry their frozen, already stored values)
    out[bi, ki] = s
    count[bi, ki] = np.maximum(count[bi, ki], cnt)
    return out, count


# ------------------------------------------------------------------ the answer and its certificate
def _finish(ts, o, rtol):
    r""":math:`\lambda` from w, and the certified verdict of attnverify.certificate, for one block of queries."""
    Z, alpha, zn = o["Z"], o["alpha"], o["zn"]
    m = len(Z)
    lam, delta_out = _lambda_from_coordinates(ts, o)
    zero = zn == 0  # (norm_rows is exactly 0 only for z = 0)
    lam[zero] = 0.0  # z = 0: lambda* = 0 exactly
    lamn = certificate.norm_rows(lam)
    fin = o.get("fin")
    if ts.r and fin is not None and fin["done"][~zero].all():
        f = _final_quantities_stored(ts, o, zero)
    elif ts.r:
        f = _final_quantities_recomputed(ts, o)
    else:
        f = dict(P=None, gn1=np.zeros(m), delta1=np.zeros(m),
                 g2b=np.full(m, ts.e_norm),  # ||E^T p|| <= ||E||_2 ||p||_2 <= ||E||_2
                 Dval=0.5 * alpha * zn**2)
    gn1, delta1, g2b, Dval, P = (f[k] for k in ("gn1", "delta1", "g2b", "Dval", "P"))
    B, _ = certificate.bound(alpha, gn1, delta1, g2b, delta_out, lamn, rtol, ts.A if ts.r else None, P,
                             ts.spread, ts.coupling)
    gup = gn1 + delta1 + g2b
    Pval = Dval + 0.5 * alpha * gn1**2
    if ts.r:
        # at the computed p: its gradient's rounding, the part outside the basis and lambda's rounding
        g_at_p = gn1 + f["d_round"] + ts.e_norm * f["pmn"] + delta_out / alpha
        rel_gap = certificate.relative_gap(alpha, gup, Pval, Dval, g_at_p, f["dy"], ts.n_on)
    else:
        rel_gap = certificate.relative_gap(alpha, gup, Pval, Dval)
    B[zero], rel_gap[zero] = 0.0, 0.0
    with np.errstate(divide="ignore", invalid="ignore"):
        rb = np.where(lamn > 0, B / np.where(lamn > 0, lamn, 1), np.where(B == 0, 0.0, np.inf))
    o["lam"] = lam
    if ts.r:
        o["p"] = P
    else:  # lambda = alpha z: p from the logits alpha <t_i - mu, z> (E is all of t_i - mu here)
        o["p"] = tilt(alpha * (Z @ ts.Tc.T), np.exp(ts.lu))[1] if m else np.zeros((0, ts.n_on))
    o["bound"], o["rel_bound"], o["rel_gap"] = B, rb, rel_gap
    o["grad_norm"] = np.sqrt(gn1**2 + g2b**2)
    o["converged"] = (rb <= rtol) & (rel_gap <= rtol)


def _lambda_from_coordinates(ts, o):
    r""":math:`\lambda = \alpha z + Q (w - \alpha z_q)` (:math:`\lambda = w` when :math:`S = \mathbb R^d`,
    :math:`\alpha z` when :math:`r = 0`), with the bound on the rounding of forming it."""
    Z, zq, w, alpha, zn = o["Z"], o["zq"], o["w"], o["alpha"], o["zn"]
    if ts.r == 0:
        return alpha * Z, 2 * EPS * alpha * zn
    if ts.full:
        return w.copy(), np.zeros(len(Z))
    # a correction below the rounding of alpha z itself is noise (it would only flip last bits of alpha z,
    # and break exact symmetries of the answer): dropped
    v = w - alpha * zq
    vn = certificate.norm_rows(v)
    v[vn <= 4 * EPS * alpha * zn] = 0.0
    lam = v @ ts.Q.T
    lam += Z if alpha == 1 else alpha * Z  # (alpha = 1, the sweep's: the same bits, one pass fewer)
    return lam, 6 * EPS * alpha * zn + (ts.r + 2) * EPS * vn


def _dual_value(ts, o, y):
    r""":math:`D = \alpha\|z_\perp\|^2/2 + \langle w, z_q\rangle - \|w\|^2/(2\alpha) - K`, with
    :math:`K = \log\sum_i u_i e^{\langle t_i - \mu, \lambda\rangle}` from the logits y."""
    zq, w, alpha, zn = o["zq"], o["w"], o["alpha"], o["zn"]
    K = certificate.log_partition(y, np.exp(ts.lu))
    zperp = 0.0 if ts.full else _perp_norm(zn, certificate.norm_rows(zq))
    return 0.5 * alpha * zperp**2 + np.vecdot(w, zq) - certificate.half_sq_over_alpha(w, alpha) - K


def _final_quantities_stored(ts, o, zero):
    """The verdict's inputs as stored when each row stopped (its tight bounds were computed there)."""
    fin = o["fin"]
    f = {k: fin[k] for k in ("gn1", "delta1", "g2b", "d_round", "dy", "pmn", "P")}
    f["Dval"] = _dual_value(ts, o, fin["y"])
    f["P"][zero] = np.exp(ts.lu)
    return f


def _final_quantities_recomputed(ts, o):
    """The verdict's inputs recomputed from w (for rows the loop did not record)."""
    zq, w, alpha, zn = o["zq"], o["w"], o["alpha"], o["zn"]
    y = _base_logits(ts, o) + w @ ts.A.T
    U = np.exp(ts.lu)
    K, P, Pm = tilt(y, U)
    gm = Pm @ ts.A
    g1 = zq - w / alpha - gm
    a2 = np.vecdot(ts.A, ts.A)
    pb = dict(alpha=np.array([alpha]), amax=np.array([ts.amax]), n_on=np.array([float(ts.n_on)]),
              r=np.array([float(ts.r)]), full=np.array([ts.full]), e_err=np.array([ts.e_err]),
              e_norm=np.array([ts.e_norm]), a2=a2[None], anorm=np.sqrt(a2)[None])
    delta1, g2b, (d_round, dy) = (v[0] if not isinstance(v, tuple) else tuple(x[0] for x in v) for v in
                                  _gradient_error(pb, y[None], w[None], zq[None], (gm + U @ ts.A)[None], gm[None],
                                                  zn[None], P[None], Pm[None], K[None], parts=True))
    return dict(gn1=certificate.norm_rows(g1), delta1=delta1, g2b=g2b, d_round=d_round, dy=dy,
                pmn=certificate.norm_rows(Pm), P=P, Dval=_dual_value(ts, o, y))
