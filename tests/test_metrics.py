"Metrics on a hand-made episode set (numbers computed by hand in the comments), and the paper-numbers file."
import json, math
import pytest
import also
from also.core import DataError
from also.sotopia.data import load_data
from also.report import metrics as M
from also.bandits.methods import method_label

DATA = load_data()
HARD = DATA.hard_env_ids
NON_HARD = sorted(set(DATA.environments) - set(HARD))
combo_of = lambda env: next(c["pk"] for c in DATA.combos.values() if c["env_id"] == env)

# 7-dimension raw scores (believability, relationship, knowledge, secret, social_rules, financial, goal) with mean v
SCORES = {2: (5, 0, 4, 0, 0, 0, 5), 3: (7, 0, 7, 0, 0, 0, 7), 4: (9, 0, 9, 0, 0, 0, 10), 5: (10, 5, 10, 0, 0, 0, 10)}
final = lambda v: dict(zip(M.DIMS, map(float, SCORES[v]))) | {"overall": float(v)}


def episode(eid, env, p1, p2, method="also", optimize="both", hard_flag=None, env_pk=None):
    turns = [{"turn": 1, "speaker": "p1", "arms": {"p1": 3, "p2": 0}, "reward": {"p1": 0.5, "p2": 0.6}},
             {"turn": 2, "speaker": "p2", "arms": {"p1": 3, "p2": 1}, "reward": {"p1": 0.7, "p2": 0.8}},
             {"turn": 3, "speaker": "p1", "arms": {"p1": 2, "p2": 1}, "reward": None}]
    return {"episode_id": eid, "tag": None, "method": method, "optimize": optimize, "profile": "paper",
            "combo_pk": combo_of(env), "env_pk": env_pk or env, "codename": DATA.environments[env]["codename"],
            "hard": env in HARD if hard_flag is None else hard_flag, "models": {"agent_p1": "m1", "agent_p2": "m2"},
            "agents": {"p1": {"name": "A"}, "p2": {"name": "B"}}, "arm_names": {a: [f"s{i}" for i in range(4)] for a in ("p1", "p2")},
            "turns": turns, "n_turns": 3, "terminated_by": "max_turns", "final": {"p1": final(p1), "p2": final(p2)},
            "ledger": {"calls": {"agent": 3, "turn_judge": 2, "terminal_judge": 1, "optimizer": 0, "embedding": 3},
                       "prompt_tokens": 100, "completion_tokens": 10, "cost_usd": 0.0}}


def write(root, tag, method, eps):
    d = root / tag; d.mkdir(parents=True)
    (d / "run_config.json").write_text(json.dumps({"tag": tag, "method": method, "optimize": eps[0]["optimize"]}))
    (d / "episodes.jsonl").write_text("".join(json.dumps(e | {"tag": tag}) + "\n" for e in eps))


@pytest.fixture
def runs(tmp_path):
    # e1 is in a hard environment although its (wrong) "hard" flag says False: splits must use the env id
    write(tmp_path, "also_run", "also", [episode("e1", HARD[0], 2, 3, hard_flag=False), episode("e2", HARD[1], 4, 5),
                                         episode("e3", NON_HARD[0], 3, 3)])
    write(tmp_path, "orig_run", "original", [episode(e, env, 3, 3, method="original", optimize="none")
                                         for e, env in (("e1", HARD[0]), ("e2", HARD[1]), ("e3", NON_HARD[0]))])
    return M.load_episodes(tmp_path)


def table(runs, split, se="episode"):
    f = M.filter_split(runs.finals, split).assign(method=lambda d: d.method.map(method_label))
    return M.summarize(f, "method", se=se).set_index("method")


def test_overall_and_se_all(runs):
    t = table(runs, "all")
    # ALSO agent-episode means 2,3 (e1), 4,5 (e2), 3,3 (e3): mean 20/6.
    # Episode SE (default): per-episode means 2.5, 4.5, 3 (mean 10/3); squared deviations 25/36 + 49/36 + 4/36 = 78/36;
    # sd = sqrt(78/36 / 2) = 1.040833; SE = sd/sqrt(3) = 0.600925
    assert t.loc["ALSO", "overall"] == pytest.approx(20 / 6)
    assert t.loc["ALSO", "overall_se"] == pytest.approx(math.sqrt(78 / 36 / 2) / math.sqrt(3), abs=1e-12)
    assert t.loc["ALSO", "overall_se"] == pytest.approx(0.600925, abs=1e-6)
    # Agent SE: sample sd of 2,3,4,5,3,3 = sqrt(5.3333/5) = 1.03280; SE = sd/sqrt(6) = 0.421637: a different number
    ta = table(runs, "all", "agent")
    assert ta.loc["ALSO", "overall_se"] == pytest.approx(1.0327956 / math.sqrt(6), abs=1e-6)
    assert abs(ta.loc["ALSO", "overall_se"] - t.loc["ALSO", "overall_se"]) > 0.15
    assert (t.loc["ALSO", "n"], t.loc["ALSO", "n_episodes"]) == (6, 3)
    assert t.loc["Original", "overall"] == pytest.approx(3.0) and t.loc["Original", "overall_se"] == pytest.approx(0.0)
    # goal of ALSO: 5, 7, 10, 10, 7, 7 -> 46/6
    assert t.loc["ALSO", "goal"] == pytest.approx(46 / 6)


def test_hard_split_by_env_id_and_legacy_se(runs):
    t = table(runs, "hard")
    # hard = e1 + e2 (e1 despite its wrong flag): 2,3,4,5 -> 3.5; episode means 2.5, 4.5: sd sqrt(2), SE sqrt(2)/sqrt(2) = 1
    assert t.loc["ALSO", "n_episodes"] == 2 and t.loc["ALSO", "overall"] == pytest.approx(3.5)
    assert t.loc["ALSO", "overall_se"] == pytest.approx(1.0)
    # agent SE: sd(2,3,4,5) = 1.290994, / sqrt(4) = 0.645497
    assert table(runs, "hard", "agent").loc["ALSO", "overall_se"] == pytest.approx(0.645497, abs=1e-6)
    assert t.loc["ALSO", "goal"] == pytest.approx((5 + 7 + 10 + 10) / 4)
    # legacy: p1 (2,4), p2 (3,5): population sds 1, 1 -> sqrt(2)/2/N with N = 2 episodes = 0.353553
    assert table(runs, "hard", "legacy_hard").loc["ALSO", "overall_se"] == pytest.approx(math.sqrt(2) / 4)
    nh = table(runs, "non_hard")
    assert nh.loc["ALSO", "n_episodes"] == 1 and nh.loc["ALSO", "overall"] == pytest.approx(3.0)


def test_combo_pk_is_never_an_env_id(runs):
    f = runs.finals.assign(env_pk=runs.finals.combo_pk)
    with pytest.raises(DataError, match="never by combo id"): M.filter_split(f, "hard")


def test_improvements(runs):
    for split, want in (("all", 100 * (20 / 6 / 3 - 1)), ("hard", 100 * (3.5 / 3 - 1))):
        imp = M.improvements(table(runs, split).reset_index()).set_index("row")
        assert imp.loc["vs Original (%)", "overall"] == pytest.approx(want)
        assert imp.loc["vs best baseline (%)", "overall"] == pytest.approx(want)   # Original is the only baseline here


def test_turns_arms_and_ledger(runs):
    tc = M.turn_curve(runs.turns, by=["method"], agent="p1").set_index(["method", "turn"])
    assert list(tc.loc["also"].index) == [1, 2]                      # the terminal turn carries no reward
    assert tc.loc[("also", 2), "mean"] == pytest.approx(0.7) and tc.loc[("also", 2), "n"] == 3
    f = runs.finals.query("method == 'also' and agent == 'p1'")
    assert set(f.final_arm) == {2} and set(f.mode_arm) == {2}           # p1 spoke at turns 1 (arm 3) and 3 (arm 2): tie -> latest
    assert set(runs.finals.query("method == 'also' and agent == 'p2'").final_arm) == {1}
    assert M.strategy_rewards(runs.finals).n.sum() == 6                 # only optimized agents
    ct = M.calls_table(runs).set_index("method")
    assert ct.loc["also", "calls_turn_judge"] == 2 and ct.loc["also", "episodes"] == 3


def test_duplicate_episode_and_out_of_range(tmp_path):
    write(tmp_path, "dup", "also", [episode("e1", HARD[0], 2, 3), episode("e1", HARD[0], 2, 3)])
    with pytest.raises(DataError, match="duplicate episode_id"): M.load_episodes(tmp_path, ["dup"])
    bad = episode("e1", HARD[0], 2, 3); bad["final"]["p1"]["secret"] = 3.0
    write(tmp_path, "bad", "also", [bad])
    with pytest.raises(DataError, match="secret=3.0 outside"): M.load_episodes(tmp_path, ["bad"])


def test_paper_numbers_load_and_match_spec():
    raw = M.paper_numbers()
    for k, v in raw.items():
        if not k.startswith("_"): assert v["source"][:1] == "[" and v["rows"], k
    t2 = M.paper_numbers("table2_paper").set_index(["split", "method"])
    assert (t2.loc[("all", "ALSO"), "overall"], t2.loc[("all", "ALSO"), "overall_se"]) == (3.89, 0.02)
    assert t2.loc[("hard", "Original"), "relationship"] == 1.32
    pg = M.paper_numbers("table2_page").set_index(["model", "split", "method"])
    assert pg.loc[("Qwen2.5-72B", "hard", "INSTINCT"), "overall"] == 3.666
    assert M.paper_numbers("table3").set_index("variant").loc["no_surrogate", "overall"] == 3.33
    cm = M.paper_numbers("cross_model").set_index(["p1_model", "p2_model"])
    assert tuple(cm.loc[("DeepSeek-V3.2", "Qwen2.5-72B"), ["baseline", "also"]]) == (2.84, 3.63)
    st = M.paper_numbers("strategies")
    assert st.n.sum() == 900 and st.set_index("strategy").loc["No Strategy", "mean"] == 3.79
    assert M.paper_numbers("bilateral").set_index(["model", "optimize"]).loc[("DeepSeek-V3.2", "both"), "overall"] == 3.955
    assert len(M.paper_numbers("generalization")) == 21
