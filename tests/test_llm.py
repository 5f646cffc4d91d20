"Tests of the LLM layer against the scripted 127.0.0.1 server (real HTTP calls: direct for custom/ servers, litellm for routers; no model)."
import asyncio, json, subprocess, sys, textwrap, threading, time, warnings
from pathlib import Path
import pytest
import also  # noqa: F401  (sets the offline environment before litellm/sotopia are imported)
from pydantic import BaseModel
from also.llm.spec import PURPOSES, LLMCallError, LLMOutputError
from also.llm.client import LLMClient
from also.llm.ledger import Ledger, llm_tags
from also.llm.adapter import acompletion_adapter, drain_llm_layer, llm_purpose, set_client
from also.core import DIMENSIONS
from also.llm.scripted import ScriptedLLM, ScriptedServer

AGENT_PROMPT = ("Imagine you are Ava Martinez, your task is to act/speak as Ava Martinez would, keeping in mind "
                "Ava Martinez's social goal.\nYou are at Turn #3. Your available action types are none speak leave.")

class AgentAction(BaseModel):
    action_type: str
    argument: str

def run(coro):
    "asyncio.run with litellm's logging worker drained (else Python 3.11 can hang at loop close)."
    async def main():
        try: return await coro
        finally: await drain_llm_layer()
    return asyncio.run(main())

@pytest.fixture(scope="module")
def server():
    with ScriptedServer() as s: yield s

@pytest.fixture
def client(server, tmp_path):
    server.faults.clear()
    return LLMClient(models={p: server.model() for p in PURPOSES}, ledger=Ledger(tmp_path/"ledger.jsonl"),
                     backoff=0.01, timeout=10, retries=3, cache_path=tmp_path/"cache.sqlite")

def test_faults_are_retried_and_succeed(server, client):
    n0 = len(server.requests)
    server.faults.inject("500", n=1).inject("429", n=1).inject("bad_body", n=1)
    act = run(client.chat_json(AGENT_PROMPT, AgentAction, "agent"))
    assert act.argument == "Ava Martinez says something useful at turn 3."
    assert len(server.requests) - n0 == 4
    tot = client.ledger.totals()
    assert (tot["calls"], tot["errors"]) == (4, 3)            # the ledger counts every call, failed ones too
    assert [r["attempt"] for r in client.ledger.records] == [0, 1, 2, 3]

def test_timeout_is_retried(server, client):
    server.faults.inject("timeout", n=1, delay=3)
    t0 = time.perf_counter()
    out = run(client.chat("Propose a new strategy for the agent.", "optimizer", timeout=1))
    assert out.startswith("Strategy ") and time.perf_counter() - t0 < 3
    assert "Timeout" in client.ledger.records[0]["error"] and client.ledger.records[1]["error"] is None

def test_unrecoverable_fault_names_model_purpose_cause(server, client):
    server.faults.inject("500", n=None)
    with pytest.raises(LLMCallError) as ei: run(client.chat("hello", "turn_judge", retries=2))
    e = ei.value
    assert e.model == server.model() and e.purpose == "turn_judge" and "500" in e.cause
    assert server.model() in str(e) and "turn_judge" in str(e) and "after 3 attempts" in str(e)
    assert client.ledger.totals()["errors"] == 3 and client.ledger.totals()["failures"] == 1

def test_malformed_output_is_repaired_once_then_fails(server, client):
    server.faults.inject("malformed", n=1)
    assert run(client.chat_json(AGENT_PROMPT, AgentAction, "agent")).action_type == "speak"
    last = server.requests[-1]["messages"]
    assert last[-1]["role"] == "user" and "invalid" in last[-1]["content"]    # the repair turn
    server.faults.inject("truncated", n=2)
    with pytest.raises(LLMOutputError) as ei: run(client.chat_json(AGENT_PROMPT, AgentAction, "agent"))
    assert ei.value.purpose == "agent" and "not valid JSON" in ei.value.cause
    assert client.ledger.records[-1]["error"].startswith("invalid output after repair")

def test_ledger_counts_every_call_with_tags(server, client):
    n0 = len(server.requests)
    async def episode(ep):
        with llm_tags(episode=ep):
            await client.chat(AGENT_PROMPT, "agent")
            await client.chat("evaluate how well participants achieve their goals", "terminal_judge")
    async def both(): await asyncio.gather(episode("e1"), episode("e2"))
    run(both())
    assert len(server.requests) - n0 == 4 == client.ledger.totals()["calls"]
    assert client.ledger.by("episode")["e1"]["by_purpose"]["terminal_judge"]["calls"] == 1
    assert len(Ledger.load(client.ledger.path).records) == 4               # and on disk

def test_cache_returns_identical_output_without_a_call(server, client, tmp_path):
    n0 = len(server.requests)
    a = run(client.chat(AGENT_PROMPT, "agent", seed=7))
    b = run(client.chat(AGENT_PROMPT, "agent", seed=7))
    assert a == b and len(server.requests) - n0 == 1
    assert client.ledger.records[-1]["cache_hit"] is True
    # a fresh client on the same file (a re-run) also hits
    c2 = LLMClient(models=client.models, cache_path=tmp_path/"cache.sqlite")
    assert run(c2.chat(AGENT_PROMPT, "agent", seed=7)) == a and len(server.requests) - n0 == 1
    # sampling without a seed is not cached
    run(client.chat(AGENT_PROMPT, "agent")); assert len(server.requests) - n0 == 2

def test_corrupt_cache_warns_and_recomputes(server, tmp_path):
    (tmp_path/"bad.sqlite").write_bytes(b"garbage" * 500)
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        cl = LLMClient(models={"agent": server.model()}, cache_path=tmp_path/"bad.sqlite")
        assert run(cl.chat(AGENT_PROMPT, "agent", seed=1))
    assert any("corrupt" in str(x.message) for x in w)

def test_sotopia_adapter_routes_through_the_layer(server, client):
    old = set_client(client)
    try:
        import sotopia.generation_utils.generate as gen
        from sotopia.messages import AgentAction as SotopiaAction
        orig, gen.acompletion = gen.acompletion, acompletion_adapter
        try:
            async def go():
                with llm_purpose("agent"), llm_tags(episode="ep1"):
                    return await gen.agenerate_action(server.model(), history="Conversation Starts:\n", turn_number=3,
                                                      action_types=["none", "speak", "leave"], agent="Ava Martinez", goal="sell the bike")
            act = run(go())
        finally: gen.acompletion = orig
        assert isinstance(act, SotopiaAction) and act.action_type == "speak"
        recs = client.ledger.select(episode="ep1")
        assert len(recs) == 1 and recs[0]["purpose"] == "agent" and recs[0]["error"] is None
        assert recs[0]["model"] == server.model()          # booked under the configured name, not Sotopia's openai/ form
        assert server.requests[-1]["response_format"]["type"] == "json_schema"      # sotopia sent its schema
    finally: set_client(old)

def test_sotopia_adapter_with_an_in_process_model_name():
    "Sotopia asserts litellm knows a non-custom model takes a schema before calling: the client registers it up front."
    from also.llm.scripted import register_scripted
    register_scripted()
    import sotopia.generation_utils.generate as gen
    cl = LLMClient(models={"agent": "scripted/bot"}, ledger=Ledger())
    old, orig = set_client(cl), gen.acompletion
    gen.acompletion = acompletion_adapter
    try:
        async def go():
            with llm_purpose("agent"):
                return await gen.agenerate_action("scripted/bot", history="", turn_number=1, action_types=["none", "speak"],
                                                  agent="Ben Cho", goal="buy the bike")
        act = run(go())
    finally: gen.acompletion = orig; set_client(old)
    assert act.action_type == "speak" and cl.ledger.totals()["calls"] == 1

class SlowCounting:
    "A reply policy that sleeps and records the peak number of requests in flight at the server."
    def __init__(self, delay=0.1): self.delay, self.now, self.peak, self.lock, self.llm = delay, 0, 0, threading.Lock(), ScriptedLLM()
    def reply(self, messages, schema=None):
        with self.lock: self.now += 1; self.peak = max(self.peak, self.now)
        time.sleep(self.delay)
        with self.lock: self.now -= 1
        return self.llm.reply(messages, schema)

def test_sotopia_form_counts_against_the_configured_model():
    "Sotopia turns custom/<m>@<url> into openai/<m> + base_url; the adapter limits and books it under the configured name."
    slow = SlowCounting()
    with ScriptedServer(slow) as s:
        name = s.model()
        cl = LLMClient(models={"agent": name}, concurrency={name: 2}, ledger=Ledger())
        old = set_client(cl)
        try:
            async def go():
                with llm_purpose("agent"):
                    return await asyncio.gather(*[acompletion_adapter(model="openai/scripted", base_url=s.url, api_key="EMPTY",
                                                                      messages=[{"role": "user", "content": f"hi {i}"}]) for i in range(6)])
            outs = run(go())
        finally: set_client(old)
    assert len(outs) == 6 and slow.peak == 2
    assert [r["model"] for r in cl.ledger.records] == [name] * 6
    assert all(r["cost"] is None for r in cl.ledger.records)      # a self-hosted server has no known price

def test_refused_connection_is_retried_then_named():
    with ScriptedServer() as s: dead = s.model()          # the port is closed once the block ends
    cl = LLMClient(models={"agent": dead}, backoff=0.01, retries=2, ledger=Ledger())
    with pytest.raises(LLMCallError) as ei: run(cl.chat("hello", "agent"))
    assert "after 3 attempts" in str(ei.value) and "Connect" in ei.value.cause
    assert cl.ledger.totals()["errors"] == 3

def test_router_spreads_calls_over_endpoints():
    with ScriptedServer() as s1, ScriptedServer() as s2:
        name = f"custom/bot@{s1.url} | custom/bot@{s2.url}"
        cl = LLMClient(models={"agent": name}, backoff=0.01)
        async def go(): return await asyncio.gather(*[cl.chat(f"hello {i}", "agent") for i in range(8)])
        outs = run(go())
        assert len(outs) == 8 and len(s1.requests) + len(s2.requests) == 8 and s1.requests and s2.requests
        assert cl.ledger.totals()["calls"] == 8

def test_judge_reply_in_range(server, client):
    out = run(client.chat('Based on previous interactions, evaluate how well participants achieve their goals. '
                          'Under the \'evaluations\' field, use exactly these keys: ["agent_1", "agent_2"]', "terminal_judge"))
    ev = json.loads(out)["evaluations"]
    assert set(ev) == {"agent_1", "agent_2"}
    assert all(DIMENSIONS[d][0] <= s <= DIMENSIONS[d][1] for a in ev.values() for d, (_, s) in a.items())

SCRIPT = textwrap.dedent('''
    import asyncio, also
    from also.llm.client import LLMClient
    from also.llm.adapter import drain_llm_layer
    from also.llm.scripted import ScriptedServer
    async def main():
        with ScriptedServer() as s, ScriptedServer() as s2:
            cl = LLMClient(models={"agent": f"{s.model()} | custom/scripted@{s2.url}", "optimizer": "scripted/bot"}, backoff=0.01)
            s.faults.inject("500", n=1)
            outs = await asyncio.gather(*[cl.chat(f"hello {i}", "agent") for i in range(3)])
            outs += [await cl.chat("hello", "optimizer")]          # an in-process provider: through litellm
            await drain_llm_layer()
            print("CALLS", cl.ledger.totals()["calls"], len(outs))
    asyncio.run(main())
''')

def test_process_exits_after_direct_and_litellm_calls(tmp_path):
    (tmp_path/"s.py").write_text(SCRIPT)
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, str(tmp_path/"s.py")], capture_output=True, text=True, timeout=90)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "CALLS 5 4" in r.stdout and "Unclosed" not in r.stderr
    assert time.perf_counter() - t0 < 90
