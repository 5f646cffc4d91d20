"Synthetic non-stationary benchmark: ground truth, determinism, runner, CLI and the figure notebook."
import json, os, sys
from pathlib import Path
import numpy as np
import pandas as pd
import pytest
from also.core import ConfigError
from also.worlds.suite import (DEFAULT_METHODS, TIDY_COLUMNS, check_methods, paired, parse_method, run_seed, run_synthetic, summarize, synthetic_cli)
from also.worlds.synthetic import SyntheticConfig, SyntheticEnv, preset_config, expected_observed

ROOT = Path(__file__).resolve().parents[1]
SMOKE_METHODS = "uniform,fixed,exp3,linucb,also,oracle"


def _play(env, arms):
    return [(env.context(t).tolist(), env.mean_rewards(t).tolist(), env.reward(t, a)) for t, a in enumerate(arms, 1)]


def test_deterministic_under_seed():
    arms = list(np.random.default_rng(0).integers(0, 13, 20))
    a, b = SyntheticEnv(seed=3), SyntheticEnv(seed=3)
    np.testing.assert_array_equal(a.arm_features, b.arm_features)
    first = _play(a, arms)
    assert first == _play(b, arms)
    a.reset()
    assert _play(a, arms) == first
    assert _play(SyntheticEnv(seed=4), arms) != first


def test_best_arm_dominates_and_regret_exact():
    rng = np.random.default_rng(1)
    for seed in range(5):
        env = SyntheticEnv(seed=seed)
        for t in range(1, env.n_turns + 1):
            m = env.mean_rewards(t)
            assert (m[env.best_arm(t)] >= m).all()
            assert ((0 < m) & (m < 1)).all()
            env.reward(t, int(rng.integers(env.n_arms)))
        log = pd.DataFrame(env.log)
        np.testing.assert_allclose(log.regret, log.best_expected - log.expected_reward)
        assert (log.regret >= 0).all()


def test_expected_reward_matches_monte_carlo():
    # the exact expectation of the clipped, rounded, outlier-mixed score vs. simulation
    mu, rng = np.array([0.01, 0.3, 0.97]), np.random.default_rng(0)
    x = np.clip(mu[:, None] + 0.05 * rng.standard_normal((3, 300_000)), 0, 1)
    x = np.floor(x * 70 + 0.5) / 70
    out = rng.random(x.shape) < 0.1
    x[out] = rng.integers(0, 71, out.sum()) / 70
    np.testing.assert_allclose(expected_observed(mu, 0.05, 70, 0.1), x.mean(1), atol=1.5e-3)
    env = SyntheticEnv(seed=0)
    c = env.cfg
    np.testing.assert_allclose(env.mean_rewards(1), expected_observed(env._noise_free(1), c.noise_sd, c.levels, c.outlier_rate))


def test_oracle_zero_regret_uniform_positive():
    df = run_synthetic(["oracle", "uniform"], seeds=3, progress=False)
    assert list(df.columns) == TIDY_COLUMNS
    assert df[df.method == "oracle"].regret.abs().max() == 0.0
    final = df[df.method == "uniform"].groupby("seed").cumulative_regret.last()
    assert (final > 0).all()
    s = summarize(df).set_index("method")
    assert s.loc["oracle", "final_cum_regret"] == 0.0 and s.loc["uniform", "final_cum_regret"] > 0
    assert s.loc["oracle", "mean_expected_reward"] > s.loc["uniform", "mean_expected_reward"]


def test_switches_change_best_arm():
    n = 0
    rng = np.random.default_rng(2)
    for seed in range(40):
        env = SyntheticEnv(SyntheticConfig(switch_rate=0.3), seed=seed)
        prev = None
        for t in range(1, env.n_turns + 1):
            b = env.best_arm(t)
            env.reward(t, int(rng.integers(env.n_arms)))
            if env.switch[t]:
                n += 1
                assert b != prev, (seed, t)
            prev = b
    assert n > 100
    assert not SyntheticEnv(SyntheticConfig(switch_rate=0.0), seed=0).switch.any()


def test_out_of_order_and_bad_config():
    env = SyntheticEnv(seed=0)
    with pytest.raises(ConfigError, match="turn 3 is not available"): env.reward(3, 0)
    with pytest.raises(ConfigError, match="out of range"): env.reward(1, 99)
    with pytest.raises(ConfigError, match="n_arms must be >= 2"): SyntheticConfig(n_arms=1)
    with pytest.raises(ConfigError, match="noise_sd must be > 0"): SyntheticConfig(noise_sd=0)


def test_profiles():
    ref = run_seed("uniform", 0, profile="reference")
    assert ref.arm.iloc[0] == 0 and ref.prob.iloc[0] == 1.0
    with pytest.raises(ConfigError, match="unknown profile"): run_seed("uniform", 0, profile="nope")


def test_cli_tiny(tmp_path, capsys):
    out = tmp_path / "syn.csv"
    res = synthetic_cli(["--seeds", "2", "--turns", "5", "--methods", "uniform,fixed", "--no-progress",
                         "--out", str(out)])
    df = pd.read_csv(out)
    assert list(df.columns) == TIDY_COLUMNS and len(df) == 2 * 2 * 5
    assert set(df.method) == {"uniform", "fixed"}
    summ = pd.read_csv(tmp_path / "syn_summary.csv")
    assert summ.method.tolist() == ["uniform", "fixed"] and (summ.n_seeds == 2).all()
    meta = json.loads((tmp_path / "syn_meta.json").read_text())
    assert meta["command"].startswith("also synthetic --seeds 2 --turns 5") and meta["presets"] == ["hard"]
    printed = capsys.readouterr().out
    assert "per-turn regret" in printed and "vs best fixed arm" in printed and "uniform" in printed
    assert res["summary"].n_seeds.tolist() == [2, 2]
    with pytest.raises(ConfigError, match="unknown method"): synthetic_cli(["--methods", "bogus", "--out", str(out)])


def test_fig_synthetic_notebook_smoke(tmp_path):
    import papermill as pm
    nb_dir = ROOT / "nbs" / "experiments"
    assert (nb_dir / ".notest").exists()
    pm.execute_notebook(str(nb_dir / "fig_synthetic.ipynb"), str(tmp_path / "fig_synthetic.out.ipynb"),
                        parameters={"seeds": 2, "turns": 4, "presets": "hard,flat", "methods": SMOKE_METHODS, "out_dir": str(tmp_path)},
                        kernel_name="python3", cwd=str(nb_dir), progress_bar=False)
    for f in ("synthetic_regret.png", "synthetic_paired.png"):
        assert (tmp_path / f).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", f
    summ = pd.read_csv(tmp_path / "synthetic_summary.csv")
    assert summ.method.tolist() == SMOKE_METHODS.split(",") * 2 and summ.preset.tolist() == ["hard"] * 6 + ["flat"] * 6
    assert (summ.n_seeds == 2).all()
    per = pd.read_csv(tmp_path / "synthetic_per_seed.csv")
    assert len(per) == 2 * 6 * 2 and (per.turns == 4).all()
    assert "SYNTHETIC" in (tmp_path / "synthetic_README.md").read_text().splitlines()[0]


def test_every_default_method_runs_and_is_seeded():
    cfg = SyntheticConfig(n_turns=5)
    df = run_synthetic(DEFAULT_METHODS, seeds=[7], config=cfg, progress=False)
    assert list(df.method.unique()) == list(DEFAULT_METHODS) and len(df) == 5 * len(DEFAULT_METHODS)
    assert df.regret.ge(0).all() and np.isclose(df.regret, df.best_expected - df.expected_reward).all()
    again = run_synthetic(["exp3", "also"], seeds=[7], config=cfg, progress=False)
    pd.testing.assert_frame_equal(again.reset_index(drop=True),
                                  df[df.method.isin(["also", "exp3"])].reset_index(drop=True))


def test_method_options():
    assert parse_method("also[eta=10]") == ("also", {"eta": 10})
    df = run_synthetic(["also", "also[eta=10]"], seeds=1, config=SyntheticConfig(n_turns=4), progress=False)
    assert set(df.method) == {"also", "also[eta=10]"}
    with pytest.raises(ConfigError, match="eta must be > 0"): check_methods("also[eta=0]")


# ---- acceptance (issue #13): the suite discriminates ---------------------------------------------------------
# Fixed seeds 0..ACCEPT_SEEDS-1, the paper profile's defaults for every method. A method "beats uniform" when the
# 95% t interval of (its final per-turn regret - uniform's), paired over seeds, lies below 0.
ACCEPT_SEEDS = 30
LEARNERS = ["exp3", "linucb", "neural_ucb", "also"]


@pytest.fixture(scope="module")
def acceptance():
    df = run_synthetic(["uniform"] + LEARNERS, seeds=ACCEPT_SEEDS, presets=["stationary", "contextual", "flat"], jobs=2, progress=False)
    return paired(df).set_index(["preset", "method"])


@pytest.mark.parametrize("preset,method", [("stationary", m) for m in LEARNERS] + [("contextual", m) for m in LEARNERS if m != "also"])
def test_learners_beat_uniform(acceptance, preset, method):
    r = acceptance.loc[(preset, method)]
    assert r.hi < 0, f"{method} on {preset}: Δ regret vs uniform {r['diff']:+.2f}, 95% CI [{r.lo:+.2f}, {r.hi:+.2f}]"


@pytest.mark.xfail(strict=True, reason="ALSO with the paper's defaults (eta = 0.5, Eq. 12 timing, one Adam step per turn, "
                   "lambda = 0.9) does not beat uniform on the contextual preset; nbs/41_worlds.suite explains why (eta ceiling, "
                   "score timing and smoothing wash out the context); the eta sweep test shows what a larger eta does")
def test_also_paper_defaults_beat_uniform_on_contextual(acceptance):
    r = acceptance.loc[("contextual", "also")]
    assert r.hi < 0, f"Δ {r['diff']:+.2f} [{r.lo:+.2f}, {r.hi:+.2f}]"


def test_flat_control_nobody_beats_uniform(acceptance):
    "Nothing can be learned on the flat preset: no method's interval lies below 0 (a win here would mean a leak)."
    flat = acceptance.loc["flat"]
    assert set(flat.index) == set(LEARNERS)
    assert (flat.hi >= 0).all(), flat[flat.hi < 0][["diff", "lo", "hi"]]


ETAS = [0.5, 2, 5, 10]


@pytest.fixture(scope="module")
def eta_sweep():
    ms = ["uniform"] + [f"also[eta={e}]" for e in ETAS] + [f"also_no_context[eta={e}]" for e in ETAS]
    return run_synthetic(ms, seeds=ACCEPT_SEEDS, presets=["contextual"], jobs=2, progress=False)


def test_eta_sweep_shows_what_the_default_costs(eta_sweep):
    "On the contextual preset ALSO beats uniform at eta = 5 but not at the paper's 0.5 (the eta ceiling)."
    p = paired(eta_sweep).set_index("method")
    assert p.loc["also[eta=5]", "hi"] < 0, p.loc["also[eta=5]"]
    assert p.loc["also[eta=0.5]", "hi"] >= 0, p.loc["also[eta=0.5]"]


@pytest.mark.parametrize("eta", ETAS)
@pytest.mark.xfail(strict=True, reason="with the paper's defaults the context embedding does not help ALSO on the contextual "
                   "preset at any eta of the sweep (nbs/41_worlds.suite: Eq. 12 samples before the current context's predictions "
                   "enter S, lambda = 0.9 gives them a tenth of S, one Adam step per turn learns the arm x state interaction "
                   "slowly; without smoothing, with the reference's timing and retrain, and 120 turns, it does help)")
def test_context_helps_on_contextual(eta_sweep, eta):
    p = paired(eta_sweep, baseline=f"also_no_context[eta={eta}]").set_index("method").loc[f"also[eta={eta}]"]
    assert p.hi < 0, f"ALSO - ALSO without context at eta={eta}: {p['diff']:+.2f} [{p.lo:+.2f}, {p.hi:+.2f}]"


def test_hard_preset_is_the_old_benchmark():
    "Final regrets of methods #13 left alone, seeds 0-4, as the benchmark wrote them before presets existed."
    before = {"uniform": [1.297089, 1.459431, 1.103959, 1.730604, 1.249998], "exp3": [1.052865, 1.270537, 1.212517, 1.91869, 1.201477]}
    for m, v in before.items():
        np.testing.assert_allclose([run_seed(m, s, preset_config("hard")).cumulative_regret.iloc[-1] for s in range(5)], v, atol=1e-6)


# ---- acceptance (issue #18): the same, at the paper's embedding size --------------------------------------------
# Real runs embed arms and dialogues with 4096-d vectors; every learner must still beat uniform on the stationary
# preset (60 turns: 3 episodes of 20, the bandit carried). 20 fixed seeds keep this at about half a minute.
PAPER_DIM, SEEDS_4K = 4096, 20


@pytest.fixture(scope="module")
def acceptance_4k():
    cfg = preset_config("stationary", arm_dim=PAPER_DIM, ctx_dim=PAPER_DIM)
    return paired(run_synthetic(["uniform"] + LEARNERS, seeds=SEEDS_4K, presets={"stationary": cfg}, jobs=2, progress=False)
                  ).set_index(["preset", "method"])


@pytest.mark.parametrize("method", LEARNERS)
def test_learners_beat_uniform_at_4096(acceptance_4k, method):
    r = acceptance_4k.loc[("stationary", method)]
    assert r.n == SEEDS_4K and r.hi < 0, f"{method} at 4096-d: Δ regret vs uniform {r['diff']:+.2f}, 95% CI [{r.lo:+.2f}, {r.hi:+.2f}]"


def test_synthetic_features_have_the_requested_dimension():
    env = SyntheticEnv(preset_config("stationary", arm_dim=PAPER_DIM, ctx_dim=PAPER_DIM), seed=0)
    assert env.arm_features.shape == (13, PAPER_DIM) and env.context(1).shape == (PAPER_DIM,)
    np.testing.assert_allclose(np.linalg.norm(env.arm_features, axis=1), 1, rtol=1e-5)
