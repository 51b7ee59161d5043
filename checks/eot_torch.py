r"""EOT-SDPA, EOT-PG, EOT-FISHER and EOT-LIMITS numerically, against PyTorch where the claim names it.

Main results: :func:`sdpa_equivalence`, :func:`policy_gradient_autograd`, :func:`reinforce_variance`,
:func:`fisher_numeric`, :func:`limits_numeric`; each is followed by the proof steps it calls.

* EOT-SDPA: :math:`\sum_j \operatorname{softmax}(\langle q,k_j\rangle/\sqrt d)_j v_j` (computed here in NumPy) and
  the EOT minimiser itself (CVXPY, no closed form) against ``torch.nn.functional.scaled_dot_product_attention`` for
  batches of heads in float64, with and without ``is_causal`` and boolean padding masks, on the math and the fused
  (CPU flash) kernels.  Tolerances are a-priori float64 round-off bounds (:func:`sdpa_roundoff`).
* EOT-PG: :math:`\frac1\tau p (g - \mathbb{E}_p g)` against ``torch.autograd`` on random losses of p and through
  SDPA; REINFORCE with and without the baseline by Monte Carlo (fixed seeds) against the exact means and variances.
* EOT-FISHER: ``torch.autograd.functional.jacobian``/``hessian`` and an explicit Fisher sum; the natural
  gradient with the pseudo-inverse; the KL trust-region step solved by SLSQP.
* EOT-LIMITS: the proven bounds of ``derivations.eot_gradients.limits`` on grids of :math:`\tau`.

torch is imported lazily: without it the torch checks raise ``Inconclusive``.
"""

from __future__ import annotations

import contextlib
import math
import warnings

import numpy as np
from scipy.special import logsumexp
from scipy.stats import norm

from attnverify import context
from attnverify.evidence import Erratum, Evidence, Figure, Inconclusive, Table

EPS = np.finfo(np.float64).eps


def _torch():
    try:
        import torch
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise Inconclusive("torch not installed: pip install '.[models]'") from e
    return torch


def gamma(m):
    r"""Higham's :math:`\gamma_m = m\varepsilon / (1 - m\varepsilon)`: relative error bound of an m-term float
    sum/product."""
    return m * EPS / (1 - m * EPS)


# ---------------------------------------------------------------------------
# reference attention in NumPy and its round-off bound
# ---------------------------------------------------------------------------


def attention_reference(Q, K, V, tau, mask=None, bias=None):
    r""":math:`\sum_j \operatorname{softmax}(\langle q,k_j\rangle/\tau + \mathrm{bias}_j \text{ over the support})_j v_j`;
    mask True = key in the support.

    Q (..., Lq, d), K (..., Lk, d), V (..., Lk, dv); mask/bias broadcast to (..., Lq, Lk).
    Returns (out, p, x) with x the logits (-inf off the support).
    """
    x = np.einsum("...id,...jd->...ij", Q, K) / tau
    if bias is not None:
        x = x + bias
    if mask is not None:
        x = np.where(mask, x, -np.inf)
    m = np.max(x, axis=-1, keepdims=True)
    w = np.exp(x - m)
    p = w / w.sum(-1, keepdims=True)
    return np.einsum("...ij,...jc->...ic", p, V), p, x


def sdpa_roundoff(Q, K, V, tau, x, mask=None):
    r"""A-priori bound on :math:`|\mathrm{out}_A - \mathrm{out}_B|` for two float64 evaluations of the same attention.

    Per query row, first order in :math:`\varepsilon`: the logits :math:`x_j = \langle q,k_j\rangle/\tau` (+ bias)
    carry an error :math:`\le (\gamma_d + 3\varepsilon) \sum_c |q_c k_{jc}| / \tau + \varepsilon |x_j|` (dot product of
    length d, the scaling, and kernels that scale q and k separately); :math:`\exp(x_j - \max)` adds
    :math:`\varepsilon |x_j - \max| + \varepsilon`; normalising adds :math:`\gamma_{n_S} + \varepsilon` (:math:`n_S` =
    support size) and an online (blocked) softmax at most another :math:`2\gamma_{n_S}`; the output sum adds
    :math:`\gamma_{n_S}`.  So :math:`|\mathrm{out}_c|` errs by at most :math:`(2\,dw + 4\gamma_{n_S} + \varepsilon)
    \max_j |v_{jc}|` per evaluation, doubled for the difference of two evaluations.
    """
    d = Q.shape[-1]
    dot_abs = np.einsum("...id,...jd->...ij", np.abs(Q), np.abs(K)) / tau
    fin = np.isfinite(x)
    xm = np.where(fin, x, -np.inf).max(-1, keepdims=True)
    dw = (gamma(d) + 3 * EPS) * dot_abs + EPS * np.abs(np.where(fin, x, 0)) + EPS * np.abs(np.where(fin, x - xm, 0)) + EPS
    if mask is not None:
        dw = np.where(np.broadcast_to(mask, dw.shape), dw, 0.0)
    nS = fin.sum(-1, keepdims=True)
    rel = 2 * dw.max(-1, keepdims=True) + 4 * gamma(nS) + EPS  # (..., Lq, 1)
    vmax = np.abs(V).max(-2, keepdims=True)  # (..., 1, dv) -- per column
    return 2 * (rel + gamma(nS)) * vmax


@contextlib.contextmanager
def backend(name):
    torch = _torch()
    from torch.nn.attention import SDPBackend, sdpa_kernel

    be = {"math": SDPBackend.MATH, "flash": SDPBackend.FLASH_ATTENTION}[name]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with sdpa_kernel([be]):
            yield torch


def sdpa(Q, K, V, be="math", **kw):
    """torch SDPA in float64 on the named backend; NumPy in, NumPy out."""
    with backend(be) as torch:
        t = lambda a: torch.as_tensor(a, dtype=torch.float64)  # noqa: E731
        kw = {key: (torch.as_tensor(val) if isinstance(val, np.ndarray) else val) for key, val in kw.items()}
        return torch.nn.functional.scaled_dot_product_attention(t(Q), t(K), t(V), **kw).numpy()


def _causal(Lq, Lk):
    return np.tril(np.ones((Lq, Lk), dtype=bool))  # torch's is_causal: top-left aligned


def _sdpa_cases():
    """(label, Q, K, V, support mask or None, torch kwargs) for batches of heads."""
    rng = context.rng("eot-sdpa")
    out = []
    B, H = 2, 3
    for label, Lq, Lk, d in [("no mask", 5, 7, 8), ("no mask, d = 64", 4, 9, 64)]:
        Q, K, V = (rng.normal(size=(B, H, L, d)) for L in (Lq, Lk, Lk))
        out.append((label, Q, K, V, None, {}))
    for Lq, Lk in [(6, 6), (4, 7)]:
        Q, K, V = (rng.normal(size=(B, H, L, 8)) for L in (Lq, Lk, Lk))
        out.append((f"is_causal (Lq={Lq}, Lk={Lk})", Q, K, V, _causal(Lq, Lk), {"is_causal": True}))
    Lq, Lk = 5, 8
    Q, K, V = (rng.normal(size=(B, H, L, 8)) for L in (Lq, Lk, Lk))
    lengths = np.array([8, 3])
    pad = (np.arange(Lk)[None, :] < lengths[:, None])[:, None, None, :]  # (B, 1, 1, Lk), True = real key
    out.append(("boolean padding mask", Q, K, V, pad, {"attn_mask": pad}))
    Q, K, V = (rng.normal(size=(B, H, L, 8)) for L in (6, 6, 6))
    both = (np.arange(6)[None, :] < np.array([6, 4])[:, None])[:, None, None, :] & _causal(6, 6)
    out.append(("causal + padding (boolean)", Q, K, V, both, {"attn_mask": both}))
    return out


# ---------------------------------------------------------------------------
# EOT-SDPA
# ---------------------------------------------------------------------------


def sdpa_equivalence(*, tau_fn=math.sqrt) -> Evidence:
    r"""EOT-SDPA numerically: with :math:`s_j = \langle q,k_j\rangle` and :math:`\tau = \sqrt d`,
    :math:`\sum_j p^*_j v_j` equals torch SDPA (float64)."""
    ev = Evidence()
    rows, worst = [], {}
    cvx_ratio = 0.0
    for case in _sdpa_cases():
        row, ratios, cvx = _sdpa_case(case, tau_fn)
        for be, r in ratios.items():
            worst[be] = np.maximum(worst.get(be, 0.0), r)
        rows.append(row)
        for r in cvx:
            cvx_ratio = np.maximum(cvx_ratio, r)
    eot_solution_equals_sdpa_on_both_kernels(ev, worst)
    eot_minimiser_solved_directly_equals_sdpa(ev, cvx_ratio)
    ev.tables.append(Table("EOT-SDPA: torch SDPA (float64) against the EOT solution, per case",
                           ["case", "Q shape", "K shape", "max|diff| math", "ratio to bound (math)",
                            "max|diff| flash", "ratio to bound (flash)"], rows))
    ev.notes.append(r"Masks: torch's boolean attn_mask (True = attend) and is_causal (top-left aligned tril, also "
                    r"for $L_q \ne L_k$) are the EOT problem restricted to each query's support = KL to a prior with zeros "
                    "(derivation). A query with an empty support has no feasible p; torch 2.13 returns a zero row.")
    return ev


def _sdpa_case(case, tau_fn):
    """One case of :func:`_sdpa_cases`: its table row, the ratios to the round-off bound per kernel (and of the
    float-mask prior, for masked cases) and, for two query rows, the ratio of the directly solved EOT minimiser."""
    from attnverify.primal import solve_eot_cvxpy
    from attnverify.checks._common import require

    label, Q, K, V, mask, kw = case
    d = Q.shape[-1]
    ref, p, x = attention_reference(Q, K, V, tau_fn(d), mask=mask)
    bound = sdpa_roundoff(Q, K, V, tau_fn(d), x, mask=mask)
    row, ratios = [label, f"{Q.shape}", f"{K.shape}"], {}
    for be in ("math", "flash"):
        out = sdpa(Q, K, V, be, **kw)
        ratio = float(np.max(np.abs(out - ref) / bound))
        ratios[be] = ratio
        row += [float(np.max(np.abs(out - ref))), ratio]
    if mask is not None:  # boolean mask = float mask log(prior uniform on S, zero off S)
        with np.errstate(divide="ignore"):
            logu = np.log(np.broadcast_to(mask, x.shape) / np.broadcast_to(mask, x.shape).sum(-1, keepdims=True))
        kl_mask = sdpa(Q, K, V, "math", attn_mask=logu)
        ratios["prior"] = float(np.max(np.abs(kl_mask - ref) / bound))
    # the EOT problem itself, solved without the closed form, for a few query rows
    out = sdpa(Q, K, V, "math", **kw)
    cvx = []
    for b, h, i in [(0, 0, 0), (1, 2, Q.shape[-2] - 1)]:
        S = np.ones(K.shape[-2], bool) if mask is None else np.broadcast_to(mask, p.shape)[b, h, i]
        s = (K[b, h] @ Q[b, h, i])[S]
        tau = tau_fn(d)
        pS = require(solve_eot_cvxpy(s, tau)).p
        # weak duality: J(p) >= -tau lse(s/tau) for every p (EOT-LSE), so this gap is certified
        J = -pS @ s + tau * np.sum(pS[pS > 0] * np.log(pS[pS > 0]))
        gap = max(J + tau * logsumexp(s / tau), len(s) * EPS * (1 + abs(J)))
        dist = math.sqrt(2 * gap / tau)  # tau-strong convexity in l1 (Pinsker)
        o = pS @ V[b, h][S]
        cvx.append(float(np.max(np.abs(o - out[b, h, i]) / (dist * np.abs(V[b, h][S]).max(0) + bound[b, h, i]))))
    return row, ratios, cvx


def eot_solution_equals_sdpa_on_both_kernels(ev: Evidence, worst: dict) -> None:
    r""":math:`\sum_j \operatorname{softmax}(\langle q,k_j\rangle/\tau)_j v_j` = torch SDPA on the math and flash
    kernels; a boolean mask is the float mask :math:`\log\pi`, :math:`\pi` uniform on the support."""
    for be in ("math", "flash"):
        ev.at_most(f"eot-solution-x-v-torch-sdpa-{be}-kernel-all-cases",
                   f"EOT solution x V = torch SDPA ({be} kernel), all cases", worst[be], 1.0,
                   r"a-priori float64 bound for two evaluations of the same formula (sdpa_roundoff: dot products "
                   r"$\gamma_d$, exp, normalisation and output sums $\gamma_{n_S}$, online-softmax rescaling)",
                   method="torch",
                   metric=r"max over entries of $|\mathrm{SDPA} - \sum_j \operatorname{softmax}(\langle q,k_j\rangle/\tau)_j "
                          r"v_j|$ / round-off bound, $\tau = \sqrt d$",
                   numerical_class="roundoff", evidence="float")
    ev.at_most("masked-sdpa-sdpa-with-attn-mask-log-pi-pi",
               "masked SDPA = SDPA with attn_mask = log pi, pi uniform on the support and 0 off it",
               worst["prior"], 1.0,
               "KL to a prior with zeros restricts the problem to its support (derivation); the same round-off bound",
               method="torch",
               metric=r"$\max |\mathrm{SDPA}(\text{float mask } \log\pi) - \text{EOT on the support}|$ / round-off bound, "
                      "over the masked cases",
               numerical_class="roundoff", evidence="float")


def eot_minimiser_solved_directly_equals_sdpa(ev: Evidence, cvx_ratio) -> None:
    """The EOT minimiser solved by CVXPY (no closed form), times V, is torch SDPA within its certified distance."""
    ev.at_most("eot-minimiser-solved-directly-cvxpy-no-closed",
               "EOT minimiser solved directly (CVXPY, no closed form) x V = torch SDPA", cvx_ratio, 1.0,
               r"weak duality $J(p) \ge -\tau\operatorname{lse}(s/\tau)$ certifies the gap; $J$ is $\tau$-strongly convex "
               r"in $\ell_1$, so $\|p_{\mathrm{cvxpy}} - p^*\|_1 \le \sqrt{2\,\mathrm{gap}/\tau}$ (Pinsker); masked rows are "
               "solved on the support only",
               method="cvxpy",
               metric=r"$\max |p_{\mathrm{cvxpy}} V - \mathrm{SDPA}| / (\sqrt{2\,\mathrm{gap}/\tau} \max|v|$ + round-off), "
                      r"$\mathrm{gap} = J(p_{\mathrm{cvxpy}}) + \tau\operatorname{lse}(s/\tau)$",
               numerical_class="iterative", evidence="float")


# ---------------------------------------------------------------------------
# EOT-PG
# ---------------------------------------------------------------------------


def advantage_dS(p, g, tau):
    r""":math:`\partial L/\partial s = \frac1\tau p (g - \mathbb{E}_p[g])` along the last axis."""
    return p * (g - np.sum(p * g, -1, keepdims=True)) / tau


def policy_gradient_autograd(*, dS_fn=advantage_dS, tau_fn=math.sqrt) -> Evidence:
    r"""EOT-PG numerically: :math:`\frac1\tau p (g - \mathbb{E}_p g)` against torch.autograd, on losses of p and
    through SDPA."""
    torch = _torch()
    torch.manual_seed(0)
    ev = Evidence()
    rng = context.rng("eot-pg")
    autograd_equals_advantage_formula_on_random_losses(ev, torch, rng, dS_fn)
    autograd_through_sdpa_equals_advantage_formula(ev, torch, rng, dS_fn, tau_fn)
    return ev


def autograd_equals_advantage_formula_on_random_losses(ev: Evidence, torch, rng, dS_fn) -> None:
    r""":math:`\partial L/\partial s` by autograd through :math:`\operatorname{softmax}(s/\tau)` = dS_fn(p, dL/dp, tau)
    on random losses of p."""
    worst_s, rows = 0.0, []
    n = 9
    for tau in (0.5, 1.0, math.sqrt(8)):
        s = rng.normal(size=(5, n)) * 2
        for name, L in _losses(torch, n, rng).items():
            st = torch.tensor(s, requires_grad=True)
            (grad_s,) = torch.autograd.grad(L(torch.softmax(st / tau, -1)), st)
            pt = torch.softmax(torch.as_tensor(s) / tau, -1).requires_grad_()
            (g,) = torch.autograd.grad(L(pt), pt)
            p, g = pt.detach().numpy(), g.numpy()
            cand = dS_fn(p, g, tau)
            tol = 4 * (n + 4) * EPS * p * (np.abs(g) + np.sum(p * np.abs(g), -1, keepdims=True)) / tau + EPS * 1e-300
            ratio = float(np.max(np.abs(grad_s.numpy() - cand) / tol))
            worst_s = np.maximum(worst_s, ratio)
            rows.append([name, tau, float(np.max(np.abs(grad_s.numpy() - cand))), ratio])
    ev.at_most("autograd-dl-ds-1-tau-p-g-e-p-g-on-random-losses",
               "autograd dL/ds = (1/tau) p (g - E_p g) on random losses", worst_s, 1.0,
               r"both sides are $n$-term float64 sums of products $p_j g_j / \tau$: each errs by $\le \gamma_{n+4}$ times "
               "the sum of absolute terms; the bound doubles that",
               method="torch autograd",
               metric=r"$\max |\text{autograd} - \text{formula}| / (4 (n+4) \varepsilon p_k (|g_k| + \mathbb{E}_p|g|) / \tau)$",
               numerical_class="roundoff", evidence="float")
    ev.tables.append(Table("EOT-PG: autograd vs the advantage formula (scores level, n = 9, 5 rows each)",
                           ["loss", "tau", "max |diff|", "ratio to bound"], rows))


def autograd_through_sdpa_equals_advantage_formula(ev: Evidence, torch, rng, dS_fn, tau_fn) -> None:
    r"""dQ, dK, dV by autograd through torch SDPA (math and flash kernels) = the advantage formula,
    :math:`\tau = \sqrt d`."""
    worst, rows2 = {"math": 0.0, "flash": 0.0}, []
    for label, Q, K, V, mask, kw in _sdpa_cases():
        if Q.shape[-1] != V.shape[-1] or Q.shape[-2] == 0:
            continue
        Wt = rng.normal(size=Q.shape[:-1] + (V.shape[-1],))
        for be in ("math", "flash"):
            if be == "flash" and "attn_mask" in kw:
                continue  # the CPU flash kernel has no backward with an attn_mask
            r = _sdpa_gradient_ratio(torch, (Q, K, V, mask, kw), Wt, be, dS_fn=dS_fn, tau_fn=tau_fn)
            worst[be] = np.maximum(worst[be], r)
            rows2.append([label, be, r])
    for be in ("math", "flash"):
        ev.at_most(f"autograd-through-torch-{be}-advantage-formula-for-dq-dk",
                   f"autograd through torch SDPA ({be}) = advantage formula for dQ, dK, dV", worst[be],
                   1.0,
                   r"each gradient entry is a sum of $\le L_q + L_k + d + 8$ float64 products; bound $= 8 (L_q+L_k+d+8) "
                   r"\varepsilon$ times the same sums taken in absolute value (both computations, with margin for the "
                   "chained sums)",
                   method="torch autograd",
                   metric=r"max over dQ, dK, dV of $|\text{autograd} - \text{formula}|$ / round-off bound; "
                          r"$dS = p (g - \mathbb{E}_p g)/\sqrt d$, $g_j = \langle \partial L/\partial\,\mathrm{out}, v_j\rangle$",
                   numerical_class="roundoff", evidence="float")
    ev.tables.append(Table("EOT-PG: autograd through torch SDPA vs the advantage formula",
                           ["case", "kernel", "ratio to bound"], rows2))
    ev.notes.append("The CPU flash kernel of torch 2.13 has no backward when an attn_mask is given; the masked cases "
                    "are checked on the math kernel only.")


def _sdpa_gradient_ratio(torch, case, Wt, be, *, dS_fn, tau_fn) -> float:
    r"""max over dQ, dK, dV of \|autograd through SDPA on kernel ``be`` - the advantage formula\| / round-off bound,
    for the loss :math:`\langle W_t, \mathrm{out}\rangle + \|\mathrm{out}\|^2/2 + \sum \sin(\mathrm{out})`; ``case`` =
    (Q, K, V, mask, torch kwargs)."""
    Q, K, V, mask, kw = case
    d = Q.shape[-1]
    with backend(be):
        Qt, Kt, Vt = (torch.tensor(a, requires_grad=True) for a in (Q, K, V))
        kwt = {k_: (torch.as_tensor(v_) if isinstance(v_, np.ndarray) else v_) for k_, v_ in kw.items()}
        out = torch.nn.functional.scaled_dot_product_attention(Qt, Kt, Vt, **kwt)
        Lout = (torch.as_tensor(Wt) * out).sum() + 0.5 * (out**2).sum() + torch.sin(out).sum()
        dQ, dK, dV = torch.autograd.grad(Lout, (Qt, Kt, Vt))
    _, p, x = attention_reference(Q, K, V, math.sqrt(d), mask=mask)
    o = np.einsum("...ij,...jc->...ic", p, V)
    dO = Wt + o + np.cos(o)  # dL/d out, analytically
    g = np.einsum("...ic,...jc->...ij", dO, V)  # g_j = <dL/d out, v_j>
    dS = dS_fn(p, g, tau_fn(d))
    fQ = np.einsum("...ij,...jd->...id", dS, K)
    fK = np.einsum("...ij,...id->...jd", dS, Q)
    fV = np.einsum("...ij,...ic->...jc", p, dO)
    gabs = np.einsum("...ic,...jc->...ij", np.abs(dO), np.abs(V))
    dSabs = p * (gabs + np.sum(p * gabs, -1, keepdims=True)) / math.sqrt(d)
    c = 8 * (Q.shape[-2] + K.shape[-2] + d + 8) * EPS
    tQ = c * np.einsum("...ij,...jd->...id", dSabs, np.abs(K)) + 1e-300
    tK = c * np.einsum("...ij,...id->...jd", dSabs, np.abs(Q)) + 1e-300
    tV = c * np.einsum("...ij,...ic->...jc", p, np.abs(dO)) + 1e-300
    return np.max([float(np.max(np.abs(dQ.numpy() - fQ) / tQ)), float(np.max(np.abs(dK.numpy() - fK) / tK)),
                   float(np.max(np.abs(dV.numpy() - fV) / tV))])


def _losses(torch, n, rng):
    c = torch.as_tensor(rng.normal(size=n))
    A = torch.as_tensor(rng.normal(size=(3, n)))
    y = torch.as_tensor(rng.normal(size=3))
    r = torch.as_tensor(rng.uniform(0.5, 2.0, size=n))
    W = torch.as_tensor(rng.normal(size=(4, n)))
    return {
        "linear <c,p>": lambda p: (p * c).sum(),
        "quadratic ||Ap - y||^2": lambda p: ((p @ A.T - y) ** 2).sum(),
        "log-likelihood -log<p,r>": lambda p: -torch.log((p * r).sum(-1)).sum(),
        "sin(Wp) + 5 (offset)": lambda p: (torch.sin(p @ W.T) + 5.0 * p.sum(-1, keepdim=True)).sum(),
    }


def reinforce_variance(*, baseline=lambda p, g: p @ g, N=200_000) -> Evidence:
    r"""EOT-PG by Monte Carlo: both REINFORCE estimators are unbiased; the baseline's effect on the variance is
    exactly :math:`\mathbb{E}_p[w](b^{*2} - (b - b^*)^2)/\tau^2`."""
    ev = Evidence()
    cases = _reinforce_cases()
    rows = reinforce_estimators_are_unbiased_with_predicted_variance_change(ev, cases, baseline, N)
    baseline_does_not_always_lower_the_variance(ev, cases)
    ev.tables.append(Table(r"EOT-PG: single-sample REINFORCE, total variance with and without the baseline $b = \mathbb{E}_p[g]$ "
                           "(exact values and paired Monte Carlo)",
                           ["case", "b = E_p g", "b* (optimal)", "Var X_0", "Var X_b", "MC Var X_0 - Var X_b", "s.e.",
                            "exact difference", "baseline"], rows))
    ev.notes.append(r"'Variance-reduced' holds for the advantage baseline $b = \mathbb{E}_p[g]$ exactly when "
                    r"$|\mathbb{E}_p[g] - b^*| < |b^*|$ with $b^* = \mathbb{E}_p[g w]/\mathbb{E}_p[w]$, $w_j = \|e_j - p\|^2$. "
                    r"It does when $g$ carries a common offset (the usual RL situation, and $g = \partial L/\partial p$ is "
                    r"only defined up to such an offset), but not always: for a confident head $p = (0.9, 0.05, 0.05)$ "
                    r"with $g = (1, -1, -1)$ the baseline increases the variance. Backprop itself is exact (no variance): "
                    "the identity is between expectations.")
    return ev


def reinforce_estimators_are_unbiased_with_predicted_variance_change(ev: Evidence, cases, baseline, N) -> list:
    r"""Paired Monte Carlo (N samples per case): both estimators are unbiased, and
    :math:`\operatorname{Var}X_0 - \operatorname{Var}X_b` is the derivation's
    :math:`\mathbb{E}_p[w](b^{*2} - (b - b^*)^2)/\tau^2`, significant and of the predicted sign. Returns the table
    rows."""
    rng = context.rng("eot-reinforce-mc")
    n_tests = sum(2 * len(p) for _, p, _, _ in cases) + 2 * len(cases)
    z = float(norm.isf(1e-4 / (2 * n_tests)))  # Bonferroni: family-wise false-alarm probability 1e-4
    rows, worst_mean, worst_diff, sign_ok = [], 0.0, 0.0, True
    for name, p, g, tau in cases:
        grad = p * (g - p @ g) / tau
        b = baseline(p, g)
        X0, mu0, v0 = _exact_moments(p, g, 0.0, tau)
        Xb, mub, vb = _exact_moments(p, g, b, tau)
        w = 1 - 2 * p + p @ p
        bstar = (p @ (g * w)) / (p @ w)
        pred = (p @ w) * (bstar**2 - (b - bstar) ** 2) / tau**2  # derivation: Var X_0 - Var X_b
        J = rng.choice(len(p), size=N, p=p)
        S0, Sb = X0[J], Xb[J]
        for S, X, label in ((S0, X0, "no baseline"), (Sb, Xb, "baseline")):
            sd = np.sqrt(p @ (X - grad) ** 2)  # exact per-coordinate standard deviation
            zs = np.abs(S.mean(0) - grad) / (sd / np.sqrt(N) + 1e-300)
            worst_mean = np.maximum(worst_mean, float(zs.max()) / z)
        D = np.sum((S0 - grad) ** 2, 1) - np.sum((Sb - grad) ** 2, 1)  # paired, unbiased for v0 - vb
        se = D.std(ddof=1) / np.sqrt(N)
        miss = abs(D.mean() - (v0 - vb))
        worst_diff = np.maximum(worst_diff, miss / (z * se) if se > 0 else (0.0 if miss <= 1e-12 else np.inf))
        sign_ok &= bool(np.sign(D.mean()) == np.sign(pred) and abs(D.mean()) > z * se)
        rows.append([name, float(b), float(bstar), v0, vb, float(D.mean()), float(se), pred,
                     "reduces" if pred > 0 else "increases"])
    ev.at_most("reinforce-with-and-without-the-baseline-e-p-g",
               "REINFORCE with and without the baseline E_p[g] are unbiased for (1/tau) p (g - E_p g)",
               worst_mean, 1.0,
               r"CLT for bounded i.i.d. summands with the exact $\sigma$; $z$ from a Bonferroni correction over all tested "
               r"coordinates at family-wise false-alarm probability $10^{-4}$ (fixed seeds make the run reproducible)",
               method="monte carlo",
               metric=r"max over cases, estimators, coordinates of $|\text{MC mean} - \text{gradient}| / (z\sigma/\sqrt N)$, "
                      rf"$N = {N}$, $z = {z:.2f}$",
               numerical_class="statistical", evidence="statistical")
    ev.at_most("mc-variance-reduction-var-x-0-var-x-b-matches-e",
               "MC variance reduction Var X_0 - Var X_b matches E_p[w](b*^2 - (b - b*)^2)/tau^2",
               worst_diff, 1.0,
               r"paired samples (same $J$) give an unbiased estimate with the sample standard error; "
               r"same Bonferroni $z$ as above",
               method="monte carlo",
               metric=r"max over cases of $|\text{mean of paired differences} - \text{exact}| / (z \cdot \text{standard error})$",
               numerical_class="statistical", evidence="statistical")
    ev.check("the sign of the variance change is significant and as predicted (|E_p g - b*| < |b*| iff reduced)",
             "monte carlo",
             r"every case: $\operatorname{sign}(\text{MC mean difference}) = \operatorname{sign}(\text{prediction})$ and "
             r"$|\text{mean}| > z\,\text{s.e.}$",
             int(sign_ok), 1, sign_ok, "a significant MC difference of the predicted sign in every case",
             key="the-sign-of-the-variance-change-is-significant", numerical_class="statistical", evidence="statistical")
    return rows


def baseline_does_not_always_lower_the_variance(ev: Evidence, cases) -> None:
    """'A variance-reduced update rule' as printed, for every p and g, decided exactly (rationals from the float
    inputs); a counterexample gives the part's finding and the erratum."""
    exact = [(name, _exact_variance_change(p, g, tau)) for name, p, g, tau in cases]
    worse = [name for name, D in exact if D < 0]
    ev.equal("baseline-never-increases-the-variance",
             "as printed ('a variance-reduced update rule'): the baseline E_p[g] lowers the variance of the "
             "single-sample score-function estimator in every case", len(worse), 0,
             r"$\operatorname{Var}X_0 - \operatorname{Var}X_b$ computed exactly in rational arithmetic from the float "
             "inputs (no rounding): a case where it is negative is a counterexample", method="exact rational arithmetic",
             metric=f"cases (of {len(cases)}) with " + r"$\operatorname{Var}X_b > \operatorname{Var}X_0$",
             numerical_class="exact", evidence="proof")
    if worse:
        D = dict(exact)[worse[0]]
        ev.part_finding("EOT-PG/variance",
                        f"False as printed (for every p and g): in the case '{worse[0]}' the baseline "
                        r"$\mathbb{E}_p[g]$ raises the variance of the single-sample REINFORCE estimator by "
                        f"{float(-D):.4g} (exact rational "
                        r"arithmetic; confirmed by paired Monte Carlo). What is true: the baseline $b = \mathbb{E}_p[g]$ "
                        r"lowers the variance exactly when $|\mathbb{E}_p[g] - b^*| < |b^*|$, $b^* = \mathbb{E}_p[g w]/"
                        r"\mathbb{E}_p[w]$, $w_j = \|e_j - p\|^2$ ($\operatorname{Var}X_0 - \operatorname{Var}X_b = "
                        r"\mathbb{E}_p[w](b^{*2} - (b - b^*)^2)/\tau^2$), e.g. whenever $g$ carries a large "
                        "common offset; and backprop itself has no variance: the identity is between expectations.")
        ev.errata.append(Erratum(
            source="000_126cee95456ccd42.txt", equation="abstract ('a variance-reduced update rule')",
            printed=r"\text{the advantage-based policy gradient is a variance-reduced update rule (for every } p, g)",
            corrected=r"\operatorname{Var}X_0 - \operatorname{Var}X_b = \mathbb{E}_p[w]\,(b^{*2} - (b - b^*)^2)/\tau^2"
                      r",\ b = \mathbb{E}_p[g],\ b^* = \frac{\mathbb{E}_p[g\,w]}{\mathbb{E}_p[w]},\ w_j = \|e_j - p\|^2"
                      r":\ \text{variance-reduced iff } |b - b^*| < |b^*|",
            note=f"Counterexample: {worse[0]}, where the baseline raises the variance by {float(-D):.4g} (exact)."))


def _reinforce_cases():
    rng = context.rng("eot-reinforce")
    n = 6
    p1 = rng.dirichlet(np.ones(n))
    return [
        ("rewards with a common offset: g = 3 + N(0,1)", p1, 3 + rng.normal(size=n), 1.0),
        ("centred random g", p1, rng.normal(size=n) - 0.0, 1.0),
        ("confident head, g = (1, -1, -1)", np.array([0.9, 0.05, 0.05]), np.array([1.0, -1.0, -1.0]), 1.0),
    ]


def _exact_moments(p, g, b, tau):
    r"""Mean and total variance of :math:`X_b = (g_J - b)(e_J - p)/\tau`, :math:`J \sim p`, by exact enumeration."""
    E = np.eye(len(p))
    X = (g - b)[:, None] * (E - p) / tau  # row j: the value when J = j
    mu = p @ X
    var = float(p @ np.sum((X - mu) ** 2, 1))
    return X, mu, var


def _exact_variance_change(p, g, tau):
    r""":math:`\operatorname{Var}X_0 - \operatorname{Var}X_b`, :math:`b = \mathbb{E}_p[g]`, in exact rationals from the
    float inputs (:math:`X_b = (g_J - b)(e_J - p)/\tau`, :math:`J \sim p`).

    The two estimators have the same mean, so the difference is :math:`\mathbb{E}\|X_0\|^2 - \mathbb{E}\|X_b\|^2`,
    computed by enumerating J (independent of the closed form :math:`\mathbb{E}_p[w](b^{*2} - (b - b^*)^2)/\tau^2`
    it is compared with)."""
    from fractions import Fraction as F

    p, g, t = [F(float(v)) for v in p], [F(float(v)) for v in g], F(float(tau))
    b = sum(pj * gj for pj, gj in zip(p, g))
    sq = [sum(((1 if k == j else 0) - pk) ** 2 for k, pk in enumerate(p)) for j in range(len(p))]  # ||e_j - p||^2
    e0 = sum(pj * gj ** 2 * wj for pj, gj, wj in zip(p, g, sq))
    eb = sum(pj * (gj - b) ** 2 * wj for pj, gj, wj in zip(p, g, sq))
    return (e0 - eb) / t ** 2


# ---------------------------------------------------------------------------
# EOT-FISHER
# ---------------------------------------------------------------------------


def fisher_numeric(*, fisher_fn=lambda p: np.diag(p) - np.outer(p, p)) -> Evidence:
    """EOT-FISHER numerically: jacobian, hessian and explicit Fisher sum agree; natural gradient and KL step."""
    torch = _torch()
    torch.manual_seed(0)
    ev = Evidence()
    rng = context.rng("eot-fisher")
    n = 6
    worst, eig_ok, nat_worst, step_worst, rows = 0.0, True, 0.0, 0.0, []
    for tau in (0.5, 2.0):
        r = _fisher_at_temperature(torch, rng, tau, n, fisher_fn)
        worst = np.maximum(worst, r["fisher"])
        eig_ok &= r["eig_ok"]
        nat_worst = np.maximum(nat_worst, r["natural"])
        for inv, rem in r["step"]:
            step_worst = np.max([step_worst, inv, rem])
        rows += r["rows"]
    fisher_is_softmax_jacobian_of_rank_n_minus_1(ev, worst, eig_ok)
    natural_gradient_is_the_centred_gradient(ev, nat_worst, step_worst)
    kl_trust_region_moves_along_fisher_rao_gradient(ev)
    ev.tables.append(Table(r"EOT-FISHER: natural-gradient step in logits (invariance along $\mathbf 1$ and first-order change)",
                           ["tau", "eta", "||p(theta - eta I^+ grad) - p(theta - eta g)||_1",
                            "||p(theta - eta A) - (p - eta p*A)||_1", "bound eta^2 R^2/2"], rows))
    return ev


def _fisher_at_temperature(torch, rng, tau, n, fisher_fn) -> dict:
    r"""At one :math:`\tau`: the ratio of the jacobian/hessian/explicit-Fisher error to its bound ("fisher"), whether the
    spectrum is that of rank n - 1 ("eig_ok"), the natural-gradient error ratio ("natural"), the (invariance,
    remainder) ratios of the natural step per eta ("step") and its table rows ("rows")."""
    from torch.autograd.functional import hessian, jacobian

    s = torch.as_tensor(rng.normal(size=n) * 1.5)
    Jac = jacobian(lambda v: torch.softmax(v / tau, -1), s).numpy()
    Hes = hessian(lambda v: tau * torch.logsumexp(v / tau, -1), s).numpy()
    th = s / tau
    G = jacobian(lambda t: torch.log_softmax(t, -1), th).numpy()  # row x: grad_theta log p_x
    p = torch.softmax(th, -1).numpy()
    Fis = G.T @ np.diag(p) @ G  # E_x[score score^T], explicit sum over the n outcomes
    formula = fisher_fn(p)
    tol = 4 * (n + 4) * EPS / min(tau, 1.0)
    err = np.max([np.abs(Jac - formula / tau).max(), np.abs(Hes - formula / tau).max(), np.abs(Fis - formula).max()])
    out = {"fisher": err / tol}
    lam = np.linalg.eigvalsh(Fis)
    v0 = np.linalg.eigh(Fis)[1][:, 0]
    out["eig_ok"] = bool(abs(lam[0]) <= n * tol and abs(abs(v0 @ np.ones(n)) / math.sqrt(n) - 1) <= 1e-8
                         and lam[1] >= p.min() * (1 - 1e-10) - n * tol)
    # natural gradient of a random loss of p
    c = torch.as_tensor(rng.normal(size=n))
    Lp = lambda q: (torch.sin(q * c) + q**2).sum()  # noqa: E731
    pt = torch.as_tensor(p).requires_grad_()
    (g,) = torch.autograd.grad(Lp(pt), pt)
    g = g.numpy()
    tht = th.clone().requires_grad_()
    (gth,) = torch.autograd.grad(Lp(torch.softmax(tht, -1)), tht)
    gth = gth.numpy()
    nat = np.linalg.pinv(Fis, rcond=1e-10) @ gth
    A = g - p @ g
    cond = lam[-1] / lam[1]
    ntol = 16 * n * EPS * cond * np.abs(g).max() + 1e-300
    nat_err = np.maximum(np.abs(nat - (g - g.mean())).max(), np.abs(Fis @ A - gth).max() * cond)
    out["natural"] = nat_err / ntol
    out["step"], out["rows"] = _natural_step(th.numpy(), p, g, A, nat, tau)
    return out


def _natural_step(th, p, g, A, nat, tau):
    r"""The step in logits: exact shift invariance and the first-order change :math:`p \odot A`, remainder
    :math:`\le \eta^2 R^2 / 2`. Returns [(invariance ratio, remainder ratio)] and the table rows, one per
    :math:`\eta`."""
    n = len(p)
    step, rows = [], []
    for eta in (1e-1, 1e-2, 1e-3):
        sm = lambda t: np.exp(t - logsumexp(t))  # noqa: E731
        pn, pA, pg = sm(th - eta * nat), sm(th - eta * A), sm(th - eta * g)
        inv = np.maximum(np.abs(pn - pg).sum(), np.abs(pA - pg).sum()) / (8 * n * EPS * (1 + eta * np.abs(g).max()))
        R = A.max() - A.min()
        rem = np.abs(pA - (p - eta * p * A)).sum() / (eta**2 * R**2 / 2 + 8 * n * EPS)
        step.append((inv, rem))
        rows.append([tau, eta, float(np.abs(pn - pg).sum()), float(np.abs(pA - (p - eta * p * A)).sum()),
                     float(eta**2 * R**2 / 2)])
    return step, rows


def fisher_is_softmax_jacobian_of_rank_n_minus_1(ev: Evidence, worst, eig_ok) -> None:
    r"""jacobian of softmax = hessian of :math:`\tau\operatorname{lse}(s/\tau)` = :math:`\frac1\tau` Fisher; the Fisher
    matrix has kernel :math:`\operatorname{span}(\mathbf 1)`."""
    ev.at_most("softmax-jacobian-hessian-of-tau-lse-s-tau-1-tau",
               "softmax Jacobian = Hessian of tau lse(s/tau) = (1/tau) Fisher(theta = s/tau)", worst, 1.0,
               r"entries are $n$-term float64 sums of products bounded by $1/\tau$: $\gamma_{n+4}$, doubled",
               method="torch autograd",
               metric=r"max entrywise $|\text{jacobian} - I/\tau|$, $|\text{hessian} - I/\tau|$, $|\text{explicit Fisher} - "
                      r"(\operatorname{diag} p - pp^\top)|$ / $(4(n+4)\varepsilon/\min(\tau,1))$",
               numerical_class="roundoff", evidence="float")
    ev.check("Fisher matrix: kernel = span(1), second eigenvalue >= min p (rank n - 1)", "numpy",
             r"$|\lambda_1| \le n\,\mathrm{tol}$, $|\cos(v_1, \mathbf 1)| = 1$ to $10^{-8}$, $\lambda_2 \ge \min_j p_j$",
             int(eig_ok), 1, eig_ok,
             r"interlacing for the rank-one update $\operatorname{diag}(p) - pp^\top$ gives $\lambda_2 \ge \min p$ exactly; "
             r"eigen-solver backward error $\sim n\varepsilon \|I\|$",
             key="fisher-matrix-kernel-span-1-second-eigenvalue", numerical_class="roundoff", evidence="float")


def natural_gradient_is_the_centred_gradient(ev: Evidence, nat_worst, step_worst) -> None:
    r""":math:`I^+ \nabla_\theta L = g - \bar g \mathbf 1`, and the natural step moves p by
    :math:`-\eta\, p \odot A + O(\eta^2)`."""
    ev.at_most("natural-gradient-pinv-i-grad-theta-l-g-mean-g-1",
               "natural gradient pinv(I) grad_theta L = g - mean(g) 1, and I A = grad_theta L", nat_worst,
               1.0,
               r"the pseudo-inverse solve loses at most $\sim\operatorname{cond}(I|_{\mathbf 1^\perp})$ times the round-off "
               "of its input",
               method="numpy", metric=r"max entrywise error / $(16 n\varepsilon \operatorname{cond}(I|_{\mathbf 1^\perp}) "
                                      r"\max|g|)$",
               numerical_class="roundoff", evidence="float")
    ev.at_most("natural-step-theta-eta-i-grad-theta-eta-a-theta",
               "natural step: theta - eta I^+ grad = theta - eta A = theta - eta g (same p) and p moves by -eta p*A + O(eta^2)",
               step_worst, 1.0,
               r"softmax is exactly invariant along $\mathbf 1$; the Taylor remainder is bounded by $\eta^2 R^2/2$ in "
               r"$\ell_1$ (second derivative $p_j[(d_j - \mathbb{E} d)^2 - \operatorname{Var} d]$, derivation EOT-LIMITS)",
               method="numpy",
               metric=r"max over $\tau, \eta$ of $\|p(\cdot) - p(\theta - \eta g)\|_1$ / round-off and "
                      r"$\|p(\theta - \eta A) - (p - \eta\, p \odot A)\|_1 / (\eta^2 R_A^2 / 2)$",
               numerical_class="roundoff", evidence="float")


def kl_trust_region_moves_along_fisher_rao_gradient(ev: Evidence) -> None:
    r""":math:`\arg\min_\delta \langle\nabla_\theta L, \delta\rangle` s.t.
    :math:`\mathrm{KL}(p \| p(\theta + \delta)) \le \epsilon`, solved by SLSQP without knowing the answer, moves p
    along :math:`-p \odot A` (Lagrange: :math:`p_{\mathrm{new}} = p - p \odot A/\nu`)."""
    from scipy.optimize import minimize

    p = np.array([0.4, 0.25, 0.2, 0.1, 0.05])
    g = context.rng("eot-fisher-kl").normal(size=5)
    A = g - p @ g
    th0 = np.log(p)
    kl = lambda dl: float(p @ (np.log(p) - (th0 + dl - logsumexp(th0 + dl))))  # noqa: E731
    res = minimize(lambda dl: (p * A) @ dl, np.zeros(5), jac=lambda dl: p * A, method="SLSQP",
                   constraints=[{"type": "ineq", "fun": lambda dl: 1e-3 - kl(dl)},
                                {"type": "eq", "fun": lambda dl: dl.sum()}], options={"ftol": 1e-15, "maxiter": 500})
    dp = np.exp(th0 + res.x - logsumexp(th0 + res.x)) - p
    cosang = lambda u, v: float(u @ v / np.linalg.norm(u) / np.linalg.norm(v))  # noqa: E731
    c_adv, c_g, c_A = 1 - cosang(dp, -p * A), 1 - cosang(dp, -p * g), 1 - cosang(dp, -A)
    ev.check("KL trust-region step (SLSQP) moves p along -p*(g - E_p g), the Fisher-Rao gradient", "scipy",
             r"$1 - \cos(p_{\mathrm{new}} - p, -p \odot A)$ at KL radius $10^{-3}$", c_adv, 1e-6,
             c_adv <= 1e-6 and res.success,
             r"exact for every radius (Lagrange: $p_{\mathrm{new}} = p - p \odot A/\nu$); SLSQP with ftol $10^{-15}$ "
             r"resolves the direction to $\sim 10^{-7}$; the competing directions $-p \odot g$ and $-A$ are at "
             rf"$1 - \cos = {c_g:.1e}$ and ${c_A:.1e}$",
             key="kl-trust-region-step-slsqp-moves-p-along-p-g-e-p", numerical_class="iterative", evidence="float")


# ---------------------------------------------------------------------------
# EOT-LIMITS
# ---------------------------------------------------------------------------


def limits_numeric(*, zero_target=None) -> Evidence:
    r"""EOT-LIMITS numerically: the proven bounds hold on grids of :math:`\tau` (:math:`\tau \to 0` with a tie,
    :math:`\tau \to \infty`)."""
    ev = Evidence()
    rng = context.rng("eot-limits")
    n = 8
    s = rng.normal(size=n)
    s[3] = s.max() + 0.7  # a tie at the top: indices 3 and 5
    s[5] = s[3]
    taus0, rows0, Delta, m = softmax_tends_to_uniform_on_argmax_exponentially(ev, s, zero_target)
    taus, rows1, R = softmax_tends_to_uniform_at_rate_one_over_tau(ev, s)
    ev.tables.append(Table(r"EOT-LIMITS, $\tau \to 0$ (tie of two maxima): $\|p - u_A\|_1$ and its proven bounds",
                           ["tau", "||p - u_A||_1", "lower (2/n) e^{-Delta/tau}", "upper 2(n-m)/m e^{-Delta/tau}"],
                           rows0[::6]))
    ev.tables.append(Table(r"EOT-LIMITS, $\tau \to \infty$: $\max|p - 1/n|$ and the first-order remainder",
                           ["tau", "max_j |p_j - 1/n|", "max_j |n tau (p_j - 1/n) - (s_j - mean s)|"], rows1[::5]))
    ev.figures.append(_limits_figure(taus0=taus0, rows0=rows0, taus=taus, rows1=rows1, Delta=Delta, n=n, m=m, R=R))
    ev.notes.append(r"With ties the $\tau \to 0$ limit is uniform on the argmax set, not a one-hot $e_{\arg\max}$: the claim's "
                    "'argmax (hard attention)' holds as stated only for a unique maximiser.")
    return ev


def softmax_tends_to_uniform_on_argmax_exponentially(ev: Evidence, s, zero_target):
    r""":math:`\tau \to 0`: :math:`\frac2n e^{-\Delta/\tau} \le \|\operatorname{softmax}(s/\tau) - u_A\|_1 \le
    \frac{2(n - m)}{m} e^{-\Delta/\tau}`, :math:`u_A` uniform on the m maximisers (the limit is ``zero_target(s)``
    when given). Returns the :math:`\tau` grid, its rows, :math:`\Delta` and m."""
    n = len(s)
    A = np.flatnonzero(s == s.max())
    m = len(A)
    Delta = s.max() - np.max(s[s < s.max()])
    uA = np.zeros(n)
    uA[A] = 1 / m
    target = uA if zero_target is None else zero_target(s)
    taus0 = Delta / np.linspace(0.5, 30, 40)
    low_ok, up_ratio, rows0 = True, 0.0, []
    for t in taus0:
        p = _softmax(s / t)
        dist = np.abs(p - target).sum()
        e = math.exp(-Delta / t)
        up = 2 * (n - m) / m * e + 4 * n * EPS
        low = 2 / n * e - 4 * n * EPS
        up_ratio = np.maximum(up_ratio, dist / up)
        low_ok &= bool(dist >= low)
        rows0.append([t, dist, 2 / n * e, 2 * (n - m) / m * e])
    ev.at_most("tau-0-softmax-s-tau-u-argmax-1-2-n-m-m-exp-delta",
               "tau -> 0: ||softmax(s/tau) - u_argmax||_1 <= 2 (n - m)/m exp(-Delta/tau) (ties: m = 2)",
               up_ratio, 1.0,
               r"the bound is proven (derivation); $4n\varepsilon$ allows for the float64 evaluation of the $n$-term distance",
               method="numpy", metric=r"max over the $\tau$ grid of dist / (bound $+ 4n\varepsilon$)",
               numerical_class="roundoff", evidence="float")
    ev.check("tau -> 0: the rate is exactly exponential (lower bound (2/n) exp(-Delta/tau))", "numpy",
             r"$\mathrm{dist} \ge \frac2n e^{-\Delta/\tau} - 4n\varepsilon$ on the whole grid", int(low_ok), 1, low_ok,
             r"proven lower bound; a wrong limit (e.g. $e_{\arg\max}$ with ties) would leave $\mathrm{dist} \sim 1$ and "
             "pass the lower bound but fail the upper one",
             key="tau-0-the-rate-is-exactly-exponential-lower", numerical_class="roundoff", evidence="float")
    return taus0, rows0, Delta, m


def softmax_tends_to_uniform_at_rate_one_over_tau(ev: Evidence, s):
    r""":math:`\tau \to \infty`: :math:`|\operatorname{softmax}(s/\tau)_j - 1/n| \le (e^{R/\tau} - 1)/n` and
    :math:`p = 1/n + (s - \bar s)/(n\tau) + O(1/\tau^2)`. Returns the :math:`\tau` grid, its rows and
    :math:`R = \max s - \min s`."""
    n = len(s)
    R = s.max() - s.min()
    taus = R * np.logspace(0.5, 4, 30)
    r1, r2, rows1 = 0.0, 0.0, []
    for t in taus:
        p = _softmax(s / t)
        dev = np.abs(p - 1 / n).max()
        b1 = (math.exp(R / t) - 1) / n + 4 * n * EPS
        first = np.abs(n * t * (p - 1 / n) - (s - s.mean())).max()
        b2 = R**2 * math.exp(R / t) / (2 * t) + n * t * 4 * n * EPS
        r1, r2 = np.maximum(r1, dev / b1), np.maximum(r2, first / b2)
        rows1.append([t, dev, first])
    ev.at_most("tau-inf-softmax-s-tau-j-1-n-e-r-tau-1-n",
               "tau -> inf: |softmax(s/tau)_j - 1/n| <= (e^{R/tau} - 1)/n", r1, 1.0,
               r"proven bound ($n p_j$ lies in $[e^{-R/\tau}, e^{R/\tau}]$); $4n\varepsilon$ for rounding", method="numpy",
               metric="max over grid of dev / bound", numerical_class="roundoff", evidence="float")
    ev.at_most("tau-inf-p-1-n-s-mean-s-n-tau-o-1-tau-2-with",
               "tau -> inf: p = 1/n + (s - mean s)/(n tau) + O(1/tau^2) with |remainder| n tau <= R^2 e^{R/tau}/(2 tau)",
               r2, 1.0,
               r"Taylor remainder with $|d^2 p_j/d\epsilon^2| \le p_j R^2$ (derivation); rounding of $p$ amplified by "
               r"$n\tau$",
               method="numpy", metric=r"max over grid of $|n\tau (p - 1/n) - (s - \bar s)|$ / bound",
               numerical_class="roundoff", evidence="float")
    return taus, rows1, R


def _softmax(x):
    return np.exp(x - logsumexp(x))


def _limits_figure(*, taus0, rows0, taus, rows1, Delta, n, m, R) -> Figure:
    plt = context.pyplot()

    fig, ax = plt.subplots(1, 2, figsize=(9, 3.4))
    d0 = np.array([r[1] for r in rows0])
    x0 = Delta / taus0
    ax[0].semilogy(x0, d0, "k.", label=r"$\|p - u_A\|_1$")
    ax[0].semilogy(x0, 2 * (n - m) / m * np.exp(-x0), "r-", label=r"$\frac{2(n-m)}{m}e^{-\Delta/\tau}$")
    ax[0].semilogy(x0, 2 / n * np.exp(-x0), "b-", label=r"$\frac{2}{n}e^{-\Delta/\tau}$")
    ax[0].set_xlabel(r"$\Delta/\tau$")
    ax[0].set_title(r"$\tau\to0$ (two tied maxima)", fontsize=9)
    ax[0].legend(fontsize=7)
    d1 = np.array([r[1] for r in rows1])
    ax[1].loglog(taus / R, d1, "k.", label=r"$\max_j|p_j - 1/n|$")
    ax[1].loglog(taus / R, (np.exp(R / taus) - 1) / n, "r-", label=r"$(e^{R/\tau}-1)/n$")
    ax[1].set_xlabel(r"$\tau/R$")
    ax[1].set_title(r"$\tau\to\infty$: $O(1/\tau)$", fontsize=9)
    ax[1].legend(fontsize=7)
    path = context.save_figure(fig, "eot-limits")
    return Figure(path, r"EOT-LIMITS: distance of $\operatorname{softmax}(s/\tau)$ to its limits with the proven bounds "
                        r"(left: exponential rate $e^{-\Delta/\tau}$ to the uniform distribution on the argmax set; "
                        r"right: $O(1/\tau)$ approach to $1/n$).")

