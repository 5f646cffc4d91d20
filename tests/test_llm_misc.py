"Embeddings (fake backend), the in-process scripted provider, the doctor's cheap checks and the local-provider bookkeeping."
import asyncio
import numpy as np
import also  # noqa: F401
from also.llm.embeddings import EmbeddingClient
from also.llm.client import LLMClient
from also.llm.ledger import Ledger
from also.llm.adapter import drain_llm_layer
from also.llm.spec import parse_model_spec, role_models
from also.llm.scripted import register_scripted

def run(coro):
    async def main():
        try: return await coro
        finally: await drain_llm_layer()
    return asyncio.run(main())

def test_fake_embeddings_cached_and_in_ledger(tmp_path):
    led = Ledger()
    ec = EmbeddingClient("fake/8", cache_path=tmp_path/"e.sqlite", ledger=led)
    a = run(ec.embed(["x y", "z"]))
    b = run(EmbeddingClient("fake/8", cache_path=tmp_path/"e.sqlite", ledger=led).embed(["x y", "z"]))
    assert np.allclose(a, b) and [r["cache_hit"] for r in led.records] == [False, True]
    assert {r["purpose"] for r in led.records} == {"embedding"}

def test_scripted_provider_in_process_with_faults():
    prov = register_scripted()
    cl = LLMClient(models={"optimizer": "scripted/bot"}, backoff=0.01)
    prov.faults.inject("500", n=2)
    assert run(cl.chat("Write an improved strategy for the persuader.", "optimizer")).startswith("Strategy ")
    assert cl.ledger.totals()["calls"] == 3 and len(prov.requests) == 1

def test_roles_from_settings():
    from also.core import Settings
    assert set(role_models(Settings.load())) == {"agent", "turn_judge", "terminal_judge", "optimizer", "embedding"}
    assert parse_model_spec("custom/m@http://127.0.0.1:1/v1").kwargs()["model"] == "openai/m"

def test_doctor_cheap_checks():
    from also.run.doctor import doctor_cli
    rep = doctor_cli(["--json", "--skip-llm", "--skip-embedding", "--no-ping"])
    assert rep["checks"]["llama_build"]["ok"] and rep["storage_ok"]

def test_litellm_embeddings_through_a_custom_server(tmp_path):
    from also.llm.scripted import ScriptedServer
    with ScriptedServer() as s:
        led = Ledger()
        ec = EmbeddingClient(f"custom/emb@{s.url}", ledger=led, batch_size=2, backoff=0.01)
        s.faults.inject("500", n=1)
        v = run(ec.embed(["one text", "two texts", "three"]))
    assert v.shape == (3, 32) and np.allclose(np.linalg.norm(v, axis=1), 1, atol=1e-5)
    assert led.totals()["calls"] == 3 and led.totals()["errors"] == 1     # 2 batches + 1 retried 500
