"LLM prompt-optimization baselines (OPRO, EvoPrompt GA/DE, PromptBreeder) with a scripted async optimizer."
import asyncio, json
import numpy as np
import pytest
from also.core import ConfigError
from also.bandits import base
from also.bandits.base import make_bandit, save_bandit, load_bandit
from also.bandits.generative import norm_text, play
from also.bandits.opro import OproBandit
from also.bandits.evoprompt import EvoPromptGA, EvoPromptDE
from also.bandits.promptbreeder import PromptBreederBandit
from also.bandits.spaces import load_space

REGISTRY = {"opro": ("also.bandits.opro", "OproBandit", {}),
            "evoprompt_ga": ("also.bandits.evoprompt", "EvoPromptGA", {}),
            "evoprompt_de": ("also.bandits.evoprompt", "EvoPromptDE", {}),
            "promptbreeder": ("also.bandits.promptbreeder", "PromptBreederBandit", {})}
CLASSES = {"opro": OproBandit, "evoprompt_ga": EvoPromptGA, "evoprompt_de": EvoPromptDE, "promptbreeder": PromptBreederBandit}
V3 = [s.text for s in load_space("v3")]
PERSONA = ("Mia Davis is a 35-year-old female nurse. She/her pronouns. Mia volunteers at the animal shelter every weekend. "
           "Mia's secrets: she once forged a signature on a hospital form.")


class Optimizer:
    "Scripted async optimizer: valid, unique replies unless `bad` replies are queued; records every request."
    def __init__(self, bad=()):
        self.requests, self.bad = [], list(bad)
    async def __call__(self, messages):
        self.requests.append(messages)
        if self.bad:
            r = self.bad.pop(0)
            if isinstance(r, Exception): raise r
            return r
        n = len(self.requests)
        return (f"Steps... <MUTATION>Rewrite the instruction to be more concrete, variant {n}.</MUTATION>"
                f"<STRATEGY>In your response, propose concrete trade number {n} and ask what they need.</STRATEGY>")


def reward(text):
    "Toy reward in [0, 1] that prefers written instructions (so the pool changes)."
    return 0.3 + 0.4 * ("trade" in norm_text(text).split()) + 0.01 * (len(text) % 7)


def run(coro): return asyncio.run(coro)


def episode(b, opt, n_turns=20, acts=lambda t: t % 2 == 1):
    "Like the runner: select/update on acting turns, evolve after non-terminal due turns; returns calls per turn."
    calls = {}
    async def go():
        for t in range(1, n_turns + 1):
            if acts(t):
                a = b.select(); b.update(a, reward(b.texts[a]))
            n0 = len(opt.requests)
            if t < n_turns and b.due(t): await b.evolve(t, opt)
            calls[t] = len(opt.requests) - n0
    run(go())
    return calls


@pytest.fixture
def registry(monkeypatch):
    for k, v in REGISTRY.items(): monkeypatch.setitem(base.BANDITS, k, v)


@pytest.mark.parametrize("name", list(CLASSES))
def test_schedule_and_call_counts(name, registry):
    b, opt = make_bandit(name, 13, seed=1), Optimizer()
    assert b.n_arms == 13 and b.texts == V3
    # paper Table 1: ceil(T/5) = 4 steps in a 20-turn episode, after turns 4, 8, 12, 16 (the runner skips turn 20)
    assert [t for t in range(1, 21) if b.due(t)] == [4, 8, 12, 16, 20]
    calls = episode(b, opt)
    assert {t for t, c in calls.items() if c} == {4, 8, 12, 16}       # only at the scheduled turns
    assert b.n_calls == len(opt.requests) == sum(e["calls"] for e in b.events)
    per_step = [calls[t] for t in (4, 8, 12, 16)]
    if name == "opro": assert per_step == [1, 1, 1, 1] and b.n_calls == 4 and b.n_arms == 17     # ceil(20/5) = 4
    elif name.startswith("evoprompt"): assert per_step == [5, 5, 5, 5] and b.n_calls == 20 and b.n_arms == 13  # 5 * 4
    else: assert all(1 <= c <= 4 for c in per_step) and b.n_arms == 13   # <= 2 tournaments x <= 2 calls
    assert b.n_steps == 4
    c = make_bandit(name, 13, seed=1); run(c.evolve(4, Optimizer()))
    assert not c.due(4)                                                # once per turn (until new rewards arrive)


@pytest.mark.parametrize("name", list(CLASSES))
def test_reference_profile_schedule(name, registry):
    "The reference's interval 5: steps after turns 5, 10, 15 (3 in a 20-turn episode) and its priors."
    b, opt = make_bandit(name, 13, seed=1, profile="reference"), Optimizer()
    calls = episode(b, opt)
    assert {t for t, c in calls.items() if c} == {5, 10, 15} and b.n_steps == 3
    assert b.init_score == (1.0 if name == "promptbreeder" else 0.5)


def test_optimistic_start_tries_every_arm():
    "With the paper profile's prior 1.0 the first 13 selections play 13 different arms (0.5: the first arm is replayed)."
    for prior, distinct in ((1.0, 13), (0.5, None)):
        b = OproBandit(13, seed=0, init_score=prior, eps=0.0)
        arms = []
        for _ in range(13):
            a = b.select(); b.update(a, 0.7); arms.append(a)
        if distinct: assert len(set(arms)) == distinct
        else: assert len(set(arms)) == 1


def test_first5_pool(registry):
    for name in CLASSES:
        b = make_bandit(name, 13, seed=0, pool="first5")
        assert b.texts == V3[:5] and b.n_arms == 5
    with pytest.raises(ConfigError, match="n_arms=12 but the strategy pool has 13"): make_bandit("opro", 12)
    with pytest.raises(ConfigError, match="has no option"): make_bandit("evoprompt_ga", 13, n_new=2)


def test_opro_adds_and_plays_new_arms():
    b, opt = OproBandit(13, seed=0, n_new=2), Optimizer()
    b.update(3, 0.6); b.update(0, 0.4)
    ev = run(b.evolve(4, opt))
    assert [e["kind"] for e in ev] == ["add", "add"] and b.n_arms == 15 and [e["arm"] for e in ev] == [13, 14]
    prompt = opt.requests[0][0]["content"]
    assert prompt.index("Score: 40") < prompt.index("Score: 60")      # ascending
    assert b.texts[:13] == V3                                          # nothing removed
    first = b.select(); assert first in (13, 14)                     # new proposals are played first
    b.update(first, 0.5)
    assert b.select() == 27 - first


@pytest.mark.parametrize("cls", [EvoPromptGA, EvoPromptDE, PromptBreederBandit])
def test_elites_and_no_strategy_survive(cls):
    b, opt = cls(13, seed=3), Optimizer()
    rng = np.random.default_rng(0)
    for a in range(13): b.update(a, float(rng.uniform(0.2, 0.9)))
    b.select()                                                         # an arm awaits its reward
    prot = b.protected()
    assert 0 in prot and b.pending in prot and len(prot - {0}) >= b.n_elite
    before = list(b.texts)
    ev = run(b.evolve(4, opt))
    assert any(e["kind"] == "replace" for e in ev)
    for i in prot: assert b.texts[i] == before[i]
    for e in ev:
        if e["kind"] == "replace": assert e["arm"] not in prot and b.texts[e["arm"]] == e["text"] != before[e["arm"]]
    assert b.texts[0] == "" and b.n_arms == 13


@pytest.mark.parametrize("name", list(CLASSES))
def test_persona_never_enters(name):
    b = CLASSES[name](13, seed=0); b.persona = PERSONA
    leak = "<STRATEGY>In your response, mention that Mia volunteers at the animal shelter every weekend.</STRATEGY>"
    ident = "<STRATEGY>In your response, remember you are a 35-year-old nurse who keeps secrets.</STRATEGY>"
    opt = Optimizer(bad=[leak, ident] * 3)
    episode(b, opt)
    sent = [m["content"] for r in opt.requests for m in r if m["role"] != "assistant"]   # what the bandit itself writes
    assert sent and all("Mia" not in c and "animal shelter" not in c and "nurse" not in c for c in sent)
    assert all("animal shelter" not in t and "you are a" not in t.lower() for t in b.texts)
    reasons = [r for e in b.events for r in e["rejected"]]
    assert "contains part of the persona" in reasons and any(r.startswith("describes an identity") for r in reasons)


BAD = ["", "I cannot help with that request, sorry!!! {\"error\": true}", "<STRATEGY>" + " word" * 150 + "</STRATEGY>",
       "#$%^&*()_+ 12345 <<<>>>", RuntimeError("optimizer down")]


@pytest.mark.parametrize("name", list(CLASSES))
@pytest.mark.parametrize("bad", BAD + ["duplicate"], ids=["empty", "garbage_json", "too_long", "noise", "exception", "duplicate"])
def test_malformed_reply_retried_once_then_skipped(name, bad):
    b = CLASSES[name](13, seed=2, **({"operators": ["first_order"]} if name == "promptbreeder" else {}))
    for a in range(13): b.update(a, 0.3 + 0.05 * a)
    if bad == "duplicate": bad = f"<STRATEGY>{V3[5]}</STRATEGY>"
    n = {"opro": 1, "evoprompt_ga": 5, "evoprompt_de": 5, "promptbreeder": 2}[name]   # requests in this step
    opt = Optimizer(bad=[bad] * (2 * n))
    before = list(b.texts)
    ev = run(b.evolve(4, opt))                                         # must not raise
    assert len(opt.requests) == 2 * n == b.n_calls                     # each request retried exactly once
    assert [e["kind"] for e in ev] == ["skip"] * n and all(e["calls"] == 2 and len(e["rejected"]) == 2 for e in ev)
    assert all(e["reason"] for e in ev) and b.texts == before          # no bad arm added or written
    retries = [r for r in opt.requests if r[-1]["role"] == "user" and r[-1]["content"].startswith("Your answer could not be used")]
    assert len(retries) == n


def test_bad_first_reply_then_good():
    b = OproBandit(13, seed=0); b.update(2, 0.5)
    opt = Optimizer(bad=["nonsense {}"])
    ev = run(b.evolve(4, opt))
    assert [e["kind"] for e in ev] == ["add"] and ev[0]["calls"] == 2 and len(ev[0]["rejected"]) == 1 and b.n_arms == 14


@pytest.mark.parametrize("name", list(CLASSES))
def test_state_round_trip_and_determinism(name, tmp_path):
    b, opt = CLASSES[name](13, seed=5), Optimizer()
    episode(b, opt, n_turns=12)
    c = load_bandit(save_bandit(b, tmp_path / "b.json"))
    json.dumps(b.state_dict()["learned"])                              # JSON-safe
    assert (c.texts, c.names, c.count, c.events, c.n_calls, c.n_arms) == (b.texts, b.names, b.count, b.events, b.n_calls, b.n_arms)
    assert [c.select() for _ in range(5)] == [b.select() for _ in range(5)]
    o1, o2 = Optimizer(), Optimizer()
    o1.requests, o2.requests = list(opt.requests), list(opt.requests)   # both continue the same reply numbering
    for x, o in ((b, o1), (c, o2)):
        for t in (13, 15):
            a = x.select(); x.update(a, reward(x.texts[a]))
        run(x.evolve(16, o))
    assert b.texts == c.texts and b.events == c.events
    # same seed, same optimizer -> identical run; another seed -> a different run
    runs = []
    for seed in (5, 5, 6):
        x, o = CLASSES[name](13, seed=seed), Optimizer(); episode(x, o)
        runs.append(([e["arm"] for e in x.events], list(x.texts), [r[0]["content"] for r in o.requests]))
    assert runs[0] == runs[1] and runs[0] != runs[2]


def test_option_errors():
    with pytest.raises(ConfigError, match="every must be"): OproBandit(13, every=0)
    with pytest.raises(ConfigError, match="selection must be"): EvoPromptGA(13, selection="ucb")
    with pytest.raises(ConfigError, match="operators must be"): PromptBreederBandit(13, operators=[])
    b = EvoPromptGA(13)
    with pytest.raises(ConfigError, match="use add_strategy"): b.add_arm()
    assert run(b.evolve(3, Optimizer())) == [] and b.n_calls == 0      # nothing due at turn 3


def _best_played_evictions(cls, seeds=range(12)):
    "Generations (after turns 4, 8, 12, 16; the agent acts every turn) in which the best-scored played arm lost its text."
    n = 0
    for seed in seeds:
        b, opt, rng = cls(13, seed=seed), Optimizer(), np.random.default_rng(seed)
        quality = {t: rng.uniform(0.2, 0.8) for t in b.texts}
        for t in range(1, 20):
            a = b.select(); b.update(a, float(np.clip(quality.get(b.texts[a], 0.5) + 0.05 * rng.normal(), 0, 1)))
            if b.due(t):
                s = b.scores()
                best = max((i for i in range(1, b.n_arms) if b.count[i]), key=lambda i: s[i])
                text = b.texts[best]
                run(b.evolve(t, opt))
                n += b.texts[best] != text
    return n


@pytest.mark.parametrize("cls", [EvoPromptGA, EvoPromptDE, PromptBreederBandit])
def test_played_best_arm_never_evicted(cls, monkeypatch):
    "Issue #18: with the optimistic prior 1.0, elites and replacement candidates are ranked among evaluated arms only."
    assert _best_played_evictions(cls) == 0
    if cls is PromptBreederBandit: return          # tournaments were always among played arms
    # the check can fail: the previous ranking (every strategy arm ranked by score, the prior counting as fitness)
    monkeypatch.setattr(cls, "evaluated", lambda self: list(range(1, self.n_arms)))
    assert _best_played_evictions(cls) >= 5
