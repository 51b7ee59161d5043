"""Command line: ``attnverify verify``, ``attnverify regress``, ``attnverify solve CASE.json`` and
``attnverify sweep CONFIG.toml``."""

from __future__ import annotations

import os

# One BLAS/OpenMP thread, set before numpy is first imported (it reads these once). A threaded
# BLAS sums in an order that depends on the thread count, and iterative solvers amplify that
# round-off (FD-MEM's value moved by 3e-5 relative between 1 and 2 threads); with one thread a
# rerun repeats the same float operations, which is what `attnverify regress` relies on.
# The problems here are small, so nothing is lost. ATTNVERIFY_THREADS overrides.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = os.environ.get("ATTNVERIFY_THREADS", "1")

import argparse  # noqa: E402
import fnmatch  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

from .validate import InputError  # noqa: E402

EXIT_BAD_INPUT = 2


def _fail(msg: str) -> int:
    print(f"attnverify: error: {msg}", file=sys.stderr)
    return EXIT_BAD_INPUT


def cmd_solve(args) -> int:
    from .solve import solve_instance
    from .validate import instance

    try:
        text = Path(args.case).read_text() if args.case != "-" else sys.stdin.read()
    except OSError as e:
        return _fail(f"{args.case}: cannot read ({e.strerror})")
    except UnicodeDecodeError as e:
        return _fail(f"{args.case}: not UTF-8 text ({e.reason} at byte {e.start})")
    try:
        case = json.loads(text)
    except json.JSONDecodeError as e:
        return _fail(f"{args.case}: not valid JSON ({e.msg} at line {e.lineno} column {e.colno})")
    except RecursionError:
        return _fail(f"{args.case}: not valid JSON for a case (nested too deeply)")
    if not isinstance(case, dict):
        return _fail(f"{args.case}: expected a JSON object with keys templates, z, alpha (and optional u)")
    for key in ("templates", "z", "alpha"):
        if key not in case:
            return _fail(f"{key}: missing key")
    unknown = set(case) - {"templates", "z", "alpha", "u"}
    if unknown:
        return _fail(f"{sorted(unknown)[0]}: unknown key (expected templates, z, alpha, u)")
    try:
        T, u, z, alpha = instance(case["templates"], case["z"], case["alpha"], case.get("u"))
    except InputError as e:
        return _fail(str(e))
    out = solve_instance(T, u, z, alpha)
    print(json.dumps(out))
    return 0 if out["converged"] else 1


def _selection(args):
    """The claims -k/--only select, as a predicate (None = every claim)."""
    if not (args.only or args.k):
        return None
    only = {i.upper() for i in args.only or []}
    return lambda c: (c.id in only) or bool(args.k and (fnmatch.fnmatch(c.id, f"*{args.k}*")
                                                        or args.k.lower() in c.title.lower()))


def cmd_verify(args) -> int:
    from . import context
    from .cache import Cache
    from .report import write_all
    from .verify import run_all

    docs = Path(args.docs)
    context.FIGURE_DIR = docs / "figures"
    select = _selection(args)
    cache = None if args.no_cache else Cache(docs=docs)
    res = run_all(select=select, log=lambda s: print(s, flush=True), cache=cache)
    if select is not None and not res["claims"]:
        return _fail("no claim matches the selection")
    ran = res["summary"]  # --strict judges the claims this run decided
    if select is not None:
        res = merge_into_previous(res, docs / "results.json")
    write_all(res, docs)
    reused = f", {len(cache.hits)} reused from {cache.folder}" if cache is not None and cache.hits else ""
    print(f"wrote {docs}/report.md, {docs}/report.html, {docs}/results.json "
          f"({res['run']['wall_time_s']} s{reused}): " + ", ".join(f"{k} {v}" for k, v in res["summary"].items()))
    if args.strict and (ran["refuted"] or ran["inconclusive"]):
        return 1
    return 0


def cmd_regress(args) -> int:
    from . import context
    from .registry import load_claims
    from .regress import BaselineError, compare, load_baseline, moved_within_rule, n_checks, render, same_environment
    from .report import write_all
    from .verify import run_all

    try:
        baseline, where = load_baseline(args.baseline, Path.cwd())
    except BaselineError as e:
        return _fail(str(e))
    select = _selection(args)
    log = (lambda s: None) if args.quiet else (lambda s: print(s, flush=True))
    print(f"regress: baseline {where}", flush=True)
    with tempfile.TemporaryDirectory(prefix="attnverify-regress-") as tmp:
        out = Path(args.out) if args.out else Path(tmp)
        context.FIGURE_DIR = out / "figures"
        # recompute means recompute: the sweep's files go to a fresh folder, not .cache/sweeps
        saved = os.environ.get("ATTNVERIFY_SWEEPS")
        os.environ["ATTNVERIFY_SWEEPS"] = str(Path(tmp) / "sweeps")
        try:
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
    ran = {c["id"] for c in fresh["claims"]}
    changes = compare(baseline, fresh, ran=ran if select is not None else None,
                      registered={c.id for c in load_claims()})
    compared = ran & {c["id"] for c in baseline.get("claims", [])}
    same = same_environment(baseline, fresh)
    print(render(changes, where, len(compared), n_checks(baseline, compared), same,
                 None if same else moved_within_rule(baseline, fresh)), flush=True)
    return 1 if any(c.failure for c in changes) else 0


def cmd_sweep(args) -> int:
    """Run a sweep config's missing tasks (Dask by default) and print a one-line summary per layer."""
    from . import sweep

    cfg = sweep.load_config(args.config)  # InputError -> exit 2, naming the field
    if args.workers is not None and args.workers < 1:
        return _fail(f"--workers: must be >= 1, got {args.workers}")
    if args.scheduler and args.no_dask:
        return _fail("--scheduler: cannot be combined with --no-dask")
    if args.scheduler and "://" not in args.scheduler:
        return _fail(f"--scheduler: expected an address like tcp://HOST:8786, got {args.scheduler!r}")
    log = lambda s: print(s, flush=True)  # noqa: E731
    try:
        stats = sweep.run(cfg, args.out, local=args.no_dask, workers=args.workers, scheduler=args.scheduler, log=log)
        data = sweep.load(cfg, stats.out)
    except sweep.SweepError as e:
        print(f"attnverify: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("attnverify: interrupted; the finished tasks' files are kept: run the same command to resume",
              file=sys.stderr)
        return 130
    st = data["status"]
    print(f"{stats.out}: {stats.tasks} task files ({stats.reused} reused, {stats.computed} computed in "
          f"{stats.seconds:.0f} s), {len(st)} queries, {int((st == 2).sum())} unconverged")
    for mi, model in enumerate(cfg.models):
        for a in cfg.alpha:
            for layer in cfg.layers_of(model):
                m = (data["model"] == mi) & (data["alpha"] == a) & (data["layer"] == layer)
                print(f"  {model} alpha={a:g} layer {layer}: mean ||lambda*-alpha z||/||lambda*|| = "
                      f"{data['full'][m].mean():.4f}, in S: {data['restricted'][m].mean():.4f}")
    return 1 if (st == 2).any() else 0


def merge_into_previous(res: dict, path: Path) -> dict:
    """A selective run replaces only the claims it ran; the others keep their previous results."""
    from .verify import STATUSES

    try:
        old = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return res
    new = {c["id"]: c for c in res["claims"]}
    claims = [new.pop(c["id"], c) for c in old.get("claims", [])] + list(new.values())
    ran = {c["id"] for c in res["claims"]}
    errata = [e for e in old.get("errata", []) if e.get("claim") not in ran] + res["errata"]
    res = dict(res, claims=claims, errata=errata)
    res["summary"] = {s: sum(c["status"] == s for c in claims) for s in STATUSES}
    res["run"] = dict(res["run"], partial_rerun=sorted(ran))
    return res


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="attnverify", description=__doc__)
    sub = ap.add_subparsers(dest="cmd", required=True)
    v = sub.add_parser("verify", help="run the registered claims and write the report")
    v.add_argument("--strict", action="store_true", help="exit 1 if any claim is refuted or inconclusive")
    v.add_argument("-k", metavar="PATTERN", help="only claims whose ID or title contains PATTERN")
    v.add_argument("--only", nargs="+", metavar="ID", help="only these claim IDs")
    v.add_argument("--docs", default="docs", help="output folder (default: docs)")
    v.add_argument("--no-cache", action="store_true",
                   help="recompute every selected claim (default: reuse results of unchanged claims "
                        "from .cache/attnverify)")
    v.set_defaults(func=cmd_verify)
    g = sub.add_parser("regress", help="re-run the claims and compare with the committed baseline; "
                                       "exit 1 on any regression")
    g.add_argument("--baseline", metavar="FILE", help="default: the committed docs/results.json "
                   "(git show HEAD:docs/results.json); outside git, the file docs/results.json")
    g.add_argument("-k", metavar="PATTERN", help="only claims whose ID or title contains PATTERN")
    g.add_argument("--only", nargs="+", metavar="ID", help="only these claim IDs")
    g.add_argument("--out", metavar="DIR", help="also write the fresh results and report to DIR")
    g.add_argument("-q", "--quiet", action="store_true", help="print only the comparison")
    g.set_defaults(func=cmd_regress)
    s = sub.add_parser("solve", help="solve one instance of (3)/(7) given as JSON")
    s.add_argument("case", help="JSON file (or - for standard input)")
    s.set_defaults(func=cmd_solve)
    w = sub.add_parser("sweep", help="run a Section 8 sweep (model x corpus shard x layer x head) on Dask; "
                                     "see docs/sweep.md")
    w.add_argument("config", help="sweep config (TOML), e.g. sweeps/fig4.toml")
    w.add_argument("--scheduler", metavar="tcp://HOST:PORT", help="an existing Dask scheduler "
                   "(default: an embedded LocalCluster, one worker process per core)")
    w.add_argument("--out", metavar="DIR", help="result folder (default: .cache/sweeps/<hash>, where the report reads)")
    w.add_argument("--workers", type=int, metavar="N", help="worker processes on this machine (default: one per core)")
    w.add_argument("--no-dask", action="store_true", help="run without Dask: a plain loop (--workers 1) or a "
                   "process pool, as `make verify` does")
    w.set_defaults(func=cmd_sweep)
    args = ap.parse_args(argv)
    try:
        return args.func(args)
    except InputError as e:
        return _fail(str(e))


if __name__ == "__main__":
    sys.exit(main())
