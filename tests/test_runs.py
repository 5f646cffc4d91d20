"Batch runs against the scripted LLM: call budgets per optimize mode, kill + resume, faults and malformed judges."
import asyncio, json, signal, subprocess, sys, textwrap, time
import pytest
from also.core import ConfigError, Settings
from also.sotopia.agents import EpisodeConfig
from also.run.batch import RunConfig, run_batch, read_episodes
from also.llm.client import LLMClient
from also.llm.adapter import run_sync
from also.llm.embeddings import EmbeddingClient
from also.llm.scripted import register_scripted, ScriptedLLM, ScriptedServer
from helpers import settings_in

ROLES = ("agent", "turn_judge", "terminal_judge", "optimizer")


def _client(model="scripted/bot", **kw):
    return LLMClient(models={p: model for p in ROLES} | {"embedding": "fake/16"}, backoff=0.01, **kw)


def _run(tmp_path, run, client=None):
    client = client or _client()
    return run_sync(run_batch(run, tmp_path / "results", client=client, embedder=EmbeddingClient("fake/16", ledger=client.ledger),
                              progress=False, settings=settings_in(tmp_path)))


@pytest.mark.parametrize("method,optimize", [("original", "none"), ("also", "both"), ("exp3", "p1"), ("linucb", "p2")])
def test_batch_call_budget(tmp_path, method, optimize):
    register_scripted()
    turns = 5
    s = _run(tmp_path, RunConfig("b", EpisodeConfig(method, optimize, max_turns=turns), episodes=3))
    eps = read_episodes(tmp_path / "results/b/episodes.jsonl")
    assert s["stored"] == 3 and s["failed_now"] == 0 and len({e["episode_id"] for e in eps}) == 3
    for e in eps:
        c = e["ledger"]["calls"]
        assert c["agent"] == turns and c.get("terminal_judge") == 1, (e["ledger"], e["n_turns"], e["terminated_by"])
        assert c.get("optimizer", 0) == 0
        assert c.get("turn_judge", 0) == (0 if optimize == "none" else turns - 1)
        opt = {"both": {"p1", "p2"}, "p1": {"p1"}, "p2": {"p2"}, "none": set()}[optimize]
        assert {a for t in e["turns"] for a, p in t["probs"].items() if p} == opt
        assert all(set(e["final"][a]) >= {"goal", "overall"} for a in ("p1", "p2"))
    cfg = json.loads((tmp_path / "results/b/run_config.json").read_text())
    assert cfg["method"] == method and cfg["optimize"] == optimize and cfg["models"]["agent_p1"] == "scripted/bot"


def test_twenty_turn_also_budget(tmp_path):
    register_scripted()
    s = _run(tmp_path, RunConfig("t20", EpisodeConfig("also", "both", max_turns=20), episodes=1))
    e = read_episodes(tmp_path / "results/t20/episodes.jsonl")[0]
    # 20 agent calls, 19 judge calls, 1 terminal call; embeddings: 2 arm batches + 20 contexts
    assert e["ledger"]["calls"] == {"agent": 20, "turn_judge": 19, "terminal_judge": 1, "embedding": 22}


def test_rerun_skips_done_and_refuses_other_config(tmp_path):
    register_scripted()
    run = RunConfig("r", EpisodeConfig("exp3", max_turns=3), episodes=2)
    _run(tmp_path, run)
    s = _run(tmp_path, RunConfig("r", EpisodeConfig("exp3", max_turns=3), episodes=3))   # more episodes: only the new one
    assert s["already_done"] == 2 and s["completed_now"] == 1 and s["stored"] == 3
    with pytest.raises(ConfigError, match="different configuration"):
        _run(tmp_path, RunConfig("r", EpisodeConfig("also", max_turns=3), episodes=3))


def test_faults_and_malformed_judge_lose_nothing(tmp_path):
    prov = register_scripted(ScriptedLLM(rules=[]))
    prov.faults.inject("500", p=0.15, seed=3).inject("malformed", p=0.1, seed=4)
    s = _run(tmp_path, RunConfig("f", EpisodeConfig("exp3", max_turns=4), episodes=4, retries=3), client=_client(retries=2))
    eps = read_episodes(tmp_path / "results/f/episodes.jsonl")
    fails = tmp_path / "results/f/failures.jsonl"
    failed = [json.loads(l)["episode_id"] for l in fails.read_text().splitlines()] if fails.exists() else []
    assert len(eps) + len(failed) == 4 and len(eps) >= 3, (len(eps), failed)
    assert set(prov.faults.injected) >= {"500", "malformed"}
    assert all(t["reward"] for e in eps for t in e["turns"][:-1])          # no turn silently without a reward


def test_episode_failing_every_attempt_is_reported(tmp_path):
    prov = register_scripted()
    prov.faults.inject("500", n=None)
    s = _run(tmp_path, RunConfig("x", EpisodeConfig("original", max_turns=2), episodes=2, retries=1), client=_client(retries=0))
    assert s["stored"] == 0 and s["failed_now"] == 2
    rows = [json.loads(l) for l in (tmp_path / "results/x/failures.jsonl").read_text().splitlines()]
    assert {r["episode_id"] for r in rows} == {e for e, *_ in RunConfig("x", episodes=2).plan()}
    assert all(r["attempts"] == 2 and "AgentCallError" in r["errors"][0] for r in rows)
    prov.faults.clear()
    s = _run(tmp_path, RunConfig("x", EpisodeConfig("original", max_turns=2), episodes=2, retries=1))
    assert s["stored"] == 2                                                  # a re-run retries what failed


KILL_SCRIPT = textwrap.dedent('''
    import sys, asyncio
    from also.core import Settings
    from also.sotopia.agents import EpisodeConfig
    from also.run.batch import RunConfig, run_batch
    from also.llm.client import LLMClient
    from also.llm.adapter import run_sync
    from also.llm.embeddings import EmbeddingClient
    url, ini = sys.argv[1], sys.argv[2]
    m = f"custom/slow@{url}"
    client = LLMClient(models={p: m for p in ("agent", "turn_judge", "terminal_judge", "optimizer")} | {"embedding": "fake/16"})
    run = RunConfig("k", EpisodeConfig("exp3", max_turns=4), episodes=6, concurrency=2)
    run_sync(run_batch(run, client=client, embedder=EmbeddingClient("fake/16", ledger=client.ledger), progress=False,
                       settings=Settings.load(ini)))
''')


class Slow(ScriptedLLM):
    def reply(self, messages, schema=None):
        time.sleep(0.05); return super().reply(messages, schema)


def test_kill_then_resume_gives_each_episode_once(tmp_path):
    settings = settings_in(tmp_path)
    script = tmp_path / "k.py"; script.write_text(KILL_SCRIPT)
    out = tmp_path / "results/k/episodes.jsonl"
    with ScriptedServer(Slow()) as srv:
        p = subprocess.Popen([sys.executable, str(script), srv.url, str(tmp_path / "settings.ini")],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        t0 = time.time()
        while time.time() - t0 < 120 and len(read_episodes(out, repair=False)) < 2: time.sleep(0.1)
        p.send_signal(signal.SIGKILL); p.wait()
        n_killed = len(read_episodes(out, repair=False))
        assert 2 <= n_killed < 6, n_killed
        r = subprocess.run([sys.executable, str(script), srv.url, str(tmp_path / "settings.ini")], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr[-2000:]
    eps = read_episodes(out)
    ids = [e["episode_id"] for e in eps]
    assert sorted(ids) == sorted(e for e, *_ in RunConfig("k", episodes=6).plan()) and len(ids) == len(set(ids)) == 6


def test_run_cli(tmp_path, monkeypatch):
    from also.cli import main
    register_scripted()
    monkeypatch.chdir(tmp_path); settings_in(tmp_path)
    for k in ROLES: monkeypatch.setenv(f"ALSO_MODELS_{k.upper()}", "scripted/bot")
    monkeypatch.setenv("ALSO_MODELS_EMBEDDING", "fake/16")
    assert main(["run", "--method", "also", "--episodes", "2", "--turns", "3", "--tag", "cli", "--no-progress", "--eta", "2"]) == 0
    cfg = json.loads((tmp_path / "results/cli/run_config.json").read_text())
    assert cfg["bandit_options"] == {"eta": 2.0} and len(read_episodes(tmp_path / "results/cli/episodes.jsonl")) == 2
    assert main(["run", "--split", "hard", "--episodes", "0", "--tag", "bad", "--no-progress"]) == 2


def test_episode_log_keeps_terminal_rewards(tmp_path):
    "Sotopia 0.1.5 stores EpisodeLog.rewards as 0; ours are the terminal judge's scores."
    register_scripted()
    _run(tmp_path, RunConfig("log", EpisodeConfig("also", max_turns=3), episodes=2))
    from sotopia.database import EpisodeLog
    eps = {e["episode_id"]: e for e in read_episodes(tmp_path / "results/log/episodes.jsonl")}
    logs = [l for l in EpisodeLog.all() if l.tag == "log"]
    assert len(logs) == 2
    for l in logs:
        e = eps[l.reasoning.removeprefix("also episode ")]
        assert [r[0] for r in l.rewards] == [e["final"]["p1"]["overall"], e["final"]["p2"]["overall"]]
        assert l.rewards[0][1]["goal"] == e["final"]["p1"]["goal"] and any(r[0] != 0 for r in l.rewards)


@pytest.mark.parametrize("method,per_step", [("opro", 1), ("evoprompt_ga", 5), ("evoprompt_de", 5), ("promptbreeder", None)])
def test_prompt_optimizers_through_the_runner(tmp_path, method, per_step):
    "One optimizer step after turn 4 per optimized agent (paper profile: every 4 turns; none after the terminal turn); its calls are in the ledger."
    register_scripted()
    _run(tmp_path, RunConfig("o", EpisodeConfig(method, "both", max_turns=6), episodes=1))
    e = read_episodes(tmp_path / "results/o/episodes.jsonl")[0]
    steps = {t["turn"]: t.get("events") for t in e["turns"] if t.get("events")}
    assert list(steps) == [4] and set(steps[4]) == {"p1", "p2"}
    n = e["ledger"]["calls"].get("optimizer", 0)
    ev = [x for k in ("p1", "p2") for x in steps[4][k]]
    assert n == sum(x.get("calls", 0) for x in ev), (n, ev)          # every optimizer call is booked in the ledger
    # with Alg. 1's reward timing p1 has two credited turns (1, 3) by turn 4 and p2 one (turn 2)
    played = {k: {c[k]["arm"] for c in (t.get("credit") or {} for t in e["turns"] if t["turn"] <= 4) if k in c} - {0}
              for k in ("p1", "p2")}
    if method == "evoprompt_ga":   # GA's parents are evaluated strategy arms: an agent with fewer than two skips the generation
        for k in ("p1", "p2"):
            calls = sum(x.get("calls", 0) for x in steps[4][k])
            if len(played[k]) < 2: assert {x["kind"] for x in steps[4][k]} == {"skip"} and calls == 0, (k, played, steps[4][k])
            else: assert len(steps[4][k]) == per_step and per_step <= calls <= 2 * per_step, (k, calls)   # one child each, at most one retry
    elif per_step: assert n == 2 * per_step, n
    else:   # PromptBreeder: one binary tournament per two played strategy arms
        for k in ("p1", "p2"):
            if len(played[k]) < 2: assert {x["kind"] for x in steps[4][k]} == {"skip"}, (k, played, steps[4][k])
        assert n >= sum(x["kind"] == "replace" for x in ev), (n, ev)
    assert e["ledger"]["calls"]["agent"] == 6 and e["ledger"]["calls"]["turn_judge"] == 5


@pytest.mark.parametrize("space", ["thinking", "v3_x_thinking"])
def test_thinking_mode_arms_reach_the_agent_prompt(tmp_path, space):
    "Thinking-mode arms (alone or crossed with strategies) are composed into the acting agent's own prompt."
    from also.bandits.spaces import load_space
    prov = register_scripted()
    _run(tmp_path, RunConfig("th", EpisodeConfig("uniform", "both", strategy_space=space, max_turns=6, seed=3), episodes=1))
    e = read_episodes(tmp_path / "results/th/episodes.jsonl")[0]
    texts = {s.text for s in load_space(space)}
    prompts = [r["messages"][0]["content"] for r in prov.requests if "Imagine you are" in r["messages"][0]["content"]]
    assert len(prompts) == 6 and len(e["arm_names"]["p1"]) == len(texts)
    for t, p in zip(e["turns"], prompts):
        ins = t["instruction"][t["speaker"]]
        assert ins in texts and (not ins or " ".join(ins.split()) in " ".join(p.split()))


def test_bench_concurrency_reports_a_complete_batch(tmp_path, monkeypatch):
    "The benchmark's bookkeeping (not its speed: that is what it prints): every call reaches the server, nothing lands in the user's store."
    monkeypatch.chdir(tmp_path)
    r = subprocess.run([sys.executable, "-c", "from also.run.bench import bench_concurrency_cli as b; "
                        "b(['--episodes', '3', '--turns', '2', '--latency', '0.01'])"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert (out["completed"], out["failed"]) == (3, 0)
    assert out["server_requests"] == 3 * out["calls_per_episode"] and out["calls_per_episode"] >= 3   # 2 agent + judge + terminal
    assert out["critical_path_s"] == pytest.approx(out["calls_per_episode"] * 0.01) and out["ratio"] > 0 and out["client_cpu_s"] > 0
    assert not (tmp_path / ".also").exists()


def test_agent_model_litellm_does_not_list_as_schema_capable(tmp_path):
    """An agent on a litellm model without listed JSON-schema support (as OpenRouter's DeepSeek/Qwen names are) plays:
    Sotopia would refuse it, so the layer marks it and puts the action schema into the prompt instead of response_format."""
    import litellm
    from also.llm.scripted import ScriptedProvider
    prov = ScriptedProvider()
    litellm.custom_provider_map = [m for m in litellm.custom_provider_map if m.get("provider") != "unlisted"] + \
                                  [{"provider": "unlisted", "custom_handler": prov}]
    litellm.utils.custom_llm_setup()
    assert not litellm.supports_response_schema(model="unlisted/bot")
    register_scripted()
    client = LLMClient(models={"agent": "unlisted/bot", "turn_judge": "scripted/bot", "terminal_judge": "scripted/bot",
                               "optimizer": "scripted/bot", "embedding": "fake/16"}, backoff=0.01)
    s = _run(tmp_path, RunConfig("u", EpisodeConfig("exp3", "both", max_turns=3), episodes=1), client)
    e = read_episodes(tmp_path / "results/u/episodes.jsonl")[0]
    assert s["failed_now"] == 0 and e["ledger"]["calls"]["agent"] == 3 and {t["action_type"] for t in e["turns"]} == {"speak"}
    agent_calls = [r for r in prov.requests if "Imagine you are" in r["messages"][0]["content"]]
    assert len(agent_calls) == 3 and all("validates against this JSON schema" in r["messages"][-1]["content"] for r in agent_calls)
