r"""GOAT-EXTRAP: does a learned continuous prior :math:`\log\pi_{ij} = f(i - j)` combine the flexibility of learned
positional embeddings with the length generalisation of fixed encodings?

Seed 002 (second abstract): "by absorbing spatial information into the core attention computation, GOAT
learns an extrapolatable prior that combines the flexibility of learned positional embeddings with the
length generalization of fixed encodings."

A reduced experiment (fixed here before the runs):

* task: retrieve the token ``K_BACK`` places back, :math:`y_i = x_{i-k}` for :math:`i \ge k`, with tokens
  drawn uniformly from ``VOCAB`` symbols: the answer depends on relative position only, and the tokens
  carry no positional information;
* model: one causal attention layer (``HEADS`` heads, width ``DIM``), a residual, LayerNorm and a linear
  read-out; three position schemes, otherwise identical, all through
  ``torch.nn.functional.scaled_dot_product_attention`` with a float mask:

  - *learned absolute*: a learned embedding per position (a table of :math:`4L_{train}` rows, so long inputs
    run; rows past :math:`L_{train}` are never trained), added to the token embedding; the mask is causal;
  - *ALiBi*: the fixed bias :math:`-m_h (i - j)`, slopes :math:`m_h = 2^{-8h/H}` (Press et al. 2022);
  - *GOAT*: the learned prior :math:`\log\pi_{ij} = f_h(i - j)` with
    :math:`f_h(\delta) = -\mathrm{softplus}(a_h)\,\delta + \sum_{b=0}^{B-1} w_{hb}\, e^{-(\delta - b)^2/2}`
    (a learned slope plus ``BUMPS`` Gaussian bumps: a small continuous function of the offset, defined for
    every offset, so it extrapolates by construction of its form, not by training);

* training on lengths ``L_MIN``..``L_TRAIN`` (Adam, ``STEPS`` steps of batch ``BATCH``), ``SEEDS`` seeds per
  scheme; test accuracy (over the positions :math:`i \ge k`) at :math:`L_{train}`, :math:`2L_{train}` and
  :math:`4L_{train}` on fixed test sets.

The reading, a judgement call with tolerance :math:`\tau` (accuracy points): *flexibility* = GOAT's accuracy
at :math:`L_{train}` is within :math:`\tau` of the learned absolute embeddings'; *length generalisation* =
GOAT's accuracy at :math:`4L_{train}` is within :math:`\tau` of its own at :math:`L_{train}`. Both must hold
(means over seeds).
"""

from __future__ import annotations

import math
import time

import numpy as np

from attnverify import context, training
from attnverify.evidence import Evidence, Figure, Inconclusive

# ---------------------------------------------------------------- the protocol (fixed before the runs)
VOCAB, K_BACK = 16, 3
DIM, HEADS = 32, 2
L_MIN, L_TRAIN = 8, 16
TEST_LENGTHS = (L_TRAIN, 2 * L_TRAIN, 4 * L_TRAIN)
N_TEST = 256  # test sequences per length
STEPS, BATCH, LR = 400, 64, 3e-3
BUMPS = 8  # Gaussian bumps of f at offsets 0..7
SCHEMES = ("learned absolute", "ALiBi", "GOAT")
SEEDS = (0, 1, 2)
TAU = 0.05
TAU_RANGE = (0.02, 0.10)
TAU_WHY = ("below 2 points the comparison is inside the seed-to-seed spread of a 3-seed mean here; past 10 points a "
           "model that loses that much would no longer 'combine' the two properties")
INFORMATIVE_DROP = 0.2  # the task tests length generalisation only if learned absolute embeddings lose >= 0.2 at 4x
INFORMATIVE_FIT = 0.9  # ... and flexibility only if they fit the training lengths (accuracy >= 0.9)


def goat_prior(slope, bumps, delta):
    r"""GOAT's learned prior :math:`f_h(\delta) = -\mathrm{softplus}(a_h)\,\delta + \sum_b w_{hb} e^{-(\delta - b)^2/2}`
    (before the causal mask), for offsets ``delta`` = i - j; shape (H, L, L)."""
    import torch

    centres = torch.arange(BUMPS, dtype=delta.dtype)
    return -torch.nn.functional.softplus(slope) * delta + (bumps * torch.exp(-(delta[..., None] - centres) ** 2 / 2)).sum(-1)


def sdpa(q, k, v, attn_mask):
    """The fused kernel every scheme goes through: torch's scaled_dot_product_attention with a float mask."""
    import torch

    return torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)


def _model(torch, scheme: str):
    nn = torch.nn

    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.scheme = scheme
            self.emb = nn.Embedding(VOCAB, DIM)
            self.qkv, self.o = nn.Linear(DIM, 3 * DIM), nn.Linear(DIM, DIM)
            self.norm, self.out = nn.LayerNorm(DIM), nn.Linear(DIM, VOCAB)
            if scheme == "learned absolute":
                self.pos = nn.Parameter(0.02 * torch.randn(max(TEST_LENGTHS), DIM))
            elif scheme == "GOAT":
                self.slope = nn.Parameter(torch.zeros(HEADS, 1, 1))
                self.bumps = nn.Parameter(torch.zeros(HEADS, 1, 1, BUMPS))
            self.register_buffer("alibi", torch.tensor([2.0 ** (-8 * (h + 1) / HEADS) for h in range(HEADS)])
                                 .reshape(HEADS, 1, 1))

        def prior(self, L):
            r"""The float mask (H, L, L): :math:`\log\pi_{ij}` (up to a constant per row) for :math:`j \le i`,
            :math:`-\infty` for :math:`j > i`."""
            i = torch.arange(L)
            delta = (i[:, None] - i[None, :]).to(torch.get_default_dtype())  # i - j
            causal = delta >= 0
            if self.scheme == "GOAT":
                f = goat_prior(self.slope, self.bumps, delta)
            elif self.scheme == "ALiBi":
                f = -self.alibi * delta
            else:
                f = torch.zeros(HEADS, L, L)
            return f.masked_fill(~causal, -math.inf)

        def forward(self, x):
            B, L = x.shape
            e = self.emb(x)
            if self.scheme == "learned absolute":
                e = e + self.pos[:L]
            q, k, v = self.qkv(e).reshape(B, L, 3, HEADS, DIM // HEADS).permute(2, 0, 3, 1, 4)
            a = sdpa(q, k, v, attn_mask=self.prior(L))
            return self.out(self.norm(e + self.o(a.transpose(1, 2).reshape(B, L, DIM))))

    return Model()


def _batch(gen, torch, n, L):
    x = torch.randint(0, VOCAB, (n, L), generator=gen)
    return x, x[:, : L - K_BACK]  # targets of positions K_BACK..L-1


def _accuracy(net, x, y, torch) -> float:
    with torch.no_grad():
        pred = net(x)[:, K_BACK:].argmax(-1)
    return float((pred == y).double().mean())


def train_one(scheme: str, seed: int, steps: int = STEPS, progress=None) -> dict:
    """Train one scheme; accuracy at every test length, and the run time."""
    with training.deterministic(seed, dtype="float32") as torch:
        net = _model(torch, scheme)
        opt = torch.optim.Adam(net.parameters(), lr=LR, fused=True)
        gen = training.generator(100 + seed)
        t0 = time.perf_counter()
        for step in range(steps):
            L = int(torch.randint(L_MIN, L_TRAIN + 1, (1,), generator=gen))
            x, y = _batch(gen, torch, BATCH, L)
            loss = torch.nn.functional.cross_entropy(net(x)[:, K_BACK:].reshape(-1, VOCAB), y.reshape(-1))
            opt.zero_grad()
            loss.backward()
            opt.step()
            if progress is not None and step % 50 == 0:
                progress(f"{scheme}, seed {seed}: step {step}/{steps}, loss {float(loss):.3f}")
        net.eval()
        test = training.generator(999)  # the same test sets for every scheme and seed
        acc = {}
        for L in TEST_LENGTHS:
            x, y = _batch(test, torch, N_TEST, L)
            acc[L] = _accuracy(net, x, y, torch)
        state = {k: v.detach().clone() for k, v in net.state_dict().items()}
    return {"scheme": scheme, "seed": seed, "acc": acc, "seconds": time.perf_counter() - t0, "state": state}


def _mask_path_evidence(ev: Evidence, run: dict) -> None:
    r"""GOAT's prior through SDPA's float mask equals an explicit
    :math:`\mathrm{softmax}(q k^\top / \sqrt{d} + \log\pi)\, v` with the prior normalised per row (trained
    parameters, float64)."""
    with training.deterministic(0, dtype="float64") as torch, torch.no_grad():
        net = _model(torch, "GOAT")
        net.load_state_dict({k: v.double() for k, v in run["state"].items()})
        gen = training.generator(5)
        worst = 0.0
        for L in TEST_LENGTHS:
            x, _ = _batch(gen, torch, 4, L)
            e = net.emb(x)
            q, k, v = net.qkv(e).reshape(4, L, 3, HEADS, DIM // HEADS).permute(2, 0, 3, 1, 4)
            mask = net.prior(L)
            fused = sdpa(q, k, v, attn_mask=mask)
            logpi = mask - torch.logsumexp(mask, dim=-1, keepdim=True)  # a distribution pi_i. over j <= i
            p = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(DIM // HEADS) + logpi, dim=-1)
            explicit = p @ v
            scale = float(v.abs().max()) * (1 + float((q @ k.transpose(-1, -2)).abs().max()) + float(mask[mask > -math.inf].abs().max()))
            worst = max(worst, float((fused - explicit).abs().max()) / (16 * L * np.finfo(float).eps * scale))
    ev.at_most("sdpa-mask-equals-explicit-prior", "GOAT's prior as SDPA's float mask = explicit softmax(qk^T/sqrt(d) + "
               "log pi) v (trained prior, float64)", worst, 1.0,
               "a per-row constant in the mask cancels in the softmax, so the two agree to the round-off of an "
               r"$L$-term softmax and product: $16 L\varepsilon$ times the scale of the exponents and values",
               method="torch SDPA vs explicit",
               metric=r"$\max |\text{difference}| / (16 L\varepsilon\,\text{scale})$ over $L$ = 16, 32, 64",
               numerical_class="roundoff", evidence="float")


def extrapolation() -> Evidence:
    r"""GOAT-EXTRAP: 3 position schemes x 3 seeds on the k-back retrieval task, tested at 1x, 2x, 4x
    :math:`L_{train}`: GOAT is within :math:`\tau` of learned absolute embeddings at :math:`L_{train}` and
    within :math:`\tau` of itself at :math:`4L_{train}`."""
    ev = Evidence()
    ev.step(r"Made precise (reduced, on one task): trained on lengths $\le L_{train}$, GOAT's learned prior "
            r"$\log\pi_{ij} = f(i-j)$ fits the training lengths as well as learned absolute embeddings (flexibility) "
            r"and keeps its accuracy at $4L_{train}$ (length generalisation), each within a tolerance $\tau$.",
            r"\mathrm{acc}_{G}(L) \ge \mathrm{acc}_{abs}(L) - \tau,\quad \mathrm{acc}_{G}(4L) \ge \mathrm{acc}_{G}(L) - \tau,"
            r"\quad y_i = x_{i-3}")
    progress = training.Progress("GOAT-EXTRAP")
    runs = [train_one(sc, s, progress=progress) for sc in SCHEMES for s in SEEDS]
    _record(ev, runs)
    _mask_path_evidence(ev, next(r for r in runs if r["scheme"] == "GOAT"))
    ev.notes.append(f"Training time: {progress.summary()} (one torch thread).")
    return ev


def _mean(runs, scheme, L):
    return float(np.mean([r["acc"][L] for r in runs if r["scheme"] == scheme]))


def _record(ev: Evidence, runs: list[dict]) -> None:
    log = training.RunLog(f"GOAT-EXTRAP: test accuracy of every run (retrieve the token {K_BACK} back; trained on "
                          f"lengths {L_MIN}-{L_TRAIN}; chance {1 / VOCAB:.3f})",
                          ["scheme", "seed"] + [f"L = {L}" for L in TEST_LENGTHS] + ["s"])
    for r in runs:
        log.add(r["scheme"], r["seed"], *[r["acc"][L] for L in TEST_LENGTHS], r["seconds"])
    ev.tables.append(log.table())
    rows = []
    for sc in SCHEMES:
        cells = []
        for L in TEST_LENGTHS:
            m, lo, hi = training.mean_ci([r["acc"][L] for r in runs if r["scheme"] == sc], 0.95)
            cells.append(f"{m:.3f} [{max(lo, 0):.3f}, {min(hi, 1):.3f}]")
        rows.append([sc] + cells)
    ev.tables.append(training.RunLog("GOAT-EXTRAP: mean test accuracy against test length [95% interval over 3 seeds]",
                                     ["scheme"] + [f"L = {L}" + (" (train)" if L == L_TRAIN else f" ({L // L_TRAIN}x)")
                                                   for L in TEST_LENGTHS], rows).table())
    L1, L4 = TEST_LENGTHS[0], TEST_LENGTHS[-1]
    abs_fit, abs_drop = _mean(runs, "learned absolute", L1), _mean(runs, "learned absolute", L1) - _mean(runs, "learned absolute", L4)
    if abs_fit < INFORMATIVE_FIT or abs_drop < INFORMATIVE_DROP:
        raise Inconclusive(f"the task does not separate the schemes: learned absolute embeddings reach {abs_fit:.3f} at "
                           f"L_train and lose {abs_drop:.3f} at 4x (needed: >= {INFORMATIVE_FIT}, >= {INFORMATIVE_DROP})")
    ev.check("the task tests both halves: learned absolute embeddings fit L_train and fail at 4 L_train", "torch",
             r"mean accuracy of learned absolute embeddings at $L_{train}$; its loss at $4L_{train}$",
             f"{abs_fit:.3f}; {abs_drop:.3f}",
             f">= {INFORMATIVE_FIT}; >= {INFORMATIVE_DROP}", True,
             "fixed before the runs; a task on which absolute embeddings do not fail at 4x (or do not fit) cannot show "
             "that GOAT combines anything (the claim would then be inconclusive)", key="task-informative",
             numerical_class="measured", evidence="float")
    g1, g4 = _mean(runs, "GOAT", L1), _mean(runs, "GOAT", L4)
    flex_gap = abs_fit - g1  # GOAT's shortfall against learned absolute embeddings at L_train
    gen_gap = g1 - g4  # GOAT's loss from L_train to 4 L_train
    flip = max(flex_gap, gen_gap, 0.0)
    inside = TAU_RANGE[0] < flip < TAU_RANGE[1]
    ev.check("GOAT combines the flexibility of learned embeddings with the length generalisation of a fixed bias",
             "torch", r"smallest $\tau$ at which both hold: $\max(\mathrm{acc}_{abs}(L) - \mathrm{acc}_{G}(L),\ "
             r"\mathrm{acc}_{G}(L) - \mathrm{acc}_{G}(4L))$, means over 3 seeds", flip, f"<= {TAU:g}", flip <= TAU,
             r"$\tau = 0.05$ fixed before the runs; " + TAU_WHY,
             key="goat-combines", numerical_class="measured", threshold_kind="judgement", evidence="float",
             sensitivity={"parameter": r"accuracy tolerance $\tau$", "declared_range": list(TAU_RANGE),
                          "why_this_range": TAU_WHY, "flips_at": float(f"{flip:.4g}") if inside else None,
                          "verdict_over_range": "flips" if inside else "stable"})
    a1, a4 = _mean(runs, "ALiBi", L1), _mean(runs, "ALiBi", L4)
    ev.figures.append(_draw(runs))
    ev.finding = (
        f"On retrieval of the token {K_BACK} back (trained on lengths {L_MIN}-{L_TRAIN}), GOAT's learned prior reaches "
        f"{g1:.3f} at $L_{{train}}$ and {g4:.3f} at 4x; learned absolute embeddings {abs_fit:.3f} and "
        f"{abs_fit - abs_drop:.3f}; the fixed ALiBi bias {a1:.3f} and {a4:.3f} (chance {1 / VOCAB:.3f}). "
        f"GOAT is within {flex_gap:+.3f} of the learned embeddings in distribution and loses {gen_gap:+.3f} at 4x, "
        f"so the sentence holds on this task for every tolerance above {flip:.3f}. Reduced setting: a synthetic task "
        "whose answer depends on one relative offset, a one-layer model with 2 heads, lengths up to 64; the abstract "
        "names neither task nor model, and a fixed bias that cannot express 'k back' is at a disadvantage by design "
        "of the task (it tests flexibility), as learned absolute embeddings are at 4x (it tests extrapolation).")
    ev.notes.append(f"float32, one torch thread, seeds {list(SEEDS)} (initialisation and training data); test sets fixed "
                    f"({N_TEST} sequences per length), shared by all schemes and seeds.")


def _draw(runs) -> Figure:
    plt = context.pyplot()

    fig, ax = plt.subplots(figsize=(6.5, 4))
    for i, sc in enumerate(SCHEMES):
        for r in (r for r in runs if r["scheme"] == sc):
            ax.plot(TEST_LENGTHS, [r["acc"][L] for L in TEST_LENGTHS], "-", color=f"C{i}", lw=0.6, alpha=0.5)
        ax.plot(TEST_LENGTHS, [_mean(runs, sc, L) for L in TEST_LENGTHS], "o-", color=f"C{i}", lw=1.6, label=sc)
    ax.axhline(1 / VOCAB, color="grey", ls=":", lw=0.8, label="chance")
    ax.axvspan(L_MIN, L_TRAIN, color="k", alpha=0.07, label="training lengths")
    ax.set_xscale("log", base=2)
    ax.set_xticks(TEST_LENGTHS, [str(L) for L in TEST_LENGTHS])
    ax.set_xlabel("test length L")
    ax.set_ylabel(f"accuracy (retrieve the token {K_BACK} back)")
    ax.set_ylim(0, 1.02)
    ax.legend(fontsize=8)
    ax.set_title("GOAT-EXTRAP: accuracy against test length (thin: seeds, thick: mean)", fontsize=9)
    path = context.save_figure(fig, "goat-extrap")
    return Figure(path, f"GOAT-EXTRAP: test accuracy against length for learned absolute embeddings, a fixed ALiBi bias "
                        f"and GOAT's learned prior $f(i - j)$; trained on lengths {L_MIN}-{L_TRAIN}.")
