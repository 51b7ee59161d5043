"""The training harness (attnverify.training) and tiny versions of the three training-scale claims:
EOS-SHARP on the digits (checks.eos_training), FD-VIT/reduced (checks.vit_reduced), GOAT-EXTRAP
(checks.goat_extrap).  Must-fail cases: each decision check against runs that contradict it, and the
mutants of mutants/training.py (HVP halved, edge 1/eta, OT layer as softmax, mixing off, prior ignored,
prescaled mask)."""

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("sklearn")

from attnverify import context, training  # noqa: E402
from attnverify.evidence import Evidence, Inconclusive  # noqa: E402
from attnverify.checks import eos_training as E  # noqa: E402
from attnverify.checks import goat_extrap as G  # noqa: E402
from attnverify.checks import vit_reduced as V  # noqa: E402
from attnverify.mutants import training as MT  # noqa: E402


@pytest.fixture(autouse=True)
def _figures(tmp_path, monkeypatch):
    monkeypatch.setattr(context, "FIGURE_DIR", tmp_path)  # never into the project's docs/


# ------------------------------------------------------------------ the harness
def test_deterministic_and_restores_settings():
    threads = torch.get_num_threads()
    a = G.train_one("GOAT", 0, steps=15)
    b = G.train_one("GOAT", 0, steps=15)
    assert a["acc"] == b["acc"]
    assert all(torch.equal(a["state"][k], b["state"][k]) for k in a["state"])
    assert torch.get_num_threads() == threads and torch.get_default_dtype() == torch.float32
    c = G.train_one("GOAT", 1, steps=15)
    assert any(not torch.equal(a["state"][k], c["state"][k]) for k in a["state"])  # the seed matters


def test_digits_split_disjoint_stratified():
    tr, va, te = training.digits(500, 200, 100)
    assert (len(tr.y), len(va.y), len(te.y)) == (500, 200, 100)
    assert np.bincount(tr.y, minlength=10).min() >= 45 and np.bincount(va.y, minlength=10).min() >= 18
    flat = lambda s: {x.tobytes() for x in s.X}  # noqa: E731
    assert not (flat(tr) & flat(te)) or len(flat(tr) & flat(te)) < 3  # a handful of digits occur twice in the set
    tr2, _, _ = training.digits(500, 200, 100)
    assert np.array_equal(tr.X, tr2.X) and np.array_equal(tr.y, tr2.y)
    with pytest.raises(ValueError, match="only 1797"):
        training.digits(1500, 300, 100)


def test_top_eigenvalue_matches_dense_hessian():
    with training.deterministic(0) as t:
        X, Y = t.randn(20, 3), t.randn(20, 2)
        net = t.nn.Sequential(t.nn.Linear(3, 4), t.nn.Tanh(), t.nn.Linear(4, 2))
        params = list(net.parameters())
        loss = lambda: 0.5 * ((net(X) - Y) ** 2).sum(1).mean()  # noqa: E731
        flatp = training.flat(params)
        fl = training._Flat(params)

        def f(theta):
            ps = [p for p in t.split(theta, fl.sizes)]
            out = t.func.functional_call(net, {n: p.reshape(s) for (n, _), p, s in
                                               zip(net.named_parameters(), ps, fl.shapes)}, (X,))
            return 0.5 * ((out - Y) ** 2).sum(1).mean()

        H = t.autograd.functional.hessian(f, t.tensor(flatp)).numpy()
        top = np.linalg.eigvalsh(H)[-1]
        for method in ("lanczos", "power"):
            e = training.top_eigenvalue(loss, params, method=method, rtol=1e-6, maxit=3000)
            assert e.converged and abs(e.value - top) <= max(e.residual, 1e-10), method


def test_gradient_descent_on_a_quadratic():
    """L = 1/2 sum h_i x_i^2: the sharpness is max h at every step, GD contracts for eta < 2/max h."""
    with training.deterministic(0) as t:
        h = t.tensor([1.0, 3.0, 5.0])
        x = t.ones(3, requires_grad=True)
        loss = lambda: 0.5 * (h * x * x).sum()  # noqa: E731
        r = training.gradient_descent(loss, [x], 0.3, 30, 10)
        assert np.allclose(r.sharpness[:, 1], 5.0, rtol=1e-6) and r.loss[-1] < 1e-3 * r.loss[0]
        with pytest.raises(FloatingPointError, match="diverged"):
            x2 = t.ones(3, requires_grad=True)
            training.gradient_descent(lambda: 0.5 * (h * x2 * x2).sum(), [x2], 1.0, 1000, 2000)  # |1 - 5| = 4 per step


def test_statistics():
    m, lo, hi = training.mean_ci([1.0, 2.0, 3.0], 0.95)
    assert m == 2.0 and lo == pytest.approx(2 - 4.302653 / math.sqrt(3), rel=1e-5)
    t_, p = training.paired_t([1.0, 2.0, 3.1], [0.0, 1.1, 2.0])
    assert t_ > 0 and p < 0.01
    assert training.confidence_flip([1.0, 2.0, 3.1], [0.0, 1.1, 2.0]) == pytest.approx(1 - p)
    assert training.paired_t([1.0, 1.0], [0.5, 0.5]) == (math.inf, 0.0)  # no spread


def test_runlog_table_and_progress(capsys):
    log = training.RunLog("c", ["a", "b"])
    log.add("x", np.float64(1.23456789))
    assert log.table().rows == [["x", 1.235]]
    with pytest.raises(ValueError):
        log.add("only one")
    p = training.Progress("L", every=100)
    p("first")
    p("suppressed")
    assert capsys.readouterr().err.count("[L") == 1


# ------------------------------------------------------------------ EOS-SHARP
def _trace(ratios, eta, every=20):
    return np.array([[i * every, r * 2 / eta, 0.0, 1.0] for i, r in enumerate(ratios)])


def test_at_edge_criterion():
    eta = 0.1
    hover = _trace(np.r_[np.linspace(0.3, 1.05, 30), 1.0 + 0.03 * np.sin(np.arange(20))], eta)
    below = _trace(np.r_[np.linspace(0.3, 0.6, 30), 0.6 * np.ones(20)], eta)
    assert E.at_edge(hover, eta)["eps_min"] <= 0.05
    assert E.at_edge(below, eta)["eps_min"] >= 0.4 and E.at_edge(below, eta)["reach"] is None
    # the edge taken as 1/eta: the same hovering trace is then far off
    assert MT._edge_one_over_eta(E.at_edge)(hover, eta)["eps_min"] >= 0.5


def test_sensitivity_record():
    s = E.sensitivity(0.1, (0.05, 0.2), "eps", "why")
    assert s["verdict_over_range"] == "flips" and s["flips_at"] == 0.1
    assert E.sensitivity(0.01, (0.05, 0.2), "eps", "why")["verdict_over_range"] == "stable"


@pytest.fixture
def tiny_eos(monkeypatch):
    for name, value in dict(N_TRAIN=64, WIDTH=8, T_SMALL=200, HOVER=60, EVERY=10, EVERY_SMALL=20, WINDOW=40,
                            SEEDS=(0,)).items():
        monkeypatch.setattr(E, name, value)


def test_eos_tiny_run_records_every_check(tiny_eos):
    exp = E._experiment("tanh MLP", 0, training.Progress("t", every=1e9))
    ev = Evidence()
    E._record(ev, [exp, dict(exp, arch="ReLU MLP")])
    keys = {c.key for c in ev.checks}
    assert {"lanczos-converged", "lanczos-vs-power", "hvp-vs-finite-difference", "edge-tanh", "edge-relu",
            "sharpens-tanh", "edges-above-s0-tanh"} <= keys
    measured = {c.key: c for c in ev.checks}
    assert measured["lanczos-converged"].passed and measured["hvp-vs-finite-difference"].passed
    for k in ("edge-tanh", "sharpens-tanh"):
        assert measured[k].threshold_kind == "judgement" and measured[k].sensitivity["declared_range"]
    assert len(ev.tables) == 2 and ev.finding


def test_eos_hvp_mutant_detected(tiny_eos, monkeypatch):
    with training.deterministic(0) as t:
        X, Y = E._data(t)
        net = E._net("tanh MLP", t)
        params = list(net.parameters())
        loss = lambda: 0.5 * ((net(X) - Y) ** 2).sum(1).mean()  # noqa: E731
        err, tol, _ = E._hvp_fd(t, loss, params)
        assert err <= tol
        monkeypatch.setattr(training, "hvp", MT._hvp_halved(training.hvp))
        err, tol, _ = E._hvp_fd(t, loss, params)
        assert err > tol


# ------------------------------------------------------------------ FD-VIT/reduced
def test_ot_layer_equals_ot_attention():
    ev = Evidence()
    V._ot_layer_evidence(ev)
    assert ev.failed() == [] and ev.checks[0].key == "reduced-ot-layer-equals-ot-attention"


def test_ot_layer_as_softmax_detected():
    ev = Evidence()
    V._ot_layer_evidence(ev, weights=MT._ot_as_softmax(V.ot_weights))
    assert ev.failed() == ["reduced-ot-layer-equals-ot-attention"]


def test_ot_weights_present_mask_equals_the_subset():
    """Templates outside A (present = False) are the same as templates that are not there at all."""
    from attnverify.ot_attention import ot_attention

    rng = np.random.default_rng(0)
    T, z = rng.normal(size=(8, 3)), rng.normal(size=(2, 3))
    u = np.r_[np.full(4, 0.25), np.zeros(4)]
    M = -(T @ T.T) + 10
    present = torch.tensor([True] * 6 + [False] * 2)
    P = V.ot_weights(torch.tensor(z @ T.T), torch.tensor(M), torch.tensor(u), 1.7, present).numpy()
    _, p_sub = ot_attention(T[:6], u[:6], z, M[:6, :6], 1.0, 1.7, return_weights=True)
    assert np.allclose(P[:, :6], p_sub, atol=1e-14) and np.all(P[:, 6:] == 0)
    assert np.allclose(P.sum(-1), 1, atol=1e-14)


def test_vit_tiny_training_and_mixing():
    data = training.digits(200, 50, 50)
    r = V.train_one("OT-ViT", 3e-3, 0, data, epochs=1)
    assert 0.3 < r["mixed"] / r["seen"] < 0.7 and np.isfinite(r["val"])
    again = V.train_one("OT-ViT", 3e-3, 0, data, epochs=1)
    assert again["val"] == r["val"] and again["test"] == r["test"]
    gen = training.generator(0)
    y = torch.tensor([0, 1, 0, 2, 1, 3])
    partner, mixed = V.mixing_partners(y, gen, torch)
    assert all(y[partner[i]] == y[i] and partner[i] != i for i in range(6) if int(y[i]) != 2 and int(y[i]) != 3)
    assert not mixed[3] and not mixed[5] and partner[3] == 3  # no same-class image in the batch: never mixed
    _, none = MT._never_mixed(V.mixing_partners)(y, training.generator(0), torch)
    assert not none.any()


def _vit_runs(diff):
    runs = []
    for m in V.MODELS:
        for lr in V.LRS:
            for s in V.SEEDS:
                base = 0.8 + 0.01 * s + (diff[s] if m == "OT-ViT" else 0.0)
                runs.append({"model": m, "lr": lr, "seed": s, "val": base - (0.1 if lr != V.LRS[1] else 0), "val_early": 0.7,
                             "test": base, "mixed": 50 if m == "OT-ViT" else 0, "seen": 100 if m == "OT-ViT" else 0,
                             "seconds": 0.0})
    return runs


@pytest.mark.parametrize("diff, passed, flips", [([0.02, 0.03, 0.025, 0.02, 0.03], True, False),
                                                 ([-0.02, -0.03, -0.025, -0.02, -0.03], False, False),
                                                 ([0.03, 0.0, 0.02, 0.005, 0.01], False, True)])
def test_vit_decision(diff, passed, flips):
    runs = _vit_runs(diff)
    sel = {m: V.select_rate(runs, m) for m in V.MODELS}
    assert sel == {"ViT": V.LRS[1], "OT-ViT": V.LRS[1]}
    ev = Evidence()
    V._record(ev, runs, sel)
    c = next(c for c in ev.checks if c.key == "reduced-ot-vit-outperforms")
    assert c.passed is passed and (c.sensitivity["verdict_over_range"] == "flips") is flips
    assert all(c.key.startswith("reduced-") for c in ev.checks)


# ------------------------------------------------------------------ GOAT-EXTRAP
def test_goat_mask_path_equals_explicit_softmax(monkeypatch):
    run = G.train_one("GOAT", 0, steps=5)
    ev = Evidence()
    G._mask_path_evidence(ev, run)
    assert ev.failed() == []
    monkeypatch.setattr(G, "sdpa", MT._mask_prescaled(G.sdpa))
    ev = Evidence()
    G._mask_path_evidence(ev, run)
    assert ev.failed() == ["sdpa-mask-equals-explicit-prior"]


def test_goat_prior_is_an_additive_bias_in_sdpa():
    """SDPA with a float mask adds it after the scaling: the same as an explicit softmax with log pi."""
    with training.deterministic(0, "float64") as t:
        q, k, v = t.randn(1, 2, 5, 4), t.randn(1, 2, 5, 4), t.randn(1, 2, 5, 4)
        mask = G.goat_prior(t.randn(2, 1, 1), t.randn(2, 1, 1, G.BUMPS), t.arange(5.0)[:, None] - t.arange(5.0))
        p = t.softmax(q @ k.transpose(-1, -2) / 2 + mask, -1)
        assert t.allclose(G.sdpa(q, k, v, mask), p @ v, atol=1e-14)


def test_goat_prior_ignored_mutant_changes_the_model():
    delta = torch.arange(6.0)[:, None] - torch.arange(6.0)
    slope, bumps = torch.ones(2, 1, 1), torch.ones(2, 1, 1, G.BUMPS)
    assert torch.all(MT._prior_ignored(G.goat_prior)(slope, bumps, delta) == 0)
    assert not torch.all(G.goat_prior(slope, bumps, delta) == 0)


def _goat_runs(acc):
    return [{"scheme": sc, "seed": s, "acc": dict(zip(G.TEST_LENGTHS, acc[sc])), "seconds": 0.0}
            for sc in G.SCHEMES for s in G.SEEDS]


@pytest.mark.parametrize("goat, passed, flips", [((1.0, 0.99, 0.99), True, False),
                                                 ((0.27, 0.23, 0.22), False, False),  # prior ignored: no position
                                                 ((1.0, 0.97, 0.93), False, True)])
def test_goat_decision(goat, passed, flips, monkeypatch):
    monkeypatch.setattr(G, "_draw", lambda runs: None)
    ev = Evidence()
    G._record(ev, _goat_runs({"learned absolute": (1.0, 0.5, 0.27), "ALiBi": (0.27, 0.23, 0.22), "GOAT": goat}))
    c = next(c for c in ev.checks if c.key == "goat-combines")
    assert c.passed is passed and (c.sensitivity["verdict_over_range"] == "flips") is flips


def test_goat_uninformative_task_is_inconclusive(monkeypatch):
    monkeypatch.setattr(G, "_draw", lambda runs: None)
    with pytest.raises(Inconclusive, match="does not separate"):
        G._record(Evidence(), _goat_runs({"learned absolute": (1.0, 0.98, 0.97), "ALiBi": (0.3, 0.3, 0.3),
                                          "GOAT": (1.0, 1.0, 1.0)}))
