r"""FD-17: T5's relative-position bias and word mask are a preference distribution u in (16).

Claim ((17)-(18) of 004): for the query word j, let

.. math::
    u_j(t_i) = \begin{cases} 0 & i \text{ masked} \\ e^{b_{j-i}}/Z_j & \text{otherwise} \end{cases}

with :math:`b_{j-i}` T5's trainable relative-position scalar.  Then (16) with :math:`\alpha = 1` is

.. math::
    \hat h = \sum_i t_i \frac{\exp(\langle t_i,z\rangle + b_{j-i} + 1_{\rm masked}(i))}
                          {\sum_l \exp(\langle t_l,z\rangle + b_{j-l} + 1_{\rm masked}(l))},

i.e. T5's attention: logits :math:`\langle t_i, z\rangle + b_{j-i}`, and :math:`-\infty` (weight 0) on masked words.

Checked (a) symbolically for general n (the normaliser :math:`Z_j` cancels), and (b) numerically against
``transformers``' T5Attention in every attention of a small, randomly initialised T5 (encoder
self-attention with padding, decoder self-attention with the causal mask and padding, cross
attention), float64, to round-off.  T5 does not scale its logits by :math:`1/\sqrt{d'}`, so the
reparameterisation of Sec 8 is adapted (see :func:`t5_identity`).

Source: 004_830fd89135933577.txt, Sec 7 "T5 transformer implicitly adopts the generalized
attention structure", (17)-(18); Sec 8.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import sympy as sp

from attnverify import context
from attnverify.evidence import Evidence, Inconclusive, Table, full_simplify, slug
from attnverify.models import MISSING, _torch

EPS = np.finfo(float).eps

# a small config that still uses T5's logarithmic buckets: 8 buckets, distances up to 11
T5_CONFIG = dict(vocab_size=40, d_model=32, d_kv=16, d_ff=64, num_layers=2, num_decoder_layers=2, num_heads=2,
                 relative_attention_num_buckets=8, relative_attention_max_distance=16, dropout_rate=0.0)
ENC_LEN, DEC_LEN, BATCH = 12, 9, 3


def gamma(k: int) -> float:
    r"""Higham's :math:`\gamma_k = k\varepsilon / (1 - k\varepsilon)`: the relative round-off bound of a k-term sum or
    product."""
    return k * EPS / (1 - k * EPS)


def attention_tol(s_abs: float, n_dot: int, n_keys: int, v_max: float, v_abs: float) -> tuple[float, float]:
    r"""Round-off bounds (weights, outputs) between two float64 evaluations of one softmax attention.

    Each logit is a chain of inner products of total length n_dot; each evaluation is within
    :math:`\gamma_{n_{dot}} s_{abs}` of the exact value (:math:`s_{abs}` = the same chain with absolute values), so
    two evaluations differ by :math:`\delta \le 2\gamma_{n_{dot}} s_{abs}`.  Shifting every logit by at most
    :math:`\delta` moves each weight by a factor in :math:`[e^{-2\delta}, e^{2\delta}]`, so
    :math:`|dp_i| \le (e^{2\delta} - 1) p_i`, plus the softmax's own rounding :math:`\gamma_{n_{keys} + 2} p_i`.  An
    output :math:`\sum_i p_i v_i` then moves by at most (that :math:`\ell_1` change) times :math:`v_{max}`, plus the
    rounding of computing :math:`v_i` (:math:`\gamma_{n_{dot}} v_{abs}`) and of the weighted sum
    (:math:`\gamma_{n_{keys}} v_{max}`)."""
    delta = 2 * gamma(n_dot) * s_abs
    dp = np.expm1(2 * delta) + gamma(n_keys + 2)
    return float(dp), float(dp * v_max + gamma(n_dot) * v_abs + gamma(n_keys) * v_max)


@dataclass(kw_only=True)
class T5Attn:
    """One T5Attention call: inputs, weights, what transformers computed, and the masks we built."""

    kind: str  # "encoder self", "decoder self", "cross"
    layer: int
    y: np.ndarray  # (B, m, d) queries (the layer-normed hidden states)
    x: np.ndarray  # (B, n, d) keys/values (= y for self-attention, the encoder output for cross)
    Wq: np.ndarray  # (H d', d)
    Wk: np.ndarray
    Wv: np.ndarray
    Wo: np.ndarray  # (d, H d')
    bias: np.ndarray  # (H, m, n) b_{j-i}, rebuilt from the stack's table (zeros for cross attention)
    masked: np.ndarray  # (B, m, n) bool: word i masked for query j
    weights: np.ndarray  # (B, H, m, n) transformers' attention weights
    out: np.ndarray  # (B, m, d) transformers' T5Attention output (after the output projection o)
    position_bias: np.ndarray  # transformers' own bias tensor (1, H, m, n), to compare with ours
    n_heads: int
    d_kv: int


@lru_cache(maxsize=1)
def t5_capture() -> tuple:
    """Run a random float64 T5Model (eager attention) on padded random ids; capture every attention."""
    torch, transformers = _torch()
    from transformers.models.t5.modeling_t5 import T5Attention

    torch.manual_seed(context.SEED)
    cfg = transformers.T5Config(**T5_CONFIG)
    cfg._attn_implementation = "eager"
    model = transformers.T5Model(cfg).double().eval()
    g = torch.Generator().manual_seed(context.SEED)
    ids = torch.randint(1, cfg.vocab_size, (BATCH, ENC_LEN), generator=g)
    dids = torch.randint(1, cfg.vocab_size, (BATCH, DEC_LEN), generator=g)
    am = torch.ones(BATCH, ENC_LEN, dtype=torch.long)
    am[1, 9:] = 0
    am[2, 5:] = 0  # padded source sentences
    dam = torch.ones(BATCH, DEC_LEN, dtype=torch.long)
    dam[0, 7:] = 0  # a padded target sentence
    calls = []

    def hook(mod, args, kwargs, out):
        calls.append((mod, args[0] if args else kwargs["hidden_states"], kwargs.get("key_value_states"), out))

    handles = [m.register_forward_hook(hook, with_kwargs=True) for m in model.modules() if isinstance(m, T5Attention)]
    try:
        with torch.no_grad():
            model(input_ids=ids, attention_mask=am, decoder_input_ids=dids, decoder_attention_mask=dam,
                  output_attentions=True, use_cache=False)
    finally:
        for h in handles:
            h.remove()
    enc_table = model.encoder.block[0].layer[0].SelfAttention
    dec_table = model.decoder.block[0].layer[0].SelfAttention
    pad_enc, pad_dec = am.numpy() == 0, dam.numpy() == 0
    out, counters = [], {}
    for mod, hs, kv, o in calls:
        cross = kv is not None
        kind = "cross" if cross else ("decoder self" if mod.is_decoder else "encoder self")
        layer = counters.get(kind, 0)
        counters[kind] = layer + 1
        y = hs.numpy()
        x = kv.numpy() if cross else y
        m_, n_ = y.shape[1], x.shape[1]
        if cross:
            bias = np.zeros((mod.n_heads, m_, n_))
            masked = np.broadcast_to(pad_enc[:, None, :], (BATCH, m_, n_))
        else:
            table = dec_table if mod.is_decoder else enc_table
            bias = relative_bias(torch, table, m_, n_, bidirectional=not mod.is_decoder)
            pad = pad_dec if mod.is_decoder else pad_enc
            masked = np.broadcast_to(pad[:, None, :], (BATCH, m_, n_)).copy()
            if mod.is_decoder:  # causal: word i > j is not yet generated
                masked |= np.triu(np.ones((m_, n_), bool), 1)[None]
        w = {k: getattr(mod, k).weight.detach().numpy().copy() for k in "qkvo"}
        out.append(T5Attn(kind=kind, layer=layer, y=y, x=x, Wq=w["q"], Wk=w["k"], Wv=w["v"], Wo=w["o"], bias=bias,
                          masked=np.asarray(masked), weights=o[2].numpy(), out=o[0].numpy(),
                          position_bias=o[1].numpy(), n_heads=mod.n_heads, d_kv=mod.key_value_proj_dim))
    return tuple(out)


def relative_bias(torch, table_module, m, n, bidirectional, *, sign=1, shift=0):
    r""":math:`b[h, j, i] = \mathrm{table}[\mathrm{bucket}(i - j), h]`: a scalar of the relative position only (T5's
    buckets).

    The relative position is ``sign * (key - query) + shift``; the claim is sign 1, shift 0 (a mutant
    passes sign -1, the matrix transposed, or shift 1, off by one)."""
    rel = sign * (torch.arange(n)[None, :] - torch.arange(m)[:, None]) + shift  # key position minus query position
    bucket = table_module._relative_position_bucket(rel, bidirectional=bidirectional,
                                                    num_buckets=table_module.relative_attention_num_buckets,
                                                    max_distance=table_module.relative_attention_max_distance)
    W = table_module.relative_attention_bias.weight.detach().numpy()
    return np.transpose(W[bucket.numpy()], (2, 0, 1))


def preference(a: T5Attn, b: int, h: int) -> np.ndarray:
    r"""u (m, n) of (17): row j is :math:`u_j(t_i) \propto \exp(b_{j-i})`, 0 on masked words, normalised."""
    w = np.where(a.masked[b], 0.0, np.exp(a.bias[h]))
    return w / w.sum(axis=1, keepdims=True)


def reparam_16(a: T5Attn, scale_fix: bool = True, printed_denominator: bool = False):
    r"""(16) with :math:`\alpha = 1`, :math:`t_i = x_i/\sqrt{d'}`, :math:`V' = \sqrt{d'} W_v` and
    :math:`z_j = c K^\top Q y_j`, :math:`c = \sqrt{d'}` (the adaptation T5 needs) or c = 1 (BERT's setting,
    scale_fix=False).  printed_denominator: use the printed (19) T5 weights :math:`u_i e^{s_i} / \sum_j e^{s_j}` (no
    :math:`u_j` below).  Returns weights (B,H,m,n), out (B,m,d)."""
    B, m, _ = a.y.shape
    dk, H = a.d_kv, a.n_heads
    P = np.zeros((B, H, m, a.x.shape[1]))
    ctx = np.zeros((B, m, H * dk))
    c = np.sqrt(dk) if scale_fix else 1.0
    for b in range(B):
        T = a.x[b] / np.sqrt(dk)
        for h in range(H):
            sl = slice(h * dk, (h + 1) * dk)
            K, Q, V = a.Wk[sl], a.Wq[sl], a.Wv[sl]
            Z = c * (a.y[b] @ Q.T) @ K  # rows z_j = c K^T Q y_j
            u = preference(a, b, h)
            s = Z @ T.T  # <t_i, z_j>
            with np.errstate(divide="ignore"):
                lw = np.log(u) + s
            num = np.exp(lw - lw.max(axis=1, keepdims=True))
            if printed_denominator:
                den = np.exp(s - lw.max(axis=1, keepdims=True)).sum(axis=1, keepdims=True)
            else:
                den = num.sum(axis=1, keepdims=True)
            P[b, h] = num / den
            ctx[b, :, sl] = (P[b, h] @ T) @ (np.sqrt(dk) * V).T  # V' sum_i p_i t_i
    return P, ctx @ a.Wo.T


def tolerances(a: T5Attn) -> tuple[float, float]:
    r"""attention_tol for this call: logit chains :math:`|W_k||x| \cdot |W_q||y|` over d + d' + d terms."""
    dk, H, d = a.d_kv, a.n_heads, a.y.shape[2]
    kabs = np.abs(a.x) @ np.abs(a.Wk).T  # (B, n, H d')
    qabs = np.abs(a.y) @ np.abs(a.Wq).T
    s_abs = max(float(np.max(np.einsum("bia,bja->bji", kabs[..., h * dk:(h + 1) * dk], qabs[..., h * dk:(h + 1) * dk])))
                for h in range(H)) + float(np.abs(a.bias).max())
    v = np.abs(a.x @ a.Wv.T).max()
    vabs = (np.abs(a.x) @ np.abs(a.Wv).T).max()
    tw, tc = attention_tol(s_abs, 2 * d + dk, a.x.shape[1], v, vabs)
    # the output projection o: |W_o| times the context error, plus its own rounding
    wo = np.abs(a.Wo).sum(axis=1).max()
    return tw, float(wo * tc + gamma(H * dk) * wo * vabs)


def is_zero(e) -> bool:
    """A scalar or matrix SymPy expression that is identically zero."""
    return isinstance(e, sp.ZeroMatrix) or sp.simplify(e) == 0 or (hasattr(e, "is_ZeroMatrix") and bool(e.is_ZeroMatrix))


def t5_identity() -> Evidence:
    r"""FD-17.  With :math:`u_j(t_i) \propto e^{b_{j-i}}` (0 on masked words) and :math:`\alpha = 1`, (16) is T5's
    attention: weights :math:`\operatorname{softmax}_i(\langle t_i, z_j\rangle + b_{j-i} + 1_{\rm masked}(i))`, and
    the head outputs agree.

    Source: 004_830fd89135933577.txt, (17)-(18), Sec 8.
    """
    ev = Evidence()
    weights_of_18_are_16_with_u_of_17(ev)
    try:
        calls = t5_capture()
    except Inconclusive:
        raise
    except ImportError as e:  # pragma: no cover
        raise Inconclusive(MISSING) from e
    ev.step("Numerically: a randomly initialised T5Model (transformers, " +
            ", ".join(f"{k} = {v}" for k, v in T5_CONFIG.items()) +
            f"), float64, eager attention; {BATCH} source sentences of {ENC_LEN} random ids (two padded) and "
            f"{BATCH} target sentences of {DEC_LEN} (one padded). The weights are random: pretrained T5 was not "
            "evaluated, because no installable package ships T5 weights for offline use and the hub cannot be reached.")
    position_bias_is_t5s_relative_table(ev, calls)
    every_attention_is_16_with_u_of_17(ev, calls)
    # what BERT's setting would give for T5 (no sqrt(d') in z): not T5's attention
    off = max(float(np.abs(reparam_16(a, scale_fix=False)[0] - a.weights).max()) for a in calls)
    ev.notes.append(r"With BERT's setting unchanged ($z = K^\top Q y$, no $\sqrt{d'}$) the weights differ from T5's by up "
                    f"to {off:.3f}: " + r"T5's logits are not divided by $\sqrt{d'}$, so $z$ must carry the factor "
                    r"$\sqrt{d'}$.")
    ev.notes.append(r"transformers indexes the bias by $\mathrm{bucket}(i - j)$ (key minus query position); (17) writes "
                    r"$b_{j-i}$. Both are a trainable scalar of the relative position only; the sign of the index is a "
                    "labelling.")
    return ev


def position_bias_is_t5s_relative_table(ev: Evidence, calls) -> None:
    r"""T5's position bias depends only on the relative position, and our :math:`b_{j-i}` table is the one
    transformers adds."""
    # b_{j-i} is a function of j - i only: every diagonal of the bias matrix is constant
    toe = max(float(np.abs(a.bias[:, 1:, 1:] - a.bias[:, :-1, :-1]).max()) for a in calls if a.kind != "cross")
    ev.equal("t5-s-position-bias-depends-only-on-the-relative",
             "T5's position bias depends only on the relative position (b_{j-i})", toe, 0.0,
             "the bias is a table lookup by bucket(i - j): entries are copied, not computed, so equality is exact",
             method="transformers", metric=r"$\max |b[h, j+1, i+1] - b[h, j, i]|$ over the self-attentions",
             numerical_class="exact", evidence="float")
    own = max(float(np.abs(a.bias - a.position_bias[0]).max()) for a in calls)
    ev.equal("our-b-j-i-table-equals-the-position-bias",
             "our b_{j-i} table equals the position bias transformers adds", own, 0.0,
             "both are the same table entries, copied: exact", method="transformers",
             metric=r"$\max |b_{\mathrm{ours}} - \mathrm{position\_bias}|$ over all attentions", numerical_class="exact",
             evidence="float")


def every_attention_is_16_with_u_of_17(ev: Evidence, calls) -> None:
    """In every T5Attention (encoder, decoder, cross; every layer): (16) with u of (17) gives T5's weights and output,
    and masked words get weight exactly 0."""
    rows = []
    for a in calls:
        P, out = reparam_16(a)
        tw, to = tolerances(a)
        ew, eo = float(np.abs(P - a.weights).max()), float(np.abs(out - a.out).max())
        mass = float(np.where(a.masked[:, None], a.weights, 0).max())
        rows.append([a.kind, a.layer, ew, tw, eo, to, mass])
        tag = f"{a.kind} attention, layer {a.layer}"
        ev.at_most(f"{slug(tag)}-weights-16-17-t5",
                   f"{tag}: weights of (16) with u of (17) = transformers' T5 weights", ew, tw,
                   "float64 round-off of two evaluations of the same logits, propagated through the softmax "
                   r"(attention_tol: $2\gamma_{2d + d'}$ times the absolute logit chain)",
                   method="transformers", metric=r"$\max |p_{(16)} - p_{\mathrm{T5}}|$", numerical_class="roundoff",
                   evidence="float")
        ev.at_most(f"{slug(tag)}-output-t5attention",
                   f"{tag}: output W_o V' sum_i p_i t_i = transformers' T5Attention output", eo, to,
                   r"the weight bound times $\max|V x|$, plus the rounding of $V x$, the weighted sum and $W_o$",
                   method="transformers", metric=r"$\max |\mathrm{out}_{(16)} - \mathrm{out}_{\mathrm{T5}}|$",
                   numerical_class="roundoff",
                   evidence="float")
        ev.equal(f"{slug(tag)}-masked-words-weight-0",
                 f"{tag}: masked words get weight exactly 0 (u_i = 0)", mass, 0.0,
                 r"$\exp(\mathrm{finfo.min} + \mathrm{logit})$ underflows to exactly 0 in float64, and $u_i = 0$ gives "
                 "exactly 0",
                 method="transformers", metric="max transformers weight on a word we mask",
                 numerical_class="exact", evidence="float")
    ev.tables.append(Table("FD-17: (16) with T5's $u$ against transformers' T5Attention (random weights, float64)",
                           ["attention", "layer", "max |dp|", "tol p", "max |d out|", "tol out", "weight on masked"],
                           rows))


def weights_of_18_are_16_with_u_of_17(ev: Evidence) -> None:
    r"""Symbolically (general n): (16) with u of (17) and :math:`\alpha = 1` gives the weights of (18), a masked word
    gets weight 0, and T5's unscaled logits need :math:`z_j = \sqrt{d'} K^\top Q y_j`."""
    i, l, n = sp.symbols("i l n", integer=True, positive=True)
    s, bb, c = sp.IndexedBase("s"), sp.IndexedBase("b"), sp.IndexedBase("c")
    Z = sp.Symbol("Z_j", positive=True)
    ev.step(r"General $n$, query word $j$ fixed; write $s_i = \langle t_i, z\rangle$, $b_i = b_{j-i}$, and "
            r"$c_i = 1_{\rm masked}(i)$ kept finite (the masked case is the limit $c_i \to -\infty$).")
    u = lambda k: sp.exp(bb[k] + c[k]) / Z  # noqa: E731
    ev.step("Preference (17), with $Z_j$ its normaliser:", (sp.Symbol("u_i"), u(i)))
    w16 = u(i) * sp.exp(s[i]) / sp.Sum(u(l) * sp.exp(s[l]), (l, 1, n))
    w18 = sp.exp(s[i] + bb[i] + c[i]) / sp.Sum(sp.exp(s[l] + bb[l] + c[l]), (l, 1, n))
    ev.step(r"The weight of $t_i$ in (16) with $\alpha = 1$:", (sp.Symbol("w_i^{(16)}"), w16))
    ev.step("The weight printed in (18):", (sp.Symbol("w_i^{(18)}"), w18))
    ev.identity("(16) with u of (17) and alpha = 1 gives the weights of (18) (general n; Z_j cancels)", w16, w18,
                key="16-with-u-of-17-and-alpha-1-gives-the-weights-of")
    cs = sp.Symbol("c")
    lim_u = sp.limit(sp.exp(bb[i] + cs) / Z, cs, -sp.oo)
    ev.identity("a masked word (c_i -> -infinity) has u_i = 0 and weight 0", lim_u, 0,
                metric=r"$\lim_{c_i \to -\infty} e^{b_i + c_i}/Z_j$",
                key="a-masked-word-c-i-infinity-has-u-i-0-and-weight")
    # T5's logits are not scaled: the reparameterisation must put sqrt(d') back into z
    d, dp = sp.symbols("d d'", integer=True, positive=True)
    K, Q = sp.MatrixSymbol("K", dp, d), sp.MatrixSymbol("Q", dp, d)
    x, y = sp.MatrixSymbol("x_i", d, 1), sp.MatrixSymbol("y_j", d, 1)
    t5_logit = ((K * x).T * (Q * y))
    adapted = (x / sp.sqrt(dp)).T * (sp.sqrt(dp) * K.T * Q * y)
    bert_setting = (x / sp.sqrt(dp)).T * (K.T * Q * y)
    ev.step(r"T5 (transformers' T5Attention, scaling = 1.0) computes the logit $\langle K x_i, Q y_j\rangle + b_{j-i}$, "
            r"with no $1/\sqrt{d'}$: its $1/\sqrt{d'}$ is folded into the initialisation of $Q$.", t5_logit)
    res = sp.expand(t5_logit - adapted).doit()
    ev.check("adapted reparameterisation: <t_i, z_j> = <K x_i, Q y_j> with t_i = x_i/sqrt(d'), z_j = sqrt(d') K^T Q y_j",
             "symbolic", r"expansion of $(K x)^\top (Q y) - (x/\sqrt{d'})^\top (\sqrt{d'} K^\top Q y)$", str(res), "exact",
             is_zero(res), "a symbolic identity holds exactly or not at all",
             key="adapted-reparameterisation-t-i-z-j-k-x-i-q-y-j", numerical_class="exact", evidence="proof")
    bad = sp.expand(t5_logit - bert_setting)
    ev.step(r"With BERT's setting $z_j = K^\top Q y_j$ the logit would be $\langle K x_i, Q y_j\rangle/\sqrt{d'}$; the "
            "difference is not zero:", bad)
    ev.step(r"So for T5: $\alpha = 1$, $t_i = x_i/\sqrt{d'}$, $z_j = \sqrt{d'} K^\top Q y_j$, $V' = \sqrt{d'} V$ "
            r"(equivalently $t_i = x_i$, $z_j = K^\top Q y_j$, $V' = V$; or $\alpha = \sqrt{d'}$ with BERT's $t_i$ and "
            r"$z_j$), $K, Q, V$ being transformers' k, q, v weights of the head.")
