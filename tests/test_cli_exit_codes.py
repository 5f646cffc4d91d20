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
    run_dir = project / "results" / "bad"
    assert not any((run_dir / f).exists() for f in ("run_config.json", "episodes.jsonl", "failures.jsonl")), "an episode was started"


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
    summary = json.loads(out[out.rindex('{\n "format": "also.summary/1"'):])         # printed last on stdout (Sotopia logs there too)
    assert summary["failed_now"] == 2 and summary["stored"] == 0
    assert err == "also run: 2 episode(s) failed after retries; see failures.jsonl (re-run the same command to try them again)\n"


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


def test_console_script_exit_code_and_one_line(tmp_path):
    "The installed `also` script: the raw traceback of an unwritable results folder is now one line and exit 2."
    env = {**os.environ, "ALSO_PATHS_RESULTS": "/proc/also-results", "ALSO_MODELS_EMBEDDING": "fake/16",
           **{f"ALSO_MODELS_{k.upper()}": "scripted/bot" for k in ROLES}}
    r = subprocess.run([Path(sys.executable).parent / "also", "run", "--episodes", "1", "--no-progress"], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and r.stderr.strip().splitlines() == [
        "also run: error: [paths] results = /proc/also-results is not writable (No such file or directory) "
        "(set it in settings.ini or ALSO_PATHS_<NAME>)"], r.stderr[-2000:]
