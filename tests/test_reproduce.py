"""`also reproduce --profile ci`: every experiment and figure notebook through papermill with the scripted LLM; the main job
(no model configured: the planted world, then the smoke run), its closing summary and its console."""
import json, re
import pytest
import also.report.render as render
import also.report.reproduce as reproduce_mod
from also.cli import main
from also.core import ConfigError
from also.report.recovery import recovery_table, recovery_verdict
from also.report.reproduce import load_profile, reproduce, default_profiles, EXPERIMENTS
from also.report.render import REPORT_NOTEBOOKS, run_notebook


def test_profiles_and_errors(tmp_path):
    assert set(load_profile("ci")["experiments"]) == set(EXPERIMENTS)
    with pytest.raises(ConfigError, match="unknown profile"): load_profile("nope")
    bad = tmp_path / "bad.yaml"; bad.write_text("experiments:\n  exp_nope: {}\n")
    with pytest.raises(ConfigError, match="unknown experiment"): load_profile(str(bad))


def test_default_profiles_follow_models(monkeypatch):
    assert default_profiles() == ("planted", "smoke")         # the shipped settings use the embedded model: no real model
    for r in ("agent", "turn_judge", "terminal_judge"): monkeypatch.setenv(f"ALSO_MODELS_{r.upper()}", "openai/gpt-4o")
    assert default_profiles() == ("paper",)


def test_reproduce_ci_profile_writes_every_output(tmp_path):
    r = reproduce("ci", tmp_path / "results", tmp_path / "figs", tmp_path / "executed", progress=False)
    assert [p["profile"] for p in r["parts"]] == ["ci"] and r["parts"][0]["out"] == str(tmp_path / "figs")
    ci = r["parts"][0]
    assert set(ci["experiments"]) == set(EXPERIMENTS)
    assert all(not v["error"] and not v["missing"] for v in ci["report"].values()), ci["report"]
    figs = {p.name for p in (tmp_path / "figs").iterdir()}
    want = {f for files, _ in REPORT_NOTEBOOKS.values() for f in files} | {"beyond_following.png", "beyond_deadlock.png"}
    assert want <= figs, want - figs
    assert {p.stem for p in (tmp_path / "executed").glob("*.ipynb")} >= set(EXPERIMENTS) | set(REPORT_NOTEBOOKS)
    tags = {p.name for p in (tmp_path / "results").iterdir() if p.is_dir()}
    assert {"ci-main-also", "ci-main-original", "ci-ablation-no_context", "ci-gen-zero_shot", "ci-cross-0-also"} <= tags
    zs = [json.loads(l) for l in (tmp_path / "results/ci-gen-zero_shot/episodes.jsonl").read_text().splitlines()]
    cfg = json.loads((tmp_path / "results/ci-gen-zero_shot/run_config.json").read_text())
    assert cfg["learn"] is False and cfg["init_bandits"] and len(zs) == 2
    sif = (tmp_path / "figs/beyond_following.csv").read_text()
    assert "ALSO" in sif                                         # ALSO's strategies were rated
    assert "WARNING: scripted LLM" in (tmp_path / "figs/tab_main.tex").read_text()   # the scripted world says what it is
    import pandas as pd
    tm = pd.read_csv(tmp_path / "figs/tab_main.csv").query("source == 'ours' and method == 'ALSO'")
    assert set(tm.n_episodes) == {2} and set(tm.run_tags) == {"ci-main-also; ci-main-opro; ci-main-original"}


# The main job at test size: profiles named as the shipped ones, from a folder of tiny ones (scripted models, a few episodes)
TINY = {
    "planted": """description: "planted world: test size"
models: {agent: scripted/planted, turn_judge: scripted/planted, terminal_judge: scripted/planted, optimizer: scripted/planted, embedding: fake/16}
experiments:
  exp_main: {methods: [original, uniform, oracle, also], split: hard_small, episodes: 4, turns: 4, judge_mode: scores, concurrency: 4}
""",
    "smoke": """description: "pipeline check: test size, scripted LLM"
models: {agent: scripted/bot, turn_judge: scripted/bot, terminal_judge: scripted/bot, optimizer: scripted/bot, embedding: fake/16}
experiments:
  exp_main: {methods: [original, also], split: hard_small, episodes: 2, turns: 3, judge_mode: scores}
"""}
NOISE = ("Kernel is running over TCP", "KeyboardInterrupt caught")


def kernel_noise(text: str) -> list[str]:
    "The lines of a console that are a kernel's log, not the run's."
    return [l for l in text.splitlines() if any(n in l for n in NOISE)]


@pytest.fixture
def tiny_profiles(tmp_path, monkeypatch):
    d = tmp_path / "profiles"; d.mkdir()
    for name, text in TINY.items(): (d / f"{name}.yaml").write_text(text)
    monkeypatch.setattr(reproduce_mod, "profiles_dir", lambda: d)
    monkeypatch.setenv("ALSO_PATHS_CACHE", str(tmp_path / "cache"))          # the kernels inherit these
    monkeypatch.setenv("ALSO_PATHS_SOTOPIA_STORE", str(tmp_path / "store"))
    return tmp_path


def folders(root): return ["--results", str(root / "results"), "--out", str(root / "figs"), "--executed", str(root / "executed")]


def test_main_job_without_a_model_runs_planted_then_smoke_and_says_the_verdict(tiny_profiles, capfd):
    root = tiny_profiles
    assert main(["reproduce", *folders(root)]) == 0                  # no --profile, the shipped settings: the embedded model
    out, err = capfd.readouterr()
    tags = sorted(p.name for p in (root / "results").iterdir() if (p / "run_config.json").is_file())
    assert tags == ["planted-main-also", "planted-main-oracle", "planted-main-original", "planted-main-uniform",
                    "smoke-main-also", "smoke-main-original"]
    assert (root / "figs/planted_recovery.csv").is_file() and (root / "figs/smoke/tab_main.csv").is_file()
    assert "scripted/bot" in (root / "figs/smoke/tab_main.csv").read_text()          # the smoke report reads the smoke runs only
    assert "scripted/bot" not in (root / "figs/tab_main.csv").read_text()
    # the verdict printed is the recovery table's, recomputed here from the stored runs
    want = recovery_verdict(recovery_table(root / "results", [t for t in tags if t.startswith("planted-")]))
    assert want["of"] == 9                                            # Original, uniform, oracle x (episode, p1, p2); ALSO learns
    m = re.search(r"^  planted: (\d+) of (\d+) planted truths inside their 95% CIs", out, re.M)
    assert m and (int(m[1]), int(m[2])) == (want["inside"], want["of"]), out
    assert f"figures in {root / 'figs'} (planted world)" in out and f"figures in {root / 'figs' / 'smoke'} (pipeline check)" in out
    assert re.search(r"^also reproduce: planted \+ smoke done in \d", out, re.M)
    # the console: one line per notebook, the notebooks' text progress bars, no kernel log
    assert "[planted 1/1] exp_main" in out and "[smoke 1/1] exp_main" in out and "[smoke] report: tables and figures" in out
    assert "planted-main-also: episodes: 100%" in err                 # text bars, though ipywidgets is installed
    assert "IProgress not found" not in err and "Executing Cell" not in err + out
    assert kernel_noise(out + err) == [], kernel_noise(out + err)


def test_kernel_log_check_fails_without_the_quiet_kernel(tiny_profiles, capfd, monkeypatch):
    "The check above can fail: papermill's kernels as they start by default print ipykernel's warning on the console."
    root = tiny_profiles
    run_notebook("tab_calls", {"out_dir": str(root / "figs"), "results_dir": str(root / "results")}, root / "executed")
    assert kernel_noise("".join(capfd.readouterr())) == []
    monkeypatch.setattr(render, "quiet_kernel", lambda: {})
    run_notebook("tab_calls", {"out_dir": str(root / "figs"), "results_dir": str(root / "results")}, root / "executed")
    assert any("Kernel is running over TCP" in l for l in kernel_noise("".join(capfd.readouterr())))


def test_a_failing_notebook_still_prints_its_error(tiny_profiles, capfd):
    bad = tiny_profiles / "bad.yaml"
    bad.write_text(TINY["smoke"].replace("methods: [original, also]", "methods: [original, no_such_method]"))
    assert main(["reproduce", "--profile", str(bad), *folders(tiny_profiles)]) == 2
    out, err = capfd.readouterr()
    assert "also reproduce: error: notebook exp_main failed (ConfigError: " in err and "no_such_method" in err, err
    assert kernel_noise(out + err) == []


def test_the_clone_commits_nothing_where_the_main_job_writes_its_explorer():
    """`also reproduce` writes its run explorer to figures/explorer and refuses a folder there that is not such a site
    (nothing of the user's is overwritten). A committed file there (the explorer's screenshots were, once) made the main
    job exit 2 at its last step on every fresh clone; the screenshots live in figures/screenshots."""
    import subprocess
    from pathlib import Path
    root = Path(__file__).resolve().parents[1]
    if not (root / ".git").exists(): pytest.skip("not a git checkout")
    tracked = subprocess.run(["git", "ls-files", "figures/explorer", "figures/smoke/explorer"], cwd=root, capture_output=True,
                             text=True, check=True).stdout.split()
    assert tracked == [], tracked
    assert sorted(p.name for p in (root / "figures/screenshots").glob("*.png")) == \
        ["compare.png", "episode.png", "episode_opro.png", "run.png", "runs.png"]
