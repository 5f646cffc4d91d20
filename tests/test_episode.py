"""The episode runner against hand-derived expectations: which (arm, reward, context) each bandit learns under each
profile, which selections it makes, and the random streams of loaded bandits."""
import json, re
import numpy as np
import pytest
from also.core import DIMENSIONS
from also.bandits.base import PROFILES, Profile, load_bandit, save_bandit
from also.sotopia.data import load_data, split_combos, install_into_sotopia
from also.llm.embeddings import EmbeddingClient
from also.sotopia.agents import EpisodeConfig, context_text
from also.sotopia.episode import run_episode
from also.llm.client import LLMClient
from also.llm.adapter import run_sync
from also.llm.scripted import ScriptedLLM, register_scripted

ROLES = ("agent", "turn_judge", "terminal_judge", "optimizer")
SCORES = {1: (3, 7), 2: (5, 0), 3: (0, 4), 4: (6, 2), 5: (8, 1), 6: (4, 6), 7: (2, 5)}   # turn -> (p1, p2) per-turn judge score, in tenths


def known_judge(prompt:str) -> str:
    "Every dimension at its minimum + SCORES[t][agent], so the normalized reward of the agent is SCORES[t][agent] / 10."
    t = max(int(x) for x in re.findall(r"Turn #(\d+)", prompt))
    names = list(re.search(r"Participants: (.+?) and (.+?)\n", prompt).groups())
    only = re.search(r"Evaluate only (.+?) \(as agent_1\)", prompt)
    who = [names.index(only[1])] if only else [0, 1]
    return json.dumps({f"agent_{i+1}": {d: {"reasoning": "known", "score": lo + SCORES[t][w]} for d, (lo, hi) in DIMENSIONS.items()}
                       for i, w in enumerate(who)})


def r(t, k): return SCORES[t][0 if k == "p1" else 1] / 10


@pytest.fixture
def world(tmp_path):
    "Sotopia's store, the first hard_small combo, a scripted LLM with the known judge, fake/16 embeddings."
    install_into_sotopia(store_dir=tmp_path / "store")
    data = load_data()
    provider = register_scripted(ScriptedLLM(rules=[(r"Based on the interaction so far, evaluate", known_judge)]))
    client = LLMClient(models={p: "scripted/bot" for p in ROLES} | {"embedding": "fake/16"}, backoff=0.01)
    emb = EmbeddingClient("fake/16", ledger=client.ledger)
    def play(cfg, eid="e#0", init=None):
        return run_sync(run_episode(data.combos[split_combos(data, "hard_small")[0]], cfg, emb, client, eid,
                                    init_states=init, save_log=False))
    play.embed = lambda text: run_sync(emb.embed(text))
    play.provider = provider
    return play


@pytest.fixture
def spy(monkeypatch):
    "Record every select / force / update a bandit class receives: (bandit id, method, args, result)."
    calls = []
    def watch(cls):
        for name in ("select", "force", "update"):
            orig = getattr(cls, name)
            def f(self, *a, _orig=orig, _name=name):
                out = _orig(self, *a); calls.append((id(self), _name, a, out)); return out
            monkeypatch.setattr(cls, name, f)
    watch.calls = calls
    return watch


def by_bandit(calls, bandit, *names):
    return [(n, a, out) for i, n, a, out in calls if i == id(bandit) and n in names]


def check_updates(world, res, calls, expected):
    "Each bandit's update calls are exactly `expected[k]` = [(arm, reward, j)], j the turn whose dialogue the context encodes."
    e = res.record
    names = {k: e["agents"][k]["name"] for k in ("p1", "p2")}
    for k, exp in expected.items():
        got = by_bandit(calls, res.bandits[k], "update")
        assert [a[0] for _, a, _ in got] == [arm for arm, _, _ in exp], k
        assert [a[1] for _, a, _ in got] == pytest.approx([rw for _, rw, _ in exp]), k
        for (_, a, _), (_, _, j) in zip(got, exp):
            np.testing.assert_array_equal(a[2], world.embed(context_text(e["turns"][:j], names)))
        # the turn records say the same: credit[k] at the turn whose judgement paid, with arm, reward and context turn
        notes = [(t["credit"][k]["arm"], t["credit"][k]["reward"], t["credit"][k]["context_turn"])
                 for t in e["turns"] if k in t["credit"] and t["credit"][k]["updated"]]
        assert [(a, j) for a, _, j in notes] == [(a, j) for a, _, j in exp] and [x for _, x, _ in notes] == pytest.approx([x for _, x, _ in exp])


@pytest.mark.parametrize("timing", ["after_reply", "own"])
def test_reward_timing(world, spy, monkeypatch, timing):
    "Paper profile, 6 turns (turn 6 ends the episode, so the judge scores turns 1-5), LinUCB with contexts."
    from also.bandits.linucb import LinUCBBandit
    spy(LinUCBBandit)
    monkeypatch.setitem(PROFILES, "timing", Profile("timing", reward_timing=timing))
    res = world(EpisodeConfig("linucb", "both", profile="timing", max_turns=6, bandit_options={"use_context": True}))
    a1, a2 = ([out for _, _, out in by_bandit(spy.calls, res.bandits[k], "select", "force")] for k in ("p1", "p2"))
    assert len(a1) == len(a2) == 3 and not by_bandit(spy.calls, res.bandits["p1"], "force")   # each selects at its own turns
    assert [t["arms"][t["speaker"]] for t in res.record["turns"]] == [a1[0], a2[0], a1[1], a2[1], a1[2], a2[2]]
    if timing == "after_reply":
        # the arm played at turn t earns the player's score after turn t+1; context = the dialogue before turn t;
        # p1's turn-5 arm would need a judgement after turn 6, the terminal turn, which has none: not credited
        expected = {"p1": [(a1[0], r(2, "p1"), 0), (a1[1], r(4, "p1"), 2)],
                    "p2": [(a2[0], r(3, "p2"), 1), (a2[1], r(5, "p2"), 3)]}
    else:
        # the arm played at turn t earns the player's score right after turn t (zeros are learned from)
        expected = {"p1": [(a1[0], r(1, "p1"), 0), (a1[1], r(3, "p1"), 2), (a1[2], r(5, "p1"), 4)],
                    "p2": [(a2[0], r(2, "p2"), 1), (a2[1], r(4, "p2"), 3)]}
    check_updates(world, res, spy.calls, expected)
    assert [t["reward"] for t in res.record["turns"][:5]] == [pytest.approx({"p1": r(t, "p1"), "p2": r(t, "p2")}) for t in range(1, 6)]
    assert res.record["turns"][5]["reward"] is None


def test_after_reply_judges_the_agent_it_credits(world):
    "judge_mode 'actor' with after_reply: the judgement after turn t scores the agent that spoke at t-1."
    res = world(EpisodeConfig("exp3", "both", max_turns=4, judge_mode="actor"))
    e = res.record
    assert [list(t["reward"] or {}) for t in e["turns"]] == [["p2"], ["p1"], ["p2"], []]
    assert [t["reward"] for t in e["turns"][:3]] == [pytest.approx({k: r(t, k)}) for t, k in ((1, "p2"), (2, "p1"), (3, "p2"))]
    prompts = [m["messages"][-1]["content"] for m in world.provider.requests if "Evaluate only" in m["messages"][-1]["content"]]
    assert [re.search(r"Evaluate only (.+?) \(as", p)[1] for p in prompts] == [e["agents"][k]["name"] for k in ("p2", "p1", "p2")]
    assert [{k: (c["arm_turn"], c["reward"]) for k, c in t["credit"].items()} for t in e["turns"]] == \
           [{}, {"p1": (1, pytest.approx(r(2, "p1")))}, {"p2": (2, pytest.approx(r(3, "p2")))}, {}]


def test_reference_profile(world, spy):
    """Reference: both agents re-select after every turn (arm 0 forced for both at turn 1), both are credited every turn
    with the post-action context, rewards of exactly 0 are skipped, and the terminal raw Overall is fed to update."""
    from also.bandits.also import AlsoBandit
    spy(AlsoBandit)
    res = world(EpisodeConfig("also", "both", profile="reference", max_turns=6))
    e, T = res.record, 6
    from also.bandits.base import profile_options
    for k in ("p1", "p2"):                             # the runner builds the bandits with the reference profile's options
        assert {o: res.bandits[k].options[o] for o in profile_options("also", "reference")} == profile_options("also", "reference")
        assert res.bandits[k].options["score_timing"] == "after"
        calls = by_bandit(spy.calls, res.bandits[k], "select", "force")
        assert [n for n, _, _ in calls] == ["force"] + ["select"] * (T - 1) and calls[0][2] == 0
        assert [t["arms"][k] for t in e["turns"]] == [out for _, _, out in calls]         # the arm in force at every turn
        assert len(res.bandits[k].trace) == T - 1      # S moved at every turn after the first: twice per own turn
    b1 = [t["arms"]["p1"] for t in e["turns"]]; b2 = [t["arms"]["p2"] for t in e["turns"]]
    F = {k: e["final"][k]["overall"] for k in ("p1", "p2")}
    # turn t credits the arm in force at t with r_t, context = dialogue through t; SCORES has p2 = 0 at turn 2 and p1 = 0 at turn 3
    expected = {"p1": [(b1[0], r(1, "p1"), 1), (b1[1], r(2, "p1"), 2), (b1[3], r(4, "p1"), 4), (b1[4], r(5, "p1"), 5)],
                "p2": [(b2[0], r(1, "p2"), 1), (b2[2], r(3, "p2"), 3), (b2[3], r(4, "p2"), 4), (b2[4], r(5, "p2"), 5)]}
    for k, arms in (("p1", b1), ("p2", b2)):
        if F[k] != 0: expected[k].append((arms[5], F[k], 6))
    check_updates(world, res, spy.calls, expected)
    skipped = [(t["turn"], k) for t in e["turns"] for k, c in t["credit"].items() if not c["updated"]]
    assert skipped == [(2, "p2"), (3, "p1")] + [(6, k) for k in ("p1", "p2") if F[k] == 0]
    assert e["ledger"]["calls"]["embedding"] == 2 + T + 1      # arm batches, contexts before turns 1..T, and after the terminal turn


def test_paper_profile_selects_only_for_the_speaker(world, spy):
    "Paper profile with ALSO: each agent's scores move once per own turn."
    from also.bandits.also import AlsoBandit
    spy(AlsoBandit)
    res = world(EpisodeConfig("also", "both", max_turns=6))
    for k in ("p1", "p2"):
        assert res.bandits[k].options["score_timing"] == "before"     # the paper profile's bandit options (Eq. 12)
        assert [n for n, _, _ in by_bandit(spy.calls, res.bandits[k], "select", "force")] == ["select"] * 3
        assert len(res.bandits[k].trace) == 3
    assert res.record["ledger"]["calls"]["embedding"] == 2 + 6


def test_loaded_bandit_draws_from_the_episode_seed(world, tmp_path):
    """Zero-shot episodes from one saved state: different seeds play different arms, the same seed the same ones;
    the learned state is the saved one."""
    trained = world(EpisodeConfig("exp3", "both", max_turns=6, seed=0), "train#0").bandits
    init = {k: load_bandit(save_bandit(b, tmp_path / f"{k}.json")).state_dict() for k, b in trained.items()}
    def arms(seed, eid):
        res = world(EpisodeConfig("exp3", "both", max_turns=8, seed=seed, learn=False), eid, init)
        for k, b in res.bandits.items(): np.testing.assert_array_equal(b.logw, init[k]["learned"]["logw"])
        return [(t["arms"]["p1"], t["arms"]["p2"]) for t in res.record["turns"]]
    one, two, again = arms(1, "a#0"), arms(2, "b#0"), arms(1, "c#0")
    assert one == again and one != two
