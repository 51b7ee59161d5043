r"""Certificates for one instance of (3)/(7): ball-arithmetic enclosures around a float :math:`\hat\lambda`.

Everything here is computed in FLINT's ``arb`` ball arithmetic (python-flint), with every input
(T, u, z, :math:`\alpha` and :math:`\hat\lambda`, from any solver) taken as the exact binary64 number it is. A ball
always contains the exact real value, so every bound below is a theorem about the instance, not a
floating-point estimate. The exact problem certified is (3) with the preference normalised in exact
arithmetic, :math:`\bar u = u / \sum_i u_i` (a float u sums to 1 only to round-off; the paper's u is
a distribution), restricted to :math:`\operatorname{supp} u`.

**Radius of** :math:`\lambda^*`. With :math:`b = \mu + z`, :math:`\mu = T^\top\bar u` and
:math:`p(\lambda)_i \propto \bar u_i e^{\langle t_i,\lambda\rangle}` (9), the dual (7)

.. math::
    D(\lambda) = \langle\lambda, b\rangle - \frac{1}{2\alpha}\|\lambda\|^2 - \log M(\lambda),
    \qquad \nabla D(\lambda) = b - \frac{\lambda}{\alpha} - T^\top p(\lambda),

has :math:`-\nabla^2 D = I/\alpha + \operatorname{Cov}_{p(\lambda)}(t) \succeq I/\alpha`, so D is
:math:`(1/\alpha)`-strongly concave and, since :math:`\nabla D(\lambda^*) = 0`,

.. math::
    \frac1\alpha\|\lambda - \lambda^*\|^2 \le \langle\nabla D(\lambda) - \nabla D(\lambda^*),
    \lambda^* - \lambda\rangle \le \|\nabla D(\lambda)\|\,\|\lambda - \lambda^*\|
    \ \Longrightarrow\ \|\hat\lambda - \lambda^*\| \le \rho := \alpha\,\|\nabla D(\hat\lambda)\|.

**Optimal value.** Weak duality and the strong-concavity upper bound give

.. math::
    D(\hat\lambda) \le D^* = P^* \le \min\Big(P(p(\hat\lambda)),\ D(\hat\lambda)
    + \frac{\alpha}{2}\|\nabla D(\hat\lambda)\|^2\Big),

with :math:`P(p) = \frac\alpha2\|b - T^\top p\|^2 + \mathrm{KL}(p\,\|\,\bar u)` and, at the tilted
distribution, :math:`\mathrm{KL}(p(\lambda)\|\bar u) = \langle T^\top p(\lambda), \lambda\rangle
- \log M(\lambda)` exactly.

**Lipschitz bound of (9).** For a direction v, :math:`\frac{d}{ds}p_i(\lambda + s v) = p_i\,
\langle t_i - h(\lambda), v\rangle` with :math:`h = T^\top p`, so with :math:`X = \langle t, v\rangle`
under p,

.. math::
    \Big\|\frac{d}{ds}p\Big\|_1 = \mathbb E_p|X - \mathbb E_p X| \le \sqrt{\operatorname{Var}_p X}
    \le \frac{\max_i X_i - \min_i X_i}{2} \le \frac{\operatorname{diam}\{t_i\}}{2}\,\|v\|

(Cauchy-Schwarz, then Popoviciu's inequality), whatever p is; integrating along the segment,

.. math::
    \|p(\lambda_1) - p(\lambda_2)\|_1 \le L\,\|\lambda_1 - \lambda_2\|,\qquad
    L = \tfrac12\max_{i,j\in\operatorname{supp}u}\|t_i - t_j\|
    \ \big(\le \max_i\|t_i - c\|\ \text{for any } c\big).

It is attained for n = 2 at p = (1/2, 1/2) along :math:`t_1 - t_2`. Likewise
:math:`\|\nabla h\| = \lambda_{\max}(\operatorname{Cov}_p t) \le L^2`. Hence
:math:`\|p(\hat\lambda) - \tilde p\|_1 \le L\rho`, and :math:`\hat h^* = b - \lambda^*/\alpha` (10)
lies within :math:`\rho/\alpha` of :math:`b - \hat\lambda/\alpha`.

Precision: 128 bits by default; where the balls themselves (not the distance of :math:`\hat\lambda` from
:math:`\lambda^*`) keep a certificate from meeting its tolerance, the computation is repeated at twice the
precision, up to 1024 bits.

Reference: 004_830fd89135933577.txt, Theorem 1, (3), (7)-(10).
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
from flint import arb, arb_mat, ctx

from . import validate

PREC = 128
MAX_PREC = 1024
DEFAULT_TOL = 1e-9


@contextmanager
def precision(bits: int):
    """FLINT's working precision set to ``bits`` inside the block (restored on exit)."""
    old = ctx.prec
    ctx.prec = bits
    try:
        yield
    finally:
        ctx.prec = old


# -- exact conversions and outward rounding ----------------------------------------------------
def column(v) -> arb_mat:
    """A float64 vector as an exact (k, 1) ball column (or an arb_mat passed through)."""
    if isinstance(v, arb_mat):
        return v
    return arb_mat([[float(x)] for x in np.asarray(v, float).ravel()])


def matrix(A) -> arb_mat:
    """A float64 matrix as an exact ball matrix."""
    return arb_mat(np.asarray(A, float).tolist())


def up(x: arb) -> float:
    r"""The smallest float64 :math:`\ge` every point of the ball x (outward rounding)."""
    hi = x.upper()
    f = float(hi)
    if arb(f) < hi:
        f = float(np.nextafter(f, np.inf))
    return f


def down(x: arb) -> float:
    r"""The largest float64 :math:`\le` every point of the ball x."""
    lo = x.lower()
    f = float(lo)
    if arb(f) > lo:
        f = float(np.nextafter(f, -np.inf))
    return f


def norm_bounds(entries) -> tuple[arb, arb]:
    r"""Exact arbs (lo, hi) with :math:`lo \le \|x\| \le hi` for every vector x in the box of the balls."""
    lo2 = sum((e.abs_lower() ** 2 for e in entries), arb(0))
    hi2 = sum((e.abs_upper() ** 2 for e in entries), arb(0))
    return lo2.sqrt().lower(), hi2.sqrt().upper()


def _dot(x: arb_mat, y: arb_mat) -> arb:
    r""":math:`\langle x, y\rangle` for ball columns (one FLINT product)."""
    return (x.transpose() * y)[0, 0]


def _norm_hi(v: arb_mat) -> arb:
    r"""An exact upper bound of :math:`\|x\|` over the box of the ball column v."""
    return _dot(v, v).upper().sqrt().upper()


def _entries(v) -> list:
    return v.entries() if isinstance(v, arb_mat) else list(v)


def distance_bounds(x, y) -> tuple[arb, arb]:
    r"""(lo, hi) enclosing :math:`\|x - y\|` for ball vectors (arb_mat columns, lists of arb or floats)."""
    xe, ye = _entries(column(x) if isinstance(x, np.ndarray) else x), _entries(column(y) if isinstance(y, np.ndarray) else y)
    return norm_bounds([a - b for a, b in zip(xe, ye)])


# -- the certificate -------------------------------------------------------------------------
@dataclass
class Certificate:
    r"""What :func:`certify` proves about one instance (floats outward-rounded; the arb fields keep the
    balls for further certified computations, see :meth:`lambda_distance` and :meth:`h_distance`).

    Attributes
    ----------
    certified : bool
        Every radius met the tolerance and the enclosures are consistent.
    radius_lambda : float
        :math:`\rho \ge \|\hat\lambda - \lambda^*\|`.
    radius_p_l1 : float
        :math:`\ge \|\hat p - \tilde p\|_1` for the float :math:`\hat p` given (or the float tilted
        distribution at :math:`\hat\lambda`).
    radius_h : float
        :math:`\ge \|\hat h - \tilde h\|` for the float :math:`\hat h` given (or the float :math:`T^\top\hat p`).
    value_interval : (float, float)
        Contains the optimal value min (3) = max (7).
    message : str
        One line: what was certified, or what failed.
    """

    certified: bool
    radius_lambda: float
    radius_p_l1: float
    radius_h: float
    value_interval: tuple
    grad_norm_upper: float
    lipschitz_p: float
    tol: float
    prec: int
    message: str
    lam: arb_mat = field(repr=False, default=None)  # lambda_hat, exact
    b: arb_mat = field(repr=False, default=None)  # mu + z, mu of the normalised u (balls)
    alpha: arb = field(repr=False, default=None)
    rho: arb = field(repr=False, default=None)  # exact upper bound of ||lambda_hat - lambda*||
    h: arb_mat = field(repr=False, default=None)  # T^T p(lambda_hat), balls
    gnorm: arb = field(repr=False, default=None)  # exact upper bound of ||grad D(lambda_hat)||
    lipschitz: arb = field(repr=False, default=None)  # L of (9), exact
    value_lo: arb = field(repr=False, default=None)  # exact lower bound of the optimal value

    def as_dict(self) -> dict:
        """The JSON ``certificate`` object of ``attnverify solve --certify``."""
        return {"certified": bool(self.certified), "radius_lambda": self.radius_lambda,
                "radius_p_l1": self.radius_p_l1, "radius_h": self.radius_h,
                "value_interval": list(self.value_interval), "grad_norm_upper": self.grad_norm_upper,
                "lipschitz_p": self.lipschitz_p, "tol": self.tol, "prec_bits": self.prec,
                "method": "arb ball arithmetic (python-flint); radius by (1/alpha)-strong concavity of (7)",
                "message": self.message}

    def lambda_distance(self, other) -> tuple[arb, arb]:
        r"""(lo, hi) with :math:`lo \le \|\lambda^* - \mathrm{other}\| \le hi`, for a float vector or ball column ``other``."""
        with precision(self.prec):
            lo, hi = distance_bounds(self.lam, other)
            return (lo - self.rho).lower() if lo > self.rho else arb(0), (hi + self.rho).upper()

    def h_distance(self, other) -> tuple[arb, arb]:
        r"""(lo, hi) enclosing :math:`\|\hat h^* - \mathrm{other}\|`, by :math:`\hat h^* = b - \lambda^*/\alpha`
        within :math:`\rho/\alpha` of :math:`b - \hat\lambda/\alpha`."""
        with precision(self.prec):
            centre = self.b - self.lam * (1 / self.alpha)
            r = (self.rho / self.alpha).upper()
            lo, hi = distance_bounds(centre, other)
            return (lo - r).lower() if lo > r else arb(0), (hi + r).upper()


def certify(T, u, z, alpha, lam_hat, *, p_hat=None, h_hat=None, tol: float = DEFAULT_TOL,
            prec: int = PREC) -> Certificate:
    r"""Certify a float ``lam_hat`` for one instance of (7) by ball arithmetic.

    Parameters
    ----------
    T : array_like, shape (n, d)
        Templates :math:`t_i` (rows).
    u : array_like, shape (n,)
        Preference on the simplex (zeros allowed: those templates are outside the support).
    z : array_like, shape (d,)
        Evidence.
    alpha : float
        :math:`\alpha > 0` of (3).
    lam_hat : array_like, shape (d,)
        Any approximation :math:`\hat\lambda` of :math:`\lambda^*` (taken as exact binary64 numbers).
    p_hat, h_hat : array_like, optional
        The float p_tilde and h_hat to bound (default: the nearest floats to :math:`p(\hat\lambda)`,
        :math:`T^\top p(\hat\lambda)`).
    tol : float
        Relative tolerance of the verdict: :math:`\rho \le \mathrm{tol}\,\|\hat\lambda\|` and the width of the
        value interval :math:`\le \mathrm{tol}\,|\mathrm{value}|` (each with an absolute floor at the working
        precision's resolution).
    prec : int
        Starting precision in bits (doubled while the balls themselves are too wide, up to 1024).

    Returns
    -------
    Certificate

    Examples
    --------
    >>> import numpy as np
    >>> T = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]]); u = np.full(3, 1 / 3); z = np.array([0.5, -0.25])
    >>> c = certify(T, u, z, 1.0, np.array([0.4, -0.2]))  # a poor guess: certified radius, not certified
    >>> c.certified, c.radius_lambda >= 0.01
    (False, True)
    >>> from attnverify.batched import solve_dual_instance
    >>> certify(T, u, z, 1.0, solve_dual_instance(T, u, z, 1.0).lam).certified
    True
    """
    lam_hat = np.asarray(lam_hat, float)
    P = None if p_hat is None else np.asarray(p_hat, float)[None]
    H = None if h_hat is None else np.asarray(h_hat, float)[None]
    return certify_batch(T, u, np.asarray(z, float)[None], alpha, lam_hat[None], P_hat=P, H_hat=H, tol=tol, prec=prec)[0]


def certify_batch(T, u, Z, alpha, Lam, *, P_hat=None, H_hat=None, tol: float = DEFAULT_TOL,
                  prec: int = PREC) -> list[Certificate]:
    r""":func:`certify` for every row k of Z (m, d) and Lam (m, d), sharing T and u: the logits and
    :math:`T^\top p` of all rows are two ball matrix products. Rows that miss the tolerance only because of the
    balls' width are redone one by one at higher precision."""
    T, _, Z, alpha = validate.batch(T, u, Z, alpha)
    u = np.asarray(u, float)  # as given: validate.batch's renormalised copy is another binary64 problem
    Lam = np.atleast_2d(np.asarray(Lam, float))
    if Lam.shape != Z.shape or not np.all(np.isfinite(Lam)):
        raise validate.InputError(f"lam: expected finite values of shape {Z.shape}, got shape {Lam.shape}")
    if not (0 < tol < 1):
        raise validate.InputError(f"tol: must be in (0, 1), got {tol:g}")
    certs, retry = _certify_rows(T, u, Z, float(alpha), Lam, P_hat=P_hat, H_hat=H_hat, tol=tol, prec=prec)
    for k in retry:
        bits = prec
        while bits < MAX_PREC:
            bits *= 2
            sub = _certify_rows(T, u, Z[k:k + 1], float(alpha), Lam[k:k + 1],
                                P_hat=None if P_hat is None else np.asarray(P_hat)[k:k + 1],
                                H_hat=None if H_hat is None else np.asarray(H_hat)[k:k + 1], tol=tol, prec=bits)
            certs[k] = sub[0][0]
            if not sub[1]:
                break
    return certs


def _certify_rows(T, u, Z, alpha, Lam, *, P_hat, H_hat, tol, prec):
    r"""The certificates of the rows of Z and Lam at ``prec`` bits, and the rows that more precision may
    certify (their balls, not their distance from :math:`\lambda^*`, kept them from the tolerance)."""
    with precision(prec):
        inst = _BallInstance.of(T, u, alpha)
        W, logM = _tilted_balls(inst, Lam)
        m = Lam.shape[0]
        ns, d = inst.Ts.shape
        Pm = arb_mat([[W[k][i] for k in range(m)] for i in range(ns)])  # (ns, m)
        Hm = inst.At * Pm  # (d, m): h(lambda_hat_k)
        certs, retry = [], []
        for k in range(m):
            lam = column(Lam[k])  # exact
            row = _Row(lam, inst.mu + column(Z[k]), arb_mat([[Hm[j, k]] for j in range(d)]), W[k], logM[k])
            cert, more_precision_may_help = _certify_row(inst, row, None if P_hat is None else P_hat[k],
                                                         None if H_hat is None else H_hat[k], tol, prec)
            certs.append(cert)
            if more_precision_may_help:
                retry.append(k)
        return certs, retry


@dataclass(frozen=True)
class _BallInstance:
    r"""The instance in balls at the working precision: supp u, the exact normalisation
    :math:`\bar u = u / \sum_i u_i`, :math:`\log\bar u`, :math:`\mu = T^\top\bar u`, :math:`\alpha`,
    :math:`1/\alpha` and the Lipschitz constant L of (9)."""

    on: np.ndarray
    Ts: np.ndarray  # the float templates on supp u
    A: arb_mat  # (ns, d), exact
    At: arb_mat
    uon: list  # u on supp u, exact
    su: arb  # sum of u
    logu: list  # log ubar
    mu: arb_mat  # (d, 1)
    a: arb  # alpha, exact
    inv_a: arb
    L: arb

    @classmethod
    def of(cls, T, u, alpha):
        on = u > 0
        Ts = T[on]
        A = matrix(Ts)  # (ns, d), exact
        At = A.transpose()
        su = sum((arb(x) for x in u[on]), arb(0))
        uon = [arb(x) for x in u[on]]
        ubar = [x / su for x in uon]
        logu = [x.log() for x in ubar]
        mu = At * arb_mat([[x] for x in ubar])  # (d, 1)
        a = arb(alpha)
        L, _ = _lipschitz(Ts, A, At, mu)
        return cls(on, Ts, A, At, uon, su, logu, mu, a, 1 / a, L)


@dataclass(frozen=True)
class _Row:
    r"""One row in balls: :math:`\hat\lambda` (exact), :math:`b = \mu + z`, :math:`h = T^\top p(\hat\lambda)`,
    :math:`p(\hat\lambda)` and :math:`\log M(\hat\lambda)`."""

    lam: arb_mat
    b: arb_mat
    h: arb_mat
    W: list
    logM: arb


def _tilted_balls(inst: _BallInstance, Lam):
    r"""For every row of Lam: the tilted distribution :math:`p(\hat\lambda)` of (9) as balls (shifted by an
    exact constant, on which neither p nor :math:`\log M` depends) and :math:`\log M(\hat\lambda)`."""
    ns = inst.Ts.shape[0]
    logits = inst.A * matrix(Lam.T)  # (ns, m)
    W, logM = [], []
    for k in range(Lam.shape[0]):
        ell = [logits[i, k] + inst.logu[i] for i in range(ns)]
        c = arb(max(float(e.mid()) for e in ell))  # an exact shift: p and log M do not depend on it
        w = [(e - c).exp() for e in ell]
        s = sum(w, arb(0))
        W.append([x / s for x in w])
        x = [logits[i, k] for i in range(ns)]
        if all(abs(v) <= 1 for v in x):
            # small logits: M = 1 + sum_i ubar_i expm1(x_i) exactly (sum ubar = 1), so log M keeps its relative
            # accuracy when it is far below 1 (the shifted form would carry the 2^-prec ball of log ubar_i)
            logM.append((sum((w_ * v.expm1() for w_, v in zip(inst.uon, x)), arb(0)) / inst.su).log1p())
        else:
            logM.append(c + s.log())
    return W, logM


def _certify_row(inst: _BallInstance, row: _Row, p_hat, h_hat, tol, prec):
    """The certificate of one row, and whether more precision may certify it."""
    g, g_hi, rho = _radius_of_lambda(inst, row)
    val = _optimal_value_interval(inst, row, g_hi)
    rad_p, pk = _radius_of_p(inst, row, p_hat, rho)
    rad_h = _radius_of_h(inst, row, pk, h_hat, rho)
    floor_rel = arb(2) ** (16 - prec)
    ok_lam = _radius_meets_tol(inst, row, val, rho, tol, floor_rel)
    ok_val, width = _value_interval_meets_tol(inst, row, val, tol, floor_rel)
    consistent = arb(val.lo) <= arb(val.hi) and all(x.is_finite() for x in (rho, val.D, val.P))
    certified = bool(ok_lam and ok_val and consistent)
    retry = False
    if not consistent:
        msg = "inconsistent enclosures (D(lambda_hat) > P(p(lambda_hat))): not certified"
    elif certified:
        msg = (f"certified at {prec} bits: ||lambda_hat - lambda*|| <= {up(rho):.3e}, "
               f"||p_hat - p~||_1 <= {up(rad_p):.3e}, optimum in [{down(arb(val.lo)):.17g}, {up(arb(val.hi)):.17g}]")
    else:
        what = [] if ok_lam else [f"radius of lambda* {up(rho):.3e} > {tol:g} ||lambda_hat||"]
        what += [] if ok_val else [f"value interval width {up(width):.3e} > {tol:g} |value|"]
        msg = "not certified: " + "; ".join(what)
        retry = _balls_too_wide(g, val.D, width, ok_lam, ok_val)
    return Certificate(
        certified, up(rho), up(rad_p), up(arb(rad_h)), (down(arb(val.lo)), up(arb(val.hi))),
        up(g_hi), up(inst.L), float(tol), prec, msg, lam=row.lam, b=row.b, alpha=inst.a, rho=rho, h=row.h,
        gnorm=g_hi, lipschitz=inst.L, value_lo=arb(val.lo)), retry


def _radius_of_lambda(inst: _BallInstance, row: _Row):
    r"""The gradient :math:`g = b - \hat\lambda/\alpha - h` of (7), an exact upper bound of its norm, and
    :math:`\rho = \alpha\|g\| \ge \|\hat\lambda - \lambda^*\|` (strong concavity, module docstring)."""
    g = row.b - row.lam * inst.inv_a - row.h
    # inner products as ball matrix products (FLINT's loops): v^T v encloses every sum of squares in the box
    g_hi = _norm_hi(g)
    rho = (inst.a * g_hi).upper()
    return g, g_hi, rho


@dataclass(frozen=True)
class _Values:
    """The objective values of one row in balls, and the interval [lo, hi] that contains the optimum."""

    D: arb  # D(lambda_hat) of (7)
    P: arb  # P(p(lambda_hat)) of (3), by KL = <h, lambda> - log M at the tilted distribution
    lb: arb  # <lambda_hat, b>
    ll: arb  # ||lambda_hat||^2
    rr: arb  # ||b - h||^2
    lo: arb
    hi: arb


def _optimal_value_interval(inst: _BallInstance, row: _Row, g_hi) -> _Values:
    r""":math:`D(\hat\lambda) \le D^* = P^* \le \min(P(p(\hat\lambda)), D(\hat\lambda) + \frac\alpha2\|g\|^2)`
    (weak duality, and the strong-concavity upper bound)."""
    a, lam, b, h = inst.a, row.lam, row.b, row.h
    lb = _dot(lam, b)
    ll = _dot(lam, lam)
    Dv = lb - ll * inst.inv_a / 2 - row.logM
    r = b - h
    rr = _dot(r, r)
    Pv = a * rr / 2 + _dot(h, lam) - row.logM
    upper_sc = Dv + a * g_hi * g_hi / 2
    return _Values(Dv, Pv, lb, ll, rr, Dv.lower(), min(Pv.upper(), upper_sc.upper()))


def _radius_of_p(inst: _BallInstance, row: _Row, p_hat, rho):
    r"""An upper bound of :math:`\|\hat p - \tilde p\|_1`: the distance of the float :math:`\hat p` to
    :math:`p(\hat\lambda)` plus :math:`L\rho`, with :math:`\hat p` the given floats or the nearest floats to
    :math:`p(\hat\lambda)` (zero off supp u). Returns (the bound, :math:`\hat p`)."""
    on = inst.on
    pk = np.zeros(len(on))
    if p_hat is None:
        pk[on] = [float(x.mid()) for x in row.W]
    else:
        pk = np.asarray(p_hat, float)
    off = float(np.abs(pk[~on]).sum())  # p~ is exactly 0 off supp u
    dp = sum((abs(arb(float(x)) - y) for x, y in zip(pk[on], row.W)), arb(off)).upper()
    return (dp + inst.L * rho).upper(), pk


def _radius_of_h(inst: _BallInstance, row: _Row, pk, h_hat, rho):
    r"""An upper bound of :math:`\|\hat h - \tilde h\|` for the given float :math:`\hat h` (or
    :math:`T^\top\hat p`): the smaller of the routes through (10), :math:`\rho/\alpha`, and through
    :math:`h(\hat\lambda)`, :math:`L^2\rho`."""
    lam, b, h, inv_a, L = row.lam, row.b, row.h, inst.inv_a, inst.L
    hk = column(inst.Ts.T @ pk[inst.on] if h_hat is None else np.asarray(h_hat, float))
    dh1 = _norm_hi(hk - (b - lam * inv_a))
    dh2 = _norm_hi(hk - h)
    return min((dh1 + rho * inv_a).upper(), (dh2 + L * L * rho).upper())


def _radius_meets_tol(inst: _BallInstance, row: _Row, val: _Values, rho, tol, floor_rel) -> bool:
    r""":math:`\rho \le \mathrm{tol}\,\|\hat\lambda\|` plus what the working precision itself can resolve,
    :math:`\alpha(\|b\| + 1)\,2^{16 - \mathrm{prec}}`."""
    lam_norm = val.ll.sqrt().lower() if val.ll > 0 else arb(0)
    b_norm = _norm_hi(row.b)
    scale_lam = inst.a * (b_norm + 1) * floor_rel  # what the working precision itself can resolve
    return rho <= (arb(tol) * lam_norm + scale_lam)


def _value_interval_meets_tol(inst: _BallInstance, row: _Row, val: _Values, tol, floor_rel):
    """The width of the value interval against tol |value| plus the resolution of its terms at the
    working precision. Returns (verdict, width)."""
    width = arb(val.hi) - arb(val.lo)
    vmag = max(abs(arb(val.lo)), abs(arb(val.hi)))
    terms = abs(val.lb) + val.ll * inst.inv_a + abs(row.logM) + inst.a * val.rr
    return width <= (arb(tol) * vmag + terms.upper() * floor_rel), width


def _balls_too_wide(g, Dv, width, ok_lam, ok_val) -> bool:
    """More precision may certify: the balls are wide compared with the certified distance (the gradient's
    radii against a quarter of its norm, or D's radius against a quarter of the value interval)."""
    ge = g.entries()
    g_lo = norm_bounds(ge)[0]
    ball = sum((x.rad() for x in ge), arb(0))
    return (not ok_lam and not (ball < g_lo / 4)) or (not ok_val and not (4 * Dv.rad() < width))


def _lipschitz(Ts, A, At, mu):
    r""":math:`L \ge` the :math:`\ell_1`-Lipschitz constant of :math:`p(\lambda)` (module docstring): half the
    diameter of the support's templates (by their Gram matrix; :math:`n \le 512`), else
    :math:`\max_i \|t_i - \mu\|`."""
    ns = Ts.shape[0]
    if ns <= 1:
        return arb(0), True
    if ns <= 512:
        G = A * At
        best = arb(0)
        for i in range(ns):
            gi = G[i, i]
            for j in range(i + 1, ns):
                sq = gi + G[j, j] - 2 * G[i, j]
                best = max(best, sq.abs_upper())
        return (best.sqrt() / 2).upper(), True
    R = arb(0)
    me = mu.entries()
    for i in range(ns):
        _, hi = norm_bounds([A[i, j] - me[j] for j in range(len(me))])
        R = max(R, hi)
    return R, False


def primal_l1_distance(cert: Certificate, T, u, q) -> arb:
    r"""An exact upper bound of :math:`\|q - \tilde p\|_1` for any float vector q, with
    :math:`\tilde p` the minimiser of (3), by weak duality and Pinsker only (not Theorem 1).

    With q' = q restricted to supp u and renormalised (balls), F = (3) is 1-strongly convex in l1 on
    the simplex (Pinsker), so :math:`\|q' - \tilde p\|_1 \le \sqrt{2(F(q') - F^*)}` and
    :math:`F^* \ge D(\hat\lambda)` (the certificate's lower value bound); plus :math:`\|q - q'\|_1`.
    """
    with precision(cert.prec):
        u = np.asarray(u, float)
        q = np.asarray(q, float)
        on = u > 0
        qs = [arb(float(x)) for x in q[on]]
        s = sum(qs, arb(0))
        qn = [x / s for x in qs]
        off = sum((abs(arb(float(x))) for x in q[~on]), arb(0))
        moved = sum((abs(x - y) for x, y in zip(qs, qn)), off)
        su = sum((arb(float(x)) for x in u[on]), arb(0))
        kl = sum((x * (x / (arb(float(w)) / su)).log() for x, w in zip(qn, u[on]) if not x.is_zero()), arb(0))
        h = matrix(np.asarray(T, float)[on]).transpose() * arb_mat([[x] for x in qn])
        r = cert.b - h
        F = cert.alpha * sum((x * x for x in r.entries()), arb(0)) / 2 + kl
        gap = (F - cert.value_lo).upper()
        if gap < 0:  # impossible for exact values; balls this wide mean the bound is useless, not negative
            gap = arb(0)
        return (moved + (2 * gap).sqrt()).upper()


# -- closed forms in ball arithmetic (for the certified checks) --------------------------------
def closed_form_14(z, alpha) -> arb_mat:
    r"""(14) :math:`\alpha z`, as balls."""
    return column(z) * arb(float(alpha))


def closed_form_13(T, u, z, alpha, prec: int = PREC) -> arb_mat:
    r"""(13) :math:`\alpha (I + \alpha\Sigma)^{-1} z` with :math:`\Sigma = \operatorname{Cov}_{\bar u}(t)`, as balls
    (a rigorous solve)."""
    with precision(prec):
        on = np.asarray(u) > 0
        A = matrix(np.asarray(T, float)[on])
        su = sum((arb(x) for x in np.asarray(u, float)[on]), arb(0))
        ub = [arb(x) / su for x in np.asarray(u, float)[on]]
        At = A.transpose()
        mu = At * arb_mat([[x] for x in ub])
        ns, d = A.nrows(), A.ncols()
        C = arb_mat([[A[i, j] - mu[j, 0] for j in range(d)] for i in range(ns)])
        Cw = arb_mat([[C[i, j] * ub[i] for j in range(d)] for i in range(ns)])
        a = arb(float(alpha))
        H = arb_mat([[(1 if i == j else 0) for j in range(d)] for i in range(d)]) + (C.transpose() * Cw) * a
        return H.solve(column(z)) * a


def closed_form_16(T, u, z, alpha, prec: int = PREC) -> arb_mat:
    r"""(16) :math:`T^\top p(\alpha z)`, as balls."""
    with precision(prec):
        on = np.asarray(u) > 0
        Ts = np.asarray(T, float)[on]
        A = matrix(Ts)
        lam = closed_form_14(z, alpha)
        ell = [(A * lam)[i, 0] + arb(x).log() for i, x in enumerate(np.asarray(u, float)[on])]
        c = arb(max(float(e.mid()) for e in ell))
        w = [(e - c).exp() for e in ell]
        s = sum(w, arb(0))
        return A.transpose() * arb_mat([[x / s] for x in w])


# -- the CLI's certificate and the bench ------------------------------------------------------
def certificate_for_solution(T, u, z, alpha, out: dict, tol: float = DEFAULT_TOL) -> dict:
    """The ``certificate`` object of ``attnverify solve --certify`` for its output ``out``
    (its lambda_star, p_tilde and h_hat are the floats certified)."""
    c = certify(T, u, z, alpha, np.asarray(out["lambda_star"]), p_hat=np.asarray(out["p_tilde"]),
                h_hat=np.asarray(out["h_hat"]), tol=tol)
    return c.as_dict()


def bench_certification(T, u, Z, alpha, lam) -> dict:
    """Wall time of certifying every row of lam (m, d) for Z (m, d) sharing T, u: the cost per
    instance that `make bench` reports next to the float solve."""
    t0 = time.perf_counter()
    certs = certify_batch(T, u, Z, alpha, lam)
    dt = time.perf_counter() - t0
    m = len(certs)
    return {"instances": m, "seconds": dt, "us_per_instance": 1e6 * dt / m,
            "certified": int(sum(c.certified for c in certs)),
            "max_radius_rel": float(max(c.radius_lambda / max(np.linalg.norm(l), 1e-300) for c, l in zip(certs, lam)))}


def summary_lines(cert: dict) -> list[str]:
    """The human-readable lines ``attnverify solve --certify`` prints (on standard error)."""
    lo, hi = cert["value_interval"]
    return [f"certified radius of lambda*: ||lambda_star - lambda*|| <= {cert['radius_lambda']:.3e}",
            f"certified radius of p_tilde: ||p_tilde - p~||_1 <= {cert['radius_p_l1']:.3e}",
            f"optimal value of (3)/(7) in [{lo:.17g}, {hi:.17g}]",
            ("certified" if cert["certified"] else "NOT certified") + f" (tol {cert['tol']:g}): {cert['message']}"]
