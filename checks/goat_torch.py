r"""GOAT-PRIOR, GOAT-UNIFORM and GOAT-SINK numerically: exact solves, torch SDPA with a float mask, gradients.

Main results: :func:`prior_against_solvers`, :func:`prior_sdpa`, :func:`learnable_prior` (GOAT-PRIOR),
:func:`uniform_numeric` (GOAT-UNIFORM), :func:`sink_numeric` (GOAT-SINK); each is followed by the proof steps it
calls.

The precise form checked (derived in ``derivations.goat``): GOAT with temperature :math:`\tau` and prior
:math:`\pi` is ``scaled_dot_product_attention(q, K, V, attn_mask=log pi, scale=1/tau)``; the mask is added after the
scaling, so it is :math:`\log\pi` (not :math:`\tau\log\pi`), and :math:`\tau = \sqrt d` is torch's default scale.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.special import logsumexp, softmax

from attnverify import context
from attnverify.evidence import Evidence, Table
from attnverify.primal import solve_eot_cvxpy
from attnverify.checks._common import require, solver_gaps
from attnverify.checks.eot_torch import EPS, _torch, attention_reference, backend, sdpa, sdpa_roundoff

# ---------------------------------------------------------------------------
# min -<p,s> + tau KL(p || pi): its value, and the closed form (exact solves: attnverify.primal)
# ---------------------------------------------------------------------------


def _J(p, s, tau, pi):
    q = p > 0
    return float(-p @ s + tau * np.sum(p[q] * np.log(p[q] / pi[q])))


def goat_closed_form(s, tau, pi):
    with np.errstate(divide="ignore"):
        return softmax(s / tau + np.log(pi))


def prior_against_solvers(*, closed=goat_closed_form) -> Evidence:
    """GOAT-PRIOR numerically: SciPy and CVXPY solve the KL-regularised problem; the closed form is the minimiser."""
    ev = Evidence()
    rng = context.rng("goat-prior")
    cases = []
    for n, tau, zeros in [(4, 0.3, 0), (16, 1.0, 0), (16, 3.0, 5), (32, 1.0, 0), (32, 0.5, 10)]:
        s = rng.normal(size=n) * 2
        pi = rng.dirichlet(0.5 * np.ones(n))
        pi[rng.choice(n, size=zeros, replace=False)] = 0.0
        pi /= pi.sum()
        cases.append((f"n={n}, tau={tau:g}, zeros in pi: {zeros}", s, tau, pi, closed(s, tau, pi)))
    beat, ratio, rows = solver_gaps(cases, _J)
    for name in ("scipy", "cvxpy"):
        ev.at_least(f"{name}-finds-no-p-with-lower-p-s-tau-kl-p-pi-than",
                    f"{name} finds no p with lower -<p,s> + tau KL(p||pi) than softmax(s/tau + log pi)",
                    beat[name], -1,
                    "below -1 the solver would beat the closed form by more than rounding", method=name,
                    metric=r"min over cases of $(J(p_{\mathrm{solver}}) - J(\text{closed form})) / (n\varepsilon(1 + |J|))$",
                    numerical_class="iterative", evidence="float")
        ev.at_most(f"{name}-minimiser-within-the-pinsker-distance-of-softmax",
                   f"{name} minimiser within the Pinsker distance of softmax(s/tau + log pi)",
                   ratio[name], 1.0,
                   r"$\tau\mathrm{KL}(\cdot\|\pi)$ is $\tau$-strongly convex in $\ell_1$ on the simplex (Pinsker), so the "
                   r"ratio is $\le 1$ exactly when the closed form is the minimiser",
                   method=name,
                   metric=r"$\max \|p_{\mathrm{solver}} - p^*\|_1 / \sqrt{2\max(\text{J gap}, n\varepsilon(1+|J|))/\tau}$",
                   numerical_class="iterative", evidence="float")
    ev.tables.append(Table(r"GOAT-PRIOR: direct solves of $\min -\langle p,s\rangle + \tau\mathrm{KL}(p\|\pi)$ against "
                           r"$\operatorname{softmax}(s/\tau + \log\pi)$",
                           ["case", "||p_scipy - p*||_1", "J gap (scipy)", "||p_cvxpy - p*||_1", "J gap (cvxpy)"], rows))
    return ev


# ---------------------------------------------------------------------------
# GOAT through torch SDPA (float attn_mask)
# ---------------------------------------------------------------------------


def prior_sdpa(*, mask_fn=lambda logpi, tau: logpi) -> Evidence:
    r"""GOAT-PRIOR through torch SDPA: attn_mask = :math:`\log\pi` (and scale = :math:`1/\tau`) computes GOAT on both
    kernels."""
    torch = _torch()
    torch.manual_seed(0)
    ev = Evidence()
    Q, K, V, cases = _mask_cases()
    sdpa_with_log_prior_mask_is_goat(ev, Q, K, V, cases, mask_fn=mask_fn)
    prior_logits_as_mask_equal_their_log_softmax(ev, Q, K, V)
    rw = mask_scaled_by_tau_is_detected(ev, Q, K, V, cases[0][1])
    ev.notes.append(r"The wrong scale attn_mask $= \tau\log\pi$ misses by " + f"{rw:.1e}" + r" round-off bounds: the "
                    r"prior must enter as $\log\pi$ because torch adds attn_mask after multiplying $q \cdot k$ by scale "
                    r"$= 1/\tau$.")
    return ev


def sdpa_with_log_prior_mask_is_goat(ev: Evidence, Q, K, V, cases, *, mask_fn) -> None:
    r"""SDPA with attn_mask = mask_fn(log pi, tau) (scale :math:`1/\tau`) =
    :math:`\operatorname{softmax}(s/\tau + \log\pi) V` on both kernels, for every prior of ``cases`` and
    :math:`\tau \in \{\sqrt d, 0.7\}`."""
    d = Q.shape[-1]
    worst, rows = {"math": 0.0, "flash": 0.0}, []
    for label, pi in cases:
        for tau, scale in ((math.sqrt(d), None), (0.7, 1 / 0.7)):
            with np.errstate(divide="ignore"):
                logpi = np.log(pi)
            ref, p, x = attention_reference(Q, K, V, tau, bias=logpi)
            bound = sdpa_roundoff(Q, K, V, tau, x)
            kw = {"attn_mask": np.broadcast_to(mask_fn(logpi, tau), x.shape).copy()}
            if scale is not None:
                kw["scale"] = scale
            row = [label, "sqrt(d) (default scale)" if scale is None else f"{tau} (scale = 1/tau)"]
            for be in ("math", "flash"):
                out = sdpa(Q, K, V, be, **kw)
                r = float(np.max(np.abs(out - ref) / bound))
                worst[be] = np.maximum(worst[be], r)
                row.append(r)
            rows.append(row)
    for be in ("math", "flash"):
        ev.at_most(f"torch-sdpa-{be}-with-attn-mask-log-pi-scale-1-tau-equals",
                   f"torch SDPA ({be}) with attn_mask = log pi, scale = 1/tau equals GOAT softmax(s/tau + log pi) V",
                   worst[be], 1.0,
                   r"the a-priori float64 bound of checks.eot_torch.sdpa_roundoff (the mask adds $\varepsilon |x|$ per logit)",
                   method="torch",
                   metric="max |SDPA - reference| / round-off bound over priors (per key, per head, positional, with "
                   r"zeros) and $\tau \in \{\sqrt d, 0.7\}$",
                   numerical_class="roundoff", evidence="float")
    ev.tables.append(Table(r"GOAT-PRIOR: torch SDPA with attn_mask $= \log\pi$ against $\operatorname{softmax}(s/\tau + \log\pi) V$ "
                           "(ratio to the round-off bound)", ["prior", "tau", "math", "flash"], rows))


def prior_logits_as_mask_equal_their_log_softmax(ev: Evidence, Q, K, V) -> None:
    r"""Unnormalised prior logits w as the mask give the same SDPA as :math:`\log\operatorname{softmax}(w)`: row
    constants cancel."""
    d = Q.shape[-1]
    rng = context.rng("goat-logits")
    wlog = rng.normal(size=(Q.shape[1], 1, K.shape[-2])) * 2
    with np.errstate(divide="ignore"):
        a = sdpa(Q, K, V, "math", attn_mask=np.broadcast_to(wlog, Q.shape[:-1] + (K.shape[-2],)).copy())
        b = sdpa(Q, K, V, "math", attn_mask=np.broadcast_to(np.log(softmax(wlog, -1)), a.shape[:-1] + (K.shape[-2],)).copy())
    _, _, x = attention_reference(Q, K, V, math.sqrt(d), bias=wlog)
    r = float(np.max(np.abs(a - b) / sdpa_roundoff(Q, K, V, math.sqrt(d), x)))
    ev.at_most("prior-logits-w-as-the-mask-log-softmax-w-as-the",
               "prior logits w as the mask = log softmax(w) as the mask (row constants cancel)", r, 1.0,
               "softmax is invariant to a per-row constant; the bound allows for the rounding of log softmax",
               method="torch", metric=r"$\max |\mathrm{SDPA}(\text{mask} = w) - \mathrm{SDPA}(\text{mask} = "
                                      r"\log\operatorname{softmax} w)|$ / round-off bound",
               numerical_class="roundoff", evidence="float")


def mask_scaled_by_tau_is_detected(ev: Evidence, Q, K, V, pi) -> float:
    r"""The power of the comparison: attn_mask = :math:`\tau\log\pi` (a pre-scaling bias put after the scaling) fails
    it. Returns its ratio to the round-off bound."""
    d = Q.shape[-1]
    tau = math.sqrt(d)
    ref, _, x = attention_reference(Q, K, V, tau, bias=np.log(pi))
    wrong = sdpa(Q, K, V, "math", attn_mask=np.broadcast_to(tau * np.log(pi), x.shape).copy())
    rw = float(np.max(np.abs(wrong - ref) / sdpa_roundoff(Q, K, V, tau, x)))
    ev.at_least("the-same-comparison-detects-attn-mask-tau-log-pi",
                "the same comparison detects attn_mask = tau log pi (a pre-scaling bias put after the scaling)",
                rw, 1e3,
                r"the derivation shows $\tau\log\pi$ is the prior $\pi^\tau/\sum \pi^\tau$; the check has the power to see it",
                method="torch", metric=r"$\max |\mathrm{SDPA}(\text{mask} = \tau\log\pi) - \mathrm{GOAT}|$ / round-off bound",
                strict=True, shown="> 1e3", numerical_class="roundoff", evidence="float")
    return rw


def _mask_cases():
    rng = context.rng("goat-sdpa")
    B, H, Lq, Lk, d = 2, 3, 5, 7, 8
    Q, K, V = (rng.normal(size=(B, H, L, d)) for L in (Lq, Lk, Lk))
    per_key = rng.dirichlet(np.ones(Lk))  # one prior over keys
    per_head = rng.dirichlet(0.5 * np.ones(Lk), size=H)[:, None, :]  # (H, 1, Lk)
    pos = np.exp(-0.4 * np.abs(np.arange(Lq)[:, None] - np.arange(Lk)[None, :]))  # a positional prior (Lq, Lk)
    pos /= pos.sum(-1, keepdims=True)
    zeros = per_key.copy()
    zeros[[1, 4]] = 0.0
    zeros /= zeros.sum()
    return Q, K, V, [("one prior over keys", per_key), ("a prior per head", per_head),
                     ("positional prior pi(i, j)", pos), ("prior with zeros", zeros)]


# ---------------------------------------------------------------------------
# a learnable prior through SDPA: gradients and training
# ---------------------------------------------------------------------------


def learnable_prior() -> Evidence:
    """GOAT-PRIOR: a learnable prior trains through SDPA with correct gradients (autograd vs finite differences)."""
    torch = _torch()
    torch.manual_seed(0)
    ev = Evidence()
    st = _learnable_setup(torch)
    rows, worst, analytic = [], 0.0, 0.0
    for causal in (False, True):
        for row in _finite_difference_rows(torch, st, causal):
            worst = np.maximum(worst, row[-1])
            rows.append(row)
        analytic = np.maximum(analytic, _analytic_gradient_ratio(torch, st, causal))
    prior_gradient_through_sdpa_is_correct(ev, worst, analytic)
    trained_prior_reaches_the_target_attention(ev, torch)
    ev.tables.append(Table("GOAT-PRIOR: gradient of a loss w.r.t. the prior logits w through SDPA",
                           ["attention", "kernel", "prior enters as", "max |autograd - FD|", "ratio to bound"], rows))
    ev.notes.append("Fused kernels: torch 2.13's CPU flash kernel computes the forward pass with a float attn_mask but "
                    "has no backward for it ('No available kernel'); the default dispatch falls back to the unfused "
                    "math kernel when the mask requires grad. A per-key prior (shared by all queries) needs no mask: "
                    r"it is one extra coordinate, $q' = [q, 1]$, $k'_j = [k_j, \sqrt d \log\pi_j]$, $v' = [v, 0]$ with "
                    r"scale $1/\sqrt d$, which the flash kernel trains forward and backward (checked above, also with "
                    "is_causal). A prior that depends on (i, j) jointly (positional) needs a mask or a low-rank "
                    "factorisation into extra coordinates.")
    return ev


def prior_gradient_through_sdpa_is_correct(ev: Evidence, worst, analytic) -> None:
    r"""autograd :math:`\partial L/\partial w` through SDPA = central finite differences, and = sum over batch and
    queries of :math:`p (g - \mathbb{E}_p g)`."""
    ev.at_most("learnable-prior-pi-softmax-w-through-sdpa",
               "learnable prior pi = softmax(w) through SDPA: autograd = central finite differences (float64)",
               worst, 1.0,
               r"central differences at $h = 10^{-5}$: truncation $h^2 |f'''|/6$ ($f'''$ from a third difference, $\times 2$) "
               r"plus rounding $4\varepsilon |f| / (2h)$ with a factor 64 for the float64 evaluation of the SDPA loss",
               method="finite differences",
               metric=r"$\max |\text{autograd } \partial L/\partial w - \text{central difference}|$ / (truncation + rounding "
                      "bound)",
               numerical_class="roundoff", evidence="float")
    ev.at_most("dl-dw-sum-over-batch-and-queries-of-p-g-e-p-g-no",
               "dL/dw = sum over batch and queries of p (g - E_p g): no 1/tau, and the normaliser of pi gets no gradient",
               analytic, 1.0,
               r"both sides sum $\le 48$ (batch $\times$ queries) rows of $n$-term float64 sums; $64\varepsilon$ per row is a "
               r"generous $\gamma_n$ bound for the chained sums",
               method="torch autograd", metric=r"$\max |\text{autograd} - \text{formula}| / (64 \cdot 48\,\varepsilon "
                                               r"\max|\partial L/\partial w|)$",
               numerical_class="roundoff", evidence="float")


def trained_prior_reaches_the_target_attention(ev: Evidence, torch) -> None:
    r"""Flat scores (q = 0), target attention :math:`\pi_t`: GD (step 1) on :math:`\mathrm{KL}(\pi_t \| p)` through SDPA
    learns the prior."""
    rng = context.rng("goat-train")
    Lk = 6
    target = rng.dirichlet(5 * np.ones(Lk))
    # near the optimum GD (step 1) contracts by 1 - lambda_2(I(pi_t)) <= 1 - min pi_t per step (interlacing):
    # take enough steps for a factor 1e-10, fixed before running
    steps = int(math.ceil(math.log(1e-10) / math.log(1 - target.min())))
    w = torch.zeros(1, 1, Lk, dtype=torch.float64, requires_grad=True)
    q0 = torch.zeros(1, 1, 1, 8, dtype=torch.float64)
    k0 = torch.as_tensor(rng.normal(size=(1, 1, Lk, 8)))
    eye = torch.eye(Lk, dtype=torch.float64)[None, None]  # V = I reads the attention weights out of SDPA
    hist = []
    for _ in range(steps):
        pw = torch.nn.functional.scaled_dot_product_attention(q0, k0, eye, attn_mask=w)[0, 0, 0]
        L = (torch.as_tensor(target) * (torch.log(torch.as_tensor(target)) - torch.log(pw))).sum()
        (gr,) = torch.autograd.grad(L, w)
        L = L.detach()
        with torch.no_grad():
            w -= 1.0 * gr
        hist.append(L.item())
    final = float(np.abs(softmax(w.detach().numpy().ravel()) - target).sum())
    mono = bool(np.all(np.diff(hist) <= 1e-15))
    ev.check("a prior trained through SDPA (flat scores, GD on KL(pi_t || p)) reaches the target attention", "torch",
             r"$\|\operatorname{softmax}(w) - \pi_t\|_1$ after " + f"{steps} steps of GD (step 1), and the loss never "
             "increases",
             final, 1e-6, final <= 1e-6 and mono,
             r"$\mathrm{KL}(\pi_t\|\operatorname{softmax}(w))$ is convex and smooth in $w$ (Hessian $\operatorname{diag} p "
             r"- pp^\top \preceq \max p < 1$): GD with step 1 decreases it monotonically; the step count gives a "
             r"contraction $10^{-10}$ near the optimum, the tolerance $10^{-6}$ leaves $10^4$ for the approach from "
             f"w = 0; observed loss {hist[-1]:.1e}",
             key="a-prior-trained-through-sdpa-flat-scores-gd-on", numerical_class="iterative", evidence="float")


@dataclass(frozen=True)
class LearnableSetup:
    r"""Queries, keys, values (B, H, L, d) as torch tensors, the loss weights W, the prior logits w0 (H, 1, Lk) and
    loss(w, causal=False, be="math", via="mask") = :math:`\langle W, \mathrm{out}\rangle + \sum\sin(\mathrm{out})`,
    the prior entering as a mask or as an extra q/k coordinate."""

    Q: object
    K: object
    V: object
    W: object
    w0: np.ndarray
    loss: object


def _learnable_setup(torch) -> LearnableSetup:
    rng = context.rng("goat-learn")
    B, H, Lq, Lk, d = 2, 2, 4, 6, 8
    Q, K, V = (torch.as_tensor(rng.normal(size=(B, H, L, d))) for L in (Lq, Lk, Lk))
    W = torch.as_tensor(rng.normal(size=(B, H, Lq, d)))
    w0 = rng.normal(size=(H, 1, Lk))

    def loss(w, causal=False, be="math", via="mask"):
        if via == "mask":
            M = torch.log_softmax(w, -1).expand(B, H, Lq, Lk)
            if causal:
                M = M.masked_fill(~torch.ones(Lq, Lk, dtype=torch.bool).tril(), float("-inf"))
            with backend(be):
                out = torch.nn.functional.scaled_dot_product_attention(Q, K, V, attn_mask=M)
        else:  # the prior as one extra q/k coordinate: q' = [q, 1], k' = [k, w sqrt(d)], v' = [v, 0]
            one = torch.ones(B, H, Lq, 1, dtype=torch.float64)
            kw = (torch.log_softmax(w, -1) * math.sqrt(d)).transpose(-1, -2).expand(B, H, Lk, 1)
            with backend(be):
                out = torch.nn.functional.scaled_dot_product_attention(
                    torch.cat([Q, one], -1), torch.cat([K, kw], -1), torch.cat([V, torch.zeros_like(kw)], -1),
                    scale=1 / math.sqrt(d), is_causal=causal)[..., :d]
        return (W * out).sum() + torch.sin(out).sum()

    return LearnableSetup(Q, K, V, W, w0, loss)


def _finite_difference_rows(torch, st: LearnableSetup, causal) -> list:
    r"""autograd :math:`\partial L/\partial w` against central differences (:math:`h = 10^{-5}`, with its truncation and
    rounding bound), for the prior as a mask (math kernel) and as an extra coordinate (flash and math): one table row
    each, ratio last."""
    w0, loss = st.w0, st.loss
    h, h3 = 1e-5, 1e-2
    f = lambda w: float(loss(torch.as_tensor(w), causal, "math", "mask"))  # noqa: E731
    fd, tol = np.zeros_like(w0), np.zeros_like(w0)
    for idx in np.ndindex(w0.shape):
        e = np.zeros_like(w0)
        e[idx] = 1.0
        fd[idx] = (f(w0 + h * e) - f(w0 - h * e)) / (2 * h)
        # truncation h^2 |f'''|/6 (f''' by a 5-point third difference at step h3, x2 for its own error)
        f3 = (f(w0 + 2 * h3 * e) - 2 * f(w0 + h3 * e) + 2 * f(w0 - h3 * e) - f(w0 - 2 * h3 * e)) / (2 * h3**3)
        tol[idx] = 2 * h**2 * abs(f3) / 6 + 4 * EPS * max(1.0, abs(f(w0))) * 64 / (2 * h)
    rows = []
    for be, via in (("math", "mask"), ("flash", "extra coordinate"), ("math", "extra coordinate")):
        wt = torch.tensor(w0, requires_grad=True)
        (gw,) = torch.autograd.grad(loss(wt, causal, be, "mask" if via == "mask" else "coord"), wt)
        r = float(np.max(np.abs(gw.numpy() - fd) / tol))
        rows.append(["causal" if causal else "full", be, via, float(np.max(np.abs(gw.numpy() - fd))), r])
    return rows


def _analytic_gradient_ratio(torch, st: LearnableSetup, causal) -> float:
    r""":math:`|\text{autograd } \partial L/\partial w - \sum_{\text{batch, queries}} p (g - \mathbb{E}_p g)| /
    (64 \cdot 48\,\varepsilon \max|\partial L/\partial w|)`, :math:`g_j = \langle \partial L/\partial\,\mathrm{out},
    v_j\rangle`."""
    Q, K, V, W, w0, loss = st.Q, st.K, st.V, st.W, st.w0, st.loss
    Mt = np.broadcast_to(np.log(softmax(w0, -1)), Q.shape[:-1] + (K.shape[-2],))
    mask = np.tril(np.ones((Q.shape[-2], K.shape[-2]), bool)) if causal else None
    o, p, _ = attention_reference(Q.numpy(), K.numpy(), V.numpy(), math.sqrt(Q.shape[-1]), mask=mask, bias=Mt)
    dO = W.numpy() + np.cos(o)  # the loss is <W, out> + sum sin(out)
    g = np.einsum("...ic,...jc->...ij", dO, V.numpy())
    dw = (p * (g - np.sum(p * g, -1, keepdims=True))).sum(axis=(0, 2))[:, None, :]
    wt = torch.tensor(w0, requires_grad=True)
    (gw,) = torch.autograd.grad(loss(wt, causal), wt)
    return float(np.max(np.abs(gw.numpy() - dw))) / (64 * 48 * EPS * max(1.0, np.abs(dw).max()))


# ---------------------------------------------------------------------------
# GOAT-UNIFORM
# ---------------------------------------------------------------------------


def uniform_numeric() -> Evidence:
    r"""GOAT-UNIFORM numerically: attn_mask = :math:`\log(1/n)` (and no mask) give the same SDPA; solvers agree."""
    ev = Evidence()
    Q, K, V, _ = _mask_cases()
    d = Q.shape[-1]
    n = K.shape[-2]
    plain = sdpa(Q, K, V, "math")
    _, _, x = attention_reference(Q, K, V, math.sqrt(d))
    bound = sdpa_roundoff(Q, K, V, math.sqrt(d), x)
    worst = 0.0
    for be in ("math", "flash"):
        u = sdpa(Q, K, V, be, attn_mask=np.full(x.shape, math.log(1 / n)))
        worst = np.maximum(worst, float(np.max(np.abs(u - plain) / bound)))
    ev.at_most("sdpa-with-attn-mask-log-1-n-sdpa-without-a-mask",
               "SDPA with attn_mask = log(1/n) = SDPA without a mask (standard attention)", worst, 1.0,
               r"a constant shift of every logit cancels in the softmax; the bound covers the rounding of $x + \log(1/n)$",
               method="torch", metric=r"$\max |\mathrm{SDPA}(\text{mask} = \log 1/n) - \mathrm{SDPA}|$ / round-off bound, "
                                      "both kernels",
               numerical_class="roundoff", evidence="float")
    rng = context.rng("goat-uniform")
    s = rng.normal(size=12) * 2
    u = np.full(12, 1 / 12)
    worst_c = 0.0
    for tau in (0.5, 2.0):
        pu = require(solve_eot_cvxpy(s, tau, prior=u)).p
        # weak duality (GOAT-PRIOR): J_u(p) >= -tau log sum_l u_l e^{s_l/tau} for every p; a certified gap
        gap = max(_J(pu, s, tau, u) + tau * logsumexp(s / tau, b=u), 12 * EPS * (1 + abs(tau * logsumexp(s / tau))))
        worst_c = np.maximum(worst_c, float(np.abs(pu - softmax(s / tau)).sum()) / math.sqrt(2 * gap / tau))
    ev.at_most("the-uniform-prior-problem-solved-by-cvxpy-is",
               "the uniform-prior problem solved by CVXPY is softmax(s/tau) (no prior term in the closed form)",
               worst_c, 1.0,
               r"$\tau\mathrm{KL}(\cdot\|u)$ is $\tau$-strongly convex in $\ell_1$ (Pinsker): the ratio is $\le 1$ exactly "
               r"when $\operatorname{softmax}(s/\tau)$ is the minimiser",
               method="cvxpy",
               metric=r"$\max \|p_{\mathrm{cvxpy}} - \operatorname{softmax}(s/\tau)\|_1 / \sqrt{2\,\mathrm{gap}/\tau}$, gap "
                      "certified by weak duality",
               numerical_class="iterative", evidence="float")
    return ev


# ---------------------------------------------------------------------------
# GOAT-SINK
# ---------------------------------------------------------------------------


def sink_numeric(*, flat_target=lambda pi: pi) -> Evidence:
    r"""GOAT-SINK numerically: flat scores give :math:`p = \pi`; the logit bound; the score gap standard attention
    needs."""
    ev = Evidence()
    rng = context.rng("goat-sink")
    n, d = 10, 10  # d = n: the flash kernel needs q, k, v of one width (V = I reads out the weights)
    tau = math.sqrt(d)
    pi = rng.dirichlet(np.ones(n))
    pi[0] = 0.6  # a sink slot with a large prior
    pi[1:] *= 0.4 / pi[1:].sum()
    K = rng.normal(size=(1, 1, n, d))
    logpi = np.log(pi)[None, None, None, :]
    flat_scores_give_the_prior(ev, K, logpi, pi, flat_target=flat_target)
    rows = prior_moves_the_sink_logit_by_at_most_the_spread(ev, rng, K, logpi, pi, tau)
    logit_bound_is_attained_for_equal_scores(ev, pi, tau)
    m = pi[0]
    trows = standard_attention_needs_a_score_gap_goat_none(ev, m, tau)
    ev.part_finding("GOAT-SINK/prior-mass",
                    r"Holds, and follows from GOAT-PRIOR's $p = \operatorname{softmax}(s/\tau + \log\pi)$ alone (not "
                    r"separate evidence): with flat scores a slot takes exactly its prior mass $\pi_1$, through torch SDPA "
                    r"as through the formula; a prior moves the slot's logit by at most the score spread over $\tau$; and "
                    r"standard attention needs a score gap $\tau(\operatorname{logit} m + \log(n - 1))$, growing with "
                    r"$\log n$, for the mass that GOAT's prior gives with none, for every sink mass $m \in [0.2, 0.95]$.")
    ev.tables.append(Table(r"GOAT-SINK: logit shift of the sink slot vs the bound $\Delta/\tau$ (last draw per spread)",
                           ["spread", "|logit p_1 - logit pi_1|", "Delta/tau"], rows))
    ev.tables.append(Table(rf"GOAT-SINK: sink mass $m = {m:g}$ as the context grows ($\tau = \sqrt{{{d}}}$)",
                           ["n", "score gap needed (uniform prior)", "p_1 (uniform prior)", "gap needed (GOAT)",
                            "p_1 (GOAT, flat scores)"], trows))
    return ev


def flat_scores_give_the_prior(ev: Evidence, K, logpi, pi, *, flat_target) -> None:
    r"""q = 0: SDPA with attn_mask = :math:`\log\pi` returns :math:`p = \pi` on both kernels; the sink slot takes
    exactly :math:`\pi_1`."""
    n, d = K.shape[-2], K.shape[-1]
    worst = 0.0
    for be in ("math", "flash"):
        P = _weights_from_sdpa(np.zeros((1, 1, 3, d)), K, np.broadcast_to(logpi, (1, 1, 3, n)).copy(), be)
        worst = np.maximum(worst, float(np.max(np.abs(P - flat_target(pi)))) / (8 * n * EPS))
    ev.at_most("flat-scores-sdpa-with-attn-mask-log-pi-returns-p",
               "flat scores: SDPA with attn_mask = log pi returns p = pi, the sink slot takes exactly pi_1",
               worst, 1.0,
               r"$\operatorname{softmax}(\log\pi) = \pi$ exactly; exp/log and the $n$-term normalisation round to a few "
               r"$n\varepsilon$",
               method="torch",
               metric=r"$\max |p - \pi| / (8n\varepsilon)$, $p$ read out of SDPA with $V = I$, both kernels",
               numerical_class="roundoff", evidence="float")


def prior_moves_the_sink_logit_by_at_most_the_spread(ev: Evidence, rng, K, logpi, pi, tau) -> list:
    r""":math:`|\operatorname{logit} p_1 - \operatorname{logit}\pi_1| \le \Delta/\tau` on 150 random score vectors
    realised through q. Returns the table rows."""
    d = K.shape[-1]
    viol, rows = 0.0, []
    for spread in (0.5, 2.0, 8.0):
        for _ in range(50):
            q = rng.normal(size=(1, 1, 1, d))
            s = (K[0, 0] @ q[0, 0, 0])
            s = s / (s.max() - s.min()) * spread  # scores of spread Delta = spread
            qq = np.linalg.lstsq(K[0, 0], s, rcond=None)[0][None, None, None, :]  # scores realised through q
            s_real = K[0, 0] @ qq[0, 0, 0]
            Delta = s_real.max() - s_real.min()
            p1 = _weights_from_sdpa(qq, K, logpi, scale=1 / tau)[0, 0, 0, 0]
            shift = abs(_logit(p1) - _logit(pi[0]))
            viol = np.maximum(viol, shift / (Delta / tau + 1e-12))
        rows.append([spread, float(shift), float(Delta / tau)])
    ev.at_most("logit-p-1-logit-pi-1-delta-tau-delta-score",
               "|logit p_1 - logit pi_1| <= Delta/tau (Delta = score spread) on random scores", viol,
               1.0 + 1e-9,
               r"a proven bound (derivation); $10^{-9}$ relative slack covers the rounding of the logits",
               method="torch", metric=r"max over 150 random score vectors of $|\text{logit shift}| / (\Delta/\tau)$",
               numerical_class="roundoff", evidence="float")
    return rows


def logit_bound_is_attained_for_equal_scores(ev: Evidence, pi, tau) -> None:
    r"""Tightness: with the other scores equal and :math:`s_1 = \min`, the shift is exactly :math:`(s_1 - c)/\tau`."""
    n = len(pi)
    s = np.full(n, 1.0)
    s[0] = 1.0 - 3.0
    p = softmax(s / tau + np.log(pi))
    tight = abs((_logit(p[0]) - _logit(pi[0])) - (-3.0 / tau))
    ev.at_most("the-bound-is-attained-when-the-other-scores-are",
               "the bound is attained when the other scores are equal", tight, 1e-13,
               "exact identity up to rounding of logit", method="numpy",
               metric=r"$|\text{logit shift} - (s_1 - c)/\tau|$", numerical_class="roundoff", evidence="float")


def standard_attention_needs_a_score_gap_goat_none(ev: Evidence, m, tau) -> list:
    r"""For sink mass m a uniform prior needs the gap :math:`\tau(\operatorname{logit} m + \log(n-1))`, GOAT with
    :math:`\pi_1 = m` none (n up to 4096), re-decided over the declared range of m (a judgement call). Returns the
    table rows."""
    trows, worst_gap = [], 0.0
    for nn in (16, 256, 4096):
        gap_u = tau * (_logit(m) + math.log(nn - 1))
        s_u = np.zeros(nn)
        s_u[0] = gap_u
        pu = softmax(s_u / tau)[0]
        pig = np.full(nn, (1 - m) / (nn - 1))
        pig[0] = m
        pg = softmax(np.zeros(nn) + np.log(pig))[0]
        worst_gap = np.max([worst_gap, abs(pu - m), abs(pg - m)])
        trows.append([nn, gap_u, pu, 0.0, pg])
    ev.at_most("sink-mass-m-uniform-prior-needs-gap-tau-logit-m",
               "sink mass m: uniform prior needs gap tau(logit m + log(n-1)); GOAT with pi_1 = m needs none",
               worst_gap, 1e-12,
               r"closed-form gaps from the derivation; $10^{-12}$ covers exp/log rounding at $n = 4096$",
               method="numpy", metric=r"max over $n$ of $|p_1 - m|$ at those gaps", numerical_class="roundoff",
               evidence="float")

    # what counts as a sink is a judgement call: the verdict is re-decided at every sink mass in the declared range
    def sink_verdict(mm):
        ok = True
        for nn in (16, 256, 4096):
            gap = tau * (_logit(mm) + math.log(nn - 1))
            s_u = np.zeros(nn)
            s_u[0] = gap
            pig = np.full(nn, (1 - mm) / (nn - 1))
            pig[0] = mm
            ok &= gap > 0 and abs(softmax(s_u / tau)[0] - mm) <= 1e-12 and abs(softmax(np.log(pig))[0] - mm) <= 1e-12
        return bool(ok)

    ev.judged("sink-mass-needs-a-gap-only-without-the-prior",
              "for every sink mass m in the declared range: the uniform prior needs a positive score gap "
              "tau(logit m + log(n-1)), GOAT with pi_1 = m none (n = 16, 256, 4096)", worst_gap, float(m),
              r"the same closed-form gaps and rounding bound ($10^{-12}$) as above, re-decided at each $m$",
              parameter="sink mass m (the share of attention that makes a slot a sink)",
              declared_range=(0.2, 0.95),
              why_this_range="the abstract gives no threshold for a sink; any share from 0.2 (over 3 times the "
              "uniform 1/n at n = 16) to 0.95 (nearly all the attention) reads as 'a sink'",
              verdict_at=sink_verdict, method="numpy", metric=r"max over $n$ of $|p_1 - m|$ at those gaps (at $m = \pi_1$)",
              tolerance=1e-12, numerical_class="roundoff", evidence="float")
    return trows


def _logit(a):
    return math.log(a / (1 - a))


def _weights_from_sdpa(q, K, mask, be="math", scale=None):
    """Attention weights read out of torch SDPA with V = identity."""
    n = K.shape[-2]
    kw = {"attn_mask": mask}
    if scale is not None:
        kw["scale"] = scale
    return sdpa(q, K, np.broadcast_to(np.eye(n), K.shape[:-2] + (n, n)).copy(), be, **kw)
