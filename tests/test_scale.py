"Paper scale: per-endpoint limits and Retry-After counted at the server, the budget guard, worker processes and Ray."
import asyncio, json, os, signal, threading, time
import pytest
from also.sotopia.agents import EpisodeConfig
from also.run.batch import RunConfig, run_batch, run, read_episodes
from also.llm.client import LLMClient
from also.llm.limits import LLMLimits
from also.llm.ledger import Ledger
from also.llm.adapter import run_sync
from also.llm.embeddings import EmbeddingClient
from also.run.budget import BudgetReached
from also.llm.scripted import ScriptedLLM, ScriptedServer
from helpers import settings_in

ROLES = ("agent", "turn_judge", "terminal_judge", "optimizer")


class Counting(ScriptedLLM):
    "A reply policy that sleeps, and records the peak number of requests in flight and when each was answered."
    def __init__(self, delay=0.05):
        super().__init__(); self.delay, self.now, self.peak, self.times, self.lock = delay, 0, 0, [], threading.Lock()
    def reply(self, messages, schema=None):
        with self.lock: self.now += 1; self.peak = max(self.peak, self.now)
        time.sleep(self.delay)
        with self.lock: self.now -= 1; self.times.append(time.monotonic())
        return super().reply(messages, schema)


def _gather(client, n, purpose="agent"):
    async def go(): return await asyncio.gather(*[client.chat(f"hello {i}", purpose) for i in range(n)])
    return run_sync(go())


def test_router_endpoints_keep_their_own_limits():
    a, b = Counting(0.1), Counting(0.1)
    with ScriptedServer(a) as sa, ScriptedServer(b) as sb:
        ea, eb = f"custom/bot@{sa.url}", f"custom/bot@{sb.url}"
        cl = LLMClient(models={"agent": f"{ea}|{eb}"}, limits=LLMLimits(concurrency=3, models={eb: {"concurrency": 1}}))
        assert len(_gather(cl, 16)) == 16
    assert (a.peak, b.peak) == (3, 1)                      # counted at the servers: 3 + 1, not one shared pool
    assert len(sa.requests) + len(sb.requests) == 16 and sb.requests
    assert {r["endpoint"] for r in cl.ledger.records} == {ea, eb}


def test_model_limit_and_router_cap():
    both = Counting(0.1)                                   # one counter behind both endpoints: the router's total
    with ScriptedServer(both) as sa, ScriptedServer(both) as sb:
        router = f"custom/bot@{sa.url}|custom/bot@{sb.url}"
        cl = LLMClient(models={"agent": router}, limits=LLMLimits(concurrency=4, models={router: {"concurrency": 3}}))
        _gather(cl, 12)
    assert both.peak == 3 and sa.requests and sb.requests
    c = Counting(0.1)
    with ScriptedServer(c) as s:
        _gather(LLMClient(models={"agent": s.model()}, limits=LLMLimits(concurrency=2)), 8)
    assert c.peak == 2


def test_requests_per_minute_hold_back_the_next_call():
    c = Counting(0.0)
    with ScriptedServer(c) as s:
        cl = LLMClient(models={"agent": s.model()}, limits=LLMLimits(rpm=2))
        async def go():
            await asyncio.gather(cl.chat("a", "agent"), cl.chat("b", "agent"))
            with pytest.raises(asyncio.TimeoutError): await asyncio.wait_for(cl.chat("c", "agent"), 1.0)
        run_sync(go())
        assert len(s.requests) == 2                        # the third request never reached the server


@pytest.mark.parametrize("status", ["429", "503"])
def test_retry_after_is_honoured(status):
    c = Counting(0.0)
    with ScriptedServer(c) as s:
        s.faults.inject(status, n=1, retry_after=1.5)
        cl = LLMClient(models={"agent": s.model()}, backoff=0.01, retries=2)
        t0 = time.monotonic()
        run_sync(cl.chat("hello", "agent"))
    assert len(s.requests) == 2 and len(c.times) == 1
    assert c.times[0] - t0 >= 1.5                          # the retry reached the server no sooner than asked
    assert cl.ledger.records[0]["error"].startswith(f"EndpointError (HTTP {status})")


def _priced_client(url, tmp_path, tag, price=(20.0, 20.0)):
    m = f"custom/bot@{url}"
    return LLMClient(models={p: m for p in ROLES} | {"embedding": "fake/16"}, ledger=Ledger(tmp_path / "results" / tag / "ledger.jsonl"),
                     limits=LLMLimits(backoff=0.01, models={m: {"price": list(price)}}))


def test_budget_guard_stops_scheduling_loses_nothing_and_resumes(tmp_path):
    st = settings_in(tmp_path)
    run_cfg = RunConfig("bud", EpisodeConfig("exp3", max_turns=3), episodes=6, concurrency=1)
    plan = [e for e, *_ in run_cfg.plan()]
    with ScriptedServer() as srv:
        go = lambda max_cost: run_sync(run_batch(run_cfg, client=_priced_client(srv.url, tmp_path, "bud"), progress=False,
                                                 embedder=EmbeddingClient("fake/16"), settings=st, max_cost=max_cost))
        s1 = go(0.3)
        eps = read_episodes(tmp_path / "results/bud/episodes.jsonl")
        costs = [e["ledger"]["cost_usd"] for e in eps]
        assert s1["stopped"] == "budget" and 1 <= len(eps) < 6 and s1["failed_now"] == 0
        assert s1["not_started"] == 6 - len(eps) and [e["episode_id"] for e in eps] == plan[:len(eps)]
        assert sum(costs[:-1]) < 0.3 <= sum(costs)           # the last episode started under budget, then it was spent
        assert s1["cost_usd"] == pytest.approx(sum(costs)) and s1["spent_usd"] >= 0.3
        s2 = go(0.3)                                          # same budget: the ledger file says it is spent
        assert s2["completed_now"] == 0 and s2["not_started"] == 6 - len(eps)
        s3 = go(100.0)                                        # a higher budget continues where it stopped
        assert s3["stopped"] is None and s3["stored"] == 6 and s3["completed_now"] == 6 - len(eps)
    ids = [e["episode_id"] for e in read_episodes(tmp_path / "results/bud/episodes.jsonl")]
    assert sorted(ids) == sorted(plan) and len(ids) == len(set(ids))
    with ScriptedServer() as srv:                             # a profile's run raises, so `also reproduce` stops
        prof = RunConfig("p-main", EpisodeConfig("original", max_turns=2), episodes=3, concurrency=1, extra={"reproduce_profile": "p"})
        with pytest.raises(BudgetReached, match="not started"):
            run(prof, client=_priced_client(srv.url, tmp_path, "p-main"), embedder=EmbeddingClient("fake/16"), progress=False,
                settings=st, max_cost=0.01)


def test_unknown_price_is_unknown_not_zero(tmp_path):
    with ScriptedServer() as srv:
        m = srv.model()
        cl = LLMClient(models={p: m for p in ROLES} | {"embedding": "fake/16"}, backoff=0.01)
        s = run_sync(run_batch(RunConfig("u", EpisodeConfig("original", max_turns=2), episodes=1), client=cl, progress=False,
                               embedder=EmbeddingClient("fake/16"), settings=settings_in(tmp_path)))
    e = read_episodes(tmp_path / "results/u/episodes.jsonl")[0]
    assert e["ledger"]["cost_usd"] is None and s["cost_usd"] is None and cl.ledger.totals()["cost"] is None


def _descendants(pattern):
    "pids of processes below this one whose command line contains `pattern`."
    import psutil
    return [p.pid for p in psutil.Process().children(recursive=True) if pattern in " ".join(p.cmdline() or [])]


def _kill_one_when_started(path, pattern, done):
    "Once an episode is stored, SIGKILL one matching worker process (in a thread); returns the killed pid in `done`."
    t0 = time.time()
    while time.time() - t0 < 300 and not read_episodes(path, repair=False): time.sleep(0.05)
    pids = _descendants(pattern)
    if pids: os.kill(pids[0], signal.SIGKILL); done.append(pids[0])


def _compare_with_in_process(tmp_path, eps, run_cfg, url):
    "Worker results equal this process's: same turns, arms and final scores."
    m = f"custom/bot@{url}"
    cl = LLMClient(models={p: m for p in ROLES} | {"embedding": "fake/16"}, backoff=0.01)
    ref_cfg = RunConfig("ref", run_cfg.episode, episodes=run_cfg.episodes, reps=run_cfg.reps)
    run_sync(run_batch(ref_cfg, tmp_path / "ref", client=cl, embedder=EmbeddingClient("fake/16"), progress=False,
                       settings=settings_in(tmp_path), workers=1))
    ref = {e["episode_id"]: e for e in read_episodes(tmp_path / "ref/ref/episodes.jsonl")}
    strip = lambda e: (e["final"], [(t["arms"], t["reward"]) for t in e["turns"]])
    assert {e["episode_id"]: strip(e) for e in eps} == {k: strip(e) for k, e in ref.items()}


def test_worker_processes_store_each_planned_episode_once_after_a_kill(tmp_path):
    st = settings_in(tmp_path)
    run_cfg = RunConfig("w", EpisodeConfig("exp3", max_turns=4), episodes=6, concurrency=4, retries=2)
    out = tmp_path / "results/w/episodes.jsonl"
    with ScriptedServer(Counting(0.05)) as srv:
        m = f"custom/bot@{srv.url}"
        cl = LLMClient(models={p: m for p in ROLES} | {"embedding": "fake/16"}, backoff=0.01,
                       ledger=Ledger(tmp_path / "results/w/ledger.jsonl"))
        killed = []
        threading.Thread(target=_kill_one_when_started, args=(out, "multiprocessing.spawn", killed), daemon=True).start()
        s = run_sync(run_batch(run_cfg, client=cl, embedder=EmbeddingClient("fake/16"), progress=False, settings=st, workers=2))
        assert killed and s["workers"]["where"] == "processes" and s["workers"]["lost"] >= 1
        eps = read_episodes(out)
        ids = [e["episode_id"] for e in eps]
        assert sorted(ids) == sorted(e for e, *_ in run_cfg.plan()) and len(set(ids)) == 6 and s["failed_now"] == 0
        led = Ledger.load(tmp_path / "results/w/ledger.jsonl").records   # the driver wrote the workers' ledger records
        led = [r for r in led if not r.get("preflight")]                   # the run's check calls come before any episode
        assert {r["episode"] for r in led} == set(ids) and len(led) >= sum(e["ledger"]["api_calls"] for e in eps)
        _compare_with_in_process(tmp_path, eps, run_cfg, srv.url)


def test_ray_two_workers_store_each_planned_episode_once_after_a_kill(tmp_path):
    ray = pytest.importorskip("ray")
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, _node_ip_address="127.0.0.1")
    try:
        st = settings_in(tmp_path)
        run_cfg = RunConfig("r", EpisodeConfig("exp3", max_turns=4), episodes=6, concurrency=4, retries=2, save_bandits=True)
        out = tmp_path / "results/r/episodes.jsonl"
        with ScriptedServer(Counting(0.15)) as srv:     # slow enough that the kill lands while both actors play
            m = f"custom/bot@{srv.url}"
            cl = LLMClient(models={p: m for p in ROLES} | {"embedding": "fake/16"}, backoff=0.01)
            killed = []
            # an actor's title reads "ray::_RayWorker.play" while it plays: kill a busy one, not one that has finished its share
            threading.Thread(target=_kill_one_when_started, args=(out, "ray::_RayWorker.play", killed), daemon=True).start()
            s = run_sync(run_batch(run_cfg, client=cl, embedder=EmbeddingClient("fake/16"), progress=False, settings=st, ray="local"))
            assert killed and s["workers"] == {**s["workers"], "where": "ray", "n": 2} and s["workers"]["lost"] >= 1
            eps = read_episodes(out)
            ids = [e["episode_id"] for e in eps]
            assert sorted(ids) == sorted(e for e, *_ in run_cfg.plan()) and len(set(ids)) == 6 and s["failed_now"] == 0
            assert all((tmp_path / "results/r" / p).is_file() for e in eps for p in e["bandit_state"].values())
            more = RunConfig("r", run_cfg.episode, episodes=8, concurrency=4, retries=2, save_bandits=True)
            s2 = run_sync(run_batch(more, client=cl, embedder=EmbeddingClient("fake/16"), progress=False, settings=st, ray="local"))
            assert s2["already_done"] == 6 and s2["completed_now"] == 2
            ids = [e["episode_id"] for e in read_episodes(out)]
            assert sorted(ids) == sorted(e for e, *_ in more.plan()) and len(set(ids)) == 8
            _compare_with_in_process(tmp_path, read_episodes(out), more, srv.url)
    finally: ray.shutdown()


def test_reproduce_stops_at_the_profile_budget_and_resumes(tmp_path):
    from also.report.reproduce import reproduce
    from also.run.command import overrides_env
    prof = tmp_path / "tiny.yaml"
    prof.write_text("models: {agent: scripted/bot, turn_judge: scripted/bot, terminal_judge: scripted/bot, optimizer: scripted/bot, "
                    "embedding: fake/16}\nexperiments:\n  exp_main: {methods: [original, exp3], split: hard_small, episodes: 2, turns: 2, "
                    "judge_mode: scores}\n  exp_bilateral: {split: hard_small, episodes: 1, turns: 2}\n")
    priced = {"models": json.dumps({"scripted/bot": {"price": [20, 20]}})}
    args = (str(prof), tmp_path / "results", tmp_path / "figs", tmp_path / "executed")
    with overrides_env({"llm": {**priced, "max_cost": "0.0001"}}):
        r = reproduce(*args, progress=False)
    assert r["stopped"] == "budget" and r["parts"][0]["report"] is None and r["parts"][0]["experiments"] == {}
    res = tmp_path / "results"
    assert len(read_episodes(res / "tiny-main-original/episodes.jsonl")) == 2      # started under budget: finished
    s = json.loads((res / "tiny-main-exp3/summary.json").read_text())
    assert s["stopped"] == "budget" and s["stored"] == 0 and s["not_started"] == 2
    with overrides_env({"llm": {**priced, "max_cost": "1000"}}):                    # a higher budget continues
        r = reproduce(*args, only=["exp_main"], do_report=False, progress=False)
    assert r["stopped"] is None and list(r["parts"][0]["experiments"]) == ["exp_main"]
    assert len(read_episodes(res / "tiny-main-exp3/episodes.jsonl")) == 2
