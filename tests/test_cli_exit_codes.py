"`also` as a tool: bad input fails before the first episode with exit 2 and one line on stderr; failed episodes exit 1."
import asyncio, contextlib, http.server, io, json, os, subprocess, sys, threading
from pathlib import Path
import pytest
from also.cli import main
from also.llm.scripted import register_scripted
from helpers import free_port

ROLES = ("agent", "turn_judge", "terminal_judge", "optimizer")


@pytest.fixture
def project(tmp_path, monkeypatch):
    "A checkout-like folder: settings.ini with paths in tmp, every role on the scripted model."
    (tmp_path / "settings.ini").write_text(f"[paths]\nresults = {tmp_path}/results\ncache = {tmp_path}/cache\n"
                                          f"sotopia_store = {tmp_path}/store\n")
    monkeypatch.chdir(tmp_path)
    for k in ROLES: monkeypatch.setenv(f"ALSO_MODELS_{k.upper()}", "scripted/bot")
    monkeypatch.setenv("ALSO_MODELS_EMBEDDING", "fake/16")
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    register_scripted()
    return tmp_path


def cli(*argv) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err): code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


class NoSchema(http.server.BaseHTTPRequestHandler):
    "An OpenAI-compatible server that refuses every response_format (as a server without structured output would)."
    def log_message(self, *a): pass
    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if "response_format" in body:
            raw = json.dumps({"error": {"message": f"response_format type {body['response_format']['type']!r} is not supported"}}).encode()
            self.send_response(400)
        else:
            raw = json.dumps({"id": "x", "object": "chat.completion", "created": 0, "model": "m", "choices": [
                {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "hi"}}]}).encode()
            self.send_response(200)
        self.send_header("Content-Length", str(len(raw))); self.end_headers(); self.wfile.write(raw)


@pytest.fixture(scope="module")
def no_schema_server():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), NoSchema)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}/v1"
    srv.shutdown()


CASES = [   # (extra arguments, environment, what stderr must say)
    (["--eta", "-1"], {}, "eta"),
    (["--option", "bogus=1"], {}, "bandit 'also' has no option(s) ['bogus']"),
    (["--agent-p1", "custom/foo"], {}, "agent_p1 model 'custom/foo' custom model must look like custom/<name>@http://host:port/v1"),
    (["--turns", "0"], {}, "max_turns must be >= 1, got 0"),
    (["--agent-p2", "nosuchprovider/some-model"], {}, "agent_p2 model 'nosuchprovider/some-model' has an unknown provider"),
    (["--turn-judge", "custom/judge@http://127.0.0.1:{port}/v1"], {}, "turn_judge model 'custom/judge@http://127.0.0.1:{port}/v1' is unreachable"),
    (["--terminal-judge", "openai/gpt-4o-mini"], {}, "terminal_judge model 'openai/gpt-4o-mini' misses its key(s): set OPENAI_API_KEY"),
    (["--agent-p1", "custom/m@{no_schema}"], {}, "agent_p1 model 'custom/m@{no_schema}' has no structured-output support"),
    ([], {"ALSO_PATHS_RESULTS": "/proc/also-results"}, "[paths] results = /proc/also-results is not writable"),
    (["--profile", "reference"], {}, "--profile was renamed --execution-profile"),
]


@pytest.mark.parametrize("extra,env,says", CASES, ids=[c[2].split(" ")[0] + "-" + str(i) for i, c in enumerate(CASES)])
def test_bad_input_exits_2_before_the_first_episode(project, monkeypatch, no_schema_server, extra, env, says):
    port = free_port()
    fill = lambda s: s.format(port=port, no_schema=no_schema_server)
    for k, v in env.items(): monkeypatch.setenv(k, v)
    code, out, err = cli("run", "--method", "also", "--episodes", "2", "--turns", "3", "--tag", "bad", "--no-progress",
                          *map(fill, extra))
    assert code == 2, (code, out, err)
    assert err.count("\n") == 1 and err.startswith("also run: error: ") and fill(says) in err, err
    assert not (project / "results" / "bad").exists(), "a refused run left its folder (and a ledger) behind"


def test_config_error_inside_an_episode_stops_the_batch(project, monkeypatch):
    "Not retried, the other episodes cancelled, exit 2."
    from also.core import ConfigError
    import also.run.batch
    calls = []
    async def broken(combo, cfg, *a, **kw):
        calls.append(combo["pk"]); await asyncio.sleep(0.05)                 # an episode runs a while before it meets the error
        raise ConfigError("a setting every episode shares is wrong")
    monkeypatch.setattr(also.run.batch, "run_episode", broken)
    code, out, err = cli("run", "--method", "exp3", "--episodes", "6", "--turns", "2", "--tag", "cfg", "--no-progress",
                          "--concurrency", "2", "--retries", "3")
    assert code == 2 and "a setting every episode shares is wrong" in err, err
    assert 1 <= len(calls) <= 2 and len(set(calls)) == len(calls), calls          # no retry, nothing after the first error
    assert not (project / "results/cfg/episodes.jsonl").exists() and not (project / "results/cfg/failures.jsonl").exists()


def test_failed_episodes_exit_1_after_the_summary(project):
    prov = register_scripted()
    prov.faults.inject("500", n=None)
    try: code, out, err = cli("run", "--method", "original", "--episodes", "2", "--turns", "2", "--tag", "f", "--no-progress", "--retries", "0")
    finally: prov.faults.clear()
    assert code == 1, (code, err)
    summary = json.loads(out)                                                     # stdout is the summary alone
    assert summary["failed_now"] == 2 and summary["stored"] == 0
    assert err == "also run: 2 episode(s) failed after retries; see failures.jsonl (re-run the same command to try them again)\n"


PRICED = json.dumps({"scripted/bot": {"price": [20, 20], "max_tokens": 64}})   # USD per 1M tokens: ~$0.01 per agent call


def test_budget_stop_exits_2_after_the_summary(project):
    "A run its budget stops: the summary on stdout, then one line on stderr, exit 2; a higher budget continues."
    code, out, err = cli("run", "--method", "original", "--episodes", "3", "--turns", "2", "--tag", "b", "--no-progress",
                         "--max-cost", "0.02", "--llm-models", PRICED)
    s = json.loads(out)
    assert code == 2 and s["stopped"] == "budget" and s["spent_usd"] <= 0.02 + s["overrun_usd"], (code, err)
    lines = err.splitlines()
    assert lines[-1] == (f"also run: stopped: run b: budget of $0.02 reached (${s['spent_usd']:.4f} spent): {s['interrupted']} "
                         f"episode(s) stopped, {s['not_started']} not started; re-run with a higher --max-cost to continue"), err
    assert all(l.startswith("also run b: ") for l in lines[:-1]) and "assuming per call" in err   # before it: the estimate
    code, out, err = cli("run", "--method", "original", "--episodes", "3", "--turns", "2", "--tag", "b", "--no-progress",
                         "--max-cost", "100", "--llm-models", PRICED)
    assert code == 0 and json.loads(out)["stored"] == 3


def test_unpriced_model_is_refused_under_a_budget(project):
    "A model without a known price cannot be bounded by --max-cost: refused, unless its calls are declared free."
    from also.llm.scripted import ScriptedServer
    with ScriptedServer() as srv:
        m = srv.model()
        code, out, err = cli("run", "--method", "original", "--episodes", "1", "--turns", "2", "--tag", "u", "--no-progress",
                             "--max-cost", "1e-9", "--agent", m)
        assert code == 2 and err.count("\n") == 1 and not srv.requests, err
        assert err.startswith(f"also run: error: agent_p1, agent_p2 model '{m}' has no known price, so --max-cost cannot bound its calls")
        assert not (project / "results/u").exists()
        code, out, err = cli("run", "--method", "original", "--episodes", "1", "--turns", "2", "--tag", "u", "--no-progress",
                             "--max-cost", "1e-9", "--agent", m, "--unpriced-free")
        assert code == 0 and json.loads(out)["stored"] == 1, err


def test_preflight_succeeds_after_one_429(project):
    from also.llm.scripted import ScriptedServer
    with ScriptedServer() as srv:
        srv.faults.inject("429", n=1, retry_after=0.1)
        code, out, err = cli("run", "--method", "original", "--episodes", "1", "--turns", "2", "--tag", "r", "--no-progress",
                             "--agent", srv.model(), "--llm-backoff", "0.01")
        assert code == 0 and json.loads(out)["stored"] == 1, err
        assert srv.faults.injected == ["429"]


def test_an_error_that_is_not_ours_exits_2_with_one_line(project):
    "`also export --out /proc/...`: an OSError is no bug report and no 'done, but failed': one line, exit 2 (--debug: the traceback)."
    assert cli("run", "--method", "original", "--episodes", "1", "--turns", "2", "--tag", "x", "--no-progress")[0] == 0
    code, out, err = cli("export", "--out", "/proc/nope/x")
    assert code == 2 and err.count("\n") == 1 and err.startswith("also export: error: FileNotFoundError: ") and "--debug" in err, err
    with pytest.raises(FileNotFoundError): cli("--debug", "export", "--out", "/proc/nope/x")


def test_interrupted_exits_130(monkeypatch):
    import also.cli
    def interrupted(argv): raise KeyboardInterrupt
    monkeypatch.setitem(also.cli.SUBCOMMANDS, "slow", ("also.cli:_slow", "")); monkeypatch.setattr(also.cli, "_slow", interrupted, raising=False)
    assert cli("slow") == (130, "", "also slow: interrupted\n")


def test_doctor_exits_1_when_a_check_fails(project, monkeypatch):
    monkeypatch.setenv("ALSO_MODELS_AGENT", f"custom/a@http://127.0.0.1:{free_port()}/v1")
    code, out, err = cli("doctor", "--skip-llm", "--skip-embedding")
    assert code == 1 and "[FAIL] models" in out and err == "also doctor: some checks failed: models\n", (out, err)


def test_version_help_and_renamed_reproduce_flag():
    from also import __version__
    assert cli("--version") == (0, f"also {__version__}\n", "")
    code, out, _ = cli("bench", "--help")
    assert code == 0 and "also bench {decision|llm|concurrency" in out
    code, _, err = cli("reproduce", "--profile", "nope")         # reproduce keeps --profile (= --experiment-profile)
    assert code == 2 and "unknown profile 'nope'" in err and err.count("\n") == 1, err
    code, _, err = cli("reproduce", "--experiment-profile", "nope")
    assert code == 2 and "unknown profile 'nope'" in err, err


def test_stdout_of_also_run_is_the_summary_alone(tmp_path):
    "With worker processes and a fresh interpreter (Sotopia prints its storage line on import, litellm its banners): stdout parses as JSON."
    (tmp_path / "settings.ini").write_text(f"[paths]\nresults = {tmp_path}/results\ncache = {tmp_path}/cache\nsotopia_store = {tmp_path}/store\n")
    env = {**os.environ, "ALSO_MODELS_EMBEDDING": "fake/16", **{f"ALSO_MODELS_{k.upper()}": "scripted/bot" for k in ROLES}}
    r = subprocess.run([Path(sys.executable).parent / "also", "run", "--method", "original", "--episodes", "2", "--turns", "2",
                        "--workers", "2", "--tag", "w", "--no-progress"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    assert json.loads(r.stdout)["stored"] == 2 and "Using local JSON storage backend" in r.stderr


def test_a_refused_run_closes_its_connections(tmp_path):
    "A fresh `also run` whose check calls fail (an agent server that is down): one line, no aiohttp 'Unclosed client session' on the way out."
    (tmp_path / "settings.ini").write_text(f"[paths]\nresults = {tmp_path}/results\ncache = {tmp_path}/cache\nsotopia_store = {tmp_path}/store\n")
    env = {**os.environ, "ALSO_MODELS_EMBEDDING": "fake/16", **{f"ALSO_MODELS_{k.upper()}": "scripted/bot" for k in ROLES}}
    down = f"custom/m@http://127.0.0.1:{free_port()}/v1"
    r = subprocess.run([Path(sys.executable).parent / "also", "run", "--method", "original", "--episodes", "1", "--agent", down,
                        "--llm-retries", "1", "--llm-backoff", "0.01", "--no-progress"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and r.stdout == "", r
    assert r.stderr.splitlines() == [f"also run: error: agent_p1, agent_p2 model '{down}' is unreachable ("
                                     + r.stderr.split(" is unreachable (", 1)[1].rstrip("\n")], r.stderr
    assert list((tmp_path / "results").iterdir()) == []                         # no run folder, no ledger


def test_console_script_exit_code_and_one_line(tmp_path):
    "The installed `also` script: the raw traceback of an unwritable results folder is now one line and exit 2."
    env = {**os.environ, "ALSO_PATHS_RESULTS": "/proc/also-results", "ALSO_MODELS_EMBEDDING": "fake/16",
           **{f"ALSO_MODELS_{k.upper()}": "scripted/bot" for k in ROLES}}
    r = subprocess.run([Path(sys.executable).parent / "also", "run", "--episodes", "1", "--no-progress"], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and r.stderr.strip().splitlines() == [
        "also run: error: [paths] results = /proc/also-results is not writable (No such file or directory) "
        "(set it in settings.ini or ALSO_PATHS_<NAME>)"], r.stderr[-2000:]
