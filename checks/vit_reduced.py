r"""FD-VIT/reduced: OT-ViT against ViT, reproduced at reduced scale on scikit-learn's digits.

Seed 004, Sec 9 and Tables 1-2: "The OT-ViT model is identical to the ViT, except that the final
transformer layer is substituted with OT-based attention where M(a, b) = -a^T b + C, alpha = 1 and
gamma = sqrt(hidden dim.) ... when training OT-ViT, there is a 50% chance that the set T consists solely
of templates extracted from the input image and a 50% chance that T also includes templates from another
randomly selected image of the same class. During testing, T consists only of templates from the input
image." and "OT-ViT consistently outperforms ViT".

The two models (:class:`ViT`), identical in every parameter:

* patches of 2 x 2 pixels (16 tokens of 4 pixels), a linear embedding of width ``DIM`` plus learned
  positions, ``DEPTH`` pre-norm transformer blocks (``HEADS`` heads, MLP x2, dropout 0.2 as the paper);
* the final layer aggregates the patch features with a learnable token c (Sec 9: "a special learnable
  token is incorporated to aggregate these features (templates) using an attention mechanism"), written
  as (16) of 004 with :math:`\alpha = 1` per head: templates :math:`t_i = \bar x_i/\sqrt{d'}` (``\bar x`` the
  layer-normed features, d' the head dimension), evidence :math:`z = W_k^\top W_q c`, so that
  :math:`\alpha\, t_i^\top z` is the usual scaled score and :math:`V' = V\sqrt{d'}`;
* ViT: the weights of (16) with uniform u on the input's templates (= softmax attention);
  OT-ViT: the weights (22) of the OT-based attention, :math:`M(a, b) = -a^\top b + C`, :math:`\alpha = 1`,
  :math:`\gamma = \sqrt{\mathrm{DIM}}`, computed by :func:`ot_attention_torch`, which equals
  :func:`attnverify.ot_attention.ot_attention` on the same inputs (tested). During training, with
  probability 1/2 per image, the template set also holds the templates of another image of the same
  class in the batch (with :math:`u = 0` on them); at test time only the image's own templates.

Protocol (fixed here before the runs): train / validation / test = 1000 / 300 / 497 digits
(stratified), Adam for ``EPOCHS`` epochs of batch ``BATCH``, the paper's learning-rate rule (each model at
the rate of a three-point grid with the best accuracy, here on the validation split, not the test split;
the grid ``LRS`` is moved to this setting, see below), ``SEEDS`` seeds per model at its rate (a seed fixes the initialisation, shared by the two
models, and the batch order); mean test accuracy with 95% Student-t intervals, and the paired t-test
of the per-seed difference OT-ViT - ViT at the selected rates.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np

from attnverify import context, training
from attnverify.evidence import Evidence, Figure

# ---------------------------------------------------------------- the protocol (fixed before the runs)
SIZES = (1000, 300, 497)  # train / validation / test (all 1797 digits)
PATCH = 2  # 2 x 2 patches: 16 tokens per 8 x 8 image (the paper: 4 x 4 on 28 x 28 / 32 x 32, 49-64 tokens)
DIM, HEADS, DEPTH = 32, 2, 1  # width 32, 2 heads, 1 block + the final layer (the paper: 512, 6 layers, 3.2M)
DROPOUT = 0.2  # the paper's
EPOCHS, BATCH = 15, 100  # 150 Adam steps: what the budget of ~60 s for 14 runs allows on this machine
# The paper's rule (three rates a factor ~10 apart, the best on held-out data) on a grid moved to this setting:
# with the paper's grid {3e-3, 3e-4, 3e-5} a first run (200 steps) left 3e-4 and 3e-5 untrained (validation
# accuracy 0.39 and 0.09) and the best rate at the grid's edge, so the grid did not bracket the optimum.
LRS = (1e-2, 3e-3, 1e-3)
SEEDS = (0, 1, 2, 3, 4)  # the comparison at the selected rates
SELECT_SEEDS = (0,)  # the learning-rate selection (the grid x 1 seed per model, on validation; budget)
MIX = 0.5  # the paper's template-mixing probability
LEVEL = 0.95  # the paper reports 95% intervals
LEVEL_RANGE = (0.80, 0.99)
LEVEL_WHY = ("'outperforms' read as a difference that a paired interval at a conventional confidence level excludes "
             "from 0; 0.80-0.99 spans the levels used for such comparisons (the paper's own is 0.95)")
MODELS = ("ViT", "OT-ViT")


# ---------------------------------------------------------------- the OT-based attention in torch
def ot_weights(logits, M, u, gamma, present=None):
    r"""The weights (22) of the OT-based attention, batched, in the log domain.

    .. math::
        p^*(t) = \sum_i u_i \frac{\exp((\ell_t - M(t, t_i))/\gamma)}{\sum_{t'}\exp((\ell_{t'} - M(t', t_i))/\gamma)},
        \qquad \ell_t = \alpha\, t^\top z

    Parameters
    ----------
    logits : (..., m, N) the scores :math:`\alpha t^\top z` of every template t of A for m queries.
    M : (..., N, N) the cost, ``M[t, i] = M(t, t_i)`` (first index: the attended template).
    u : (..., N) the preference (zeros allowed: templates of A that are not in the input).
    gamma : float > 0.
    present : optional (..., N) bool: templates that belong to A (the others get weight 0).

    Returns (..., m, N) weights summing to 1 over t.
    """
    import torch

    A = (logits.unsqueeze(-1) - M.unsqueeze(-3)) / gamma  # (..., m, N_t, N_i)
    if present is not None:  # templates outside A leave the normalisers Z_i (and get weight 0)
        A = A.masked_fill(~present[..., None, :, None], -math.inf)
    # column i: exp(A_ti) / Z_i is a softmax over t (stable: max-shifted per column); then the u-mixture over i
    return (torch.softmax(A, dim=-2) @ u[..., None, :, None]).squeeze(-1)


def ot_attention_torch(T, u, Z, M, alpha, gamma):
    r""":func:`attnverify.ot_attention.ot_attention` in torch: :math:`h = p^* T` with :math:`p^*` from
    :func:`ot_weights`. T (..., N, d), u (..., N), Z (..., m, d), M (..., N, N); returns (h (..., m, d),
    p* (..., m, N))."""
    P = ot_weights(alpha * Z @ T.transpose(-1, -2), M, u, gamma)
    return P @ T, P


def inner_product_cost(T):
    r""":math:`M(a, b) = -a^\top b + C` with C the largest inner product of the set (so :math:`M \ge 0`, as
    Sec 9 asks); C is a constant shift of every column, which the weights (22) do not see."""
    G = T @ T.transpose(-1, -2)
    return -G + G.detach().amax(dim=(-1, -2), keepdim=True)


# ---------------------------------------------------------------- the models
def _modules(torch):
    """The model class :class:`ViT` (ViT and OT-ViT), built on this torch (imported by the caller)."""
    Dropout = _dropout_class(torch)
    return _vit_class(torch, _block_class(torch, Dropout), Dropout)


def _dropout_class(torch):
    """Dropout for the models (a class per torch, as torch is imported by the caller)."""
    nn = torch.nn

    class Dropout(nn.Module):
        """Inverted dropout from a uniform draw (torch's CPU bernoulli_ is ~10x slower at these sizes)."""

        def forward(self, x):
            return x * (torch.rand_like(x) >= DROPOUT) / (1 - DROPOUT) if self.training and DROPOUT else x

    return Dropout


def _block_class(torch, Dropout):
    """The pre-norm transformer block of both models."""
    nn = torch.nn
    F = torch.nn.functional

    class Block(nn.Module):
        """Pre-norm transformer block: x + MHA(LN x), then x + MLP(LN x)."""

        def __init__(self):
            super().__init__()
            self.n1, self.n2 = nn.LayerNorm(DIM), nn.LayerNorm(DIM)
            self.qkv, self.o = nn.Linear(DIM, 3 * DIM), nn.Linear(DIM, DIM)
            self.mlp = nn.Sequential(nn.Linear(DIM, 2 * DIM), nn.GELU(), nn.Linear(2 * DIM, DIM), Dropout())
            self.drop = Dropout()

        def forward(self, x):
            B, n, _ = x.shape
            q, k, v = self.qkv(self.n1(x)).reshape(B, n, 3, HEADS, DIM // HEADS).permute(2, 0, 3, 1, 4)
            x = x + self.drop(self.o(F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(B, n, DIM)))
            return x + self.mlp(self.n2(x))

    return Block


def _vit_class(torch, Block, Dropout):
    """ViT and OT-ViT: ``DEPTH`` blocks, then the final layer that aggregates the patch features with a token."""
    nn = torch.nn

    class ViT(nn.Module):
        """ViT (``ot=False``) or OT-ViT (``ot=True``): the same parameters, the final layer's weights differ."""

        def __init__(self, ot: bool):
            super().__init__()
            self.ot = ot
            self.embed = nn.Linear(PATCH * PATCH, DIM)
            self.pos = nn.Parameter(0.02 * torch.randn(1, (8 // PATCH) ** 2, DIM))
            self.blocks = nn.ModuleList([Block() for _ in range(DEPTH)])
            self.token = nn.Parameter(0.02 * torch.randn(DIM))
            self.nf, self.nt, self.n2 = nn.LayerNorm(DIM), nn.LayerNorm(DIM), nn.LayerNorm(DIM)
            self.q, self.k, self.v, self.o = (nn.Linear(DIM, DIM) for _ in range(4))
            self.drop = Dropout()
            self.mlp = nn.Sequential(nn.Linear(DIM, 2 * DIM), nn.GELU(), nn.Linear(2 * DIM, DIM), Dropout())
            self.head = nn.Sequential(nn.LayerNorm(DIM), nn.Linear(DIM, 10))

        def features(self, img):
            B = img.shape[0]
            p = img.reshape(B, 8 // PATCH, PATCH, 8 // PATCH, PATCH).permute(0, 1, 3, 2, 4).reshape(B, -1, PATCH * PATCH)
            x = self.embed(p) + self.pos
            for b in self.blocks:
                x = b(x)
            return self.nf(x)  # the layer-normed features x_bar_i of the final layer

        def forward(self, img, partner=None, mixed=None):
            """``partner`` (B,) index into the batch of another image of the same class, used where
            ``mixed`` (B,) is True (OT-ViT training only)."""
            xb = self.features(img)  # (B, n, D)
            B, n, _ = xb.shape
            dh = DIM // HEADS
            c = self.nt(self.token).expand(B, DIM)
            q = self.q(c).reshape(B, HEADS, 1, dh)
            if self.ot and partner is not None:
                xb = torch.cat([xb, xb[partner]], dim=1)  # A = own templates, then the partner's
                present = torch.cat([torch.ones(B, n, dtype=torch.bool), mixed[:, None].expand(B, n)], dim=1)
            else:
                present = torch.ones(B, n, dtype=torch.bool)
            N = xb.shape[1]
            k = self.k(xb).reshape(B, N, HEADS, dh).transpose(1, 2)  # (B, H, N, dh)
            v = self.v(xb).reshape(B, N, HEADS, dh).transpose(1, 2)
            logits = (q @ k.transpose(-1, -2)) / math.sqrt(dh)  # alpha t_i^T z, alpha = 1: (B, H, 1, N)
            u = torch.cat([torch.full((B, n), 1.0 / n), torch.zeros(B, N - n)], dim=1)  # uniform on the input's
            if self.ot:
                t = xb / math.sqrt(dh)  # templates t_i = x_bar_i / sqrt(d'), shared by the heads
                P = ot_weights(logits, inner_product_cost(t)[:, None], u[:, None], math.sqrt(DIM), present[:, None])
            else:  # (16) with uniform u on the input's templates = softmax attention
                P = torch.softmax(logits.masked_fill(u[:, None, None] == 0, -math.inf), dim=-1)
            h = (P @ v).reshape(B, DIM)  # V' sum_t p(t) t = V sum_t p(t) x_bar_t
            y = c + self.drop(self.o(h))
            y = y + self.mlp(self.n2(y))
            return self.head(y)

    return ViT


def mixing_partners(y, gen, torch):
    """For each image of the batch, a random other image of the batch with the same label (itself if none),
    and whether its templates are mixed in (probability MIX)."""
    B = len(y)
    same = (y[:, None] == y[None, :]) & ~torch.eye(B, dtype=torch.bool)
    score = torch.rand(B, B, generator=gen).masked_fill(~same, -1.0)
    partner = torch.where(same.any(1), score.argmax(1), torch.arange(B))
    mixed = (torch.rand(B, generator=gen) < MIX) & same.any(1)
    return partner, mixed


def train_one(model_name: str, lr: float, seed: int, data, epochs: int = EPOCHS, progress=None) -> dict:
    """Train one model; returns validation and test accuracy, the mixing rate, and the run time."""
    tr, va, te = data
    with training.deterministic(1000 + seed, dtype="float32") as torch:
        ViT = _modules(torch)
        torch.manual_seed(seed)  # the same initialisation for both models
        net = ViT(ot=(model_name == "OT-ViT"))
        opt = torch.optim.Adam(net.parameters(), lr=lr, fused=True)  # one fused kernel per step: 3x faster here
        X, Y = torch.tensor(tr.X, dtype=torch.float32), torch.tensor(tr.y)
        order_gen, mix_gen = training.generator(seed), training.generator(10_000 + seed)
        n_mixed, n_seen, t0, val_early = 0, 0, time.perf_counter(), math.nan
        for ep in range(epochs):
            net.train()
            perm = torch.randperm(len(Y), generator=order_gen)
            for b in range(0, len(Y), BATCH):
                idx = perm[b: b + BATCH]
                xb, yb = X[idx], Y[idx]
                if net.ot:
                    partner, mixed = mixing_partners(yb, mix_gen, torch)
                    n_mixed, n_seen = n_mixed + int(mixed.sum()), n_seen + len(yb)
                    out = net(xb, partner, mixed)
                else:
                    out = net(xb)
                loss = torch.nn.functional.cross_entropy(out, yb)
                opt.zero_grad()
                loss.backward()
                opt.step()
            if progress is not None:
                progress(f"{model_name}, lr {lr:g}, seed {seed}: epoch {ep + 1}/{epochs}, loss {loss.item():.3f}")
            if ep + 1 == epochs - epochs // 3:  # validation accuracy two thirds in: is training still improving?
                val_early = _accuracy(net, va, torch)
        val_early = val_early if epochs >= 3 else math.nan
        acc = {"val": _accuracy(net, va, torch), "test": _accuracy(net, te, torch)}
    return {"model": model_name, "lr": lr, "seed": seed, **acc, "val_early": val_early, "mixed": n_mixed,
            "seen": n_seen, "seconds": time.perf_counter() - t0}


def _accuracy(net, split, torch) -> float:
    """Accuracy on a split in eval mode (no dropout, only the image's own templates); training mode restored."""
    mode = net.training
    net.eval()
    with torch.no_grad():
        acc = float((net(torch.tensor(split.X, dtype=torch.float32)).argmax(1) == torch.tensor(split.y)).double().mean())
    net.train(mode)
    return acc


def _ot_layer_evidence(ev: Evidence, weights=None) -> None:
    """The torch OT layer equals attnverify.ot_attention on the same inputs (float64), and reduces to the
    support-constrained softmax when transport across templates is forbidden."""
    import torch

    from attnverify.ot_attention import ot_attention

    weights = weights or ot_weights
    rng = context.rng("vit-ot-layer")
    worst = 0.0
    for N, d, m, zeros in [(6, 4, 3, 0), (16, 8, 5, 4), (32, 16, 2, 16)]:
        T = rng.normal(size=(N, d))
        u = rng.dirichlet(np.ones(N))
        u[rng.choice(N, size=zeros, replace=False)] = 0.0
        u /= u.sum()
        Z = rng.normal(size=(m, d))
        M = -(T @ T.T) + np.max(T @ T.T)
        gamma = math.sqrt(d)
        h_np, p_np = ot_attention(T, u, Z, M, 1.0, gamma, return_weights=True)
        Tt, ut, Zt, Mt = (torch.tensor(a, dtype=torch.float64) for a in (T, u, Z, M))
        P = weights(1.0 * Zt @ Tt.T, Mt, ut, gamma)
        h = (P @ Tt).numpy()
        scale = np.abs(T).max() * (1 + np.abs(Z @ T.T).max() + np.abs(M).max()) / gamma
        worst = max(worst, float(np.abs(h - h_np).max() / (64 * N * np.finfo(float).eps * scale)),
                    float(np.abs(P.numpy() - p_np).max() / (64 * N * np.finfo(float).eps * scale)))
    ev.at_most("reduced-ot-layer-equals-ot-attention", "the OT-ViT layer's weights and output equal "
               "attnverify.ot_attention on the same inputs (float64)", worst, 1.0,
               r"both evaluate (22) in the log domain with sums over $N$ templates: agreement to $64 N\varepsilon$ "
               r"times the scale of the exponents ($|T|\,(1 + |Tz| + |M|)/\gamma$) is round-off",
               method="torch vs numpy",
               metric=r"$\max |\text{difference}| / (64 N\varepsilon\,\text{scale})$, weights and output, 3 cases",
               numerical_class="roundoff", evidence="float")


def reduced_reproduction() -> Evidence:
    """FD-VIT/reduced: 2 models x 3 learning rates x 5 seeds on the digits; see the module docstring."""
    ev = Evidence()
    ev.step(r"Made precise (reduced): on the digits with the paper's models and protocol scaled down (and a training "
            r"budget of 150 Adam steps per run), OT-ViT's mean test accuracy exceeds ViT's: the paired 95\% interval of "
            r"the per-seed difference lies above 0.",
            r"\overline{\mathrm{acc}}_{\mathrm{OT}} - \overline{\mathrm{acc}}_{\mathrm{ViT}} > 0\ \text{at 95\%, paired over 5 seeds}")
    _ot_layer_evidence(ev)
    data = training.digits(*SIZES)
    progress = training.Progress("FD-VIT/reduced")
    runs = [train_one(m, lr, s, data, progress=progress) for m in MODELS for lr in LRS for s in SELECT_SEEDS]
    sel = {m: select_rate(runs, m) for m in MODELS}
    runs += [train_one(m, sel[m], s, data, progress=progress) for m in MODELS for s in SEEDS if s not in SELECT_SEEDS]
    _record(ev, runs, sel)
    ev.notes.append(f"Training time: {progress.summary()} (one torch thread).")
    return ev


def select_rate(runs, model) -> float:
    """The paper's rule: the rate of the grid with the best mean accuracy (here on the validation split, over
    the selection seeds); a tie goes to the larger rate."""
    val = {lr: np.mean([r["val"] for r in runs if r["model"] == model and r["lr"] == lr and r["seed"] in SELECT_SEEDS])
           for lr in LRS}
    return max(LRS, key=lambda lr: (val[lr], lr))


def _record(ev: Evidence, runs: list[dict], sel: dict) -> None:
    """The checks, tables, figure and finding of the runs, at the selected learning rates ``sel``."""
    _tabulate_runs(ev, runs, sel)
    acc = {m: np.array([r["test"] for s in SEEDS for r in runs if r["model"] == m and r["lr"] == sel[m] and r["seed"] == s])
           for m in MODELS}
    paired = PairedDifference.of(acc)
    ev.tables.append(training.RunLog("FD-VIT/reduced: paired comparison at the selected learning rates "
                                     f"(ViT {sel['ViT']:g}, OT-ViT {sel['OT-ViT']:g})",
                                     ["seed", "ViT test accuracy", "OT-ViT test accuracy", "OT-ViT - ViT"],
                                     [[s, a, b, b - a] for s, a, b in zip(SEEDS, acc["ViT"], acc["OT-ViT"])]).table())
    _both_models_learn(ev, acc)
    _templates_mixed_half_the_time(ev, runs)
    _ot_vit_outperforms_vit(ev, paired)
    ev.figures.append(_draw(runs, sel, acc))
    ev.finding = _what_the_comparison_shows(runs, sel, acc, paired)
    ev.notes.append("Training in float32 on one torch thread, deterministic kernels; seeds fix the initialisation "
                    "(shared by the two models), the batch order and the template mixing.")


@dataclass(frozen=True)
class PairedDifference:
    """The per-seed difference OT-ViT - ViT of the test accuracies, its mean with the LEVEL interval, and
    the p-value of the paired t-test."""

    diff: np.ndarray
    mean: float
    lo: float
    hi: float
    p: float

    @classmethod
    def of(cls, acc: dict) -> "PairedDifference":
        diff = acc["OT-ViT"] - acc["ViT"]
        mean, lo, hi = training.mean_ci(diff, LEVEL)
        t, p = training.paired_t(acc["OT-ViT"], acc["ViT"])
        return cls(diff, mean, lo, hi, p)


def _tabulate_runs(ev: Evidence, runs: list[dict], sel: dict) -> None:
    """Every run, and the accuracy per model and learning rate (the paper's Table 1 protocol)."""
    log = training.RunLog(f"FD-VIT/reduced: every run (digits, {EPOCHS} epochs of batch {BATCH})", ["model", "learning rate", "seed", "validation accuracy",
                                                   f"validation accuracy at epoch {EPOCHS - EPOCHS // 3}",
                                                   "test accuracy", "images with mixed templates", "s"])
    for r in runs:
        log.add(r["model"], r["lr"], r["seed"], r["val"], r.get("val_early", math.nan), r["test"],
                f"{r['mixed']}/{r['seen']}" if r["seen"] else "-", r["seconds"])
    ev.tables.append(log.table())
    summary = []
    for m in MODELS:
        for lr in LRS:
            val = [r["val"] for r in runs if r["model"] == m and r["lr"] == lr and r["seed"] in SELECT_SEEDS]
            acc = [r["test"] for r in runs if r["model"] == m and r["lr"] == lr]
            mean, lo, hi = training.mean_ci(acc, LEVEL)
            summary.append([m, lr, "selected" if lr == sel[m] else "", float(np.mean(val)), len(acc), mean,
                            f"[{lo:.4f}, {hi:.4f}]"])
    ev.tables.append(training.RunLog("FD-VIT/reduced: accuracy per model and learning rate (the paper's Table 1 "
                                     f"protocol; the rate is selected on the validation split over seeds "
                                     f"{list(SELECT_SEEDS)}, then run with all seeds {list(SEEDS)})",
                                     ["model", "learning rate", "selection", "mean validation accuracy (selection)",
                                      "seeds", "mean test accuracy", "95% interval (test)"], summary).table())


def _both_models_learn(ev: Evidence, acc: dict) -> None:
    """Learning at all: a difference between two models at chance would mean nothing."""
    worst = min(float(acc[m].mean()) for m in MODELS)
    ev.at_least("reduced-both-models-learn", "both models learn the task (mean test accuracy at the selected rate)",
                worst, 0.5, "chance is 0.1; below 0.5 the comparison would be between models that have not learnt",
                method="torch", metric="min over the two models of the mean test accuracy", numerical_class="statistical",
                evidence="statistical")


def _templates_mixed_half_the_time(ev: Evidence, runs: list[dict]) -> None:
    """OT-ViT's training mixed in a same-class partner's templates with probability MIX (binomial check)."""
    mixed = sum(r["mixed"] for r in runs)
    seen = sum(r["seen"] for r in runs)
    sd = math.sqrt(seen * MIX * (1 - MIX))
    ev.within("reduced-mixing-rate", "OT-ViT training mixed in another same-class image's templates half of the time",
              mixed / seen, MIX, 4 * sd / seen, "binomial: 4 standard deviations of the mixed fraction "
              f"($n = {seen}$ image presentations); the rare image without a same-class partner in its batch is never mixed",
              method="torch", metric="fraction of training presentations with mixed templates",
              numerical_class="statistical", evidence="statistical")


def _ot_vit_outperforms_vit(ev: Evidence, paired: PairedDifference) -> None:
    """The decision: the paired 95% interval of OT-ViT - ViT lies above 0 (a judgement on the level)."""
    diff, mean, lo, hi, p = paired.diff, paired.mean, paired.lo, paired.hi, paired.p
    flip = 1 - p
    inside = diff.mean() > 0 and LEVEL_RANGE[0] < flip < LEVEL_RANGE[1]
    ev.check("OT-ViT outperforms ViT: the paired 95% interval of the test-accuracy difference lies above 0", "scipy t",
             "mean difference OT-ViT - ViT [95% interval] over 5 seeds; $p$ of the paired $t$-test",
             f"{mean:+.4f} [{lo:+.4f}, {hi:+.4f}], p = {p:.3g}", "lower end > 0", lo > 0,
             "the paper reports 95% intervals; pairing by seed removes the variation shared by the two models "
             "(initialisation, batch order)", key="reduced-ot-vit-outperforms", numerical_class="statistical",
             threshold_kind="judgement", evidence="statistical",
             sensitivity={"parameter": "confidence level of the paired interval", "declared_range": list(LEVEL_RANGE),
                          "why_this_range": LEVEL_WHY, "flips_at": float(f"{flip:.4g}") if inside else None,
                          "verdict_over_range": "flips" if inside else "stable"})


def _what_the_comparison_shows(runs: list[dict], sel: dict, acc: dict, paired: PairedDifference) -> str:
    """The finding: the direction of the paired difference, its power, and that training is not at a plateau."""
    diff, mean, lo, hi, p = paired.diff, paired.mean, paired.lo, paired.hi, paired.p
    sd_d = float(diff.std(ddof=1)) if len(diff) > 1 else float("nan")
    from scipy import stats

    mde = (stats.t.ppf(0.975, len(diff) - 1) + stats.t.ppf(0.8, len(diff) - 1)) * sd_d / math.sqrt(len(diff))
    chosen = [r for r in runs if r["lr"] == sel[r["model"]]]
    gain = {m: float(np.nanmean([r["val"] - r.get("val_early", math.nan) for r in chosen if r["model"] == m]))
            for m in MODELS}
    verdict = ("reproduces the paper's direction" if lo > 0 else
               "does not reproduce it (ViT is better)" if hi < 0 else "finds no difference at 95%")
    return (
        f"At reduced scale the comparison {verdict}: mean test accuracy ViT {acc['ViT'].mean():.4f}, OT-ViT "
        f"{acc['OT-ViT'].mean():.4f} (learning rates {sel['ViT']:g} and {sel['OT-ViT']:g}, selected on validation), "
        f"paired difference {mean:+.4f} [95%: {lo:+.4f}, {hi:+.4f}], $p = {p:.3g}$; OT-ViT ahead in "
        f"{int((diff > 0).sum())} of {len(diff)} seeds. With this spread the test detects a true difference of about "
        f"{mde:.3f} (80% power). Over the last third of training the validation accuracy still rose by "
        + " and ".join(f"{gain[m]:+.3f} ({m})" for m in MODELS)
        + f": within this budget ({EPOCHS * SIZES[0] // BATCH} Adam steps) the models are not trained to a plateau, so the "
        "comparison is one of accuracy after a fixed short training, not of trained models as in the paper. "
        "Reduced setting against the paper: the 8 x 8 digits (1000 training images) "
        "instead of Fashion-MNIST / CIFAR-10 / CIFAR-100; 2 x 2 patches, width 32, one block plus the final layer "
        f"(~18k parameters) instead of 4 x 4 patches, width 512, 6 layers (3.2M); {EPOCHS} epochs; 5 seeds; "
        "learning rate selected on a validation split from a grid moved to this setting (1e-2, 3e-3, 1e-3).")


def _draw(runs, sel, acc) -> Figure:
    plt = context.pyplot()

    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4))
    for i, m in enumerate(MODELS):
        val = [[r["val"] for r in runs if r["model"] == m and r["lr"] == lr and r["seed"] in SELECT_SEEDS] for lr in LRS]
        a1.errorbar(np.array(LRS) * (1 + 0.08 * i), [np.mean(v) for v in val], yerr=[np.std(v) for v in val],
                    fmt="o-", color=f"C{i}", label=m, capsize=3)
    a1.set_xscale("log")
    a1.set_xlabel("learning rate (Adam)")
    a1.set_ylabel(f"validation accuracy (mean, sd over {len(SELECT_SEEDS)} seeds)")
    a1.set_title("learning-rate selection (the paper's rule)", fontsize=9)
    a1.legend(fontsize=8)
    for s, (a, b) in enumerate(zip(acc["ViT"], acc["OT-ViT"])):
        a2.plot([0, 1], [a, b], "k-", lw=0.6, alpha=0.6)
    for i, m in enumerate(MODELS):
        mean, lo, hi = training.mean_ci(acc[m], LEVEL)
        a2.plot([i] * len(acc[m]), acc[m], "o", color=f"C{i}", alpha=0.6)
        a2.errorbar([i + 0.08], [mean], yerr=[[mean - lo], [hi - mean]], fmt="s", color=f"C{i}", capsize=4)
    a2.set_xticks([0, 1], [f"ViT (lr {sel['ViT']:g})", f"OT-ViT (lr {sel['OT-ViT']:g})"])
    a2.set_ylabel("test accuracy")
    a2.set_title("test accuracy per seed (lines pair the seeds); mean and 95% interval", fontsize=9)
    path = context.save_figure(fig, "fd-vit-reduced")
    return Figure(path, "FD-VIT/reduced on the digits: validation accuracy against the learning rate (left) and test "
                        "accuracy of the 5 seeds at the selected rates, paired, with 95% intervals (right).")
