r"""The certified convergence verdict shared by every solver of the dual (7).

A solver returns a point :math:`\lambda`; this module bounds its distance to the maximiser
:math:`\lambda^*` from quantities evaluated at :math:`\lambda`, and declares it converged only when

.. math::
    \|\lambda - \lambda^*\| \le B \le \mathrm{rtol}\,\|\lambda\|
    \quad\text{and}\quad
    \frac{|P - D|}{\max(|P|, |D|, \mathrm{tiny})} \le \mathrm{rtol},

where P is the primal objective (3) at the tilted distribution :math:`\tilde p(\lambda)` and D the
dual objective (7) at :math:`\lambda`.  Both tests are scale-invariant: under
:math:`T, z \to sT, sz`, :math:`\alpha \to \alpha/s^2` the solution maps to :math:`\lambda^*/s`,
gradients scale by s, curvatures by :math:`s^2`, and B by 1/s, so the verdict is unchanged.

**The bound B.**  Let :math:`g = \nabla D(\lambda)` be the exact gradient at the returned point,
split in an orthonormal basis Q of :math:`S = \mathrm{span}\{t_i - \mu\}` as :math:`g_1 = Q^\top g`
and the rest :math:`g_2`; the solver supplies the computed :math:`\hat g_1` with a bound
:math:`\delta_1` on its float64 evaluation error and a bound :math:`\gamma_2 \ge \|g_2\|`.

* Global strong concavity (:math:`-\nabla^2 D \succeq I/\alpha`) gives
  :math:`B_1 = \alpha(\|\hat g_1\| + \delta_1 + \gamma_2)`.
* Local curvature.  On a ball :math:`\|\lambda' - \lambda\| \le \rho` that contains
  :math:`\lambda^*` (radius :math:`B_1`, or a smaller one found by a sphere test, see :func:`_local_bound`), the
  tilted weights change by factors in :math:`[e^{-R\rho}, e^{R\rho}]`,
  :math:`R = \max_{ij}\|t_i - t_j\|`, so :math:`\mathrm{Cov}_{p(\lambda')} \succeq e^{-R\rho}
  \mathrm{Cov}_{p(\lambda)}`.  The averaged Hessian on the segment to :math:`\lambda^*` therefore
  has its S-block :math:`\succeq \sigma_1 I`, :math:`\sigma_1 = 1/\alpha + e^{-R\rho}
  \lambda_{\min}(\mathrm{Cov}_p(a))`, and off-S blocks bounded by :math:`\|P\| \le 2 a_{\max}
  e_{\max} + e_{\max}^2` (:math:`e_i`: what the basis leaves out of the centred templates); with
  :math:`\lambda - \lambda^* = \bar H^{-1} g` this gives
  :math:`B_2 = (1 + \alpha\|P\|)(\|\hat g_1\| + \delta_1)/\sigma_1 + \alpha\gamma_2`.

:math:`B = \min(B_1, B_2)` plus the rounding of forming the returned vector.  :math:`B_2` costs an
:math:`r \times r` eigenvalue problem per row, so it is computed only for the rows that :math:`B_1` does not
already certify.

**Where float64 cannot certify.**  The evaluation error of the gradient is at least of order
:math:`\epsilon (\|z\| + \max_i\|t_i - \mu\|)` (the cancellation in
:math:`z - \lambda/\alpha - E_p[t - \mu]`), so the best certificate is
:math:`B \approx \epsilon\,(\|z\| + R)/\sigma_1`: the verdict fails where
:math:`\epsilon\,(\|z\| + R) > \mathrm{rtol}\,\sigma_1 \|\lambda^*\|`, i.e. when the problem's
condition number :math:`(\|z\|+R)/(\sigma_1\|\lambda^*\|)` exceeds :math:`\mathrm{rtol}/\epsilon
\approx 10^6`.  This happens when :math:`\lambda^*` is tiny against the data (:math:`z \approx 0` relative
to the templates' spread), when the templates are nearly degenerate in some direction of S while
:math:`\alpha` is large (:math:`\sigma_1 \approx 1/\alpha`), or when a component of
:math:`\alpha z` outside S cancels almost exactly.  There the solver reports ``converged = False``
with the bound it reached; it never reports such a point as converged.
"""

from __future__ import annotations

import numpy as np

EPS = float(np.finfo(float).eps)
TINY = 1e-300  # the floor of max(|P|, |D|) in the relative gap: P = D = 0 only when lambda* = 0


def log_u(u: np.ndarray) -> np.ndarray:
    r""":math:`\log u` with :math:`\log 0 = -\infty` (templates outside :math:`\mathrm{supp}\,u` get probability
    exactly 0)."""
    with np.errstate(divide="ignore"):
        return np.log(u)


def norm_rows(x: np.ndarray) -> np.ndarray:
    """Euclidean norm of each row (last axis) without underflow or overflow of the squares
    (np.linalg.norm squares directly: a vector of entries :math:`10^{-200}` would get norm 0)."""
    x = np.asarray(x, float)
    if x.ndim == 1:
        return float(norm_rows(x[None])[0])
    out = np.sqrt(np.vecdot(x, x))
    bad = ~((out > 1e-150) & (out < 1e150))
    if bad.any():
        bad &= np.any(x != 0, axis=-1)
    if bad.any():
        xb = x[bad]
        m = np.abs(xb).max(axis=-1)
        out[bad] = m * np.sqrt(np.vecdot(xb / m[..., None], xb / m[..., None]))
    return out


def log_partition(y: np.ndarray, w: np.ndarray) -> np.ndarray:
    r"""The log-partition function of the logits y under the weights w, per row:

    .. math::
        K = \log\sum_i w_i e^{y_i}.

    Accurate to a few :math:`\epsilon` times :math:`\max(|K|, \max_i |y_i|)` also when every :math:`|y_i|` is
    tiny (then K is of the order of :math:`y^2`, and the plain log-sum-exp would leave an absolute error of
    :math:`\epsilon`): there it is :math:`\mathrm{log1p}(\sum_i w_i\,\mathrm{expm1}(y_i))`.

    Parameters
    ----------
    y : ndarray, shape (k, n) or (n,)
        Logits, one row per point.
    w : ndarray, shape (n,)
        Weights summing to 1.

    Returns
    -------
    ndarray, shape (k,)
        K of each row."""
    y = np.atleast_2d(y)
    small = np.abs(y).max(axis=1) <= 0.5
    out = np.empty(len(y))
    if small.any():
        out[small] = np.log1p(np.expm1(y[small]) @ w)
    big = ~small
    if big.any():
        yb = y[big]
        m = yb.max(axis=1)
        out[big] = m + np.log(np.exp(yb - m[:, None]) @ w)
    return out


def half_sq_over_alpha(v: np.ndarray, alpha: float) -> np.ndarray:
    r""":math:`\|v\|^2 / (2\alpha)` per row, without underflow or overflow of :math:`\|v\|^2` at extreme
    :math:`\alpha`."""
    s = v * (1.0 / np.sqrt(2.0 * alpha))
    return np.vecdot(s, s)


def mean_error(dx, m2, mean_norm, amax, n):
    r"""Bound on the float64 error of :math:`\bar a = \sum_i p_i a_i` with :math:`p = \mathrm{softmax}(x)`, per row.

    Perturbing the logits by :math:`\delta_x` moves :math:`\bar a` by

    .. math::
        \sum_i p_i \delta_{x,i} (a_i - \bar a) + O(\delta_x^2) \le \delta_x s\,(1 + 2\delta_x e^{2\delta_x}),
        \qquad s^2 = \mathrm{tr}\,\mathrm{Cov}_p(a) = m_2 - \|\bar a\|^2

    (Cauchy-Schwarz): small when the attention is peaked, whatever the size of a.  The exponentials,
    the normalisation and the sum add their own rounding (below).  For :math:`\delta_x > 0.1` the crude
    bound :math:`(e^{2\delta_x} - 1)\, a_{\max}` is used.

    Parameters
    ----------
    dx : ndarray, shape (k,)
        :math:`\delta_x`, a bound on the absolute error of every logit.
    m2 : ndarray, shape (k,)
        :math:`m_2 = \sum_i p_i \|a_i\|^2`.
    mean_norm : ndarray, shape (k,)
        :math:`\|\bar a\|`.
    amax : float or ndarray
        :math:`a_{\max} = \max_i \|a_i\|`.
    n : int
        Number of templates.

    Returns
    -------
    ndarray, shape (k,)
        The bound on :math:`\|\mathrm{fl}(\bar a) - \bar a\|`."""
    sd = np.sqrt(np.maximum(m2 - mean_norm**2, 0.0) + 2 * (n + 4) * EPS * m2)
    first = np.where(dx <= 0.1, 1.25 * dx * sd, np.minimum(np.expm1(np.minimum(2 * dx, 700.0)), 2.0) * amax)
    # each p_i carries ~4 eps of its own rounding (exp, division) and a common factor (n + 2) eps from the
    # normalising sum (which moves abar along itself only); the sum of p_i a_i adds (n + 2) eps sum p_i ||a_i||
    return first + 4 * EPS * sd + (n + 4) * EPS * mean_norm + (n + 2) * EPS * np.sqrt(m2)


def lambda_min_cov(A: np.ndarray, P: np.ndarray) -> np.ndarray:
    r"""A certified lower bound on :math:`\lambda_{\min}(\mathrm{Cov}_p(a))` per row p of P.

    The computed eigenvalue of a symmetric matrix C is within :math:`\sim r\epsilon\|C\|` of the exact one
    (backward stability of the symmetric eigensolver); that margin is subtracted.

    Parameters
    ----------
    A : ndarray, shape (n, r)
        The templates :math:`a_i` in S coordinates (rows).
    P : ndarray, shape (k, n)
        Distributions over the templates, one per row.

    Returns
    -------
    ndarray, shape (k,)
        The lower bound (never negative)."""
    abar = P @ A
    C = np.einsum("kn,ni,nj->kij", P, A, A, optimize=True) - abar[:, :, None] * abar[:, None, :]
    ev = np.linalg.eigvalsh(C)
    norm = np.abs(ev).max(axis=1)
    return np.maximum(ev[:, 0] - 4 * (A.shape[1] + 2) * EPS * norm, 0.0)


def bound(alpha, gn1, delta1, g2b, delta_out, lam_norm, rtol, A=None, P=None, spread=(0.0, 0.0), coupling=0.0):
    r"""The certified bound B of the module docstring, per row.

    :math:`B_2` is computed only for the rows where :math:`B_1 > \mathrm{rtol}\,\|\lambda\|`.

    Parameters
    ----------
    alpha : float
        The regularisation :math:`\alpha > 0`.
    gn1, delta1 : ndarray, shape (k,)
        :math:`\|\hat g_1\|` as computed, and :math:`\delta_1`, the bound on its evaluation error.
    g2b : ndarray, shape (k,)
        :math:`\gamma_2`, a bound on the gradient outside the basis.
    delta_out : ndarray, shape (k,)
        The rounding of forming the returned vector.
    lam_norm : ndarray, shape (k,)
        :math:`\|\lambda\|`.
    rtol : float
        The certified relative accuracy asked for (which rows need :math:`B_2`).
    A : ndarray, shape (n, r), optional
        The templates in S coordinates (for :math:`B_2`; None: :math:`B_1` only).
    P : ndarray, shape (k, n), optional
        The tilted weights at each point (for :math:`B_2`).
    spread : (float, float)
        :math:`(R_S, R_\perp)` of :func:`_local_bound`.
    coupling : float
        The bound on :math:`\|P\|` (off-S Hessian blocks).

    Returns
    -------
    B, B_1 : ndarray, shape (k,)
        :math:`B = \min(B_1, B_2)` (plus the rounding) and the global bound :math:`B_1`."""
    gn1, delta1, g2b = np.asarray(gn1, float), np.asarray(delta1, float), np.asarray(g2b, float)
    B1 = alpha * (gn1 + delta1 + g2b) + delta_out
    B = B1.copy()
    if A is None or A.shape[1] == 0:
        return B, B1
    need = np.flatnonzero(~(B1 <= rtol * lam_norm))
    if need.size:
        lmin = lambda_min_cov(A, P[need])
        B[need] = np.minimum(B1[need], _local_bound(alpha, gn1[need] + delta1[need], g2b[need], lmin, spread, coupling,
                                                    B1[need]) + delta_out[need])
    return B, B1


def _local_bound(alpha, gs, g2, lmin, spread, coupling, rho_global):
    r""":math:`B_2` of the module docstring for rows with S-gradient bound :math:`g_S` (gs) and outside-S
    bound :math:`g_\perp` (g2).

    spread :math:`= (R_S, R_\perp)`: a displacement (:math:`\Delta_1` in S, :math:`\Delta_2` outside) changes
    the logit differences :math:`\langle t_i - t_j, \Delta\rangle` by at most
    :math:`R_S \|\Delta_1\| + R_\perp \|\Delta_2\|` (:math:`R_S = 2\max_i\|a_i\|`, :math:`R_\perp = 2\max_i\|e_i\|`).
    On the region :math:`\|\Delta_1\| \le \rho_1`, :math:`\|\Delta_2\| \le \rho_2` the Hessian of -D is bounded
    below by

    .. math::
        M = \mathrm{diag}((\sigma_1 - c) I, (1/\alpha - c) I), \qquad
        \sigma_1 = 1/\alpha + e^{-(R_S \rho_1 + R_\perp \rho_2)} \ell_{\min},

    with :math:`c` = coupling and :math:`\ell_{\min}` = lmin.  -D then exceeds its value at :math:`\lambda` on
    the region's boundary when

    .. math::
        \rho_1 > \frac{g_S + \sqrt{g_S^2 + s_1 g_\perp^2 / s_2}}{s_1}, \qquad
        \rho_2 > \frac{g_\perp + \sqrt{g_\perp^2 + s_2 g_S^2 / s_1}}{s_2}

    (:math:`s_1 = \sigma_1 - c`, :math:`s_2 = 1/\alpha - c`; minimise the quadratic lower bound over the other
    block), so :math:`\lambda^*` lies in the region (a convex function larger on the boundary than inside
    has its minimum inside).  The radii are found by doubling; the global ball (radius
    :math:`\alpha\|g\|`) is the fallback.  With :math:`\lambda - \lambda^* = \bar H^{-1} g` (:math:`\bar H`
    the Hessian averaged over the segment, whose S-block is :math:`\succeq \sigma_1` and off-blocks
    :math:`\preceq c`):

    .. math::
        \|\lambda - \lambda^*\| \le (1 + \alpha c)\, g_S / \sigma_1 + \alpha g_\perp."""
    rs, rp = spread
    with np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore"):
        s2 = 1.0 / alpha - coupling
        if s2 <= 0:
            return np.full(len(gs), np.inf)

        def sig(r1, r2):
            return 1.0 / alpha + np.exp(-(rs * r1 + rp * r2)) * lmin

        def needs(s):
            s1 = s - coupling
            s1 = np.where(s1 > 0, s1, np.nan)
            return (gs + np.sqrt(gs**2 + s1 * g2**2 / s2)) / s1, (g2 + np.sqrt(g2**2 + s2 * gs**2 / s1)) / s2

        n1, n2 = needs(sig(0.0, 0.0))
        r1, r2 = 2 * n1, 2 * n2
        sigma = np.full(len(gs), np.nan)
        for _ in range(64):
            s = sig(r1, r2)
            m1, m2 = needs(s)
            ok = (r1 >= m1) & (r2 >= m2) & np.isnan(sigma)
            sigma = np.where(ok, s, sigma)
            r1, r2 = 2 * r1, 2 * r2
        # the global ball: rho_1, rho_2 <= alpha ||g||
        sigma = np.where(np.isnan(sigma), sig(rho_global, rho_global), np.maximum(sigma, sig(rho_global, rho_global)))
        out = (1.0 + alpha * coupling) * gs / sigma + alpha * g2
    return np.where(np.isfinite(out), out, np.inf)


def relative_gap(alpha, g_upper, primal, dual, g_at_p=None, dy=None, n=None):
    r"""Bound on :math:`|P - D| / \max(|P|, |D|, \mathrm{tiny})`, the smaller of two certificates.

    For any distribution p,

    .. math::
        P(p) - D(\lambda) = \frac{\alpha}{2}\|g_p\|^2 + \mathrm{KL}(p \,\|\, \tilde p(\lambda)),
        \qquad g_p = b - \lambda/\alpha - T^\top p

    (expand :math:`\mathrm{KL}(p \,\|\, \tilde p)`).  (a) At :math:`p = \tilde p(\lambda)` the KL term vanishes:
    the gap is :math:`\alpha\|\nabla D\|^2 / 2`, bounded with g_upper :math:`\ge \|\nabla D(\lambda)\|`.  (b) At
    the computed p (normalised: a feasible point of (3)), g_at_p bounds :math:`\|g_p\|` with its rounding
    only, and :math:`\mathrm{KL}(p \,\|\, \tilde p) \le (2.2\,\delta_y + 2(n + 8)\epsilon)^2 / 2` for logits off
    by at most :math:`\delta_y` (:math:`p_i / \tilde p_i = e^{\rho_i}`,
    :math:`|\rho_i| \le 1.1\,\delta_y + (n + 8)\epsilon`, and
    :math:`\mathrm{KL} \le \max_{ij} (\rho_i - \rho_j)^2 / 2`).  (b) is the better one when the logits are large
    (a tiny relative error in p, a large bound on the gradient); (a) when every value is tiny
    (:math:`\alpha = 10^{-300}`, where :math:`\epsilon^2` is large against P).

    Parameters
    ----------
    alpha : float
        The regularisation :math:`\alpha > 0`.
    g_upper : ndarray, shape (k,)
        An upper bound on :math:`\|\nabla D(\lambda)\|` (certificate (a)).
    primal, dual : ndarray, shape (k,)
        P and D as computed.
    g_at_p : ndarray, shape (k,), optional
        A bound on :math:`\|g_p\|` at the computed p (certificate (b); None: (a) only).
    dy : ndarray, shape (k,), optional
        :math:`\delta_y`, the bound on the logits' error (for (b)).
    n : int, optional
        Number of templates (for (b)).

    Returns
    -------
    ndarray, shape (k,)
        The bound on the relative duality gap."""
    den = np.maximum(np.maximum(np.abs(primal), np.abs(dual)), TINY)
    a = 0.5 * (alpha / den) * np.asarray(g_upper, float) ** 2  # in this order: no underflow at alpha = 1e-300
    if g_at_p is None:
        return a
    kl = 0.5 * (2.2 * np.asarray(dy, float) + 2 * (n + 8) * EPS) ** 2
    b = 0.5 * (alpha / den) * np.asarray(g_at_p, float) ** 2 + kl / den
    return np.minimum(a, b)


def message(converged, rel_bound, rtol) -> str:
    """One line: the verdict and the certified accuracy reached."""
    c = np.atleast_1d(converged)
    rb = np.atleast_1d(rel_bound)
    worst = float(np.max(rb)) if rb.size else 0.0
    if c.all():
        return f"converged: certified ||lambda - lambda*|| <= {worst:.1e} ||lambda|| (rtol {rtol:g})"
    bad = int((~c).sum())
    worst_bad = float(np.max(rb[~c]))
    return (f"not converged: {bad} of {c.size} with certified relative error above rtol {rtol:g} or a relative "
            f"duality gap above it (worst bound reached {worst_bad:.1e})")
