"A real OpenAI-compatible server in the loop: llama-cpp-python's server with the embedded SmolLM2 weights on 127.0.0.1."
import json, subprocess, sys, time, urllib.request
import pytest
from also.sotopia.agents import EpisodeConfig
from also.run.batch import RunConfig, run_batch, read_episodes
from also.llm.client import LLMClient
from also.llm.ledger import Ledger
from also.llm.adapter import run_sync
from also.llm.http import SERVER_FORMS
from also.llm.embeddings import EmbeddingClient
from also.llm.local import smollm2_gguf_path
from helpers import settings_in, free_port

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    "`python -m llama_cpp.server` (the [server] extra of llama-cpp-python) serving SmolLM2-135M as `structured-smollm2`."
    port, log = free_port(), tmp_path_factory.mktemp("srv") / "server.log"
    with open(log, "w") as f:
        proc = subprocess.Popen([sys.executable, "-m", "llama_cpp.server", "--model", str(smollm2_gguf_path()), "--model_alias", "structured-smollm2",
                                 "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "4096", "--n_threads", "2"],
                                stdout=f, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        t0 = time.time()
        while True:
            try:
                with urllib.request.urlopen(url + "/models", timeout=2) as r:
                    if r.status == 200: break
            except OSError: pass
            if proc.poll() is not None or time.time() - t0 > 120:
                pytest.fail(f"llama_cpp.server did not start: {log.read_text()[-2000:]}")
            time.sleep(0.3)
        yield url
    finally:
        proc.terminate()
        try: proc.wait(10)
        except subprocess.TimeoutExpired: proc.kill(); proc.wait()


def test_episode_batch_through_a_real_server(server, tmp_path):
    """2 episodes x 3 turns of ALSO, agents, per-turn judge and terminal judge all on the server; the structured-output form is found.
    The name starts with `structured-`: Sotopia then asks the terminal judge for schema-constrained JSON too (a 135M model
    asked for free text rambles until its context is full)."""
    m = f"custom/structured-smollm2@{server}"
    client = LLMClient(models={p: m for p in ("agent", "turn_judge", "terminal_judge", "optimizer")} | {"embedding": "fake/16"},
                       ledger=Ledger(tmp_path / "ledger.jsonl", run="real"), backoff=0.1,
                       timeout=900)     # one generation at a time on 2 shared cores: a timed-out request would keep the server busy
    run = RunConfig("real", EpisodeConfig("also", max_turns=3, judge_mode="scores"), episodes=2, concurrency=1)
    t0 = time.time()
    s = run_sync(run_batch(run, tmp_path / "results", client=client, embedder=EmbeddingClient("fake/16", ledger=client.ledger),
                           progress=False, settings=settings_in(tmp_path)))
    wall = time.time() - t0
    assert (s["stored"], s["failed_now"]) == (2, 0), (s, (tmp_path / "results/real/failures.jsonl").read_text()[-3000:]
                                                      if (tmp_path / "results/real/failures.jsonl").exists() else "")
    assert SERVER_FORMS[f"{server}/chat/completions"] == "json_object"      # json_schema refused once, then remembered
    eps = read_episodes(tmp_path / "results/real/episodes.jsonl")
    recs = [json.loads(l) for l in (tmp_path / "ledger.jsonl").read_text().splitlines()]
    for e in eps:
        assert 1 <= e["n_turns"] <= 3 and set(e["final"]) == {"p1", "p2"} and e["models"]["terminal_judge"] == m
        mine = [r for r in recs if r.get("episode") == e["episode_id"] and r["error"] is None and r["model"] == m]
        judges = {"turn_judge"} if e["n_turns"] > 1 else set()                       # an episode its agent left at turn 1 has no turn judge
        assert {r["purpose"] for r in mine} == {"agent", "terminal_judge"} | judges, ({r["purpose"] for r in mine}, e["n_turns"])
        assert all(r["completion_tokens"] > 0 for r in mine)                       # real generations, not cache hits
        judged = [t for t in e["turns"] if t["reward"] is not None]
        assert all(0 <= t["reward"][a] <= 1 for t in judged for a in ("p1", "p2")) and len(judged) == e["n_turns"] - 1
    print(f"real-server batch: {wall:.0f} s for 2 episodes, {len(recs)} ledger records")
