r"""Numeric errata of 004 from the systematic pass (issue 16): hypotheses, definitions and model claims
that a computation contradicts (a linear program, POT, NumPy, ``transformers``' T5).

Same structure as :mod:`derivations.hypotheses_004`: each :class:`~derivations.hypotheses_004.Hypothesis`
has ``violation(form)`` for the printed and the corrected form; :func:`~derivations.hypotheses_004.record`
records a check that the corrected form holds, a check that the printed form is contradicted, and the
erratum.  Randomness from :func:`attnverify.context.rng` only.

Source: 004_830fd89135933577.txt, Sec 6-9.
"""

from __future__ import annotations

from functools import lru_cache

import dataclasses

import numpy as np

from attnverify import context
from attnverify import ot_attention as ota
from attnverify.evidence import Evidence, Inconclusive
from attnverify.derivations.hypotheses_004 import Hypothesis, record

EPS = np.finfo(float).eps


def _sqdist(T):
    return ((T[:, None, :] - T[None, :, :]) ** 2).sum(-1)


# =====================================================================================================
# FD-20, (20): U(p,u) = {X in R^{|A| x |A|}; X1 = p, X^T 1 = u} (no X >= 0), and "when gamma -> 0 ...
# W_gamma^{1/rho} is reduced to the Wasserstein rho-distance".
# =====================================================================================================
BOX = 10.0  # the printed set is unbounded below along its affine directions: a box makes the LP finite


@lru_cache(maxsize=None)  # pure in form: computed once per process (tests, mutants call it often)
def _v_transport_polytope(form: str) -> tuple[float, str]:
    from scipy.optimize import linprog

    try:
        import ot
    except ImportError as e:  # pragma: no cover
        raise Inconclusive("POT not installed: pip install pot") from e
    rng = context.rng("errata-004-polytope")
    N, d = 4, 2
    T = rng.normal(size=(N, d))
    M = _sqdist(T)
    p, u = rng.dirichlet(np.ones(N)), rng.dirichlet(np.ones(N))
    A_eq = np.vstack([np.kron(np.eye(N), np.ones(N)), np.kron(np.ones(N), np.eye(N))])  # X1 = p, X^T 1 = u
    b_eq = np.concatenate([p, u])
    w_emd = float(ot.emd2(p, u, M))  # the Wasserstein (rho = 2) value, POT's network simplex, X >= 0
    if form == "printed":
        free = linprog(M.ravel(), A_eq=A_eq, b_eq=b_eq, bounds=(None, None), method="highs")
        box = linprog(M.ravel(), A_eq=A_eq, b_eq=b_eq, bounds=(-BOX, BOX), method="highs")
        v = w_emd - box.fun
        return v, (f"gamma = 0 limit of (20) over the printed U(p,u): HiGHS status {free.status} "
                   f"({'unbounded' if free.status == 3 else free.message}); within |X_ij| <= {BOX:g} the minimum is "
                   f"{box.fun:.4f}, below the Wasserstein value {w_emd:.4f} (POT ot.emd2) by {v:.3f}")
    lp = linprog(M.ravel(), A_eq=A_eq, b_eq=b_eq, bounds=(0, None), method="highs")
    v = abs(w_emd - lp.fun)
    return v, f"gamma = 0 limit over U(p,u) with X >= 0: LP {lp.fun:.12f}, POT ot.emd2 {w_emd:.12f}, |diff| {v:.2e}"


POLYTOPE = Hypothesis(
    key="20-transport-polytope-needs-x-nonnegative",
    equation="(20), definition of U(p,u)",
    printed=r"U(p,u) = \{X\in\mathbb R^{|\mathcal A|\times|\mathcal A|};\ X\mathbf 1 = p,\ X^T\mathbf 1 = u\}",
    corrected=r"U(p,u) = \{X\in\mathbb R_+^{|\mathcal A|\times|\mathcal A|};\ X\mathbf 1 = p,\ X^T\mathbf 1 = u\}",
    statement="the gamma -> 0 limit of (20) over U(p,u) is the Wasserstein value (as Sec 9 states)",
    violation=_v_transport_polytope, tol=1e-8, fail_at=1.0,
    why=r"HiGHS and POT's network simplex each solve the $N = 4$ LP to $\sim 10^{-9}$ absolute on values $O(1)$: "
        r"$10^{-8}$ bounds their difference; without $X \ge 0$ the LP is unbounded (the box only makes the gap finite, "
        "and it grows with the box)",
    method="scipy+pot", numerical_class="iterative", evidence="float",
)


def fd20_polytope() -> Evidence:
    r"""FD-20: the transport polytope of (20) needs :math:`X \ge 0` for the :math:`\gamma \to 0` statement of Sec 9."""
    ev = Evidence()
    record(ev, POLYTOPE)
    return ev


# =====================================================================================================
# FD-37, Sec 9 experiment: OT-ViT uses M(a, b) = -a^T b + C, while footnote 9 assumes
# M(t,t) < M(t',t) for all t' != t (the condition under which u~ -> u as gamma -> 0, Prop 1).
# =====================================================================================================
@lru_cache(maxsize=None)  # pure in form: computed once per process (tests, mutants call it often)
def _v_vit_cost(form: str) -> tuple[float, str]:
    rng = context.rng("errata-004-vit-cost")
    N, d = 6, 4
    T = rng.normal(size=(N, d)) * rng.uniform(0.5, 2.0, size=(N, 1))  # templates of unequal norms, as features are
    u = rng.dirichlet(np.ones(N))
    if form == "printed":
        G = T @ T.T
        M = -G + G.max()  # C = the largest inner product: M >= 0, symmetric
    else:
        M = _sqdist(T)  # ||a - b||^2 = ||a||^2 + ||b||^2 - 2 a^T b: the inner product enters here too
    viol = int(sum(M[t, t] >= M[s, t] for t in range(N) for s in range(N) if s != t))
    col = np.sort(M, axis=0)
    gap = float(np.min(col[1] - col[0]))  # the smallest gap between a column's two smallest costs
    gamma = 1e-3 * float(M.max())
    du = float(np.abs(ota.true_preference(u, M, gamma) - u).sum())
    return du, (f"{viol} pairs (t, t') with M(t,t) >= M(t',t); at gamma = {gamma:.3g} (1e-3 max M), "
                f"||u~ - u||_1 = {du:.3e} (smallest column gap of M {gap:.3g})")


VIT_COST = Hypothesis(
    key="sec9-ot-vit-cost-satisfies-footnote-9",
    equation="Sec 9, OT-ViT experiment: M(a,b) = -a^T b + C (against footnote 9 and Prop 1)",
    printed=r"M(\mathbf a,\mathbf b) = -\mathbf a^\top\mathbf b + C\quad(\text{footnote 9 assumes } M(\mathbf t,\mathbf t)"
            r" < M(\mathbf t',\mathbf t)\ \forall\mathbf t'\ne\mathbf t)",
    corrected=r"M(\mathbf a,\mathbf b) = \|\mathbf a - \mathbf b\|^2 = \|\mathbf a\|^2 + \|\mathbf b\|^2 - 2\mathbf a^\top\mathbf b"
              r"\ (\text{or } -\mathbf a^\top\mathbf b + C \text{ on templates of equal norm})",
    statement="the experiment's cost satisfies footnote 9, so that the true preference u~ tends to u as gamma -> 0 "
              "(Prop 1, Appx D)",
    violation=_v_vit_cost, tol=1e-12, fail_at=0.05,
    why=r"with footnote 9's strict diagonal minimum, $\|\tilde u - u\|_1 \le 2 (N-1) e^{-\mathrm{gap}/\gamma}$ (FD-37), "
        r"far below $10^{-12}$ at $\gamma = 10^{-3}\max M$, plus round-off of a 6-term log-sum-exp; a cost that breaks "
        "it moves $O(1)$ mass (0.05 is far above round-off and far below the mass of any template here)",
    method="numpy", numerical_class="roundoff", evidence="float",
)


def fd37_vit_cost() -> Evidence:
    """FD-37: the OT-ViT experiment's cost against the hypothesis of footnote 9 / Prop 1."""
    ev = Evidence()
    record(ev, VIT_COST)
    return ev


# =====================================================================================================
# FD-16, end of Sec 6: "(16) aligns with the original attention mechanisms discussed by Bahdanau et al.
# (2014) and Luong et al. (2015), where u is set to a uniform distribution."
# =====================================================================================================
@lru_cache(maxsize=None)  # pure in form: computed once per process (tests, mutants call it often)
def _v_bahdanau(form: str) -> tuple[float, str]:
    rng = context.rng("errata-004-bahdanau")
    n, d, k = 9, 4, 6
    H = rng.normal(size=(n, d))  # annotations h_i: the vectors the attention averages (templates t_i)
    s = rng.normal(size=d)  # decoder state (the query)
    if form == "printed":  # Bahdanau's additive score v^T tanh(W s + U h_i)
        W, U, v = rng.normal(size=(k, d)), rng.normal(size=(k, d)), rng.normal(size=k)
        e = np.tanh(W @ s + H @ U.T) @ v
        what = "Bahdanau additive scores"
    else:  # Luong's general score h_i^T W_a s (dot: W_a = I)
        Wa = rng.normal(size=(d, d))
        e = H @ (Wa @ s)
        what = "Luong general scores"
    # (16) with uniform u has logits alpha <t_i, z> + const: fit the centred scores by centred templates
    Hc, ec = H - H.mean(0), e - e.mean()
    z, *_ = np.linalg.lstsq(Hc, ec, rcond=None)
    r = float(np.linalg.norm(ec - Hc @ z) / np.linalg.norm(ec))
    return r, f"{what}: relative residual of the best logits alpha <h_i, z> + c = {r:.3e} (n = {n}, d = {d})"


BAHDANAU = Hypothesis(
    key="sec6-16-uniform-u-is-luong-not-bahdanau",
    equation="Sec 6, paragraph after Fig 3 (attention models that (16) with uniform u covers)",
    printed=r"(16)\text{ with uniform } u \text{ aligns with Bahdanau et al. (2014) and Luong et al. (2015)}",
    corrected=r"(16)\text{ with uniform } u \text{ is Luong's dot/general attention } e_i = \mathbf h_i^\top W_a\mathbf s;"
              r"\ \text{Bahdanau's } e_i = v^\top\tanh(W\mathbf s + U\mathbf h_i) \text{ is not affine in } \mathbf h_i",
    statement="the model's scores are logits alpha <t_i, z> + const of (16) with uniform u, t_i = h_i",
    violation=_v_bahdanau, tol=1e-12, fail_at=1e-2,
    why=r"a least-squares fit of 9 scores by 4 coordinates: an exact affine model leaves only round-off "
        r"($\sim 10^{-15}$ relative); a generic tanh score leaves an $O(1)$ fraction unexplained",
    method="numpy", numerical_class="roundoff", evidence="float",
)


def fd16_bahdanau() -> Evidence:
    """FD-16: which attention models (16) with uniform u reproduces."""
    ev = Evidence()
    record(ev, BAHDANAU)
    return ev


# =====================================================================================================
# FD-19, Sec 8: "for T5, we use the same setting as BERT except that u_i is computed based on its
# positional encoding and z = K^T Q y_k for the cross-attention"
# =====================================================================================================
def _t5():
    from attnverify.checks import t5_identity as t5

    return t5, t5.t5_capture()


def _weights_ratio(t5, calls, **kw) -> float:
    worst = 0.0
    for a in calls:
        P, _ = t5.reparam_16(a, **kw)
        tw, _ = t5.tolerances(a)
        worst = max(worst, float(np.abs(P - a.weights).max()) / tw)
    return worst


@lru_cache(maxsize=None)  # pure in form: computed once per process (tests, mutants call it often)
def _v_t5_scale(form: str) -> tuple[float, str]:
    t5, calls = _t5()
    r = _weights_ratio(t5, calls, scale_fix=(form == "corrected"))
    z = "K^T Q y_k" if form == "printed" else "sqrt(d') K^T Q y_k"
    return r, (f"t_i = x_i/sqrt(d'), z = {z}: max |weights - transformers' T5Attention weights| over all "
               f"{len(calls)} attentions = {r:.3g} x the round-off bound")


T5_SCALE = Hypothesis(
    key="sec8-t5-setting-z-scaled-by-sqrt-d",
    equation="Sec 8, T5 reparameterisation (\"the same setting as BERT\")",
    printed=r"\alpha = 1,\ \mathbf t_i = \mathbf x_i/\sqrt{d'},\ \mathbf z = K^\top Q\mathbf y_k",
    corrected=r"\alpha = 1,\ \mathbf t_i = \mathbf x_i/\sqrt{d'},\ \mathbf z = \sqrt{d'}\,K^\top Q\mathbf y_k"
              r"\ (\text{T5 has no } 1/\sqrt{d'}\text{: } \langle\mathbf t_i,\mathbf z\rangle = \langle K\mathbf x_i, Q\mathbf y_k\rangle)",
    statement="(16) with this setting and u of (17) gives transformers' T5 attention weights",
    violation=_v_t5_scale, tol=1.0, fail_at=10.0,
    why=r"ratio to the float64 round-off bound of two evaluations of one softmax attention (attention_tol, FD-17): "
        r"$\le 1$ is agreement; the missing $\sqrt{d'}$ changes the logits by $O(1)$",
    method="transformers", numerical_class="roundoff", evidence="float",
)


@lru_cache(maxsize=None)  # pure in form: computed once per process (tests, mutants call it often)
def _v_t5_cross_u(form: str) -> tuple[float, str]:
    t5, calls = _t5()
    cross = [a for a in calls if a.kind == "cross"]
    enc = next(a for a in calls if a.kind == "encoder self")
    if form == "printed":  # u_i from T5's relative-position encoding, as in the self-attentions
        m = cross[0].y.shape[1]
        cross = [dataclasses.replace(a, bias=enc.bias[:, :m, :]) for a in cross]  # b(i - j), the encoder's table
        what = "u_i ∝ exp(b(i - j)) from T5's relative-position table"
    else:
        what = "u uniform on the unpadded source words"
    r = _weights_ratio(t5, cross, scale_fix=True)
    return r, f"cross-attention with {what}: max |weights - transformers'| = {r:.3g} x the round-off bound"


T5_CROSS_U = Hypothesis(
    key="sec8-t5-cross-attention-u-uniform",
    equation="Sec 8, T5 reparameterisation (u_i in the cross-attention)",
    printed=r"u_i \text{ computed based on its positional encoding (all three T5 attentions)}",
    corrected=r"u_i \propto \exp(b_{j-i}) \text{ in the two self-attentions; } u_i \propto [\,i \text{ not padding}\,]"
              r"\text{ in the cross-attention (T5 adds no position bias there)}",
    statement="(16) with this u gives transformers' T5 cross-attention weights",
    violation=_v_t5_cross_u, tol=1.0, fail_at=10.0,
    why=r"ratio to the float64 round-off bound (attention_tol, FD-17); a position-dependent $u$ changes the weights by "
        "$O(1)$",
    method="transformers", numerical_class="roundoff", evidence="float",
)


def fd19_t5_setting() -> Evidence:
    """FD-19 (T5): the scale of z and the preference of the cross-attention in Sec 8's reparameterisation."""
    ev = Evidence()
    for h in (T5_SCALE, T5_CROSS_U):
        record(ev, h)
    return ev


# =====================================================================================================
# FD-17, Sec 7 after (18): "the indicator function serves as the mask function to prevent the model from
# assigning weights to the masked words" ((17): u(t_i) = 0 if the i-th word is masked, in the
# filling-in-the-blanks task).
# =====================================================================================================
N_MLM = 8  # one padded batch of real sentences, masked by transformers' own MLM collator


@lru_cache(maxsize=1)
def _mlm_attention():
    """MiniLM (BERT) on a batch prepared for masked-language-model training by transformers'
    DataCollatorForLanguageModeling: (attention weights (L, B, H, n, n), padding, masked-word, attention_mask)."""
    from attnverify import models

    torch, transformers = models._torch()
    model, tok = models.load_minilm()
    sents = models.corpus(N_MLM)
    feats = [{k: v for k, v in tok(s).items() if k in ("input_ids", "attention_mask")} for s in sents]
    torch.manual_seed(context.SEED)  # the collator draws the masked positions with torch's generator
    coll = transformers.DataCollatorForLanguageModeling(tok, mlm=True, mlm_probability=0.15, return_tensors="pt")
    batch = coll(feats)
    with torch.no_grad():
        out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], output_attentions=True)
    A = np.stack([a.numpy() for a in out.attentions])
    am = batch["attention_mask"].numpy()
    masked = batch["labels"].numpy() != -100  # the words the model must fill in
    return A, am == 0, masked, am


@lru_cache(maxsize=None)
def _v_masked_words(form: str) -> tuple[float, str]:
    A, pad, masked, am = _mlm_attention()
    keys = (masked | pad) if form == "printed" else pad  # where the form puts u_i = 0, i.e. weight 0
    live = ~pad  # queries that are words
    q = live[None, :, None, :]  # broadcast over layers and heads
    mass = np.einsum("lbhqk,bk->lbhq", A, keys.astype(float))  # weight each query gives to those keys
    worst = float(np.where(q, mass, -np.inf).max())
    on_masked = float(np.where(q, np.einsum("lbhqk,bk->lbhq", A, masked.astype(float)), np.inf).min())
    what = "masked words and padding" if form == "printed" else "padding"
    return worst, (f"{int(masked.sum())} masked words in {len(am)} sentences, attention_mask 1 on all of them: "
                   f"{bool(am[masked].all())}; the largest weight a word gives to {what} (all layers and heads) = "
                   f"{worst:.3g}; the smallest weight a word gives to the masked words = {on_masked:.3g}")


MASKED_WORDS = Hypothesis(
    key="sec7-18-mask-removes-padding-not-masked-words",
    equation="Sec 7, after (18) (what the mask of T5/BERT attention removes)",
    printed=r"\mathbf 1_{\rm masked}(i) = -\infty \text{ on the masked words: the mask function prevents the model from "
            r"assigning weights to the masked words}",
    corrected=r"\text{the } -\infty \text{ of the attention mask is on padding (and, in a decoder, on future words); the masked "
              r"words of the fill-in-the-blank task are input tokens ([MASK] / sentinels) with } u_i > 0",
    statement="the words the form gives u_i = 0 receive no attention weight in BERT trained for filling in the blanks "
              "(MiniLM, inputs from transformers' DataCollatorForLanguageModeling)",
    violation=_v_masked_words, tol=1e-12, fail_at=1e-3,
    why=r"transformers adds the dtype minimum to masked logits, so their weight is exactly 0 up to float64 round-off "
        r"($10^{-12}$ is far above it); a word that is attended has weight far above $10^{-3}$ in a softmax over "
        r"$\le 62$ words",
    method="transformers", numerical_class="roundoff", evidence="float",
)


def fd17_masked_words() -> Evidence:
    """FD-17: which words the mask of (18) removes in a real BERT prepared for filling in the blanks."""
    ev = Evidence()
    record(ev, MASKED_WORDS)
    return ev


HYPOTHESES = [POLYTOPE, VIT_COST, BAHDANAU, T5_SCALE, T5_CROSS_U, MASKED_WORDS]
