"""The attnverify command line: verify, regress, solve, sweep and list (see main())."""

from __future__ import annotations

import argparse
import errno
import fnmatch
import json
import os
import stat
import sys
import tempfile
from pathlib import Path

from . import __version__
from .atomic import WriteError
from .validate import InputError

EXIT_FINDING = 1  # a refuted/inconclusive claim under --strict, a regression, an unconverged solve
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, what a shell reports for a process stopped by Ctrl-C
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE: the reader went away (`attnverify list | head -1`)
MAX_INPUT_MB = 64.0
READ_CHUNK = 1 << 20

DESCRIPTION = """\
Verify the claims of the papers that explain attention as the solution of an optimisation
problem, and solve that problem.

  attnverify verify      run the registered claims; write report.md, report.html, results.json
  attnverify regress     re-run the claims and compare with a baseline results.json
  attnverify solve       solve one instance of problem (3)/(7) given as JSON
  attnverify sweep       run a Section 8 sweep (model x corpus shard x layer x head)
  attnverify list        the registered claims: ID, last status, title, parts

Exit status: 0 done; 1 a finding (see each command); 2 bad input or a file that cannot be
read or written (one line on stderr); 130 interrupted (Ctrl-C)."""

# every field `attnverify solve` prints, in order, with its meaning (solve --help and the tests use it)
SOLVE_FIELDS = {
    "lambda_star": "lambda*, the maximiser of the dual (7) (length d)",
    "h_hat": "h_hat = sum_i p~_i t_i, the attention output (the solution of the primal (3)) (length d)",
    "p_tilde": "p~_i = u_i exp(<t_i, lambda*>) / M(lambda*), the primal solution (length n; 0 where u_i = 0)",
    "lambda_approx_14": "(14): lambda* ~ alpha z, the small-alpha approximation (length d)",
    "lambda_approx_13": "(13): lambda* ~ alpha (I + alpha Sigma)^-1 z, Sigma = Cov_u(t) (length d)",
    "h_attention_16": "(16): the softmax attention sum_i softmax_i(alpha <t_i, z> + log u_i) t_i (length d)",
    "primal": "the value of (3) at p~",
    "dual": "the value of (7) at lambda*",
    "gap": "primal - dual (0 at the optimum, by strong duality)",
    "converged": "true only if the certified bound on ||lambda* - lambda_exact|| is <= rtol ||lambda*|| and the "
                 "relative duality gap is <= rtol (exit status 1 otherwise, with this JSON printed)",
    "bound": "a certified bound on ||lambda* - lambda_exact|| (strong concavity, with the float64 error of the "
             "gradient included)",
    "rel_bound": "bound / ||lambda*||",
    "rel_gap": "|primal - dual| / max(|primal|, |dual|)",
    "rtol": "the relative tolerance the verdict was held to",
    "message": "why the solver stopped, in words",
    "iterations": "Newton steps taken",
    "grad_norm": "||grad D(lambda*)||, the gradient norm of (7) at the returned lambda*; by strong concavity "
                 "||lambda - lambda_exact|| <= alpha ||grad D||",
}

SOLVE_DESCRIPTION = """\
Solve one instance of problem (3)/(7) of the Fenchel-dual paper (004_830fd89135933577.txt).

Given templates t_1..t_n in R^d (the rows of T), a prior u on the simplex, evidence z in R^d
and alpha > 0, with mu = sum_i u_i t_i and b = mu + z, the primal (3) is

  P = min over p in the simplex of  (alpha/2) ||b - sum_i p_i t_i||^2 + KL(p || u)

and its Fenchel dual (7) is

  D = max over lambda of  <lambda, b> - ||lambda||^2 / (2 alpha) - log sum_i u_i exp(<t_i, lambda>),

attained at lambda*. The primal solution is the tilted prior p~_i = u_i exp(<t_i, lambda*>) / M,
M = sum_j u_j exp(<t_j, lambda*>), and h_hat = sum_i p~_i t_i = b - lambda*/alpha (P = D).

Input: CASE is a JSON file (or - for standard input), at most --max-input-mb megabytes:
  {"templates": [[1, 0], [0, 1], [1, 1]], "z": [0.3, -0.2], "alpha": 0.5, "u": [0.5, 0.25, 0.25]}
Conventions: templates is n x d (one template per row); u is optional (uniform if absent),
may hold zeros (masked templates), and must sum to 1 up to round-off; alpha > 0 is the
inverse temperature (alpha z is the logit scale); every number must be finite.

Output: one JSON object on standard output with the fields
{fields}

With --certify the object gains "certificate" (attnverify.certify: ball arithmetic on the inputs as
exact binary64 numbers): certified, radius_lambda >= ||lambda_star - lambda*||, radius_p_l1 >=
||p_tilde - p~||_1, radius_h, value_interval (contains min (3) = max (7)), grad_norm_upper,
lipschitz_p, tol, prec_bits, method, message; the radii and the interval are also printed on stderr.

Exit status: 0 converged (and, with --certify, certified to --certify-tol); 1 not converged or
not certified (the JSON is still printed); 2 bad input (one line on stderr naming the field)."""


def _fail(msg: str) -> int:
    print(f"attnverify: error: {msg}", file=sys.stderr, flush=True)
    return EXIT_BAD_INPUT


class _StdoutError(Exception):
    """Standard output is closed, full or gone: reported in one line by main()."""

    def __init__(self, err: OSError | None):
        self.err = err


def _say(text: str = "") -> None:
    """Print one line to standard output now (flushed, so a full or closed stdout is seen here)."""
    if sys.stdout is None:  # the process was started with stdout closed (`>&-`)
        raise _StdoutError(None)
    try:
        print(text, flush=True)
    except OSError as e:
        raise _StdoutError(e) from None


def _logger(args):
    return (lambda s: None) if args.verbosity < 0 else _say


# ------------------------------------------------------------------ reading user files
def read_input(name: str, max_mb: float = MAX_INPUT_MB) -> str:
    """The text of a user file (``-``: standard input): at most ``max_mb`` MB, never a device.

    The size is checked before reading where the file system knows it, and otherwise (a pipe, a
    FIFO) while reading, so memory stays bounded by the cap whatever the input is."""
    if not max_mb > 0:
        raise InputError(f"--max-input-mb: must be > 0, got {max_mb:g}")
    cap = int(max_mb * 2**20)
    if name == "-":
        if sys.stdin is None:  # started with stdin closed (`<&-`)
            raise InputError("-: standard input is closed (give a file, or pipe the case into -)")
        try:
            return _read_capped(sys.stdin.buffer, "-", cap, max_mb)
        except OSError as e:
            raise InputError(f"-: cannot read standard input ({e.strerror})") from None
    try:
        st = os.stat(name)
        if stat.S_ISDIR(st.st_mode):
            raise InputError(f"{name}: cannot read (Is a directory)")
        if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
            raise InputError(f"{name}: is a device, not a file (give a file, or - for standard input)")
        if stat.S_ISREG(st.st_mode) and st.st_size > cap:
            raise InputError(f"{name}: is {st.st_size / 2**20:.1f} MB, above the {max_mb:g} MB cap "
                             "(--max-input-mb raises it)")
        with open(name, "rb") as f:
            return _read_capped(f, name, cap, max_mb)
    except OSError as e:
        raise InputError(f"{name}: cannot read ({e.strerror})") from None


def _read_capped(f, name: str, cap: int, max_mb: float) -> str:
    data = bytearray()
    while len(data) <= cap:
        chunk = f.read(min(READ_CHUNK, cap + 1 - len(data)))
        if not chunk:
            break
        data += chunk
    if len(data) > cap:
        raise InputError(f"{name}: is larger than the {max_mb:g} MB cap (--max-input-mb raises it)")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise InputError(f"{name}: not UTF-8 text ({e.reason} at byte {e.start})") from None


# An integer of more than 4300 digits makes int() raise (CPython's guard against slow conversion);
# any integer of more than 400 digits is beyond float64 (whose largest value has 309), so it is read
# as 10**400, which the validator then names as a number beyond the float64 range.
_BEYOND_FLOAT64 = 10**400


def _parse_int(s: str) -> int:
    if len(s.lstrip("-")) > 400:
        return -_BEYOND_FLOAT64 if s.startswith("-") else _BEYOND_FLOAT64
    return int(s)


def load_json(name: str, text: str):
    """Parse user JSON; every failure is one InputError naming the file."""
    try:
        return json.loads(text, parse_int=_parse_int)
    except json.JSONDecodeError as e:
        raise InputError(f"{name}: not valid JSON ({e.msg} at line {e.lineno} column {e.colno})") from None
    except RecursionError:
        raise InputError(f"{name}: not valid JSON for a case (nested too deeply)") from None
    except ValueError as e:  # e.g. a float literal that cannot be converted
        raise InputError(f"{name}: not valid JSON ({str(e).splitlines()[0][:100]})") from None


# ------------------------------------------------------------------ solve
def cmd_solve(args) -> int:
    from .solve import solve_instance
    from .threads import limited
    from .validate import instance

    case = load_json(args.case, read_input(args.case, args.max_input_mb))
    if not isinstance(case, dict):
        return _fail(f"{args.case}: expected a JSON object with keys templates, z, alpha (and optional u)")
    for key in ("templates", "z", "alpha"):
        if key not in case:
            return _fail(f"{key}: missing key")
    unknown = set(case) - {"templates", "z", "alpha", "u"}
    if unknown:
        return _fail(f"{sorted(unknown)[0]}: unknown key (expected templates, z, alpha, u)")
    T, u, z, alpha = instance(case["templates"], case["z"], case["alpha"], case.get("u"))
    if args.certify and not (0 < args.certify_tol < 1):
        return _fail(f"--certify-tol: must be in (0, 1), got {args.certify_tol:g}")
    with limited():
        out = solve_instance(T, u, z, alpha)
    if args.certify:
        from .certify import certificate_for_solution, summary_lines

        out["certificate"] = certificate_for_solution(T, u, z, alpha, out, tol=args.certify_tol)
        if args.verbosity >= 0:  # on standard error: standard output stays one JSON object
            print("\n".join(summary_lines(out["certificate"])), file=sys.stderr)
    if args.verbosity >= 0:
        _say(json.dumps(out))
    if args.verbosity > 0:
        print(f"attnverify: {'converged' if out['converged'] else 'NOT converged'} after {out['iterations']} "
              f"iterations; ||grad D|| = {out['grad_norm']:.3g}, so ||lambda - lambda*|| <= alpha ||grad D|| = "
              f"{alpha * out['grad_norm']:.3g}; gap {out['gap']:.3g}", file=sys.stderr)
    return 0 if out["converged"] and out.get("certificate", {}).get("certified", True) else EXIT_FINDING


# ------------------------------------------------------------------ selection of claims
def _selection(args):
    """The claims -k/--only select, as a predicate (None = every claim); an unknown --only ID is an error."""
    if not (args.only or args.k):
        return None
    from .registry import load_claims

    only = {i.upper() for i in args.only or []}
    unknown = sorted(only - {c.id.upper() for c in load_claims()})
    if unknown:
        raise InputError(f"--only: unknown claim ID{'s' * (len(unknown) > 1)} {', '.join(unknown)} "
                         "(attnverify list shows the IDs)")
    pattern = f"*{args.k.lower()}*" if args.k else None
    return lambda c: (c.id.upper() in only) or bool(pattern and (fnmatch.fnmatchcase(c.id.lower(), pattern)
                                                                  or fnmatch.fnmatchcase(c.title.lower(), pattern)))


# ------------------------------------------------------------------ results.json
class PreviousResultsError(InputError):
    pass


def read_previous(path: Path) -> dict | None:
    """The results.json a selective run merges into: None if there is none; an error if it does not parse
    (merging over it would silently drop every claim it held)."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as e:
        raise PreviousResultsError(f"{path}: cannot read ({e.strerror})") from None
    try:
        old = json.loads(raw.decode("utf-8"))
        why = None if isinstance(old, dict) and isinstance(old.get("claims"), list) and all(
            isinstance(c, dict) and isinstance(c.get("id"), str) for c in old["claims"]) else "not a results file"
    except (ValueError, RecursionError) as e:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        why = f"not valid JSON: {str(e).splitlines()[0][:80]}" if raw.strip() else "empty"
    if why:
        raise PreviousResultsError(
            f"{path}: exists but does not parse ({why}); not merging over it, which would lose the other claims' "
            f"results: regenerate it with a full run (attnverify verify --docs {path.parent}) or move it away")
    return old


def merge_into_previous(res: dict, path: Path) -> dict:
    """A selective run replaces only the claims it ran; the others keep their previous results.

    Call it holding ``atomic.locked(path)`` (cmd_verify does), so that two selective runs on the
    same folder read, merge and write one after the other."""
    from .verify import STATUSES

    old = read_previous(path)
    if old is None:
        return res
    new = {c["id"]: c for c in res["claims"]}
    claims = [new.pop(c["id"], c) for c in old.get("claims", [])] + list(new.values())
    ran = {c["id"] for c in res["claims"]}
    errata = [e for e in old.get("errata", []) if e.get("claim") not in ran] + res["errata"]
    res = dict(res, claims=claims, errata=errata)
    res["summary"] = {s: sum(c["status"] == s for c in claims) for s in STATUSES}
    res["run"] = dict(res["run"], partial_rerun=sorted(ran))
    return res


def _writable(folder: Path) -> None:
    """Fail before hours of computing, not after, if the output folder cannot be written."""
    try:
        (folder / "figures").mkdir(parents=True, exist_ok=True)
        for d in (folder, folder / "figures"):
            with tempfile.TemporaryFile(dir=d):
                pass
    except OSError as e:
        raise WriteError(getattr(e, "filename", None) or folder, e) from None


def _print_checks(res: dict, ids) -> None:
    """-v: every check of the claims that ran, with its value, tolerance and verdict."""
    for c in res["claims"]:
        if c["id"] in ids:
            _say(f"{c['id']} ({c['status']}):")
            for ch in c["checks"]:
                mark = "pass" if ch.get("passed") else "FAIL"
                value = str(ch.get("value"))
                value = value if len(value) <= 100 else value[:97] + "..."
                _say(f"  {mark} {ch.get('key') or ch.get('name')}: {value} (tolerance {ch.get('tolerance')})")


# ------------------------------------------------------------------ verify, regress
def cmd_verify(args) -> int:
    from . import atomic, context
    from .cache import Cache
    from .report import write_all
    from .threads import limited
    from .verify import run_all

    docs = Path(args.docs)
    results = docs / "results.json"
    select = _selection(args)
    _writable(docs)
    if select is not None:
        read_previous(results)  # refuse now, not after the run, if there is a damaged file to merge into
    context.FIGURE_DIR = docs / "figures"
    log = _logger(args)
    with limited():
        cache = None if args.no_cache else Cache(docs=docs)
        res = run_all(select=select, log=log, cache=cache)
    if select is not None and not res["claims"]:
        return _fail("no claim matches the selection")
    ran = list(res["claims"])  # --strict judges the claims this run decided
    with atomic.locked(results):
        if select is not None:
            res = merge_into_previous(res, results)
        write_all(res, docs)
    if args.verbosity > 0:
        _print_checks(res, {c["id"] for c in ran})
    reused = f", {len(cache.hits)} reused from {cache.folder}" if cache is not None and cache.hits else ""
    _say(f"wrote {docs}/report.md, {docs}/report.html, {docs}/results.json "
         f"({res['run']['wall_time_s']} s{reused}): " + ", ".join(f"{k} {v}" for k, v in res["summary"].items()))
    bad = [c for c in ran if c["status"] in ("refuted", "inconclusive")]
    if args.strict and bad:
        print(f"attnverify: --strict: {len(bad)} claim{'s' * (len(bad) > 1)} refuted or inconclusive: "
              + ", ".join(f"{c['id']} ({c['status']})" for c in bad), file=sys.stderr, flush=True)
        return EXIT_FINDING
    return 0


def cmd_regress(args) -> int:
    from . import context
    from .registry import load_claims
    from .regress import BaselineError, compare, load_baseline, moved_within_rule, n_checks, render, same_environment
    from .report import write_all
    from .threads import limited
    from .verify import run_all

    if args.baseline:
        read_input(args.baseline)  # a device or a huge file: one line, before it is read whole
    try:
        baseline, where = load_baseline(args.baseline, Path.cwd())
    except BaselineError as e:
        return _fail(str(e))
    select = _selection(args)
    if args.out:
        _writable(Path(args.out))
    log = _logger(args)
    _say(f"regress: baseline {where}")
    with tempfile.TemporaryDirectory(prefix="attnverify-regress-") as tmp:
        out = Path(args.out) if args.out else Path(tmp)
        context.FIGURE_DIR = out / "figures"
        # recompute means recompute: the sweep's files go to a fresh folder, not .cache/sweeps
        saved = os.environ.get("ATTNVERIFY_SWEEPS")
        os.environ["ATTNVERIFY_SWEEPS"] = str(Path(tmp) / "sweeps")
        try:
            with limited():
                fresh = run_all(select=select, log=log, cache=None)  # a regression run recomputes everything
        finally:
            if saved is None:
                os.environ.pop("ATTNVERIFY_SWEEPS", None)
            else:
                os.environ["ATTNVERIFY_SWEEPS"] = saved
        if args.out:
            write_all(fresh, out)
    if select is not None and not fresh["claims"]:
        return _fail("no claim matches the selection")
    # compare what results.json would hold (JSON: tuples become lists), as the baseline was read
    fresh = json.loads(json.dumps(fresh, ensure_ascii=False))
    ran = {c["id"] for c in fresh["claims"]}
    changes = compare(baseline, fresh, ran=ran if select is not None else None,
                      registered={c.id for c in load_claims()})
    compared = ran & {c["id"] for c in baseline.get("claims", [])}
    same = same_environment(baseline, fresh)
    _say(render(changes, where, len(compared), n_checks(baseline, compared), same,
                None if same else moved_within_rule(baseline, fresh)))
    return EXIT_FINDING if any(c.failure for c in changes) else 0


# ------------------------------------------------------------------ sweep
def cmd_sweep(args) -> int:
    """Run a sweep config's missing tasks (Dask by default) and print a one-line summary per layer."""
    from . import sweep
    from .threads import limited

    read_input(args.config)  # a device, a FIFO without end or a huge file: one line, before TOML reads it whole
    cfg = sweep.load_config(args.config)  # InputError -> exit 2, naming the field
    if args.workers is not None and args.workers < 1:
        return _fail(f"--workers: must be >= 1, got {args.workers}")
    if args.scheduler and args.no_dask:
        return _fail("--scheduler: cannot be combined with --no-dask")
    if args.scheduler and "://" not in args.scheduler:
        return _fail(f"--scheduler: expected an address like tcp://HOST:8786, got {args.scheduler!r}")
    log = _logger(args)
    try:
        with limited():  # the workers started here inherit the one-thread limit
            stats = sweep.run(cfg, args.out, local=args.no_dask, workers=args.workers, scheduler=args.scheduler,
                              log=log)
        data = sweep.load(cfg, stats.out)
    except sweep.SweepError as e:
        print(f"attnverify: error: {e}", file=sys.stderr)
        return EXIT_FINDING
    except KeyboardInterrupt:
        print("attnverify: interrupted; the finished tasks' files are kept: run the same command to resume",
              file=sys.stderr)
        return EXIT_INTERRUPTED
    st = data["status"]
    _say(f"{stats.out}: {stats.tasks} task files ({stats.reused} reused, {stats.computed} computed in "
         f"{stats.seconds:.0f} s), {len(st)} queries, {int((st == 2).sum())} unconverged")
    if args.verbosity >= 0:
        for mi, model in enumerate(cfg.models):
            for a in cfg.alpha:
                for layer in cfg.layers_of(model):
                    m = (data["model"] == mi) & (data["alpha"] == a) & (data["layer"] == layer)
                    line = (f"  {model} alpha={a:g} layer {layer}: mean ||lambda*-alpha z||/||lambda*|| = "
                            f"{data['full'][m].mean():.4f}, in S: {data['restricted'][m].mean():.4f}")
                    if args.verbosity > 0:
                        line += (f"; of (13): {data['full13'][m].mean():.4f}, in S: "
                                 f"{data['restricted13'][m].mean():.4f}")
                    _say(line)
    return EXIT_FINDING if (st == 2).any() else 0


# ------------------------------------------------------------------ list
def cmd_list(args) -> int:
    from .registry import load_claims

    claims = load_claims()
    last, note = {}, ""
    path = Path(args.docs) / "results.json"
    try:
        prev = read_previous(path)
        last = {c["id"]: c for c in (prev or {}).get("claims", [])}
        if prev is None:
            note = f"(no {path} yet: run attnverify verify for the statuses)"
    except PreviousResultsError as e:
        note = f"(statuses unknown: {e})"
    if args.verbosity < 0:
        for c in claims:
            _say(c.id)
        return 0
    width = max(len(c.id) for c in claims)
    for c in claims:
        r = last.get(c.id, {})
        _say(f"{c.id:<{width}}  {r.get('status', '-'):<13}  {c.title}")
        if args.verbosity > 0:
            _say(f"{'':<{width}}  {'':<13}  {c.seed}, {c.equation}")
        for p in r.get("parts") or []:
            if isinstance(p, dict):
                _say(f"{'':<{width}}    {p.get('id', '?')}: {p.get('status', '-')}  {p.get('title', '')}")
    if note:
        print(f"attnverify: {note}", file=sys.stderr)
    return 0


# ------------------------------------------------------------------ the parser
def _common() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False)
    g = p.add_mutually_exclusive_group()
    g.add_argument("-q", "--quiet", dest="verbosity", action="store_const", const=-1, default=0,
                   help="print less: only the result (solve: nothing, the exit status tells)")
    g.add_argument("-v", "--verbose", dest="verbosity", action="store_const", const=1,
                   help="print more (verify: every check; solve: the error bound on stderr; list: sources)")
    return p


def parser() -> argparse.ArgumentParser:
    """The command line: one subcommand per command, each added by its own function below."""
    common = [_common()]
    ap = argparse.ArgumentParser(prog="attnverify", description=DESCRIPTION,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--version", action="version", version=f"attnverify {__version__}")
    sub = ap.add_subparsers(dest="cmd", required=True, metavar="COMMAND")
    for add in (_add_verify, _add_regress, _add_solve, _add_sweep, _add_list):
        add(sub, common)
    return ap


def _add_verify(sub, common) -> None:
    v = sub.add_parser("verify", parents=common, help="run the registered claims and write the report",
                       description="Run the registered claims (or a selection) and write report.md, report.html "
                                   "and results.json to the docs folder. A selective run (-k, --only) merges "
                                   "into the folder's results.json. Exit status 0 when every selected claim ran "
                                   "(a refuted claim is a finding, not a failure); with --strict, 1 if any is "
                                   "refuted or inconclusive.")
    v.add_argument("--strict", action="store_true", help="exit 1 if any claim run is refuted or inconclusive, "
                   "naming them on stderr")
    v.add_argument("-k", metavar="PATTERN", help="only claims whose ID or title contains PATTERN "
                   "(case-insensitive; * and ? are wildcards)")
    v.add_argument("--only", nargs="+", metavar="ID", help="only these claim IDs (an unknown ID is an error)")
    v.add_argument("--docs", default="docs", help="output folder (default: docs)")
    v.add_argument("--no-cache", action="store_true",
                   help="recompute every selected claim (default: reuse results of unchanged claims "
                        "from .cache/attnverify)")
    v.set_defaults(func=cmd_verify)


def _add_regress(sub, common) -> None:
    g = sub.add_parser("regress", parents=common, help="re-run the claims and compare with the committed "
                                                       "baseline; exit 1 on any regression",
                       description="Re-run the claims (no cache) and compare them, check by check, with the "
                                   "committed baseline results.json. Exit status 1 on any regression.")
    g.add_argument("--baseline", metavar="FILE", help="default: the committed docs/results.json "
                   "(git show HEAD:docs/results.json); outside git, the file docs/results.json")
    g.add_argument("-k", metavar="PATTERN", help="only claims whose ID or title contains PATTERN (case-insensitive)")
    g.add_argument("--only", nargs="+", metavar="ID", help="only these claim IDs (an unknown ID is an error)")
    g.add_argument("--out", metavar="DIR", help="also write the fresh results and report to DIR")
    g.set_defaults(func=cmd_regress)


def _add_solve(sub, common) -> None:
    fields = "\n".join(f"  {k:<17} {doc}" for k, doc in SOLVE_FIELDS.items())
    s = sub.add_parser("solve", parents=common, help="solve one instance of (3)/(7) given as JSON",
                       description=SOLVE_DESCRIPTION.replace("{fields}", fields),
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    s.add_argument("case", metavar="CASE", help="JSON file (or - for standard input)")
    s.add_argument("--max-input-mb", type=float, default=MAX_INPUT_MB, metavar="MB",
                   help=f"refuse a case file larger than this (default: {MAX_INPUT_MB:g})")
    s.add_argument("--certify", action="store_true", help="also certify the answer in ball arithmetic "
                   "(radius of lambda*, l1 radius of p_tilde, optimal-value interval); exit 0 only if certified")
    s.add_argument("--certify-tol", type=float, default=1e-9, metavar="TOL",
                   help="relative tolerance the certificate must meet (default 1e-9)")
    s.set_defaults(func=cmd_solve)


def _add_sweep(sub, common) -> None:
    w = sub.add_parser("sweep", parents=common, help="run a Section 8 sweep (model x corpus shard x layer x head) "
                                                     "on Dask; see docs/sweep.md",
                       description="Run the tasks of a sweep config that have no result file yet, and print a "
                                   "summary per model, alpha and layer. Exit status 1 if a query did not converge.")
    w.add_argument("config", help="sweep config (TOML), e.g. sweeps/fig4.toml")
    w.add_argument("--scheduler", metavar="tcp://HOST:PORT", help="an existing Dask scheduler "
                   "(default: an embedded LocalCluster, one worker process per core)")
    w.add_argument("--out", metavar="DIR", help="result folder (default: .cache/sweeps/<hash>, where the report reads)")
    w.add_argument("--workers", type=int, metavar="N", help="worker processes on this machine (default: one per core)")
    w.add_argument("--no-dask", action="store_true", help="run without Dask: a plain loop (--workers 1) or a "
                   "process pool, as make verify does")
    w.set_defaults(func=cmd_sweep)


def _add_list(sub, common) -> None:
    li = sub.add_parser("list", parents=common, help="list the registered claims with their last status",
                        description="List the registered claims: ID, last status (from DOCS/results.json), "
                                    "title, and the parts of claims that have them. -q prints only the IDs.")
    li.add_argument("--docs", default="docs", help="where the last results are (default: docs)")
    li.set_defaults(func=cmd_list)


def _stdout_to_devnull() -> None:
    """After a failed write to stdout, point it at /dev/null so the exit-time flush cannot fail again."""
    try:
        fd = os.open(os.devnull, os.O_WRONLY)
        os.dup2(fd, sys.stdout.fileno())
    except (OSError, AttributeError, ValueError):
        pass


def main(argv=None) -> int:
    try:
        args = parser().parse_args(argv)
        rc = args.func(args)
        if sys.stdout is not None:
            sys.stdout.flush()
        return rc
    except (InputError, WriteError) as e:  # bad input; a file that cannot be written (the old one is intact)
        return _fail(str(e))
    except _StdoutError as e:
        _stdout_to_devnull()
        if e.err is not None and e.err.errno == errno.EPIPE:
            return EXIT_BROKEN_PIPE
        return _fail("cannot write to standard output (" + (e.err.strerror if e.err else "it is closed") + ")")
    except KeyboardInterrupt:
        print("attnverify: interrupted; files already written are complete (each is replaced whole or not at all)",
              file=sys.stderr, flush=True)
        return EXIT_INTERRUPTED
    except OSError as e:  # a file the command reads or writes, or standard output at the final flush
        if e.filename is None and sys.stdout is not None:
            _stdout_to_devnull()
            return _fail(f"cannot write to standard output ({e.strerror or e})")
        return _fail(f"{e.filename}: {e.strerror or e}")


if __name__ == "__main__":
    sys.exit(main())
