"Strategy-following (S-IF): prompt, one scripted judge call per agent, partial replies, errors, hand-checked table."
import asyncio, json, math, re
import pytest
import also  # noqa: F401  (offline environment before litellm is imported)
from also.core import AlsoError, ConfigError, DataError
from also.sotopia.following import (FOLLOW_LABELS, FOLLOW_SCORES, FOLLOWING_HEADER, TOTAL_ROW, FollowingError, FollowingJudgement, following_prompt,
    following_table, rate_following)
from also.llm.client import LLMClient
from also.llm.adapter import drain_llm_layer
from also.llm.scripted import ScriptedLLM, register_scripted

LABEL_OF = {"ask": "yes", "deadline": "partly", "concession": "no"}

def judge(prompt:str) -> str:
    "Scripted judge: label each asked turn from a keyword of its instruction; drops turn 7, adds a turn 99."
    out = []
    for n, instr in re.findall(r"^Turn (\d+)\nInstruction: (.*)$", prompt, re.M):
        if int(n) == 7: continue
        out.append({"turn": int(n), "label": next(v for k, v in LABEL_OF.items() if k in instr), "reason": "scripted"})
    return json.dumps({"turns": out + [{"turn": 99, "label": "yes", "reason": "never asked"}]})

AVA = [{"turn": 0, "strategy": "In your response, ask one open question.", "utterance": "What matters most to you?"},
       {"turn": 2, "strategy": "", "utterance": "Fine."},
       {"turn": 4, "strategy": "In your response, name a deadline.", "utterance": "I need an answer soon."},
       {"turn": 6, "strategy": "In your response, offer a concession.", "utterance": "No."}]
BO = [{"turn": 1, "strategy": "In your response, ask about their needs.", "utterance": "Why do you want it?"},
      {"turn": 3, "strategy": "", "utterance": "Hm."},
      {"turn": 5, "strategy": "In your response, offer a concession.", "utterance": "Take it."},
      {"turn": 7, "strategy": "In your response, name a deadline.", "utterance": "Decide by Friday."}]


def run(coro):
    async def main():
        try: return await coro
        finally: await drain_llm_layer()
    return asyncio.run(main())

@pytest.fixture
def prov():
    p = register_scripted(ScriptedLLM(rules=[(FOLLOWING_HEADER, judge)]))
    yield p
    register_scripted()                  # back to the default scripted policy for other tests


def test_schema_and_labels():
    assert FOLLOW_LABELS == ("yes", "partly", "no") and FOLLOW_SCORES == {"yes": 1.0, "partly": 0.5, "no": 0.0}
    j = FollowingJudgement.model_validate({"turns": [{"turn": 1, "label": "partly", "reason": "r"}]})
    assert j.turns[0].label == "partly"
    with pytest.raises(Exception): FollowingJudgement.model_validate({"turns": [{"turn": 1, "label": "maybe", "reason": "r"}]})


def test_prompt_asks_only_instructed_turns():
    p = following_prompt("Ava", AVA)
    assert re.findall(r"^Turn (\d+)$", p, re.M) == ["0", "4", "6"] and "Fine." not in p
    assert "What Ava said or did: I need an answer soon." in p and p.endswith("the turns 0, 4, 6.")
    with pytest.raises(ConfigError, match="no turn of Ava"): following_prompt("Ava", [AVA[1]])
    with pytest.raises(ConfigError, match="appears twice"): following_prompt("Ava", [AVA[0], AVA[0]])


def test_one_call_per_agent_and_partial_replies(prov):
    cl = LLMClient(models={"terminal_judge": "scripted/bot"})
    async def both(): return await asyncio.gather(rate_following(cl, "Ava", AVA, seed=3), rate_following(cl, "Bo", BO, seed=4))
    ava, bo = run(both())
    assert cl.ledger.totals()["calls"] == 2 == cl.ledger.totals(purpose="terminal_judge")["calls"]
    assert len(prov.requests) == 2
    assert [(r["turn"], r["label"], r["score"]) for r in ava] == [(0, "yes", 1.0), (4, "partly", 0.5), (6, "no", 0.0)]
    assert [(r["turn"], r["label"], r["score"]) for r in bo] == [(1, "yes", 1.0), (5, "no", 0.0), (7, None, None)]
    assert bo[2]["reason"] == "the judge did not rate this turn" and bo[0]["strategy"] == BO[0]["strategy"]
    assert all(r["turn"] != 99 for r in ava + bo)           # extra turns ignored
    assert run(rate_following(cl, "Ava", [AVA[1]])) == [] and cl.ledger.totals()["calls"] == 2   # nothing asked: no call


def test_empty_reply_never_raises():
    register_scripted()                                     # default policy: a minimal schema instance, {"turns": []}
    cl = LLMClient(models={"terminal_judge": "scripted/bot"})
    out = run(rate_following(cl, "Ava", AVA))
    assert [r["label"] for r in out] == [None, None, None]


def test_llm_failure_is_following_error(prov):
    prov.faults.inject("500", n=None)
    cl = LLMClient(models={"terminal_judge": "scripted/bot"}, retries=1, backoff=0.01)
    with pytest.raises(FollowingError, match="strategy-following judge failed for Ava") as ei: run(rate_following(cl, "Ava", AVA))
    assert isinstance(ei.value, AlsoError) and cl.ledger.totals()["calls"] == 2
    prov.faults.clear()


def test_table_hand_checked():
    ava = [{"method": "ALSO", "strategy": s, "label": l} for s, l in
           [("Ask", "yes"), ("Ask", "partly"), ("Deadline", "no"), ("Deadline", None), ("Ask", "yes")]]
    opro = [{"method": "OPRO", "strategy": "Ask", "label": "no"}]
    t = following_table(ava + opro)
    assert list(t.columns) == ["method", "strategy", "following_rate", "n", "n_missing"]
    assert list(zip(t.method, t.strategy)) == [("ALSO", "Ask"), ("ALSO", "Deadline"), ("ALSO", TOTAL_ROW), ("OPRO", "Ask"), ("OPRO", TOTAL_ROW)]
    assert t.following_rate.tolist() == pytest.approx([2.5 / 3, 0.0, 2.5 / 4, 0.0, 0.0])
    assert t.n.tolist() == [3, 1, 4, 1, 1] and t.n_missing.tolist() == [0, 1, 1, 0, 0]
    assert math.isnan(following_table([{"method": "m", "strategy": "s", "label": None}]).following_rate[0])
    with pytest.raises(DataError, match="unknown following label"): following_table([{"method": "m", "strategy": "s", "label": "YES"}])
    with pytest.raises(DataError, match="lacks"): following_table([{"method": "m", "label": "yes"}])
