"Bandit math against hand calculations, ablation switches, save/load, seeding and argument errors."
import hashlib, json, math
import numpy as np
import pytest
from also.core import ConfigError
from also.bandits.base import BANDITS, bandit_class, Bandit, Profile, get_profile, load_bandit, make_bandit, run_bandit, save_bandit, _encode
from also.bandits.also import decayed_scores, softmax_probs
from also.bandits.exp3 import exp3_default_eta
from also.bandits.linucb import sherman_morrison

# the prompt optimizers (OPRO, EvoPrompt, PromptBreeder) own text pools; tests/test_optimizers.py covers them
NUMERIC = [n for n in BANDITS if not hasattr(bandit_class(n)[0], "evolve")]
R = np.random.default_rng(0)
F = R.normal(size=(5, 24)).astype(np.float32)
V = np.array([[0.2, 0.5, 0.1, 0.0, 0.3], [0.4, 0.3, 0.6, 0.1, 0.2], [0.0, 0.9, 0.2, 0.5, 0.1]])


class Scripted:
    "Stand-in surrogate: returns scripted prediction rows."
    def __init__(self, rows): self.rows, self.i = rows, 0
    def fit_predict(self, *a, **kw):
        v = np.asarray(self.rows[self.i], float); self.i += 1; return v
    def reset(self): pass
    def state(self): return {}


class Env:
    "Stationary toy: arm means from features, contexts drift; exact expected rewards known."
    def __init__(self, seed, d_ctx=6):
        self.r = np.random.default_rng(seed); self.m = 1 / (1 + np.exp(-F @ np.linspace(-1, 1, 24) / 2)); self.d = d_ctx
    def context(self, t): return np.cos(np.arange(self.d) * 0.3 + t / 4).astype(np.float32)
    def reward(self, t, arm): return float(np.clip(self.m[arm] + 0.1 * self.r.normal(), 0, 1))
    def mean_rewards(self, t): return self.m


def scripted_also(name="also", **kw):
    b = make_bandit(name, 5, seed=0, arm_features=F, **kw); b.surrogate = Scripted(V); return b


def play3(b):
    ps, arms = [], []
    for _ in range(3):
        a = b.select(); ps.append(b.last_probs.copy()); arms.append(a); b.update(a, 0.5)
    return ps, arms


# ---- ALSO: decayed scores and softmax -------------------------------------------------------------
def test_decayed_scores_hand():
    S = decayed_scores(V, 0.9)
    np.testing.assert_allclose(S, 0.81 * V[0] + 0.9 * V[1] + V[2])
    np.testing.assert_allclose(decayed_scores(V, 1.0), V.sum(0))


def test_softmax_hand():
    S = np.array([1.0, 2.0, 0.0])
    e = np.exp(0.5 * S); np.testing.assert_allclose(softmax_probs(S, 0.5), e / e.sum())
    np.testing.assert_allclose(softmax_probs(S, 0.5, 0.2), 0.8 * e / e.sum() + 0.2 / 3)
    assert np.isfinite(softmax_probs(np.array([1e6, 0.0]), 10.0)).all()


def sm(*z):
    z = np.exp(np.array(z, float)); return z / z.sum()


def test_score_timing_hand():
    "Eq. 12 (before): pi_t from S^(t-1); reference (after): from S^(t) = 0.9 S^(t-1) + v^(t). eta = 2, rows V."
    # before: turn 1 uniform; turn 2 exp(2 v1) = exp(.4, 1, .2, 0, .6); turn 3 exp(2 (0.9 v1 + v2)) = exp(1.16, 1.5, 1.38, .2, .94)
    ps, _ = play3(scripted_also(eta=2.0, score_timing="before"))
    np.testing.assert_allclose(ps[0], [0.2] * 5)
    np.testing.assert_allclose(ps[1], sm(0.4, 1.0, 0.2, 0.0, 0.6))
    np.testing.assert_allclose(ps[2], sm(1.16, 1.5, 1.38, 0.2, 0.94))
    # after: turn 1 exp(2 v1); turn 2 exp(2 (0.9 v1 + v2)); turn 3 exp(2 (0.81 v1 + 0.9 v2 + v3)) = exp(1.044, 3.15, 1.642, 1.18, 1.046)
    b = scripted_also(eta=2.0, score_timing="after")
    ps, _ = play3(b)
    np.testing.assert_allclose(ps[0], sm(0.4, 1.0, 0.2, 0.0, 0.6))
    np.testing.assert_allclose(ps[1], sm(1.16, 1.5, 1.38, 0.2, 0.94))
    np.testing.assert_allclose(ps[2], sm(1.044, 3.15, 1.642, 1.18, 1.046))
    np.testing.assert_allclose(b.S, decayed_scores(V, 0.9))


def test_also_probs_has_no_side_effect():
    for timing in ("before", "after"):
        b = scripted_also(eta=2.0, score_timing=timing)
        p = b.probs(); p2 = b.probs()             # cached prediction: the scripted row is consumed at most once
        np.testing.assert_allclose(p, p2); np.testing.assert_allclose(b.S, 0.0)
        b.select(); np.testing.assert_allclose(b.S, V[0])


# ---- ALSO: ablations and options --------------------------------------------------------------------
def test_ablation_no_smoothing():
    ps, _ = play3(scripted_also("also_no_smoothing", eta=2.0))
    np.testing.assert_allclose(ps[2], softmax_probs(V[1], 2.0))                   # before: S^(2) = v2
    ps, _ = play3(scripted_also("also_no_smoothing", eta=2.0, score_timing="after"))
    np.testing.assert_allclose(ps[2], softmax_probs(V[2], 2.0))


def test_ablation_egreedy_on_scores_vs_predictions():
    "Paper: argmax of the smoothed scores; reference: argmax of this turn's predictions (which also drops the smoothing)."
    # after, turn 3: scores 0.81 v1 + 0.9 v2 + v3 = (.522, 1.575, .821, .59, .523) -> arm 1; predictions v3 -> arm 1 too;
    # turn 2: scores 0.9 v1 + v2 = (.58, .75, .69, .1, .47) -> arm 1; predictions v2 -> arm 2
    ps, _ = play3(scripted_also("also_egreedy", epsilon=0.25, score_timing="after"))
    np.testing.assert_allclose(ps[1], 0.75 * np.eye(5)[1] + 0.05)
    ps, _ = play3(scripted_also("also_egreedy", epsilon=0.25, score_timing="after", egreedy_on="predictions"))
    np.testing.assert_allclose(ps[1], 0.75 * np.eye(5)[2] + 0.05)
    ps, _ = play3(scripted_also("also_egreedy", epsilon=0.25))                   # before: turn 2 maximises S^(1) = v1 -> arm 1
    np.testing.assert_allclose(ps[1], 0.75 * np.eye(5)[1] + 0.05)
    assert make_bandit("also_egreedy", 5, arm_features=F, profile="reference").egreedy_on == "predictions"


def test_mask_unselected_really_masks():
    b = scripted_also(eta=2.0, mask_unselected=True, score_timing="after")
    ps, arms = play3(b)
    want = sum(0.9 ** (2 - t) * V[t] * np.eye(5)[arms[t]] for t in range(3))
    np.testing.assert_allclose(b.S, want)
    np.testing.assert_allclose(ps[0], softmax_probs(V[0], 2.0))   # selection still sees the full row


def test_gamma_really_mixes():
    ps, _ = play3(scripted_also(eta=2.0, gamma=0.5, score_timing="after"))
    np.testing.assert_allclose(ps[0], 0.5 * softmax_probs(V[0], 2.0) + 0.1)
    ps, _ = play3(scripted_also(eta=2.0, gamma=0.5))
    np.testing.assert_allclose(ps[1], 0.5 * softmax_probs(V[0], 2.0) + 0.1)


def test_first_arm_forced():
    ps, arms = play3(scripted_also(eta=2.0, first_arm=0, score_timing="after"))
    assert arms[0] == 0 and ps[0].tolist() == [1, 0, 0, 0, 0]
    np.testing.assert_allclose(ps[1], softmax_probs(V[0], 2.0))   # first prediction used at turn 2
    ps, arms = play3(scripted_also(eta=2.0, first_arm=0))
    np.testing.assert_allclose(ps[1], [0.2] * 5)                   # before: no prediction entered S at the forced turn


def test_ablation_no_surrogate_mean_hand():
    "Paper profile: per-arm mean rewards take the network's place (unplayed arms: the mean of all rewards)."
    b = make_bandit("also_no_surrogate", 4, seed=1, eta=1.0)
    assert (b.no_surrogate, b.predicts) == ("mean", True)
    for a, r in ((0, 0.6), (1, 0.3), (1, 0.5), (3, 0.9)): b.update(a, r)
    b.select()
    row = [0.6, 0.4, 2.3 / 4, 0.9]                                   # arm 2 never played: (0.6 + 0.3 + 0.5 + 0.9) / 4
    np.testing.assert_allclose(b.S, row)
    b.select(); np.testing.assert_allclose(b.last_probs, softmax_probs(np.array(row), 1.0))
    np.testing.assert_allclose(b.S, 1.9 * np.array(row))             # 0.9 * row + row


def test_ablation_no_surrogate_importance_weighted():
    "Reference profile: S <- 0.9 S + r/max(p, 0.01) e_k at update time."
    b = make_bandit("also_no_surrogate", 4, seed=1, eta=1.0, profile="reference")
    assert b.no_surrogate == "iw"
    want = np.zeros(4)
    for r in (0.6, 0.3, 0.9):
        a = b.select(); p = b.last_probs[a]; b.update(a, r)
        want = 0.9 * want; want[a] += r / max(p, 0.01)
    np.testing.assert_allclose(b.S, want)


def test_ablation_no_context_ignores_context():
    b = make_bandit("also_no_context", 5, seed=1, arm_features=F, surrogate_mode="retrain", epochs=5)
    for t in range(3): b.update(t, 0.3 * t, R.normal(size=6))
    np.testing.assert_allclose(b._predict(np.zeros(6)), b._predict(np.ones(6) * 3))
    c = make_bandit("also", 5, seed=1, arm_features=F, surrogate_mode="retrain", epochs=5)
    for t in range(3): c.update(t, 0.3 * t, R.normal(size=6))
    assert not np.allclose(c._predict(np.zeros(6)), c._predict(np.ones(6) * 3))


def test_profiles_choose_bandit_options():
    "make_bandit starts from the profile's options; a registry preset and the caller's options win."
    p = make_bandit("also", 5, arm_features=F)
    assert (p.score_timing, p.scfg.mode, p.scfg.basis, p.egreedy_on, p.no_surrogate) == ("before", "step", "full", "scores", "mean")
    r = make_bandit("also", 5, arm_features=F, profile="reference")
    assert (r.score_timing, r.scfg.mode, r.scfg.basis, r.egreedy_on, r.no_surrogate) == ("after", "retrain", "full", "predictions", "iw")
    assert make_bandit("also", 5, arm_features=F, profile="reference", surrogate_mode="step").scfg.mode == "step"
    assert make_bandit("also_egreedy", 5, arm_features=F, profile="reference").egreedy
    n = make_bandit("neural_ucb", 5, arm_features=F, profile="reference")
    assert (n.persist_U, n.standardize, n.fresh_init, n.center) == (False, False, True, False)
    e = make_bandit("exp3", 13, profile="reference")
    assert (e.eta, e.gamma) == (5.0, 0.139)
    assert make_bandit("linucb", 5, arm_features=F, profile="reference").options == make_bandit("linucb", 5, arm_features=F).options
    with pytest.raises(ConfigError, match="unknown profile 'fast'"): make_bandit("also", 5, arm_features=F, profile="fast")


# ---- EXP3 ----------------------------------------------------------------------------------------------
def test_exp3_probs_and_update_hand():
    b = make_bandit("exp3", 3, eta=0.5, gamma=0.3)
    np.testing.assert_allclose(b.probs(), [1 / 3] * 3)
    b.update(1, 0.6)                                 # L1 = 0.5 * 0.6 / (1/3) = 0.9
    e = math.e ** 0.9
    np.testing.assert_allclose(b.probs(), 0.7 * np.array([1, e, 1]) / (2 + e) + 0.1)
    b.last_probs = np.array([0.2, 0.5, 0.3]); b.update(0, 1.0)  # importance weight from the sampled distribution
    np.testing.assert_allclose(b.logw - b.logw.max(), np.array([2.5, 0.9, 0.0]) - 2.5)


def test_exp3_default_eta():
    b = make_bandit("exp3", 13)
    assert math.isclose(b.eta, math.sqrt(2 * math.log(13) / (20 * 13))) and b.eta == exp3_default_eta(13, 20)


# ---- NeuralUCB -----------------------------------------------------------------------------------------
def test_neuralucb_sigma_and_Z_persist():
    "sigma_k = sqrt(nu (|g_k|^2 - b^T (lam I + G G^T)^-1 b)) with the played gradients' Gram; Z survives the retrain."
    b = make_bandit("neural_ucb", 5, seed=0, arm_features=F, nu=0.5, epochs=10)
    mu, sig, delta, act, X = b._fit(None)
    g2 = (delta ** 2).sum(1) * ((X ** 2).sum(1) + 1) + (act ** 2).sum(1) + 1
    np.testing.assert_allclose(sig, np.sqrt(0.5 * g2))                               # Z = lam I: sqrt(nu) |g|
    a = b.select()
    assert a == int(np.argmax(mu + sig)) and len(b.played[0]) == 1
    sig1 = b._fit(None)[1]                                                          # same net, Z = I + g_a g_a^T
    gi = (delta @ delta[a]) * (X @ X[a] + 1) + act @ act[a] + 1                     # g_k . g_a
    np.testing.assert_allclose(sig1, np.sqrt(0.5 * (g2 - gi ** 2 / (1 + g2[a]))))
    b.update(a, 0.4); b.select()
    assert len(b.played[0]) == 2                                                    # Z survives the retrain
    ref = make_bandit("neural_ucb", 5, seed=0, arm_features=F, nu=0.5, epochs=10, persist_U=False)
    ref.select(); ref.update(a, 0.4); ref.select()
    assert len(ref.played[0]) == 0                                                 # reference behaviour: Z = lam I always


# ---- LinUCB --------------------------------------------------------------------------------------------
def test_sherman_morrison():
    A = 2 * np.eye(4); Ai = np.linalg.inv(A)
    for _ in range(4):
        x = R.normal(size=4); A += np.outer(x, x); Ai = sherman_morrison(Ai, x)
    np.testing.assert_allclose(Ai, np.linalg.inv(A), atol=1e-12)


@pytest.mark.parametrize("use_context", [False, True])
def test_linucb_matches_dense_inverse(use_context):
    b = make_bandit("linucb", 5, arm_features=F, alpha=0.8, lam=1.5, use_context=use_context)
    Ff = F.astype(float); P, Rw = [], []
    for k, r in [(0, 0.2), (3, 0.9), (3, 0.6), (1, 0.4)]:
        c = R.normal(size=6).astype(np.float32)
        b.update(k, r, c); P.append(np.concatenate([Ff[k], c]) if use_context else Ff[k]); Rw.append(r)
    cq = R.normal(size=6).astype(np.float32)
    Xq = np.hstack([Ff, np.tile(cq.astype(float), (5, 1))]) if use_context else Ff
    P = np.array(P); A = 1.5 * np.eye(P.shape[1]) + P.T @ P; Ai = np.linalg.inv(A)
    want = Xq @ Ai @ (P.T @ np.array(Rw)) + 0.8 * np.sqrt(np.einsum("ki,ij,kj->k", Xq, Ai, Xq))
    np.testing.assert_allclose(b.ucb(cq), want, rtol=1e-8, atol=1e-10)
    assert b.select(cq) == int(np.argmax(want))


# ---- shared protocol -------------------------------------------------------------------------------------
FAST = {"also": dict(epochs=10), "also_egreedy": dict(epochs=10), "also_no_smoothing": dict(epochs=10),
        "also_no_context": dict(epochs=10), "neural_ucb": dict(epochs=10)}


@pytest.mark.parametrize("name", NUMERIC)
def test_seeded_determinism(name):
    mk = lambda s: make_bandit(name, 5, seed=s, arm_features=F, **FAST.get(name, {}))
    a1 = [r["arm"] for r in run_bandit(mk(7), Env(0), 8)]
    a2 = [r["arm"] for r in run_bandit(mk(7), Env(0), 8)]
    assert a1 == a2


@pytest.mark.parametrize("name", ["uniform", "exp3", "also", "also_no_surrogate"])
def test_different_seeds_differ(name):
    mk = lambda s: make_bandit(name, 5, seed=s, arm_features=F, **FAST.get(name, {}))
    runs = {tuple(r["arm"] for r in run_bandit(mk(s), Env(0), 10)) for s in range(4)}
    assert len(runs) > 1


@pytest.mark.parametrize("name", NUMERIC)
@pytest.mark.parametrize("fmt", ["pt", "json"])
def test_save_load_same_next_selections(tmp_path, name, fmt):
    b = make_bandit(name, 5, seed=3, arm_features=F, **FAST.get(name, {}))
    env = Env(1); run_bandit(b, env, 5)
    b2 = load_bandit(save_bandit(b, tmp_path / f"b.{fmt}"))
    assert type(b2) is type(b) and b2.options == b.options
    for t in range(6, 9):
        c = env.context(t)
        a, a2 = b.select(c), b2.select(c)
        assert a == a2
        b.update(a, 0.5, c); b2.update(a2, 0.5, c)


@pytest.mark.parametrize("name", NUMERIC)
def test_reset_forgets(name):
    b = make_bandit(name, 5, seed=2, arm_features=F, **FAST.get(name, {}))
    first = [r["arm"] for r in run_bandit(b, Env(2), 5)]
    b.reset()
    assert [r["arm"] for r in run_bandit(b, Env(2), 5)] == first


@pytest.mark.parametrize("name", ["uniform", "exp3", "also", "also_no_surrogate", "neural_ucb", "linucb"])
def test_add_remove_arm(name):
    b = make_bandit(name, 5, seed=0, arm_features=F, **FAST.get(name, {}))
    run_bandit(b, Env(0), 3)
    k = b.add_arm(R.normal(size=24))
    assert k == 5 and b.n_arms == 6 and len(b.probs(np.zeros(6))) == 6
    b.remove_arm(2)
    p = b.probs(np.zeros(6))
    assert b.n_arms == 5 and len(p) == 5 and math.isclose(p.sum(), 1.0)
    assert 0 <= b.select(np.zeros(6)) < 5


# ---- errors ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name,kw,msg", [
    ("also", dict(eta=0), "eta must be > 0, got 0"),
    ("also", dict(eta=-1.0), "eta must be > 0"),
    ("exp3", dict(eta=0.0), "eta must be > 0"),
    ("also", dict(lam=0), "must be in (0, 1], got 0"),
    ("also", dict(lam=1.01), "must be in (0, 1], got 1.01"),
    ("also", dict(gamma=2), "gamma must be in [0, 1]"),
    ("uniform", dict(foo=1), "has no option(s) ['foo']"),
])
def test_bad_options(name, kw, msg):
    with pytest.raises(ConfigError, match=None) as e: make_bandit(name, 5, arm_features=F, **kw)
    assert msg in str(e.value)


def test_empty_arm_set_and_unknown_name():
    for name in ("uniform", "also", "exp3"):
        with pytest.raises(ConfigError, match="empty arm set"): make_bandit(name, 0, arm_features=F)
    with pytest.raises(ConfigError) as e: make_bandit("also_v9", 3)
    assert "unknown bandit 'also_v9'; known: uniform, fixed, exp3, also" in str(e.value)
    with pytest.raises(ConfigError, match="cannot remove the last arm"): make_bandit("uniform", 1).remove_arm(0)


@pytest.mark.parametrize("name", NUMERIC)
def test_wrong_context_size(name):
    b = make_bandit(name, 5, arm_features=F, **FAST.get(name, {}))
    b.update(0, 0.5, np.zeros(6))
    with pytest.raises(ConfigError, match="context has 7 dimensions, expected 6"): b.select(np.zeros(7))


def test_profiles():
    assert get_profile().context_timing == "pre" and get_profile().first_arm is None and get_profile().credit == "actor"
    ref = get_profile("reference")
    assert (ref.context_timing, ref.first_arm, ref.credit, ref.terminal_reward) == ("post", 0, "both", True)
    with pytest.raises(ConfigError, match="unknown profile"): get_profile("nope")
    with pytest.raises(ConfigError, match="context_timing"): Profile("x", context_timing="during")


def test_run_bandit_context_pairing():
    "pre: the reward of turn t is stored with context(t); post: with context(t+1)."
    class E:
        def context(self, t): return np.array([float(t)])
        def reward(self, t, arm): return 0.1 * t
    for prof, shift in (("paper", 0), ("reference", 1)):
        b = make_bandit("also_no_surrogate", 3, seed=0)
        seen = []
        orig = b.update
        b.update = lambda a, r, c=None, _o=orig: (seen.append(float(c[0])), _o(a, r, c))
        recs = run_bandit(b, E(), 4, prof)
        assert seen == [t + shift for t in range(1, 5)]
        assert (recs[0]["arm"] == 0) if prof == "reference" else True


# ---- no bandit ever holds a non-finite value (issue #18) ------------------------------------------------------
from also.bandits.base import nonfinite
from also.worlds.synthetic import SyntheticEnv, preset_config

D4K = 4096


def _world(seed=0, episodes=3):
    cfg = preset_config("stationary", arm_dim=D4K, ctx_dim=D4K, episodes=episodes)
    return cfg, [SyntheticEnv(cfg, seed, ep) for ep in range(episodes)]


def _play(b, envs, check=None):
    "Play every episode of `envs` with `b` (bandit carried, paper context pairing); `check(b)` after every turn."
    for env in envs:
        for t in range(1, env.n_turns + 1):
            c = env.context(t); a = b.select(c); b.update(a, env.reward(t, a), c)
            if check: check(b)


@pytest.mark.parametrize("name", NUMERIC)
def test_state_stays_finite_over_a_4096d_run(name):
    "Every numeric bandit, 60 turns of the stationary preset at 4096-d: the state is scanned after every turn."
    cfg, envs = _world()
    b = make_bandit(name, 13, seed=0, arm_features=envs[0].arm_features)
    seen = []
    _play(b, envs, lambda b: seen.append(nonfinite(b)))
    assert len(seen) == 60 and not any(seen), next(s for s in seen if s)


CORRUPT = {"exp3": lambda b: b.logw.__setitem__(3, np.nan), "linucb": lambda b: b.bvec.__setitem__(0, np.inf),
           "neural_ucb": lambda b: b.played[0][-1].__setitem__(0, np.nan), "also": lambda b: b.S.__setitem__(2, np.nan),
           "also_no_surrogate": lambda b: b.S.__setitem__(2, -np.inf)}


@pytest.mark.parametrize("name", NUMERIC)
def test_the_scan_can_fail(name):
    "Break each bandit's state on purpose: the scan names the broken value (so a clean scan above means something)."
    cfg, envs = _world(episodes=1)
    b = make_bandit(name, 13, seed=0, arm_features=envs[0].arm_features)
    _play(b, envs)
    assert nonfinite(b) == []
    if name in CORRUPT:
        CORRUPT[name](b)
        bad = nonfinite(b)
        assert len(bad) == 1 and bad[0].startswith("learned."), bad
    b.last_probs = np.full(13, np.nan)
    assert any(s.startswith("last_probs: 13 of 13") for s in nonfinite(b))


@pytest.mark.parametrize("name", NUMERIC)
def test_nonfinite_input_is_refused_and_changes_nothing(name):
    "A NaN/inf reward, context or new arm feature is a ConfigError before anything is recorded; play then goes on, finite."
    cfg, envs = _world(episodes=1)
    b = make_bandit(name, 13, seed=0, arm_features=envs[0].arm_features)
    env = envs[0]
    for t in range(1, 6):
        c = env.context(t); a = b.select(c); b.update(a, env.reward(t, a), c)
    digest = lambda: json.dumps(_encode(b.state_dict(), lambda x: hashlib.sha1(np.ascontiguousarray(x).tobytes()).hexdigest()), default=str)
    before = digest()
    c = env.context(6)
    for bad in (float("nan"), float("inf"), -float("inf")):
        with pytest.raises(ConfigError, match="reward must be a finite number"): b.update(1, bad, c)
    for bad in (np.nan, np.inf):
        cb = c.copy(); cb[7] = bad
        with pytest.raises(ConfigError, match="context contains NaN or Inf"): b.update(1, 0.5, cb)
    assert digest() == before                                                   # nothing changed
    if b.arm_features is not None:
        f = env.arm_features[0].copy(); f[0] = np.nan
        with pytest.raises(ConfigError, match="new arm features contain NaN"): b.add_arm(f)
        assert b.n_arms == 13
    for t in range(6, 21):
        c = env.context(t); a = b.select(c); b.update(a, env.reward(t, a), c)
    assert nonfinite(b) == []


def test_neuralucb_divergence_is_caught_not_stored():
    "Unscaled 4096-d inputs at a large lr diverge (the issue-#18 failure); the guard halves the lr and nothing non-finite is kept."
    cfg, envs = _world(episodes=1)
    b = make_bandit("neural_ucb", 13, seed=0, arm_features=envs[0].arm_features, ref_dim=D4K, lr=0.5)
    halvings = []
    _play(b, envs, lambda b: halvings.append(b.last_fit.get("halvings", 0)))
    assert max(halvings) > 0 and nonfinite(b) == [] and len(b.played[0]) == 20
    # without the guard, the last fit's plain SGD at lr 0.5 diverges (its objective rises or overflows)
    from also.bandits.neuralucb import nucb_train, _objective
    X, R = b._inputs(None), np.array(b.rec_x)
    z = b._standardizer(X, R); Q, W1Q = b._basis(np.vstack([z(X), z(R)]))
    W1, b1, w2, b2 = b._theta0(D4K)
    y, p, wd = np.array(b.rec_r) - np.mean(b.rec_r), [W1Q.copy(), b1.copy(), w2.copy(), b2.copy()], b.lam / len(b.rec_r)
    start = _objective(z(R) @ Q, y, *p, wd)
    with np.errstate(all="ignore"): nucb_train(z(R) @ Q, y, *p, 0.5, wd, 100)
    end = _objective(z(R) @ Q, y, *p, wd)
    assert not (np.isfinite(end) and end <= start), (start, end)
