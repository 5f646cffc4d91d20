"Paper scale: limits as totals (counted at the server, also over worker processes), Retry-After, the budget as a hard ceiling, workers and Ray."
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
from also.llm.scripted import ScriptedServer
from helpers import settings_in, Counting, chat_records, also_cmd, kill_group, wait_for

ROLES = ("agent", "turn_judge", "terminal_judge", "optimizer")


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


def _models(m):
    return {p: m for p in ROLES} | {"embedding": "fake/16"}


def test_limits_are_totals_over_four_worker_processes(tmp_path):
    """4 worker processes, [llm] concurrency 2: the server never sees more than 2 calls at once (and does see 2).
    The control is what dividing the limit among the workers did (`LLMLimits.share`, at least 1 slot each): 4 at once."""
    c = Counting(0.05)
    run_cfg = RunConfig("tot", EpisodeConfig("original", max_turns=3), episodes=8, concurrency=8, retries=0)
    with ScriptedServer(c) as srv:
        cl = LLMClient(models=_models(srv.model()), limits=LLMLimits(concurrency=2, backoff=0.01))
        s = run_sync(run_batch(run_cfg, client=cl, embedder=EmbeddingClient("fake/16"), progress=False, settings=settings_in(tmp_path), workers=4))
        assert s["stored"] == 8 and s["workers"] == {**s["workers"], "where": "processes", "n": 4}
        print(f"4 worker processes, concurrency 2: {len(srv.requests)} requests, at most {c.peak} in flight at the server")
        assert c.peak == 2
        assert len(chat_records(Ledger.load(tmp_path / "results/tot/ledger.jsonl").records)) == len(srv.requests)
        shared = Counting(0.05)                            # the control: one limiter per worker, a share of the limit each
        srv.llm = shared
        workers = [LLMClient(models={"agent": srv.model()}, limits=LLMLimits(concurrency=max(1, -(-2 // 4)))) for _ in range(4)]
        async def all_workers(): await asyncio.gather(*[w.chat(f"w{i} {j}", "agent") for i, w in enumerate(workers) for j in range(3)])
        run_sync(all_workers())
    print(f"control, a share of the limit per worker: {shared.peak} in flight")
    assert shared.peak == 4                                # the server-side count catches the overshoot


TPM = 2000


def test_tokens_per_minute_are_a_total(tmp_path):
    """`also run --workers 4 --llm-tpm 2000`: no minute of the server's sees more than 2000 tokens, although each agent
    prompt (~600 tokens) is larger than a quarter of the limit (which the old per-worker share capped its count at).
    The control: a quarter of the limit per worker lets each worker start a call at once (4 x ~1000 tokens)."""
    c = Counting(0.02)
    settings_in(tmp_path)
    with ScriptedServer(c) as srv:
        env = {f"ALSO_MODELS_{r.upper()}": srv.model() for r in ROLES} | {"ALSO_MODELS_EMBEDDING": "fake/16"}
        p = also_cmd("run", "--method", "original", "--episodes", "8", "--turns", "4", "--concurrency", "8", "--workers", "4",
                     "--llm-tpm", str(TPM), "--tag", "tpm", "--no-progress", env=env, cwd=tmp_path)
        try:
            big = lambda: [k for _, k in c.tokens if k > 100]           # episode calls (the run's check call is ~15 tokens)
            wait_for(lambda: len(big()) >= 2 or p.poll() is not None, timeout=600, what="the first episode calls")
            assert p.poll() is None, p.communicate()
            n, quiet = len(c.tokens), time.monotonic()                  # then the window is full: nothing more arrives
            while time.monotonic() - quiet < 5:
                if len(c.tokens) != n: n, quiet = len(c.tokens), time.monotonic()
                time.sleep(0.1)
        finally: kill_group(p)
        seen = list(c.tokens)
        assert seen[-1][0] - seen[[k > 100 for _, k in seen].index(True)][0] < 50   # all the episode calls within one minute
        most = max(sum(k for t, k in seen if t0 <= t < t0 + 60) for t0, _ in seen)
        print(f"tpm {TPM}, 4 workers: {len(seen)} requests {[k for _, k in seen]}, at most {most} tokens in a minute at the server")
        assert TPM - max(big()) < most <= TPM                      # the window filled, and no minute went over
        share = Counting(0.0)                              # the control: each worker with a quarter of the tokens per minute
        srv.llm = share
        prompt = "word " * 800                             # ~1000 tokens: more than a quarter of the limit
        workers = [LLMClient(models={"agent": srv.model()}, limits=LLMLimits(tpm=TPM / 4)) for _ in range(4)]
        async def all_workers():
            calls = [asyncio.ensure_future(w.chat(prompt + str(i), "agent")) for i, w in enumerate(workers) for _ in range(2)]
            await asyncio.sleep(3); [x.cancel() for x in calls]
            await asyncio.gather(*calls, return_exceptions=True)
        run_sync(all_workers())
    print(f"control, a quarter of the limit per worker: {sum(k for _, k in share.tokens)} tokens in the first seconds")
    assert sum(k for _, k in share.tokens) > TPM


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


PRICE = [20.0, 20.0]      # USD per 1M input and output tokens: an agent call costs ~$0.016


def _priced_client(url, max_tokens=None):
    m = f"custom/bot@{url}"
    return LLMClient(models=_models(m), limits=LLMLimits(backoff=0.01, models={m: {"price": PRICE, **({"max_tokens": max_tokens} if max_tokens else {})}}))


def _bound(records):
    "What the ledger says was spent, and the budget's bound on it beyond max_cost: what calls cost over their reservation."
    return sum(r.get("cost") or 0 for r in records), sum(max(0.0, (r.get("cost") or 0) - r["reserved_usd"]) for r in records if "reserved_usd" in r)


@pytest.mark.parametrize("workers,max_tokens", [(1, 256), (1, 1), (2, None)])
def test_budget_is_a_hard_ceiling(tmp_path, workers, max_tokens):
    """Every call reserves its worst case before it is sent: spent never exceeds --max-cost by more than what calls cost
    beyond their reservation (0 when replies are bounded: max_tokens 256, or litellm's/the default reply length; >0 with a
    max_tokens of 1 that the replies exceed). The run stops by its budget, stores nothing twice, and resumes."""
    st, max_cost = settings_in(tmp_path), 0.1
    run_cfg = RunConfig("bud", EpisodeConfig("original", max_turns=3), episodes=6, concurrency=3)
    plan = [e for e, *_ in run_cfg.plan()]
    with ScriptedServer() as srv:
        go = lambda usd: run_sync(run_batch(run_cfg, client=_priced_client(srv.url, max_tokens), progress=False,
                                            embedder=EmbeddingClient("fake/16"), settings=st, max_cost=usd, workers=workers))
        s1 = go(max_cost)
        led = Ledger.load(tmp_path / "results/bud/ledger.jsonl").records
        spent, overrun = _bound(led)
        print(f"workers {workers}, max_tokens {max_tokens}: spent ${spent:.6f} of ${max_cost}, bound ${max_cost + overrun:.6f}; "
              f"{s1['stored']} stored, {s1['interrupted']} stopped, {s1['not_started']} not started")
        assert s1["stopped"] == "budget" and s1["failed_now"] == 0 and s1["interrupted"] >= 1
        assert s1["stored"] + s1["interrupted"] + s1["not_started"] == 6
        assert spent <= max_cost + overrun + 1e-12                                    # the ceiling's bound, from the ledger file
        assert s1["spent_usd"] == pytest.approx(spent) and s1["overrun_usd"] == pytest.approx(overrun)
        assert all("reserved_usd" in r for r in chat_records(led))
        assert (overrun > 0) == (max_tokens == 1)                                     # a reply beyond its reservation is the overrun
        s2 = go(max_cost)                                                             # same budget: the ledger file says it is spent
        assert s2["completed_now"] == 0 and s2["stopped"] == "budget"
        s3 = go(100.0)                                                                # a higher budget continues where it stopped
        assert s3["stopped"] is None and s3["stored"] == 6 and s3["failed_now"] == 0
    ids = [e["episode_id"] for e in read_episodes(tmp_path / "results/bud/episodes.jsonl")]
    assert sorted(ids) == sorted(plan) and len(ids) == len(set(ids))
    assert _bound(Ledger.load(tmp_path / "results/bud/ledger.jsonl").records)[0] > max_cost   # the whole batch costs more: the ceiling bound


def test_a_profile_run_raises_at_its_budget(tmp_path):
    with ScriptedServer() as srv:                             # a profile's run raises, so `also reproduce` stops
        prof = RunConfig("p-main", EpisodeConfig("original", max_turns=2), episodes=3, concurrency=1, extra={"reproduce_profile": "p"})
        with pytest.raises(BudgetReached, match="reached"):
            run(prof, client=_priced_client(srv.url), embedder=EmbeddingClient("fake/16"), progress=False, settings=settings_in(tmp_path), max_cost=0.03)


def test_unknown_price_is_unknown_not_zero(tmp_path):
    with ScriptedServer() as srv:
        m = srv.model()
        cl = LLMClient(models=_models(m), backoff=0.01)
        s = run_sync(run_batch(RunConfig("u", EpisodeConfig("original", max_turns=2), episodes=1), client=cl, progress=False,
                               embedder=EmbeddingClient("fake/16"), settings=settings_in(tmp_path)))
    e = read_episodes(tmp_path / "results/u/episodes.jsonl")[0]
    assert e["ledger"]["cost_usd"] is None and s["cost_usd"] is None and cl.ledger.totals()["cost"] is None


def _descendants(pattern):
    "pids of processes below this one whose command line contains `pattern`."
    import psutil
    return [p.pid for p in psutil.Process().children(recursive=True) if pattern in " ".join(p.cmdline() or [])]


def _kill_one_when_busy(ledger, pattern, done, n_lines=12):
    "Once the run's ledger holds `n_lines` call records, SIGKILL one matching worker process (in a thread); the pid goes to `done`."
    wait_for(lambda: ledger.is_file() and ledger.read_text().count("\n") >= n_lines and _descendants(pattern), what="a busy worker")
    pid = _descendants(pattern)[0]
    os.kill(pid, signal.SIGKILL); done.append(pid)


def _compare_with_in_process(tmp_path, eps, run_cfg, url):
    "Worker results equal this process's: same turns, arms and final scores."
    cl = LLMClient(models=_models(f"custom/bot@{url}"), backoff=0.01)
    ref_cfg = RunConfig("ref", run_cfg.episode, episodes=run_cfg.episodes, reps=run_cfg.reps)
    run_sync(run_batch(ref_cfg, tmp_path / "ref", client=cl, embedder=EmbeddingClient("fake/16"), progress=False,
                       settings=settings_in(tmp_path), workers=1))
    ref = {e["episode_id"]: e for e in read_episodes(tmp_path / "ref/ref/episodes.jsonl")}
    strip = lambda e: (e["final"], [(t["arms"], t["reward"]) for t in e["turns"]])
    assert {e["episode_id"]: strip(e) for e in eps} == {k: strip(e) for k, e in ref.items()}


def _ledger_holds_the_server(led, srv, lost_calls):
    "Every request the server saw is a ledger record (and a call lost with its worker before it reached the server is one more)."
    mine = chat_records(led)
    assert len(srv.requests) <= len(mine) <= len(srv.requests) + lost_calls, (len(srv.requests), len(mine), lost_calls)


def test_worker_processes_store_each_planned_episode_once_after_a_kill(tmp_path):
    st = settings_in(tmp_path)
    run_cfg = RunConfig("w", EpisodeConfig("exp3", max_turns=4), episodes=6, concurrency=4, retries=0)   # a death costs no retry
    with ScriptedServer(Counting(0.05)) as srv:
        cl = LLMClient(models=_models(f"custom/bot@{srv.url}"), backoff=0.01)
        killed = []
        threading.Thread(target=_kill_one_when_busy, args=(tmp_path / "results/w/ledger.jsonl", "multiprocessing.spawn", killed),
                         daemon=True).start()
        s = run_sync(run_batch(run_cfg, client=cl, embedder=EmbeddingClient("fake/16"), progress=False, settings=st, workers=2))
        assert killed and s["workers"]["where"] == "processes" and s["workers"]["lost"] >= 1
        eps = read_episodes(tmp_path / "results/w/episodes.jsonl")
        ids = [e["episode_id"] for e in eps]
        assert sorted(ids) == sorted(e for e, *_ in run_cfg.plan()) and len(set(ids)) == 6 and s["failed_now"] == 0
        led = Ledger.load(tmp_path / "results/w/ledger.jsonl").records   # the driver wrote the workers' calls as they happened
        _ledger_holds_the_server(led, srv, s["workers"]["lost_calls"])
        replayed = {r["episode"] for r in led if r.get("episode_try", 0) > 0}
        assert replayed and all(e["attempts"] >= 2 for e in eps if e["episode_id"] in replayed)   # the killed worker's episodes, played again
        assert {r["episode"] for r in led if not r.get("preflight")} == set(ids)
        _compare_with_in_process(tmp_path, eps, run_cfg, srv.url)


def test_ray_two_workers_store_each_planned_episode_once_after_a_kill(tmp_path):
    ray = pytest.importorskip("ray")
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, _node_ip_address="127.0.0.1")
    try:
        st = settings_in(tmp_path)
        run_cfg = RunConfig("r", EpisodeConfig("exp3", max_turns=4), episodes=6, concurrency=4, retries=0, save_bandits=True)
        out = tmp_path / "results/r/episodes.jsonl"
        with ScriptedServer(Counting(0.15)) as srv:     # slow enough that the kill lands while both actors play
            cl = LLMClient(models=_models(f"custom/bot@{srv.url}"), backoff=0.01)
            killed = []
            threading.Thread(target=_kill_one_when_busy, args=(tmp_path / "results/r/ledger.jsonl", "ray::_RayWorker", killed),
                             daemon=True).start()
            s = run_sync(run_batch(run_cfg, client=cl, embedder=EmbeddingClient("fake/16"), progress=False, settings=st, ray="local"))
            assert killed and s["workers"] == {**s["workers"], "where": "ray", "n": 2} and s["workers"]["lost"] >= 1
            eps = read_episodes(out)
            ids = [e["episode_id"] for e in eps]
            assert sorted(ids) == sorted(e for e, *_ in run_cfg.plan()) and len(set(ids)) == 6 and s["failed_now"] == 0
            assert all((tmp_path / "results/r" / p).is_file() for e in eps for p in e["bandit_state"].values())
            _ledger_holds_the_server(Ledger.load(tmp_path / "results/r/ledger.jsonl").records, srv, s["workers"]["lost_calls"])
            more = RunConfig("r", run_cfg.episode, episodes=8, concurrency=4, retries=0, save_bandits=True)
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
    priced = {"models": json.dumps({"scripted/bot": {"price": [20, 20], "max_tokens": 64}})}
    args = (str(prof), tmp_path / "results", tmp_path / "figs", tmp_path / "executed")
    with overrides_env({"llm": {**priced, "max_cost": "0.05"}}):
        r = reproduce(*args, progress=False)
    p = r["parts"][0]
    assert r["stopped"] == "budget" and p["report"] is None and p["experiments"] == {} and "re-run with a higher --max-cost" in p["why"]
    res = tmp_path / "results"
    s = json.loads((res / "tiny-main-original/summary.json").read_text())
    assert s["stopped"] == "budget" and s["interrupted"] >= 1 and s["spent_usd"] <= 0.05 + s["overrun_usd"]
    assert p["spent_usd"] == pytest.approx(s["spent_usd"])                       # the profile's first run spent it all
    with overrides_env({"llm": {**priced, "max_cost": "1000"}}):                    # a higher budget continues
        r = reproduce(*args, only=["exp_main"], do_report=False, progress=False)
    assert r["stopped"] is None and list(r["parts"][0]["experiments"]) == ["exp_main"]
    for m in ("original", "exp3"): assert len(read_episodes(res / f"tiny-main-{m}/episodes.jsonl")) == 2
