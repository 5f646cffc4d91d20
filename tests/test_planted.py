"""The known-answer world (also.worlds.planted) and its recovery (also.report.recovery): hand-checked units of the world, then a small
planted profile run end to end in-process, whose numbers are asserted against the truth computed from the table."""
import asyncio, json, re
import numpy as np
import pandas as pd
import pytest
from also.core import DIMENSIONS, Settings, derive_seed
from also.bandits.spaces import SPACES, load_space, compose
from also.worlds.planted import (planted_world, agent_reply, strategy_key, optimizer_reply, planted_reply, turn_judgement, TAG_RE, NONCES,
    PlantedError, scenario_truth, V3_UNITS)
from also.report.recovery import recovery_table, gains, cross_model_order, mean_ci, episode_scores, t95
from also.worlds.planted import scenario_of
from also.sotopia.reward import judge_prompt, judge_schema, scores_of, normalized_reward

W = planted_world("scripted/planted")
PERSONA = "Ava Martinez is a 22-year-old student who loves board games."


def agent_prompt(background: str, turn: int = 2) -> str:
    return (f"Imagine you are Ava Martinez, your task is to act/speak as Ava Martinez would.\n"
            f"Here is the context of this interaction:\nScenario: Two friends share a pizza\n"
            f"Ava Martinez's background: {background}\nBob Lee's background: Unknown\nConversation Starts:\n.\n"
            f"You are at Turn #{turn}. Your available action types are")


def test_agent_tags_every_arm_of_every_space():
    n = 0
    for name in SPACES:
        for s in load_space(name):
            a = agent_reply(agent_prompt(compose(PERSONA, s)), "scripted/planted-weak", seed=1)
            key, strength, turn, _ = TAG_RE.search(a["argument"]).groups()
            assert (strength, turn) == ("weak", "2") and a["action_type"] == "speak"
            for k in range(3):            # the key the agent reports has exactly the effect of the arm it was given
                for t in (0, 9): assert W.effect(key, k, t) == W.effect(s.id, k, t), (name, s.id, key)
            n += 1
    assert n == sum(SPACES.values())
    with pytest.raises(PlantedError, match="does not know"): agent_reply(agent_prompt(compose(PERSONA, "In your response, be nice.")))


@pytest.mark.parametrize("method", ["opro", "evoprompt_ga", "evoprompt_de", "promptbreeder"])
def test_generated_texts_are_recognised_and_stay_in_the_pool(method):
    from also.bandits.base import make_bandit
    async def propose(messages): return planted_reply(messages, None, "planted", seed=len(messages))
    b = make_bandit(method, 13, seed=2, every=1)
    rng = np.random.default_rng(0)
    for t in range(1, 8):
        a = b.select(); b.update(a, float(rng.random()))
        asyncio.run(b.evolve(t, propose))
    new = [x for x in b.texts if "planted mix" in x]
    assert new
    pool = ["no_strategy", *V3_UNITS]
    for text in new:
        bg = compose(PERSONA, text)
        key = TAG_RE.search(agent_reply(agent_prompt(bg))["argument"])[1]
        assert key == strategy_key(text) and key.startswith("mix:")
        for k in range(3):
            for t in (0, 9):
                effs = [W.effect(u, k, t) for u in pool]
                assert min(effs) - 1e-9 <= W.effect(key, k, t) <= max(effs) + 1e-9


def test_optimizer_mix_is_the_convex_combination_of_its_parents():
    a, b = load_space("v3")[1], load_space("v3")[5]
    from also.bandits.evoprompt import GA_PROMPT
    msgs = [{"role": "user", "content": GA_PROMPT.format(task="T", a=a.text, b=b.text, rules="R")}]
    key = strategy_key(re.search(r"<STRATEGY>(.*)</STRATEGY>", optimizer_reply(msgs, seed=3))[1])
    parts = dict(p.split("=") for p in key.removeprefix("mix:").split(","))
    assert set(parts) == {a.id, b.id} and abs(sum(map(float, parts.values())) - 1) < 1e-9
    w = float(parts[a.id])
    assert W.effect(key, 0, 7) == pytest.approx(w * W.effect(a.id, 0, 7) + (1 - w) * W.effect(b.id, 0, 7), abs=1e-12)
    assert optimizer_reply(msgs, seed=3) != optimizer_reply(msgs, seed=4)        # another call, another text


def test_judge_expectation_by_hand():
    "A constructed history: the latent values by hand, every score a rounding of the linear map, the mean the exact reward."
    sc = "Two friends share a pizza"
    k = W.cluster(sc); best = W.roles[k]["best"]; mid = NONCES // 2
    hist = (f"Scenario: {sc}\nParticipants: Ava Martinez and Bob Lee\n"
            f"Turn #1\nAva Martinez said: \"hi [planted arm={best} model=strong turn=0 nonce={mid}]\"\n"
            f"Turn #2\nBob Lee said: \"yo [planted arm=no_strategy model=weak turn=1 nonce={mid}]\"\n"
            f"Turn #3\nAva Martinez said: \"so [planted arm=no_strategy model=strong turn=2 nonce=0]\"")
    # by hand: base + own strength - 0.5 * opponent's + effect (+ phase effect) + noise(nonce)
    v_ava = W.base(sc) + 0.05 + 0.025 + 0.0 + W.cfg.noise * (2 * 0.5 / NONCES - 1)       # latest: no strategy, nonce 0
    v_bob = W.base(sc) - 0.05 - 0.025
    full = judge_prompt(hist, ["Ava Martinez", "Bob Lee"], "full")
    r = turn_judgement(W, full, seed=1)
    lat = [float(re.search(r"latent value ([\d.]+)", r[a]["believability"]["reasoning"])[1]) for a in ("agent_1", "agent_2")]
    assert lat == pytest.approx([v_ava, v_bob], abs=6e-4)
    for mode in ("full", "scores", "actor"):
        p = judge_prompt(hist, ["Ava Martinez", "Bob Lee"], mode, actor=0)
        reps = [scores_of(judge_schema(mode, 1 if mode == "actor" else 2).model_validate(turn_judgement(W, p, seed=i)), mode, 0)
                for i in range(300)]
        for agent, v in (("p1", v_ava), ("p2", v_bob)):
            if agent not in reps[0]: continue
            x = W.dims(v)                  # the real-valued dimensions: every score is one of their two roundings
            for rep in reps: assert all(rep[agent][d] in (np.floor(x[i]), np.ceil(x[i])) for i, d in enumerate(DIMENSIONS))
            got = np.mean([normalized_reward(rep[agent]) for rep in reps])
            assert got == pytest.approx(W.reward(v), abs=0.006)          # sd of the mean ~ 0.001
    # the terminal judge: the mean latent value of each agent's utterances
    term = "\n".join([hist, "Based on previous interactions, evaluate how well participants achieve their goals."])
    v_ava_0 = W.base(sc) + 0.075 + W.effect(best, k, 0) + W.cfg.noise * (2 * (mid + 0.5) / NONCES - 1)
    ev = json.loads(planted_reply([{"role": "user", "content": term}], None, "scripted/planted", seed=None))["evaluations"]
    m = float(re.search(r"latent value ([\d.]+)", ev["agent_1"]["goal"][0])[1])
    assert m == pytest.approx((v_ava_0 + v_ava) / 2, abs=6e-4)


def _episode(models, tmp_path, tag):
    from also.llm.client import LLMClient
    from also.llm.embeddings import EmbeddingClient
    from also.run.batch import RunConfig, run_batch, read_episodes
    from also.sotopia.agents import EpisodeConfig
    s = Settings.load()
    s.values["paths"] = {**s.values["paths"], "cache": str(tmp_path / "cache"), "sotopia_store": str(tmp_path / "sotopia")}
    client = LLMClient(models={**models, "embedding": "fake/16"}, retries=0)
    rc = RunConfig(tag, EpisodeConfig("opro", max_turns=6, judge_mode="full", bandit_options={"every": 2}), episodes=2)
    out = asyncio.run(run_batch(rc, tmp_path, client=client, embedder=EmbeddingClient("fake/16"), progress=False, settings=s))
    assert out["failed_now"] == 0
    return sorted(read_episodes(tmp_path / tag / "episodes.jsonl"), key=lambda e: e["episode_id"])   # stored in finishing order


def test_server_mode_answers_as_in_process(tmp_path):
    from also.llm.scripted import ScriptedServer
    roles = ("agent", "turn_judge", "terminal_judge", "optimizer")
    local = _episode({r: "scripted/planted" for r in roles}, tmp_path, "local")
    with ScriptedServer() as srv:
        served = _episode({r: srv.model("planted") for r in roles}, tmp_path, "served")
        assert {b.get("model") for b in srv.requests} == {"planted"}
    for a, b in zip(local, served):
        assert [t["argument"] for t in a["turns"]] == [t["argument"] for t in b["turns"]]
        assert [t["reward"] for t in a["turns"]] == [t["reward"] for t in b["turns"]]
        assert a["final"] == b["final"]
        assert any("planted mix" in (t.get("instruction") or {}).get("p1", "") for t in a["turns"])   # generated texts were played


def test_recovery_statistics_on_a_hand_made_set():
    from also.report.metrics import Runs
    f = pd.DataFrame({"tag": "t", "episode_id": ["e1", "e1", "e2", "e2", "e3", "e3"], "env_pk": "x",
                      "agent": ["p1", "p2"] * 3, "overall": [1.0, 3.0, 2.0, 2.0, 4.0, 6.0]})
    e = episode_scores(Runs(f, pd.DataFrame(), pd.DataFrame()))
    assert e.episode.tolist() == [2.0, 2.0, 5.0]                     # the unit: the mean of p1 and p2 of one episode
    m = mean_ci(e.episode)
    assert m["n"] == 3 and m["se"] == pytest.approx(np.std([2, 2, 5], ddof=1) / np.sqrt(3))
    assert m["hi"] - m["mean"] == pytest.approx(4.3027 * m["se"], rel=1e-4)           # t(0.975, 2 df)


# ---------------------------------------------------------------------------------------------------------------------
# A small planted profile, end to end, in-process

PLANTED = {r: "scripted/planted" for r in ("agent", "turn_judge", "terminal_judge", "optimizer")}
FLAT = {r: "scripted/planted-flat" for r in ("agent", "turn_judge", "terminal_judge", "optimizer")}
PAIRS = [["scripted/planted", "scripted/planted-weak"], ["scripted/planted-weak", "scripted/planted"],
         ["scripted/planted", "scripted/planted"], ["scripted/planted-weak", "scripted/planted-weak"]]
SIZE = dict(split="hard_small", reps=1, turns=8, judge_mode="scores", concurrency=8)


LEARN = {r: "scripted/planted-learn" for r in ("agent", "turn_judge", "terminal_judge", "optimizer")}


@pytest.fixture(scope="module")
def planted_results(tmp_path_factory):
    from also.report.reproduce import main_runs, ablation_runs, bilateral_runs, cross_model_runs, control_runs, run_generalization
    from also.llm.client import LLMClient
    from also.llm.embeddings import EmbeddingClient
    from also.run.batch import run_batch
    d = tmp_path_factory.mktemp("planted")
    s = Settings.load()
    s.values["paths"] = {**s.values["paths"], "cache": str(d / "cache"), "sotopia_store": str(d / "sotopia")}
    runs = (main_runs("pt", ["original", "uniform", "oracle", "also", "opro"], models=PLANTED, **SIZE)
            + ablation_runs("pt", models=PLANTED, **SIZE) + bilateral_runs("pt", models=PLANTED, **SIZE)
            + control_runs("pt", ["original", "uniform", "oracle", "also", "opro"], models=PLANTED, control_models=FLAT, **SIZE)
            + [r for r in cross_model_runs("pt", PAIRS, models=PLANTED, **SIZE) if r.episode.method == "original"])
    async def go():
        for r in runs:
            client = LLMClient(models={"agent": "scripted/planted", "turn_judge": "scripted/planted", "terminal_judge": "scripted/planted",
                                       "optimizer": "scripted/planted", "embedding": "fake/16"}, retries=0)
            out = await run_batch(r, d, client=client, embedder=EmbeddingClient("fake/16"), progress=False, settings=s)
            assert out["failed_now"] == 0, r.tag
    asyncio.run(go())
    with pytest.MonkeyPatch.context() as mp:       # run_generalization makes its own clients from the settings: keep its caches here
        mp.setenv("ALSO_PATHS_CACHE", str(d / "cache")); mp.setenv("ALSO_PATHS_SOTOPIA_STORE", str(d / "sotopia"))
        size = {k: v for k, v in SIZE.items() if k != "split"}
        run_generalization("pt", 7, 7, results_dir=d, progress=False, models={**PLANTED, "embedding": "fake/16"}, **size)
        run_generalization("pt", 4, 4, results_dir=d, progress=False, exp="learning_gen", models={**LEARN, "embedding": "fake/16"},
                           **{**size, "reps": 2})
    return d, recovery_table(d)


def test_table2_n_is_the_plan_and_no_episode_counts_twice(planted_results):
    _, rec = planted_results
    assert rec.tag.nunique() == 5 + 5 + 4 + 5 + 4 + 4 + 4
    assert (rec.stored == rec.planned).all() and (rec.distinct_stored == rec.stored).all()
    assert (rec[~rec.experiment.isin(["gen", "learning_gen"])].planned == 14).all()
    main = rec[(rec.experiment == "main") & (rec.unit == "episode")]
    assert sorted(main.method) == ["ALSO", "OPRO", "Oracle", "Original", "Uniform"] and (main.n == 14).all()


def test_tab_main_counts_each_planned_episode_once(planted_results, tmp_path):
    "Table 2 as `also report` writes it: the main experiment's runs only, although bilateral and cross runs replay its episodes."
    from also.report.render import report, select_tags
    d, rec = planted_results
    r = report(d, select_tags(d, None, "pt"), tmp_path / "figs", only=["tab_main"], executed_dir=tmp_path / "executed")
    assert not r["tab_main"]["error"], r["tab_main"]["error"]
    t = pd.read_csv(tmp_path / "figs/tab_main.csv")
    ours = t[(t.source == "ours") & t.method.notna()]       # (the improvement rows are "ours" too, without a method)
    assert sorted(set(ours.method)) == ["ALSO", "OPRO", "Oracle", "Original", "Uniform"]
    assert set(ours.split) == {"hard"}                      # only Sotopia-Hard was played: no "all" row pretends to be the 90 scenarios
    assert "only Sotopia-Hard scenarios were played" in (tmp_path / "executed/tab_main.ipynb").read_text()
    assert (ours.n_episodes == 14).all(), ours[["method", "split", "n_episodes"]]       # the plan: 14 hard_small combos x 1 rep
    main = rec[(rec.experiment == "main") & (rec.unit == "episode")].set_index("method")
    got = ours[ours.split == "hard"].set_index("method")
    for m in main.index:                                   # the same numbers as the recovery table's episode means
        assert got.loc[m, "overall"] == pytest.approx(main.loc[m, "mean"])


def test_fixed_policies_recover_the_planted_expectation(planted_results):
    _, rec = planted_results
    fixed = rec[(rec.unit == "episode") & ~rec.learns]
    print(fixed[["experiment", "method", "world", "p1_model", "p2_model", "mean", "lo", "hi", "truth"]].round(3).to_string())
    main = fixed[fixed.experiment == "main"].set_index("method")
    assert set(main.index) == {"Original", "Uniform", "Oracle"}
    assert main.truth_in_ci.all()                         # each within its 95% CI of the planted expectation
    assert fixed.truth_in_ci.mean() >= 0.8                # ... and the other fixed-policy runs mostly too (95% CIs)
    assert main.loc["Oracle", "lo"] > max(main.loc["Original", "hi"], main.loc["Uniform", "hi"])   # the CIs separate them
    tr = scenario_truth("planted", None, 8)
    assert main.loc["Oracle", "truth"] == pytest.approx(tr.oracle.mean()) and main.loc["Original", "truth"] == pytest.approx(tr.original.mean())


def test_learning_methods_land_between_uniform_and_the_oracle(planted_results):
    _, rec = planted_results
    ln = rec[(rec.unit == "episode") & rec.learns]
    print(ln[["experiment", "method", "world", "optimize", "mean", "uniform", "oracle", "ceiling", "position", "position_lo", "position_hi"]]
          .round(3).to_string())
    assert len(ln[ln.experiment.isin(["main", "bilateral", "control"])]) == 2 + 3 + 2 and ln.position[ln.world != "flat"].notna().all()
    assert (ln.lo <= ln.ceiling).all()                    # what the truth fixes: nothing beats the best arm at every turn
    assert (ln.uniform < ln.oracle)[ln.world != "flat"].all() and (ln.uniform == ln.oracle)[ln.world == "flat"].all()


def test_a_truth_covers_only_agents_whose_policy_is_fixed(planted_results):
    "P1-only and P2-only runs: the episode row has no truth (one agent learns); the other agent's row has Original's, and says so."
    _, rec = planted_results
    b = rec[rec.experiment == "bilateral"].set_index(["optimize", "unit"])
    for learner, other in (("p1", "p2"), ("p2", "p1")):
        assert np.isnan(b.loc[(learner, "episode"), "truth"]) and pd.isna(b.loc[(learner, "episode"), "truth_covers"])
        assert np.isnan(b.loc[(learner, learner), "truth"])
        assert b.loc[(learner, other), "truth_covers"] == f"{other} original" and b.loc[(learner, other), "truth_in_ci"]
    t = rec[rec.truth.notna()]
    assert t.truth_covers.notna().all() and not t.truth_covers.str.contains("learns").any()
    print(f"{len(t)} (run, unit) rows have a planted truth, {int(t.truth_in_ci.sum())} inside their CI")


def test_flat_world_has_no_false_positive_and_the_check_has_power(planted_results):
    from also.report.metrics import load_episodes
    d, rec = planted_results
    g = gains(rec, episode_scores(load_episodes(d, sorted(set(rec.tag)))))
    print(g[["experiment", "world", "method", "gain", "se", "lo", "hi", "paired", "planted_gain", "excludes_zero"]].round(3).to_string())
    assert g[g.experiment.isin(["main", "control", "bilateral", "cross"])].paired.all()    # same combos, same seeds: paired SEs
    flat = g[g.world == "flat"]
    assert len(flat) == 4 and not flat.excludes_zero.any()
    assert (flat.planted_gain.dropna() == 0).all()
    cfg = json.loads((d / "pt-control-oracle" / "run_config.json").read_text())   # the flat oracle plays real strategies, not Original again
    assert 0 not in {o["arm"] for o in cfg["combo_options"].values()} and flat.set_index("method").loc["Oracle", "gain"] != 0
    main = g[(g.world == "main") & (g.experiment == "main")].set_index("method")
    assert main.loc["Oracle", "excludes_zero"] and main.loc["Oracle", "lo"] > 0     # the same check sees a real gain
    flat_oracle = flat.set_index("method").loc["Oracle"]
    assert (flat_oracle.hi - flat_oracle.lo) < main.loc["Oracle", "gain"]           # the flat CI is narrower than the real gain


def test_cross_model_order_follows_the_planted_strengths(planted_results):
    _, rec = planted_results
    cm = cross_model_order(rec)
    print(cm.round(3).to_string())
    orig = cm[cm.method == "Original"].set_index("pair")
    assert len(orig) == 4
    want = ["strong/weak", "strong/strong", "weak/weak", "weak/strong"]
    assert orig.sort_values("truth", ascending=False).index.tolist() == want
    assert orig.sort_values("mean", ascending=False).index.tolist() == want
    assert orig.truth_in_ci.all()


# ---------------------------------------------------------------------------------------------------------------------
# Same seeds, same numbers: the hash seed of the process changes nothing

HASH_RUN = """
import asyncio, sys
from pathlib import Path
from also.core import Settings
from also.llm.client import LLMClient
from also.llm.embeddings import EmbeddingClient
from also.run.batch import RunConfig, run_batch
from also.sotopia.agents import EpisodeConfig
import also.sotopia.episode as episode
roles, listed = ("agent", "turn_judge", "terminal_judge", "optimizer"), episode.ACTION_TYPES
for order in ("list", "set"):
    if order == "set": episode.ACTION_TYPES = tuple(set(listed))     # the old behaviour: Sotopia's set, ordered by the hash seed
    d = Path(sys.argv[1]) / order; s = Settings.load()
    s.values["paths"] = {**s.values["paths"], "cache": str(d / "cache"), "sotopia_store": str(d / "store")}
    rc = RunConfig("also", EpisodeConfig("also", max_turns=20, judge_mode="full"), episodes=2, concurrency=1)
    out = asyncio.run(run_batch(rc, d, client=LLMClient(models={**{r: "scripted/planted" for r in roles}, "embedding": "fake/16"}, retries=0),
                                embedder=EmbeddingClient("fake/16"), progress=False, settings=s))
    assert out["failed_now"] == 0
"""


def test_hash_seed_changes_nothing(tmp_path):
    """Two processes with different PYTHONHASHSEED write byte-identical planted episode records (the wall-clock duration_s
    aside); with Sotopia's set of action types put back, the same two processes differ (the check can fail)."""
    import os, subprocess, sys
    procs = [subprocess.Popen([sys.executable, "-c", HASH_RUN, str(tmp_path / h)], env={**os.environ, "PYTHONHASHSEED": h},
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for h in ("1", "2")]
    for p in procs: assert p.wait(timeout=600) == 0, p.stdout.read()[-3000:]
    rec = {(o, h): re.sub(r'"duration_s": [0-9.e-]+', '"duration_s": 0', (tmp_path / h / o / "also/episodes.jsonl").read_text())
           for o in ("list", "set") for h in ("1", "2")}
    assert len(rec["list", "1"].splitlines()) == 2 and rec["list", "1"] == rec["list", "2"]
    assert rec["set", "1"] != rec["set", "2"]


# ---------------------------------------------------------------------------------------------------------------------
# Every number the report prints: each table and figure of `also report` against the planted truth or the records

REPORTED = ["fig_cross_model", "fig_generalization", "tab_ablation", "tab_calls", "fig_turn_reward"]


@pytest.fixture(scope="module")
def reported(planted_results, tmp_path_factory):
    from also.report.render import report, select_tags
    d, _ = planted_results
    out = tmp_path_factory.mktemp("figs")
    r = report(d, select_tags(d, None, "pt"), out, only=REPORTED, executed_dir=out / "executed")
    assert not any(v["error"] for v in r.values()), r
    return {n: (lambda t: t[t.source == "ours"] if "source" in t else t)(pd.read_csv(out / f"{n}.csv")) for n in REPORTED}


def test_heat_map_cells_are_the_planted_pair_values(planted_results, reported):
    "fig_cross_model: P1's Original Overall per (P1, P2) model pair: the recovery table's p1 means, the planted truth inside each CI."
    _, rec = planted_results
    c = reported["fig_cross_model"].query("arm == 'baseline'").set_index(["p1_model", "p2_model"])
    truth = rec[(rec.experiment == "cross") & (rec.unit == "p1")].set_index(["p1_model", "p2_model"])
    assert len(c) == 4 and set(c.index) == set(truth.index)
    for pair, r in c.iterrows():
        t = truth.loc[pair]
        assert r.n_episodes == t.n == 14 and r.overall == pytest.approx(t["mean"], abs=1e-12)
        assert abs(r.overall - t.truth) <= t95(14) * r.overall_se, (pair, r.overall, t.truth)


def test_generalization_figure_is_the_records(planted_results, reported):
    "fig_generalization: per condition, the mean Overall of the test episodes (both agents), recomputed from the records."
    _, rec = planted_results
    f = reported["fig_generalization"]
    avg = f[f.codename == "(average)"].set_index("condition")
    gen = rec[(rec.experiment == "gen") & (rec.unit == "episode")].set_index("generalization")
    assert set(avg.index) == {"scratch", "zero_shot", "finetune"}
    for cond, r in avg.iterrows(): assert r.overall == pytest.approx(gen.loc[cond, "mean"], abs=1e-12) and r.n_episodes == 7
    per = f[f.codename != "(average)"]
    assert len(per) == 3 * 7 and (per.groupby("condition").overall.mean() - avg.overall).abs().max() < 1e-12   # one episode per scenario


def test_learnable_world_generalization_carries_what_was_learned(planted_results):
    """Where the world gives the trained bandit something to carry (one best arm in every scenario), the three conditions differ
    from the first turn: scratch starts uniform, zero-shot and fine-tune start from the trained scores; fine-tune then learns."""
    from also.run.batch import read_episodes
    d, _ = planted_results
    w = planted_world("planted-learn"); best = [s.id for s in load_space("v3")].index(w.roles[0]["best"])
    first = {c: [e["turns"][0]["probs"]["p1"][best] for e in read_episodes(d / f"pt-learning_gen-{c}/episodes.jsonl")]
             for c in ("scratch", "zero_shot", "finetune")}
    print({c: np.round(v, 3) for c, v in first.items()})
    assert np.allclose(first["scratch"], 1 / 13, atol=1e-5) and first["zero_shot"] == first["finetune"]     # the same trained start ...
    assert min(first["zero_shot"]) > 1 / 13 + 0.01                                           # ... which favours the best arm
    zs, ft = (sorted(read_episodes(d / f"pt-learning_gen-{c}/episodes.jsonl"), key=lambda e: e["episode_id"]) for c in ("zero_shot", "finetune"))
    assert any(a["turns"][-1]["probs"] != b["turns"][-1]["probs"] for a, b in zip(zs, ft))   # fine-tune learned on, zero-shot did not
    assert all(not t["credit"] or not any(c["updated"] for c in t["credit"].values()) for e in zs for t in e["turns"])


def test_ablation_table_is_the_records(planted_results, reported):
    "tab_ablation: each variant's Overall and N are the recovery table's episode means of the ablation runs."
    _, rec = planted_results
    t = reported["tab_ablation"].set_index("variant")
    abl = rec[(rec.experiment == "ablation") & (rec.unit == "episode")].set_index("variant")
    assert set(t.index) == set(abl.index) == {"full", "eps_greedy", "no_smoothing", "no_context", "no_surrogate"}
    for v, r in t.iterrows(): assert r.overall == pytest.approx(abl.loc[v, "mean"], abs=1e-12) and r.n_episodes == 14


def test_calls_table_is_the_plan(planted_results, reported):
    "tab_calls: per episode, T agent calls, T - 1 judge calls for optimized runs, one terminal call, the optimizer's as its events say."
    from also.run.batch import read_episodes
    d, _ = planted_results
    t = reported["tab_calls"].set_index("method")
    T = SIZE["turns"]
    assert set(t.index) == {"Original", "Uniform", "Oracle", "ALSO", "OPRO"} and (t["T (mean turns)"] == T).all()
    assert (t.agent == T).all() and (t["terminal judge"] == 1).all()
    assert t.loc["Original", "turn judge"] in (0, None) or np.isnan(t.loc["Original", "turn judge"])
    assert (t.drop(index="Original")["turn judge"] == T - 1).all()
    opro = read_episodes(d / "pt-main-opro/episodes.jsonl")
    by_events = np.mean([sum(ev["calls"] for tr in e["turns"] for evs in (tr.get("events") or {}).values() for ev in evs) for e in opro])
    assert by_events == 2 and t.loc["OPRO", "optimizer"] == by_events          # one step (after turn 4) per agent, one call each
    assert t.loc["ALSO", "embedding"] == 2 + T                                 # both agents' arms once, one context per turn


def _turn_truth(w, pk, turn, arm_effect) -> float:
    "The planted expected per-turn reward after `turn` (mean of P1 and P2): each agent's latest utterance, or a silent one."
    sc = scenario_of(pk); vals = []
    for a, o in (("p1", "p2"), ("p2", "p1")):
        mine, theirs = [s for s in range(turn) if (s % 2 == 0) == (a == "p1")], [s for s in range(turn) if (s % 2 == 0) != (a == "p1")]
        opp = -w.cfg.opp_weight * 0.05 if theirs else 0.0                       # the opponent's strength counts once it has spoken
        vals.append(w.base(sc) + opp + (0.05 + arm_effect(mine[-1]) if mine else 0.0))
    return float(np.mean([w.reward(v) for v in vals]))


def test_turn_reward_figure_against_the_planted_truth(planted_results, reported):
    """fig_turn_reward: for uniform play and the oracle the per-turn reward is fixed by the table; the curve must hold it
    within its CI (95%, so most turns), and each point must be the records' mean."""
    from also.run.batch import read_episodes
    from also.worlds.planted import best_fixed_arm
    d, _ = planted_results
    c = reported["fig_turn_reward"].set_index(["method", "turn"])
    keys = [s.id for s in load_space("v3")]
    inside = []
    for method, tag in (("Uniform", "pt-main-uniform"), ("Oracle", "pt-main-oracle")):
        eps = read_episodes(d / tag / "episodes.jsonl")
        for turn in range(1, SIZE["turns"]):
            got = c.loc[(method, turn)]
            assert got["mean"] == pytest.approx(np.mean([np.mean(list(e["turns"][turn - 1]["reward"].values())) for e in eps]), abs=1e-12)
            truth = []
            for e in eps:
                sc = scenario_of(e["combo_pk"]); k = W.cluster(sc)
                arm = best_fixed_arm(W, sc, SIZE["turns"])[0]
                eff = (lambda s: W.effect(keys[arm], k, s)) if method == "Oracle" else (lambda s: np.mean([W.effect(x, k, s) for x in keys]))
                truth.append(_turn_truth(W, e["combo_pk"], turn, eff))
            inside.append(abs(got["mean"] - np.mean(truth)) <= t95(got.n) * got.se)
    print(f"{sum(inside)} of {len(inside)} turn means hold the planted per-turn reward in their 95% CI")
    assert np.mean(inside) >= 0.8
