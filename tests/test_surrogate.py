"Reward surrogate: learns a toy linear target, the step update by hand, span basis exact under SGD (not Adam), warm/step state, config errors."
import numpy as np
import pytest
import torch
from also.core import ConfigError
from also.bandits.surrogate import (FUSED_MIN, Optimizer, Surrogate, SurrogateConfig, _adam_step, _predict_all, extend_basis, init_params, train_mlp)


def toy(n, K=10, da=12, dc=6, seed=0):
    r = np.random.default_rng(seed)
    B = (r.normal(size=(K, da)) / np.sqrt(da)).astype(np.float32)
    u, w = r.normal(size=da), r.normal(size=dc)
    f = lambda k, c: 0.5 + 0.3 * B[k] @ u + 0.2 * c @ w / np.sqrt(dc)
    ks, C = r.integers(0, K, n), r.normal(size=(n, dc)).astype(np.float32)
    c_new = r.normal(size=dc).astype(np.float32)
    return B, ks, C, np.array([f(k, c) for k, c in zip(ks, C)]), c_new, np.array([f(k, c_new) for k in range(K)])


@pytest.mark.parametrize("kw", [{"mode": "retrain"}, {"mode": "retrain", "depth": 0}, {"mode": "retrain", "basis": "span"},
                                {"mode": "warm", "warm_epochs": 100}])
def test_learns_toy_linear_target(kw):
    B, ks, C, y, c_new, truth = toy(80)
    pred = Surrogate(seed=0, **kw).fit_predict(B, B[ks], y, C, c_new)
    assert np.mean((pred - truth) ** 2) < 0.05 * np.mean((y.mean() - truth) ** 2)


def test_step_mode_learns_online():
    "Fed one record per fit (one Adam step each), as an episode does: better than the mean predictor, worse than a retrain."
    B, ks, C, y, c_new, truth = toy(80)
    s = Surrogate(seed=0)
    assert (s.cfg.mode, s.cfg.steps, s.cfg.basis) == ("step", 1, "full")
    for n in range(1, 81): pred = s.fit_predict(B, B[ks[:n]], y[:n], C[:n], c_new)
    assert s.last_fit["steps"] == 1 and s.opt.t == 80
    assert np.mean((pred - truth) ** 2) < 0.5 * np.mean((y.mean() - truth) ** 2)


def _grad(theta, X, y, wd, clip=1.0):
    "Hand-computed clipped, weight-decayed MSE gradient of the linear model [w; b] on a full batch."
    w, b = theta[:-1], theta[-1]
    res = X @ w + b - y
    g = np.r_[2 / len(y) * X.T @ res, 2 / len(y) * res.sum()]
    n = np.linalg.norm(g)
    if clip / (n + 1e-6) < 1: g = g * clip / (n + 1e-6)
    return g + wd * theta


def test_step_update_by_hand():
    "Step mode on a linear surrogate (depth 0): SGD is theta - lr g; Adam's first step is lr g/(|g| + eps), its second uses the kept moments."
    B, ks, C, y, c_new, _ = toy(3)
    B64 = B.astype(np.float64)
    for opt in ("sgd", "adam"):
        s = Surrogate(seed=0, mode="step", depth=0, optimizer=opt)
        s.fit_predict(B, B[:0], y[:0])                                   # no records yet: no step
        th0 = s.flat.numpy().astype(np.float64).copy()
        p1 = s.fit_predict(B, B[ks[:2]], y[:2])                          # 2 records <= batch 8: both in the step
        g1 = _grad(th0, B64[ks[:2]], y[:2], wd=0.01 / 2)
        th1 = th0 - 0.01 * g1 if opt == "sgd" else th0 - 0.01 * g1 / (np.abs(g1) + 1e-8)
        np.testing.assert_allclose(s.flat.numpy(), th1, atol=2e-6)
        np.testing.assert_allclose(p1, B64 @ th1[:-1] + th1[-1], atol=2e-6)
        s.fit_predict(B, B[ks], y)                                       # a third record: one more step
        g2 = _grad(th1, B64[ks], y, wd=0.01 / 3)
        if opt == "sgd": th2 = th1 - 0.01 * g2
        else:
            m, v = 0.09 * g1 + 0.1 * g2, 0.999 * 0.001 * g1 ** 2 + 0.001 * g2 ** 2
            th2 = th1 - 0.01 / (1 - 0.9 ** 2) * m / (np.sqrt(v / (1 - 0.999 ** 2)) + 1e-8)
        np.testing.assert_allclose(s.flat.numpy(), th2, atol=2e-6)


def test_span_basis_exact_under_sgd_not_adam():
    "Same records, same start (W1 Q), same minibatches: SGD in span coordinates equals the full network; Adam does not."
    B, ks, C, y, c_new, truth = toy(40)
    X = np.hstack([B[ks], C]).astype(np.float32)
    Qa, Qc = extend_basis(None, np.vstack([B, B[ks]])), extend_basis(None, np.vstack([C, c_new[None]]))
    Q = np.zeros((18, Qa.shape[1] + Qc.shape[1]), np.float32); Q[:12, :Qa.shape[1]] = Qa; Q[12:, Qa.shape[1]:] = Qc
    rel = {}
    for opt in ("sgd", "adam"):
        cfg = SurrogateConfig(mode="retrain", optimizer=opt, epochs=40, hidden=16)
        full = init_params(18, 18, cfg, torch.Generator().manual_seed(0))
        span = torch.cat([(full[:16 * 18].view(16, 18) @ torch.from_numpy(Q)).reshape(-1), full[16 * 18:]])
        for flat, Xb in ((full, X), (span, X @ Q)):
            train_mlp(flat, torch.from_numpy(np.ascontiguousarray(Xb)), torch.from_numpy(y.astype(np.float32)), cfg, 40,
                      torch.Generator().manual_seed(3))
        pf = _predict_all(full, cfg, B, c_new)
        ps = _predict_all(span, cfg, B @ Q[:12, :Qa.shape[1]], c_new @ Q[12:, Qa.shape[1]:])
        rel[opt] = np.abs(pf - ps).max() / np.ptp(pf)
    assert rel["sgd"] < 1e-4 and rel["adam"] > 1e-2, rel


def test_deterministic_under_seed():
    B, ks, C, y, c_new, _ = toy(15)
    for kw in ({}, {"mode": "retrain"}):
        p1 = Surrogate(seed=5, **kw).fit_predict(B, B[ks], y, C, c_new)
        p2 = Surrogate(seed=5, **kw).fit_predict(B, B[ks], y, C, c_new)
        p3 = Surrogate(seed=6, **kw).fit_predict(B, B[ks], y, C, c_new)
        np.testing.assert_array_equal(p1, p2); assert not np.allclose(p1, p3)


def test_warm_mode_keeps_weights_and_grows_basis(monkeypatch):
    import also.bandits.surrogate as S
    B, ks, C, y, c_new, _ = toy(12, dc=40)
    s = Surrogate(seed=0, mode="warm", basis="span", hidden=8)
    s.fit_predict(B, B[ks[:6]], y[:6], C[:6], C[6])
    ra, rc, flat0 = s.Qa.shape[1], s.Qc.shape[1], s.flat.clone()
    seen = {}
    orig = S.train_mlp
    monkeypatch.setattr(S, "train_mlp", lambda flat, *a: (seen.setdefault("init", flat.clone()), orig(flat, *a))[1])
    s.fit_predict(B, B[ks], y, C, c_new)
    assert s.Qc.shape[1] > rc and s.Qa.shape[1] == ra and s.last_fit["epochs"] <= s.cfg.warm_epochs
    H, n0, n1 = 8, ra + rc, ra + s.Qc.shape[1]
    W_old, W_new = flat0[: H * n0].view(H, n0), seen["init"][: H * n1].view(H, n1)
    torch.testing.assert_close(W_new[:, :n0], W_old)                    # old first-layer columns carried over
    torch.testing.assert_close(seen["init"][H * n1:], flat0[H * n0:])   # upper layers carried over


@pytest.mark.parametrize("basis", ["full", "span"])
def test_step_mode_state_continues_exactly(basis):
    "A step-mode surrogate rebuilt from state() (weights, moments, bases) predicts exactly like the original, also after growing."
    B, ks, C, y, c_new, _ = toy(12, dc=30)
    a, b = Surrogate(seed=2, basis=basis), Surrogate(seed=2, basis=basis)
    for n in range(1, 7):
        for s in (a, b): s.fit_predict(B, B[ks[:n]], y[:n], C[:n], C[n])
    c = Surrogate(seed=2, basis=basis); c.load(b.state())
    for n in range(7, 11):
        np.testing.assert_array_equal(a.fit_predict(B, B[ks[:n]], y[:n], C[:n], C[n]), c.fit_predict(B, B[ks[:n]], y[:n], C[:n], C[n]))


def test_fused_adam_matches_torch():
    "Above FUSED_MIN parameters Adam runs in torch's fused kernel; it agrees with torch.optim.Adam and the numpy path."
    n = FUSED_MIN + 7
    p0 = torch.randn(n, generator=torch.Generator().manual_seed(0))
    pt = p0.clone().requires_grad_(True); ref = torch.optim.Adam([pt], lr=0.01, weight_decay=0.003)
    o = Optimizer(p0.clone(), SurrogateConfig()); assert o.fused
    for i in range(4):
        g = torch.randn(n, generator=torch.Generator().manual_seed(i + 1)) * 0.01
        pt.grad = g.clone(); torch.nn.utils.clip_grad_norm_([pt], 1.0); ref.step()
        o.g.copy_(g); o.step(0.01, 0.003)
    d = (o.flat - pt.detach()).abs()
    assert d.max() < 1e-3 and (d > 1e-6).float().mean() < 1e-3   # float32 rounding, amplified where moments nearly cancel


def test_adam_step_matches_torch():
    p0, g0 = torch.randn(20), torch.randn(20) * 5
    pt = p0.clone().requires_grad_(True); pt.grad = g0.clone()
    torch.nn.utils.clip_grad_norm_([pt], 1.0); torch.optim.Adam([pt], lr=0.01, weight_decay=0.01).step()
    p, g = p0.numpy().copy(), g0.numpy().copy()
    z = lambda: np.zeros(20, np.float32)
    _adam_step(p, g, z(), z(), z(), 1, 0.01, 0.01, 1.0, 0.9, 0.999, 1e-8)
    np.testing.assert_allclose(p, pt.detach().numpy(), atol=1e-6)


def test_extend_basis():
    r = np.random.default_rng(0)
    A = r.normal(size=(4, 30)); A[2] = A[0] - A[1]
    Q = extend_basis(None, A)
    assert Q.shape == (30, 3); np.testing.assert_allclose(Q.T @ Q, np.eye(3), atol=1e-10)
    np.testing.assert_allclose(A @ Q @ Q.T, A, atol=1e-10)


def test_config_errors():
    with pytest.raises(ConfigError, match="mode must be 'step', 'retrain' or 'warm'"): SurrogateConfig(mode="x")
    with pytest.raises(ConfigError, match="optimizer must be 'adam' or 'sgd'"): SurrogateConfig(optimizer="lbfgs")
    with pytest.raises(ConfigError, match="hidden must be >= 1"): SurrogateConfig(hidden=0)
    with pytest.raises(ConfigError, match="steps must be >= 1"): SurrogateConfig(steps=0)
    B, ks, C, y, c_new, _ = toy(5)
    with pytest.raises(ConfigError, match="5 record arms but 4 rewards"): Surrogate().fit_predict(B, B[ks], y[:4])
