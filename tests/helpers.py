"Helpers several test modules share (pytest puts tests/ on sys.path: `from helpers import ...`)."
import socket
from also.core import Settings


def settings_in(tmp_path):
    "Settings from a settings.ini written in `tmp_path`: results, caches and Sotopia's store under it, not the user's."
    (tmp_path / "settings.ini").write_text(f"[paths]\nresults = {tmp_path}/results\ncache = {tmp_path}/cache\n"
                                          f"sotopia_store = {tmp_path}/store\n")
    return Settings.load(tmp_path / "settings.ini")


def free_port() -> int:
    "A 127.0.0.1 port the OS just handed out and released: nothing listens on it."
    with socket.socket() as s: s.bind(("127.0.0.1", 0)); return s.getsockname()[1]


import os, signal, subprocess, sys, threading, time
from also.llm.scripted import ScriptedLLM, prompt_text


class Counting(ScriptedLLM):
    "A reply policy that sleeps, and records the peak number of requests in flight, when each was answered and its tokens."
    def __init__(self, delay=0.05):
        super().__init__(); self.delay, self.now, self.peak, self.times, self.tokens, self.lock = delay, 0, 0, [], [], threading.Lock()
    def reply(self, messages, schema=None):
        with self.lock: self.now += 1; self.peak = max(self.peak, self.now)
        t0 = time.monotonic()
        time.sleep(self.delay)
        out = super().reply(messages, schema)
        with self.lock:
            self.now -= 1; self.times.append(time.monotonic())
            # the server's own usage count (also.llm.scripted.completion_body): what a provider bills and rate-limits
            self.tokens.append((t0, max(1, len(prompt_text(messages)) // 4) + max(1, len(out) // 4)))
        return out


def chat_records(records, model=None):
    "Ledger records of chat calls that reached (or were meant for) a server: not cache hits, not embeddings."
    return [r for r in records if r.get("purpose") != "embedding" and not r.get("cache_hit") and (model is None or r["model"] == model)]


def also_cmd(*argv, env=None, cwd=None, **kw):
    "A subprocess running the installed `also` console script, in its own process group (so it can be killed with its workers)."
    return subprocess.Popen([os.path.join(os.path.dirname(sys.executable), "also"), *argv], cwd=cwd, env={**os.environ, **(env or {})},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True, **kw)


def kill_group(p):
    "SIGKILL a process started by `also_cmd` and everything in its group (its worker processes, a local Ray instance)."
    try: os.killpg(p.pid, signal.SIGKILL)
    except ProcessLookupError: pass
    p.wait()


def wait_for(cond, timeout=300, what="the condition", every=0.05):
    "Poll `cond()` until it is true (an observable event: a file, a count), or fail after `timeout` seconds."
    t0 = time.time()
    while not cond():
        if time.time() - t0 > timeout: raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(every)
