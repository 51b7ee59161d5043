"""The Section 8 sweep (attnverify.sweep): config schema, resumable per-task files, and a Dask
cluster that loses a worker mid-run and still produces bit-identical results."""

import json
import math
import os
import signal
import time

import numpy as np
import pytest

from attnverify import cli, sweep

FIG4 = sweep.ROOT / "sweeps" / "fig4.toml"
BASE = {"models": ["all-MiniLM-L6-v2"], "layers": [0, 3], "heads": "all", "alpha": [1.0], "shard_size": 1,
        "corpus": {"source": "pydoc_data.topics", "n_sentences": 6}}


def _value(v):
    if isinstance(v, list):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    if isinstance(v, float) and math.isnan(v):
        return "nan"
    return json.dumps(v)  # strings, numbers, booleans and lists of them are spelled the same in TOML


def toml(d: dict) -> str:
    top = [f"{k} = {_value(v)}" for k, v in d.items() if not isinstance(v, dict)]
    tables = [f"[{k}]\n" + "\n".join(f"{kk} = {_value(vv)}" for kk, vv in v.items())
              for k, v in d.items() if isinstance(v, dict)]
    return "\n".join(top) + "\n" + "\n".join(tables) + "\n"


def with_(change: dict, drop=()):
    d = json.loads(json.dumps(BASE))
    for k, v in change.items():
        if "." in k:
            a, b = k.split(".")
            d[a][b] = v
        else:
            d[k] = v
    for k in drop:
        if "." in k:
            a, b = k.split(".")
            del d[a][b]
        else:
            del d[k]
    return d


# ------------------------------------------------------------------ the config schema
def test_committed_config_is_valid():
    cfg = sweep.load_config(FIG4)
    assert cfg.models == ("all-MiniLM-L6-v2",) and 1.0 in cfg.alpha and cfg.n_sentences >= 500
    assert cfg.layers_of(cfg.models[0]) == tuple(range(6)) and cfg.heads_of(cfg.models[0]) == tuple(range(12))


@pytest.mark.parametrize("data, field, words", [
    (with_({}, drop=["alpha"]), "alpha", "missing key"),
    (with_({}, drop=["corpus.n_sentences"]), "corpus.n_sentences", "missing key"),
    (with_({}, drop=["corpus"]), "corpus", "missing key"),
    (with_({"shard_size": "25"}), "shard_size", "must be an integer"),
    (with_({"shard_size": True}), "shard_size", "must be an integer"),
    (with_({"shard_size": 0}), "shard_size", ">= 1"),
    (with_({"alpha": "1.0"}), "alpha", "must be a list"),
    (with_({"alpha": []}), "alpha", "must not be empty"),
    (with_({"alpha": [1.0, 0.0]}), "alpha[1]", "> 0"),
    (with_({"alpha": [-0.5]}), "alpha[0]", "> 0"),
    (with_({"alpha": [float("nan")]}), "alpha[0]", "finite"),
    (with_({"alpha": ["1"]}), "alpha[0]", "must be a number"),
    (with_({"models": ["bert-base-uncased"]}), "models[0]", "unknown model"),
    (with_({"models": "all-MiniLM-L6-v2"}), "models", "must be a list"),
    (with_({"layers": [0, 6]}), "layers[1]", "out of range"),
    (with_({"layers": [1, 1]}), "layers", "duplicates"),
    (with_({"heads": "some"}), "heads", '"all" or a list'),
    (with_({"heads": [0.5]}), "heads[0]", "must be an integer"),
    (with_({"corpus.n_sentences": 0}), "corpus.n_sentences", ">= 1"),
    (with_({"corpus.source": "wikipedia"}), "corpus.source", "unknown source"),
    (with_({"corpus": 3}), "corpus", "must be a table"),
    (with_({"threads": 4}), "threads", "unknown key"),
    (with_({"corpus.language": "en"}), "corpus.language", "unknown key"),
])
def test_bad_config_one_line_error_exit_2(tmp_path, capsys, data, field, words):
    path = tmp_path / "bad.toml"
    path.write_text(toml(data))
    assert cli.main(["sweep", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err  # one line
    assert err.startswith(f"attnverify: error: {field}: ") and words in err, err


def test_not_toml_and_missing_file(tmp_path, capsys):
    bad = tmp_path / "x.toml"
    bad.write_text("models = [\n")
    assert cli.main(["sweep", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"attnverify: error: {bad}: not valid TOML") and err.count("\n") == 1
    assert cli.main(["sweep", str(tmp_path / "none.toml")]) == 2
    assert "cannot read" in capsys.readouterr().err


def test_bad_command_line(tmp_path, capsys):
    path = tmp_path / "ok.toml"
    path.write_text(toml(BASE))
    assert cli.main(["sweep", str(path), "--scheduler", "localhost:8786"]) == 2
    assert capsys.readouterr().err.startswith("attnverify: error: --scheduler: expected an address")
    assert cli.main(["sweep", str(path), "--workers", "0"]) == 2
    assert capsys.readouterr().err.startswith("attnverify: error: --workers: ")


def test_toml_helper_round_trips():
    import tomllib

    assert tomllib.loads(toml(BASE)) == BASE


# ------------------------------------------------------------------ running (needs the model)
def _arrays(cfg, out):
    r = sweep.load(cfg, out)
    r.pop("meta")
    return r


def _same(a, b):
    return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


@pytest.fixture(scope="module")
def small():
    """The small sweep (6 sentences x layers 0 and 3 x 12 heads, 6 tasks), solved once by a plain loop."""
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    return sweep.parse_config(BASE)


@pytest.fixture(scope="module")
def reference(small, tmp_path_factory):
    out = tmp_path_factory.mktemp("reference")
    stats = sweep.run(small, out, local=True, workers=1)
    assert (stats.tasks, stats.reused, stats.computed) == (6, 0, 6)
    return out


def test_files_are_the_results_and_a_rerun_computes_nothing(small, reference):
    r = _arrays(small, reference)
    assert len(r["full"]) == len(r["layer"]) and set(np.unique(r["layer"])) == {0, 3}
    assert set(np.unique(r["sentence"])) == set(range(6)) and set(np.unique(r["head"])) == set(range(12))
    assert np.all(r["status"] == 0) and np.all(r["restricted"] >= r["full"] * (1 - 1e-12))
    assert np.all(r["cross_diff"] <= r["cross_tol"]) and len(r["cross_diff"]) == 2 * 2  # 2 sentences x 2 layers
    again = sweep.run(small, reference, local=True, workers=1)
    assert (again.reused, again.computed) == (6, 0)


def test_resume_recomputes_only_missing_or_damaged_files(small, reference, tmp_path):
    import shutil

    out = tmp_path / "resume"
    shutil.copytree(reference, out)
    files = [sweep.task_file(out, t) for t in sweep.tasks(small)]
    files[1].unlink()  # a crash before this task's file was written
    files[4].write_bytes(files[4].read_bytes()[:100])  # not possible with os.replace, but must not be trusted
    (out / f".{files[2].name}.123.tmp").write_bytes(b"half")  # a temporary file left by a crash: ignored
    stats = sweep.run(small, out, local=True, workers=1)
    assert (stats.reused, stats.computed) == (4, 2)
    assert _same(_arrays(small, out), _arrays(small, reference))


def test_file_names_follow_the_content(small):
    keys = [t["key"] for t in sweep.tasks(small)]
    assert len(set(keys)) == len(keys)
    other = sweep.parse_config(with_({"alpha": [1.0, 0.5]}))
    assert not set(keys) & {t["key"] for t in sweep.tasks(other)}  # another alpha grid: other results
    assert sweep.tasks(sweep.parse_config(BASE))[0]["key"] == keys[0]  # the same config: the same names


def test_load_refuses_an_incomplete_sweep(small, tmp_path):
    with pytest.raises(sweep.SweepError, match="6 of 6 task files missing"):
        sweep.load(small, tmp_path)


def test_a_worker_with_other_code_is_refused(small, tmp_path, monkeypatch):
    real = sweep.run_task

    def stale(spec):
        r = real(spec)
        r["meta"]["version"] = dict(r["meta"]["version"], code={"attnverify/batched.py": "old"})
        return r

    monkeypatch.setattr(sweep, "run_task", stale)
    with pytest.raises(sweep.SweepError, match="other code or packages"):
        sweep.run(sweep.parse_config(with_({"corpus.n_sentences": 1})), tmp_path, local=True, workers=1)
    assert not list(tmp_path.glob("*.npz"))


def test_process_pool_gives_the_same_bits(small, reference, tmp_path):
    """`make verify`'s path (a pool of worker processes, no Dask) equals the plain loop bit for bit."""
    stats = sweep.run(small, tmp_path, local=True, workers=2)
    assert stats.computed == 6
    assert _same(_arrays(small, tmp_path), _arrays(small, reference))


def test_dask_cluster_survives_a_killed_worker(small, reference, tmp_path):
    """Two worker processes; after the first result, SIGKILL a worker that is running a task.
    The sweep must finish (Dask reruns the lost tasks) with results identical to the plain loop."""
    distributed = pytest.importorskip("distributed")
    t0 = time.perf_counter()
    killed = {}
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) \
            as cluster, distributed.Client(cluster) as client:
        pids = client.run(os.getpid)

        def kill_one(i, meta):
            if killed:
                return
            busy = [w for w, keys in client.processing().items() if keys]
            assert busy, "no task in flight when the first result arrived: the test cannot kill mid-run"
            victim = busy[-1]
            killed.update(worker=victim, pid=pids[victim], in_flight=len(client.processing()[victim]), done=i + 1)
            os.kill(pids[victim], signal.SIGKILL)

        stats = sweep.run(small, tmp_path, client=client, on_result=kill_one)
    assert killed and killed["in_flight"] >= 1 and killed["done"] < stats.tasks
    with pytest.raises(ProcessLookupError):
        os.kill(killed["pid"], 0)  # the worker really died
    assert stats.computed == stats.tasks == 6
    assert _same(_arrays(small, tmp_path), _arrays(small, reference))
    assert time.perf_counter() - t0 < 120


def test_dask_workers_keep_glibcs_heap_for_large_temporaries():
    """The embedded LocalCluster's workers start with Dask's environment plus MALLOC_MMAP_THRESHOLD_: Dask's
    MALLOC_TRIM_THRESHOLD_ alone turns off glibc's dynamic mmap threshold, which made the solver 40% slower
    in a worker (every large temporary mmap'ed and faulted in anew)."""
    pytest.importorskip("distributed")
    import dask

    env = sweep._worker_environ()
    assert env["MALLOC_MMAP_THRESHOLD_"] == sweep.WORKER_MMAP_THRESHOLD <= 32 * 2**20  # glibc's 64-bit maximum
    for k, v in (dask.config.get("distributed.nanny.pre-spawn-environ") or {}).items():
        assert env[k] == v  # Dask's own settings kept
