"`also reproduce --profile ci`: every experiment and figure notebook through papermill with the scripted LLM."
import json
import pytest
from also.core import ConfigError
from also.report.reproduce import load_profile, reproduce, default_profile, EXPERIMENTS
from also.report.render import REPORT_NOTEBOOKS


def test_profiles_and_errors(tmp_path):
    assert set(load_profile("ci")["experiments"]) == set(EXPERIMENTS)
    with pytest.raises(ConfigError, match="unknown profile"): load_profile("nope")
    bad = tmp_path / "bad.yaml"; bad.write_text("experiments:\n  exp_nope: {}\n")
    with pytest.raises(ConfigError, match="unknown experiment"): load_profile(str(bad))


def test_default_profile_follows_models(monkeypatch):
    assert default_profile() == "smoke"                       # the shipped settings use the embedded model
    for r in ("agent", "turn_judge", "terminal_judge"): monkeypatch.setenv(f"ALSO_MODELS_{r.upper()}", "openai/gpt-4o")
    assert default_profile() == "paper"


def test_reproduce_ci_profile_writes_every_output(tmp_path):
    r = reproduce("ci", tmp_path / "results", tmp_path / "figs", tmp_path / "executed", progress=False)
    assert set(r["experiments"]) == set(EXPERIMENTS)
    assert all(not v["error"] and not v["missing"] for v in r["report"].values()), r["report"]
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
