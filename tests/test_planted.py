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


@pytest.fixture(scope="module")
def planted_results(tmp_path_factory):
    from also.report.reproduce import main_runs, bilateral_runs, cross_model_runs, control_runs, make_run
    from also.llm.client import LLMClient
    from also.llm.embeddings import EmbeddingClient
    from also.run.batch import run_batch
    d = tmp_path_factory.mktemp("planted")
    s = Settings.load()
    s.values["paths"] = {**s.values["paths"], "cache": str(d / "cache"), "sotopia_store": str(d / "sotopia")}
    runs = (main_runs("pt", ["original", "uniform", "oracle", "also", "opro"], models=PLANTED, **SIZE)
            + bilateral_runs("pt", models=PLANTED, **SIZE)
            + control_runs("pt", ["original", "uniform", "oracle", "also", "opro"], models=PLANTED, control_models=FLAT, **SIZE)
            + [r for r in cross_model_runs("pt", PAIRS, models=PLANTED, **SIZE) if r.episode.method == "original"])
    async def go():
        for r in runs:
            client = LLMClient(models={"agent": "scripted/planted", "turn_judge": "scripted/planted", "terminal_judge": "scripted/planted",
                                       "optimizer": "scripted/planted", "embedding": "fake/16"}, retries=0)
            out = await run_batch(r, d, client=client, embedder=EmbeddingClient("fake/16"), progress=False, settings=s)
            assert out["failed_now"] == 0, r.tag
    asyncio.run(go())
    return d, recovery_table(d)


def test_table2_n_is_the_plan_and_no_episode_counts_twice(planted_results):
    _, rec = planted_results
    assert rec.tag.nunique() == 5 + 4 + 5 + 4
    assert (rec.planned == 14).all() and (rec.stored == rec.planned).all() and (rec.distinct_stored == rec.stored).all()
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
    assert sorted(set(ours.method)) == ["ALSO", "OPRO", "Oracle", "Original", "Uniform"] and set(ours.split) == {"all", "hard"}
    assert (ours.n_episodes == 14).all(), ours[["method", "split", "n_episodes"]]       # the plan: 14 hard_small combos x 1 rep
    main = rec[(rec.experiment == "main") & (rec.unit == "episode")].set_index("method")
    got = ours[ours.split == "all"].set_index("method")
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
    assert len(ln) == 2 + 3 + 2 and ln.position[ln.world == "main"].notna().all()
    assert (ln.lo <= ln.ceiling).all()                    # what the truth fixes: nothing beats the best arm at every turn
    assert (ln.uniform < ln.oracle)[ln.world == "main"].all() and (ln.uniform == ln.oracle)[ln.world == "flat"].all()


def test_flat_world_has_no_false_positive_and_the_check_has_power(planted_results):
    _, rec = planted_results
    g = gains(rec)
    print(g[["experiment", "world", "method", "gain", "lo", "hi", "planted_gain", "excludes_zero"]].round(3).to_string())
    flat = g[g.world == "flat"]
    assert len(flat) == 4 and not flat.excludes_zero.any()
    assert (flat.planted_gain.dropna() == 0).all()
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
