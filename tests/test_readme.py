"""The commands of the README's "Configuration" and "Running at paper scale" sections run as shown, against scripted
servers on 127.0.0.1 standing in for the GPU servers (their addresses are the only thing replaced). The commands are
read from the README itself, so the README and this test cannot drift apart."""
import json, os, re, shlex, signal, subprocess, sys, time
from pathlib import Path
import psutil
import pytest
from also.llm.scripted import ScriptedServer
from helpers import Counting, free_port, settings_in

ROOT = Path(__file__).resolve().parents[1]
ALSO = str(Path(sys.executable).parent / "also")


def section(title:str) -> str:
    text = (ROOT / "README.md").read_text()
    return text.split(f"\n## {title}\n", 1)[1].split("\n## ", 1)[0]


def commands(title:str) -> list[str]:
    "The shell commands of a section's ```bash blocks: continuation lines joined, comments dropped."
    out = []
    for block in re.findall(r"```bash\n(.*?)```", section(title), re.S):
        for line in block.replace("\\\n", " ").splitlines():
            if (cmd := " ".join(shlex.split(line, comments=True))): out.append(cmd)
    return out


def argv(cmd:str, **subs) -> list[str]:
    for a, b in subs.items(): cmd = cmd.replace(a, b)
    return shlex.split(cmd)


def run(args, env=None, cwd=None, timeout=1200) -> subprocess.CompletedProcess:
    return subprocess.run([ALSO if args[0] == "also" else args[0], *args[1:]], cwd=cwd, env={**os.environ, **(env or {})},
                          capture_output=True, text=True, timeout=timeout)


def test_the_sections_show_these_commands():
    "What the tests below run: a new command in these sections needs a test here."
    assert commands("Configuration") == ["export ALSO_MODELS_AGENT=custom/qwen2.5-7b@http://127.0.0.1:8000/v1"]
    assert commands("Running at paper scale") == [
        "also run --method also --split all --tag t2-also --turns 20 --concurrency 256 --workers 0 "
        "--agent custom/qwen@http://gpu1:8000/v1|custom/qwen@http://gpu2:8000/v1 "
        "--turn-judge custom/qwen@http://gpu1:8000/v1|custom/qwen@http://gpu2:8000/v1 --llm-concurrency 32",
        "ray start --head --port 6379", "ray start --address HEAD_IP:6379", "export RAY_AUTH_MODE=token", "also run ... --ray auto",
        "also reproduce --profile paper --ray auto --max-cost 500"]


def test_a_role_on_a_server_by_environment_variable(tmp_path):
    "`export ALSO_MODELS_AGENT=custom/qwen2.5-7b@http://127.0.0.1:8000/v1`, then `also run`: the agents call that server."
    var, value = commands("Configuration")[0].removeprefix("export ").split("=", 1)
    settings_in(tmp_path)
    with ScriptedServer() as srv:
        model = value.replace("http://127.0.0.1:8000/v1", srv.url)
        r = run(["also", "run", "--method", "original", "--episodes", "1", "--turns", "2", "--tag", "env", "--no-progress"],
                env={var: model, "ALSO_MODELS_TERMINAL_JUDGE": "scripted/bot", "ALSO_MODELS_EMBEDDING": "fake/16"}, cwd=tmp_path)
        assert r.returncode == 0, r.stderr[-2000:]
        assert json.loads(r.stdout)["models"]["agent_p1"] == model and len(srv.requests) >= 2     # the check call and the turns
        assert all(q["model"] == "qwen2.5-7b" for q in srv.requests)


def test_one_machine_all_cores(tmp_path):
    """The one-machine command as shown (all of Sotopia's 450 combos at 20 turns), limited to its first 2 episodes
    (`--episodes 2`, appended): workers 0 = one per core, the router's two endpoints both serve, stdout is the summary."""
    cmd = commands("Running at paper scale")[0]
    settings_in(tmp_path)
    a, b = Counting(0.01), Counting(0.01)
    with ScriptedServer(a) as s1, ScriptedServer(b) as s2:
        args = argv(cmd, **{"http://gpu1:8000/v1": s1.url, "http://gpu2:8000/v1": s2.url}) + ["--episodes", "2", "--no-progress"]
        r = run(args, env={"ALSO_MODELS_TERMINAL_JUDGE": f"custom/qwen@{s1.url}", "ALSO_MODELS_EMBEDDING": "fake/16"}, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    s = json.loads(r.stdout)
    assert s["stored"] == 2 and s["planned"] == 2 and s["workers"]["where"] == "processes" and s["workers"]["n"] == os.cpu_count()
    assert s["calls"]["agent"] == 40 and s["calls"]["turn_judge"] == 38 and a.times and b.times      # 20 turns; both endpoints
    assert max(a.peak, b.peak) <= 32


def _ray_head(port:int) -> subprocess.Popen:
    "`ray start --head --port PORT`, kept in the foreground (`--block`) so the test can stop what it started."
    exe = str(Path(sys.executable).parent / "ray")
    return subprocess.Popen([exe, "start", "--head", "--port", str(port), "--block", "--include-dashboard", "false", "--num-cpus", "2"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)


def _wait_for_head(p:subprocess.Popen, port:int, env:dict):
    exe = str(Path(sys.executable).parent / "ray")
    t0 = time.time()
    while time.time() - t0 < 300:
        assert p.poll() is None, "the Ray head exited"
        if subprocess.run([exe, "status", "--address", f"127.0.0.1:{port}"], env={**os.environ, **env},
                          capture_output=True, timeout=120).returncode == 0: return
        time.sleep(2)
    raise AssertionError("the Ray head did not come up")


def _stop(p:subprocess.Popen):
    below = psutil.Process(p.pid).children(recursive=True) if p.poll() is None else []
    try: os.killpg(p.pid, signal.SIGTERM); p.wait(60)
    except (ProcessLookupError, subprocess.TimeoutExpired): pass
    for c in below:
        try: c.kill()
        except psutil.NoSuchProcess: pass
    try: os.killpg(p.pid, signal.SIGKILL)
    except ProcessLookupError: pass
    psutil.wait_procs(below, timeout=30)


def test_many_machines_on_ray(tmp_path):
    """A Ray head on this machine (`ray start --head`, on a free port instead of 6379 so as not to meet another cluster,
    in the foreground so that the test can stop it; a worker machine's `ray start --address` needs a second machine), then,
    with the cluster's token mode exported, `also run ... --ray auto` (a small run) and `also reproduce --profile paper --ray auto --max-cost 500`, with the
    self-hosted server's price given in `[llm] models` as the README says (a price so high that the first call's worst
    case is over $500): the profile stops by its budget, exit 2 with one line."""
    pytest.importorskip("ray")
    cmds = commands("Running at paper scale")
    assert cmds[1] == "ray start --head --port 6379" and cmds[4] == "also run ... --ray auto"
    var, value = cmds[3].removeprefix("export ").split("=", 1)
    settings_in(tmp_path)
    port = free_port()
    head = _ray_head(port)
    try:
        _wait_for_head(head, port, {var: value})
        with ScriptedServer() as srv:
            env = {var: value, "RAY_ADDRESS": f"127.0.0.1:{port}", "ALSO_MODELS_EMBEDDING": "fake/16", "ALSO_PATHS_EXPERIMENTS": str(ROOT / "nbs/experiments"),
                   "ALSO_PATHS_CACHE": str(tmp_path / "cache"), "ALSO_PATHS_SOTOPIA_STORE": str(tmp_path / "store"),
                   **{f"ALSO_MODELS_{r.upper()}": f"custom/qwen@{srv.url}" for r in ("agent", "turn_judge", "terminal_judge", "optimizer")}}
            r = run(argv(cmds[4], **{"...": "--method original --episodes 2 --turns 2 --tag ray --no-progress"}), env=env, cwd=tmp_path)
            assert r.returncode == 0, r.stderr[-3000:]
            s = json.loads(r.stdout)
            assert s["stored"] == 2 and s["workers"]["where"] == "ray" and s["workers"]["n"] == 2
            n = len(srv.requests)
            env["ALSO_LLM_MODELS"] = json.dumps({f"custom/qwen@{srv.url}": {"price": [1e9, 1e9]}})   # USD per 1M tokens
            r = run(argv(cmds[5]) + ["--results", str(tmp_path / "results"), "--out", str(tmp_path / "figs"),
                                     "--executed", str(tmp_path / "executed"), "--no-progress"], env=env, cwd=tmp_path)
            err = [l for l in r.stderr.splitlines() if l.startswith("also reproduce")]
            assert r.returncode == 2 and len(err) == 1 and err[0].startswith("also reproduce: stopped: budget of $500 reached"), r.stderr[-3000:]
            assert len(srv.requests) == n                  # not one call was sent: its worst case alone was over the budget
    finally: _stop(head)
