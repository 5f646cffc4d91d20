"Reward surrogate: learns a toy linear target, determinism, span basis vs full inputs, warm mode, config errors."
import numpy as np
import pytest
import torch
from also.core import ConfigError
from also.surrogate import Surrogate, SurrogateConfig, _adam_step, extend_basis


def toy(n, K=10, da=12, dc=6, seed=0):
    r = np.random.default_rng(seed)
    B = (r.normal(size=(K, da)) / np.sqrt(da)).astype(np.float32)
    u, w = r.normal(size=da), r.normal(size=dc)
    f = lambda k, c: 0.5 + 0.3 * B[k] @ u + 0.2 * c @ w / np.sqrt(dc)
    ks, C = r.integers(0, K, n), r.normal(size=(n, dc)).astype(np.float32)
    c_new = r.normal(size=dc).astype(np.float32)
    return B, ks, C, np.array([f(k, c) for k, c in zip(ks, C)]), c_new, np.array([f(k, c_new) for k in range(K)])


@pytest.mark.parametrize("kw", [{}, {"depth": 0}, {"mode": "warm", "warm_epochs": 100}])
def test_learns_toy_linear_target(kw):
    B, ks, C, y, c_new, truth = toy(80)
    pred = Surrogate(seed=0, **kw).fit_predict(B, B[ks], y, C, c_new)
    assert np.mean((pred - truth) ** 2) < 0.05 * np.mean((y.mean() - truth) ** 2)


def test_span_basis_close_to_full_inputs():
    B, ks, C, y, c_new, truth = toy(40)
    ps = Surrogate(seed=1).fit_predict(B, B[ks], y, C, c_new)
    pf = Surrogate(seed=1, basis="full").fit_predict(B, B[ks], y, C, c_new)
    assert np.mean((ps - truth) ** 2) < 0.1 * np.var(truth) and np.mean((pf - truth) ** 2) < 0.1 * np.var(truth)


def test_deterministic_under_seed():
    B, ks, C, y, c_new, _ = toy(15)
    p1 = Surrogate(seed=5).fit_predict(B, B[ks], y, C, c_new)
    p2 = Surrogate(seed=5).fit_predict(B, B[ks], y, C, c_new)
    p3 = Surrogate(seed=6).fit_predict(B, B[ks], y, C, c_new)
    np.testing.assert_array_equal(p1, p2); assert not np.allclose(p1, p3)


def test_warm_mode_keeps_weights_and_grows_basis(monkeypatch):
    import also.surrogate as S
    B, ks, C, y, c_new, _ = toy(12, dc=40)
    s = Surrogate(seed=0, mode="warm", hidden=8)
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


def test_extend_basis():
    r = np.random.default_rng(0)
    A = r.normal(size=(4, 30)); A[2] = A[0] - A[1]
    Q = extend_basis(None, A)
    assert Q.shape == (30, 3); np.testing.assert_allclose(Q.T @ Q, np.eye(3), atol=1e-10)
    np.testing.assert_allclose(A @ Q @ Q.T, A, atol=1e-10)


def test_adam_step_matches_torch():
    p0, g0 = torch.randn(20), torch.randn(20) * 5
    pt = p0.clone().requires_grad_(True); pt.grad = g0.clone()
    torch.nn.utils.clip_grad_norm_([pt], 1.0); torch.optim.Adam([pt], lr=0.01, weight_decay=0.01).step()
    p, g = p0.numpy().copy(), g0.numpy().copy()
    z = lambda: np.zeros(20, np.float32)
    _adam_step(p, g, z(), z(), z(), 1, 0.01, 0.01, 1.0, 0.9, 0.999, 1e-8)
    np.testing.assert_allclose(p, pt.detach().numpy(), atol=1e-6)


def test_config_errors():
    with pytest.raises(ConfigError, match="mode must be 'retrain' or 'warm'"): SurrogateConfig(mode="x")
    with pytest.raises(ConfigError, match="hidden must be >= 1"): SurrogateConfig(hidden=0)
    B, ks, C, y, c_new, _ = toy(5)
    with pytest.raises(ConfigError, match="5 record arms but 4 rewards"): Surrogate().fit_predict(B, B[ks], y[:4])
