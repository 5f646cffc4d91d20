"""Faults, kills and resumes of `also run` as a user meets them (the installed console script against a faulty scripted
server on 127.0.0.1): nothing is stored twice or lost, the ledger holds every request the server answered, one driver per
run folder, and the readers take what a kill leaves behind."""
import json, os, subprocess, sys, threading, time
import pandas as pd
import psutil
import pytest
from also.core import read_jsonl
from also.llm.scripted import ScriptedServer
from also.run.batch import RunConfig
from helpers import settings_in, Counting, chat_records, also_cmd, kill_group, wait_for

ROLES = ("agent", "turn_judge", "terminal_judge", "optimizer")
CONCURRENCY = 4           # [llm] concurrency: the most calls in flight, hence the most a killed driver can leave unrecorded


def _env(srv):
    return {f"ALSO_MODELS_{r.upper()}": srv.model() for r in ROLES} | {"ALSO_MODELS_EMBEDDING": "fake/16"}


def _lines(f):
    return f.read_text().count("\n") if f.is_file() else 0


def _kill_tree(p):
    "SIGKILL the driver's process group, then anything below it that left the group (a local Ray instance's processes)."
    below = [c for c in psutil.Process(p.pid).children(recursive=True)] if p.poll() is None else []
    kill_group(p)
    for c in below:
        try: c.kill()
        except psutil.NoSuchProcess: pass
    psutil.wait_procs(below, timeout=30)


WHERE = {"this process": [], "processes": ["--workers", "2"], "ray": ["--ray", "local"]}
WORKER = {"processes": "multiprocessing.spawn", "ray": "ray::_RayWorker"}


@pytest.mark.parametrize("where", list(WHERE))
def test_faults_kills_and_resume_lose_nothing(tmp_path, where):
    """A server that fails a quarter of its calls (HTTP 500, 429 with Retry-After, timeouts, malformed JSON); one worker
    killed mid-run (processes, Ray), then the driver itself (kill -9, with its workers), then the same command again:
    every planned episode is stored once, and the ledger holds every request the server saw, except at most the calls in
    flight when the driver was killed (at most [llm] concurrency)."""
    if where == "ray": pytest.importorskip("ray")
    settings_in(tmp_path)
    res = tmp_path / "results/f"
    with ScriptedServer(Counting(0.05)) as srv:
        for kind, p, seed in (("500", 0.08, 1), ("429", 0.06, 2), ("timeout", 0.04, 3), ("malformed", 0.07, 4)):
            srv.faults.inject(kind, p=p, seed=seed, delay=2.0, retry_after=0.2)
        args = ["run", "--method", "exp3", "--episodes", "12", "--turns", "4", "--concurrency", "6", "--tag", "f", "--no-progress",
                "--retries", "3", "--llm-timeout", "1", "--llm-retries", "4", "--llm-backoff", "0.05", "--llm-max-backoff", "0.5",
                "--llm-concurrency", str(CONCURRENCY), *WHERE[where]]
        p = also_cmd(*args, env=_env(srv), cwd=tmp_path)
        try:
            killed = None
            if where in WORKER:                            # one worker dies while the batch is under way
                wait_for(lambda: _lines(res / "ledger.jsonl") >= 20 or p.poll() is not None, timeout=900, what="calls from the workers")
                busy = [c for c in psutil.Process(p.pid).children(recursive=True) if WORKER[where] in " ".join(c.cmdline() or [])]
                assert p.poll() is None and busy, (p.poll(), busy)
                killed = busy[0].pid; busy[0].kill()
            n = _lines(res / "ledger.jsonl")
            wait_for(lambda: (len(read_jsonl(res / "episodes.jsonl")) >= 3 and _lines(res / "ledger.jsonl") >= n + 20) or p.poll() is not None,
                     timeout=900, what="episodes after the worker's death")
            assert p.poll() is None, p.communicate()
        finally: _kill_tree(p)                             # the driver, killed: kill -9
        first = len(read_jsonl(res / "episodes.jsonl"))
        assert first < 12
        r = subprocess.run([os.path.join(os.path.dirname(sys.executable), "also"), *args], cwd=tmp_path, env={**os.environ, **_env(srv)},
                           capture_output=True, text=True, timeout=1800)
        assert r.returncode == 0, r.stderr[-3000:]
        s = json.loads(r.stdout)                           # stdout is the summary alone
        served = len(srv.requests)
    eps = read_jsonl(res / "episodes.jsonl")
    ids = [e["episode_id"] for e in eps]
    assert sorted(ids) == sorted(e for e, *_ in RunConfig("f", episodes=12).plan()) and len(set(ids)) == 12
    assert s["already_done"] == first and s["stored"] == 12
    led = read_jsonl(res / "ledger.jsonl")
    mine, lost = chat_records(led), sum(bool(r.get("lost")) for r in led)
    print(f"{where}: killed worker {killed}; {first} episodes stored before the driver's kill; the server saw {served} requests, "
          f"the ledger holds {len(mine)} ({lost} recorded as lost with their worker); "
          f"server minus ledger {served - len(mine)}, allowed from -{lost} to {CONCURRENCY}; injected faults: "
          f"{ {k: srv.faults.injected.count(k) for k in set(srv.faults.injected)} }")
    assert {"500", "429", "timeout", "malformed"} <= set(srv.faults.injected)
    assert -lost <= served - len(mine) <= CONCURRENCY     # what the driver had in flight when it was killed, at most
    if where in WORKER: assert any(r.get("episode_try", 0) > 0 for r in led)   # the dead worker's episodes were played again


class Held(Counting):
    "Answers like Counting; while `hold` is set, the episode calls of the run (not the short check calls) wait for it to clear."
    def __init__(self):
        super().__init__(0.01); self.hold = threading.Event(); self.free = threading.Event(); self.free.set()
    def reply(self, messages, schema=None):
        if self.hold.is_set() and len(str(messages)) > 400: self.free.wait()
        return super().reply(messages, schema)


def test_one_driver_per_run_folder_and_readers_after_a_kill(tmp_path):
    "A second driver on a tag is refused; after a kill -9 the folder is readable (export, report), and the next driver takes over."
    settings_in(tmp_path)
    res = tmp_path / "results/k"
    args = ["run", "--method", "exp3", "--episodes", "6", "--turns", "4", "--concurrency", "2", "--tag", "k", "--no-progress"]
    held = Held()
    with ScriptedServer(held) as srv:
        p = also_cmd(*args, env=_env(srv), cwd=tmp_path)
        try:
            held.hold.set()
            wait_for(lambda: len(read_jsonl(res / "episodes.jsonl")) >= 1 or p.poll() is not None, timeout=600,
                     what="the first driver's episodes")
            held.free.clear()                              # from now on the first driver's episode calls wait: it is mid-run
            assert p.poll() is None and (res / ".driver.json").is_file()
            second = subprocess.run([os.path.join(os.path.dirname(sys.executable), "also"), *args], cwd=tmp_path,
                                    env={**os.environ, **_env(srv)}, capture_output=True, text=True, timeout=600)
            since = json.loads((res / ".driver.json").read_text())["since"]
            assert second.returncode == 2 and second.stdout == "" and "Traceback" not in second.stderr, second
            assert second.stderr.splitlines()[-1] == (f"also run: error: run folder {res} is in use by another driver "
                                                      f"(pid {p.pid} on {os.uname().nodename}, since {since}): wait for it to end, "
                                                      "or use another --tag"), second.stderr
        finally:
            kill_group(p); held.hold.clear(); held.free.set()
        with open(res / "episodes.jsonl", "a") as f: f.write('{"format": "also.episode/1", "episode_id": "torn')   # a kill mid-write
        with open(res / "ledger.jsonl", "a") as f: f.write('{"format": "also.ledger/1", "mod')
        stored = len(read_jsonl(res / "episodes.jsonl"))
        ex = subprocess.run([os.path.join(os.path.dirname(sys.executable), "also"), "export", "--results", str(tmp_path / "results"),
                             "--out", str(tmp_path / "export")], capture_output=True, text=True, timeout=600)
        assert ex.returncode == 0 and "torn last line" in ex.stderr, ex.stderr[-2000:]
        assert len(pd.read_parquet(tmp_path / "export/finals.parquet")) == 2 * stored
        rep = subprocess.run([os.path.join(os.path.dirname(sys.executable), "also"), "report", "--results", str(tmp_path / "results"),
                              "--out", str(tmp_path / "figs"), "--executed", str(tmp_path / "executed"), "--only", "tab_calls"],
                             capture_output=True, text=True, timeout=900)
        assert rep.returncode == 0 and (tmp_path / "figs/tab_calls.csv").is_file(), rep.stdout[-2000:] + rep.stderr[-2000:]
        again = subprocess.run([os.path.join(os.path.dirname(sys.executable), "also"), *args], cwd=tmp_path,
                               env={**os.environ, **_env(srv)}, capture_output=True, text=True, timeout=900)
    assert again.returncode == 0, again.stderr[-2000:]
    assert f"taking over the run folder from a driver that is gone (pid {p.pid}" in again.stderr
    ids = [e["episode_id"] for e in read_jsonl(res / "episodes.jsonl")]
    assert len(ids) == len(set(ids)) == 6 and not (res / ".driver.json").exists()
