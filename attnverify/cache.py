"""Reuse the result of a claim whose inputs have not changed since it was last computed.

A claim's result is a function of

* its registry entry (statement, the functions that decide it, a fixed status);
* the source of the modules its functions live in, of every project module those import
  (followed through the import statements of the source, lazy imports inside functions
  included), and of the engine that turns evidence into a status (``evidence``, ``verify``,
  ``registry``, ``context``, this module);
* the project's data files (:func:`data_files`, e.g. ``sweeps/fig4.toml``): all of them, since
  which claim reads which file cannot be seen from the source;
* the run seed, and the numerical environment: the version of every installed distribution
  (numpy, scipy, sympy, cvxpy, POT, torch, ...), the Python build, the CPU model and feature
  flags (they select numpy's SIMD loops and OpenBLAS's kernels), and the BLAS thread count.

The cache key is the SHA-256 of all of these, so any change to any of them recomputes the claim.
Only static ``import`` statements are followed: a function that loads project code by name at
run time (``importlib.import_module("checks." + x)``) must live in a module the claim names.
Results of a function that crashed are not stored (the crash may be transient: a file being
edited), so the next run tries again; a deliberate :class:`~attnverify.evidence.Inconclusive`
is stored like any other result.

Each entry stores the SHA-256 of its result, verified on load together with the entry's layout:
an entry that fails either (truncated, edited, ``[]``, ``null``) is recomputed with a one-line
note. A cache folder that cannot be written turns caching off for the run, with a warning.

A cached result is reused only if every figure it attached still exists under the docs folder
with the bytes it had when computed; otherwise the claim is recomputed (which redraws it).

Entries live in ``.cache/attnverify/<ID>.json`` at the project root (``ATTNVERIFY_CACHE`` overrides
the folder); ``attnverify verify --no-cache`` ignores and does not write them.
"""

from __future__ import annotations

import ast
import dataclasses
import hashlib
import json
import os
import platform
import sys
from functools import lru_cache
from importlib import metadata
from pathlib import Path

from . import atomic
from . import SUBPACKAGES
from .registry import Claim

ROOT = Path(__file__).resolve().parents[1]  # the project folder (holds attnverify/, checks/, ...)
ENGINE = ("attnverify.evidence", "attnverify.verify", "attnverify.registry", "attnverify.context",
          "attnverify.cache")
FORMAT = 2  # bump when the layout of a cache entry changes


def default_dir() -> Path:
    if os.environ.get("ATTNVERIFY_CACHE"):
        return Path(os.environ["ATTNVERIFY_CACHE"])
    base = ROOT if (ROOT / "pyproject.toml").exists() else Path.cwd()
    return base / ".cache" / "attnverify"


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# ------------------------------------------------------------------ what a claim's code is
@lru_cache(maxsize=None)
def _module_file(name: str) -> Path | None:
    """The source file of a project module (found by path, without importing it), or None."""
    parts = name.split(".")
    if parts[0] == "attnverify" and len(parts) > 1 and parts[1] in SUBPACKAGES:
        parts = parts[1:]  # attnverify.checks.x lives in checks/x.py (see attnverify/__init__.py)
    base = ROOT.joinpath(*parts)
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def _imports(name: str, path: Path) -> set[str]:
    """Every module named by an import statement anywhere in the file (also inside functions)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_bytes())):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against this module's package
                parts = package.split(".")
                parent = ".".join(parts[: len(parts) - node.level + 1])
                base = f"{parent}.{base}" if base else parent
            out.add(base)
            out.update(f"{base}.{a.name}" for a in node.names)  # `from pkg import submodule`
    # a module also runs its packages' __init__ files
    for m in list(out):
        parts = m.split(".")
        out.update(".".join(parts[:i]) for i in range(1, len(parts)))
    return out


def code_files(modules) -> dict[str, str]:
    """{relative path: sha256} of the given modules and every project module they import.

    The project's packages are ``attnverify`` and the top-level packages of the given modules
    (``checks``, ``derivations``); imports of anything else (numpy, ...) are covered by the
    distribution versions in :func:`environment`.
    """
    todo, seen, files = list(modules), set(), {}
    packages = {"attnverify"} | {m.split(".")[0] for m in modules}
    while todo:
        name = todo.pop()
        if name in seen or name.split(".")[0] not in packages:
            continue
        seen.add(name)
        path = _module_file(name)
        if path is None:
            continue
        files[_label(path)] = _file_sha(path)
        todo += _imports(name, path)
    return dict(sorted(files.items()))


SKIP_DIRS = {"docs", "tests", "build", "dist", "node_modules", "__pycache__"}
NOT_DATA = {".py", ".pyc", ".pyo", ".md", ".rst"}


@lru_cache(maxsize=None)
def data_files() -> dict[str, str]:
    """{relative path: sha256} of the project's data files: every file in a folder of the project
    (not its top level, and not docs/, tests/, hidden or build folders) that is not Python source,
    documentation or the registry; e.g. sweeps/fig4.toml, which a check reads. Which claim reads
    which file cannot be seen from the source, so each claim's key includes all of them."""
    out = {}
    for folder, dirs, names in os.walk(ROOT):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in SKIP_DIRS
                         and not d.endswith(".egg-info") and not (Path(folder) / d / "pyvenv.cfg").exists())
        if Path(folder) == ROOT:
            continue
        for name in names:
            f = Path(folder) / name
            if f.suffix not in NOT_DATA and name != "claims.toml" and not name.startswith("."):
                out[_label(f)] = _file_sha(f)
    return dict(sorted(out.items()))


def _label(path: Path) -> str:
    """A file's name in the key: relative to the project, so the key does not depend on where it lives."""
    try:
        return str(path.relative_to(ROOT))
    except ValueError:
        return str(path)


@lru_cache(maxsize=None)
def _file_sha(path: Path) -> str:
    return _sha(path.read_bytes())


def _cpu() -> dict:
    """The CPU model and its feature flags: they choose numpy's SIMD loops and OpenBLAS's kernels."""
    info = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            k, _, v = line.partition(":")
            k = k.strip()
            if k in ("model name", "flags", "Features", "CPU implementer", "CPU part") and k not in info:
                info[k] = v.strip()
    except OSError:
        info["processor"] = platform.processor()
    if "flags" in info:  # long: keep its hash
        info["flags"] = _sha(info["flags"].encode())[:16]
    return info


ENV_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_CORETYPE",
            "NPY_DISABLE_CPU_FEATURES", "NPY_ENABLE_CPU_FEATURES", "MKL_CBWR")


@lru_cache(maxsize=None)
def environment() -> dict:
    """The numerical environment a result depends on: every installed distribution's version,
    the Python build, the CPU (model and feature flags) and the variables that steer BLAS/SIMD."""
    # installed distributions only (site-packages), not whatever the current folder holds: the
    # project's own egg-info must not make `python -m` and the console script disagree
    dists = sorted({f"{d.metadata['Name']}=={d.version}" for d in metadata.distributions(path=_site_paths())
                    if d.metadata["Name"]})
    return {"python": sys.version, "machine": platform.machine(), "cpu": _cpu(), "distributions": dists,
            "variables": {k: os.environ.get(k) for k in ENV_VARS}}


def _site_paths() -> list[str]:
    paths = [p for p in sys.path if Path(p).name in ("site-packages", "dist-packages")]
    return paths or sys.path


def fingerprint() -> str:
    """A short hash of :func:`environment`: two runs with the same fingerprint perform the same
    float operations, so they reproduce each other's values bit for bit."""
    return _sha(json.dumps(environment(), sort_keys=True).encode())[:16]


def inputs(claim: Claim, seed: int) -> dict:
    """Everything the claim's result depends on (see the module docstring)."""
    modules = [ref.partition(":")[0] for ref in claim.functions] + list(ENGINE)
    return {"format": FORMAT, "claim": dataclasses.asdict(claim), "code": code_files(modules),
            "data": data_files(), "seed": seed, "environment": environment()}


def key(claim: Claim, seed: int) -> str:
    return _digest(inputs(claim, seed))


def _digest(inp: dict) -> str:
    return _sha(json.dumps(inp, sort_keys=True).encode())


def explain(old: dict, new: dict) -> str:
    """What changed between two sets of inputs, in a few words (for the log)."""
    if not old:
        return "cached under other inputs (an older cache entry)"
    out = []
    for part in ("format", "claim", "seed"):
        if old.get(part) != new.get(part):
            out.append({"claim": "registry entry", "format": "cache format"}.get(part, part))
    oc, nc = old.get("code", {}), new.get("code", {})
    out += [f"{f} changed" for f in sorted(set(oc) | set(nc)) if oc.get(f) != nc.get(f)][:3]
    od, nd = old.get("data", {}), new.get("data", {})
    out += [f"{f} changed" for f in sorted(set(od) | set(nd)) if od.get(f) != nd.get(f)][:3]
    oe, ne = old.get("environment", {}), new.get("environment", {})
    if oe.get("distributions") != ne.get("distributions"):
        changed = sorted(set(ne.get("distributions", [])) ^ set(oe.get("distributions", [])))
        out.append("installed packages changed (" + ", ".join(changed[:3]) + ")")
    out += [f"{k} changed" for k in ("python", "machine", "cpu", "variables") if oe.get(k) != ne.get(k)]
    return "; ".join(out) or "inputs changed"


# ------------------------------------------------------------------ the store
# what every stored result must hold (verify.run_claim writes more; these are what the engine reads back)
RESULT_FIELDS = {"id": str, "status": str, "checks": list, "errata": list, "figures": list}
STATUSES = ("verified", "refuted", "inconclusive", "not-checkable")  # as verify.STATUSES (no import: a cycle)


def _result_sha(result: dict) -> str:
    """The hash stored beside a result and verified on load (JSON round-trips floats exactly)."""
    return _sha(json.dumps(result, sort_keys=True, ensure_ascii=False).encode())


def _corrupt(entry, cid: str) -> str | None:
    """Why a parsed cache entry cannot be trusted (None if it can): schema, then the result's hash."""
    if not isinstance(entry, dict):
        return f"not a JSON object but {type(entry).__name__}"
    for k, t in (("key", str), ("inputs", dict), ("figures", dict), ("result", dict), ("result_sha256", str)):
        if not isinstance(entry.get(k), t):
            return f"field {k!r} missing or not a {t.__name__}"
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in entry["figures"].items()):
        return "field 'figures' is not a map of paths to hashes"
    r = entry["result"]
    for k, t in RESULT_FIELDS.items():
        if not isinstance(r.get(k), t):
            return f"result field {k!r} missing or not a {t.__name__}"
    if r["id"] != cid:
        return f"it holds the result of {r['id']!r}"
    if r["status"] not in STATUSES:
        return f"unknown status {r['status']!r}"
    if _result_sha(r) != entry["result_sha256"]:
        return "the stored result does not match its hash (edited or damaged)"
    return None


def _warn(msg: str) -> None:
    print(f"attnverify: {msg}", file=sys.stderr, flush=True)


class Cache:
    """One JSON file per claim ID: the inputs and key it was computed under, the result with its
    SHA-256, and the hashes of its figures.

    An entry that does not parse, does not have the layout above, or whose result does not match
    its hash is treated as absent (the claim is recomputed and the entry rewritten), with a
    one-line note on stderr. A cache folder that cannot be read or written turns the cache off
    for the rest of the run, with a one-line warning: caching is an optimisation, never a reason
    to fail a run."""

    def __init__(self, folder: Path | None = None, docs: Path = Path("docs"), warn=_warn):
        self.folder = Path(folder) if folder else default_dir()
        self.docs = Path(docs)
        self.hits: list[str] = []
        self.why: dict[str, str] = {}  # claim ID -> why it was not reused
        self.corrupt: list[str] = []  # claim IDs whose entry was corrupt (recomputed)
        self.enabled = True
        self._warn = warn

    def _file(self, cid: str) -> Path:
        return self.folder / f"{cid}.json"

    def _disable(self, what: str, e: OSError) -> None:
        if self.enabled:
            self._warn(f"warning: cannot {what} the cache in {self.folder} ({e.strerror}): continuing without caching")
        self.enabled = False

    def get(self, claim: Claim, inp: dict) -> dict | None:
        if not self.enabled:
            self.why[claim.id] = "caching is off"
            return None
        try:
            text = self._file(claim.id).read_bytes()
        except FileNotFoundError:
            self.why[claim.id] = "not cached yet"
            return None
        except OSError as e:
            self._disable("read", e)
            self.why[claim.id] = "caching is off"
            return None
        try:
            entry = json.loads(text)
            problem = _corrupt(entry, claim.id)
        except (ValueError, RecursionError) as e:  # truncated, not UTF-8, not JSON
            problem = f"not valid JSON ({str(e).splitlines()[0][:80]})"
        if problem:
            self.corrupt.append(claim.id)
            self.why[claim.id] = f"the cache entry was corrupt: {problem}"
            self._warn(f"note: cache entry for {claim.id} was corrupt: recomputed ({problem})")
            return None
        if entry["key"] != _digest(inp):
            self.why[claim.id] = explain(entry["inputs"], inp)
            return None
        for path, digest in entry["figures"].items():
            try:
                if _sha((self.docs / path).read_bytes()) != digest:
                    self.why[claim.id] = f"{path} differs from the cached run's"
                    return None
            except OSError:  # the figure is gone: recompute, which draws it again
                self.why[claim.id] = f"{path} is missing"
                return None
        self.hits.append(claim.id)
        return entry["result"]

    def put(self, claim: Claim, inp: dict, result: dict) -> None:
        if not self.enabled:
            return
        figures = {}
        for f in result.get("figures", []):
            try:
                figures[f["path"]] = _sha((self.docs / f["path"]).read_bytes())
            except OSError:
                return  # a figure that was not written cannot be checked later: do not cache
        entry = {"key": _digest(inp), "inputs": inp, "figures": figures, "result": result,
                 "result_sha256": _result_sha(result)}
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            # atomic: a concurrent run, a kill or a full disk never leaves half an entry
            atomic.write_text(self._file(claim.id), json.dumps(entry, ensure_ascii=False))
        except OSError as e:
            self._disable("write", e)
