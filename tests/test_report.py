"""Every table/figure notebook runs through papermill on a SYNTHETIC results folder (fake_results) and writes its files;
the numbers it writes are recomputed here by hand from the stored episodes: no table pools two experiments."""
import json, math
import numpy as np
import pandas as pd
import pytest
from also.core import AlsoError, DIMENSIONS
from also.sotopia.data import load_data
from also.report.render import REPORT_NOTEBOOKS, PROVENANCE_COLUMNS, fake_results, report, report_cli

N_EPISODES = 4                      # main runs: 4 episodes on Sotopia-All, 2 of them hard; bilateral runs: those 2 hard ones
HARD = set(load_data().hard_env_ids)


@pytest.fixture(scope="module")
def fake(tmp_path_factory):
    root = tmp_path_factory.mktemp("report")
    fake_results(root/"results", n_episodes=N_EPISODES, max_turns=5)
    r = report_cli(["--results", str(root/"results"), "--out", str(root/"figures"), "--executed", str(root/"executed")])
    return root, r


def episodes(root, tag):
    return [json.loads(l) for l in (root/"results"/tag/"episodes.jsonl").read_text().splitlines()]


def by_hand(eps, agents=("p1", "p2")):
    "Mean and episode-level SE of Overall: per episode the mean of `agents`' 7-dimension means."
    x = np.array([np.mean([np.mean([e["final"][a][d] for d in DIMENSIONS]) for a in agents]) for e in eps])
    return x.mean(), x.std(ddof=1) / math.sqrt(len(x)), len(x)


def ours(out, name):
    t = pd.read_csv(out/f"{name}.csv")
    return t[t.source == "ours"] if "source" in t else t


def test_every_notebook_writes_its_outputs(fake):
    root, r = fake
    out = root/"figures"
    assert set(r) == set(REPORT_NOTEBOOKS)
    for name, (files, _) in REPORT_NOTEBOOKS.items():
        assert not r[name]["error"], r[name]["error"]
        for f in files: assert (out/f).is_file() and (out/f).stat().st_size > 0, f
        assert (root/"executed"/f"{name}.ipynb").is_file()
    assert "SYNTHETIC" in (out/"case_study.md").read_text()
    assert "\\begin{tabular}" in (out/"tab_main.tex").read_text()


def test_main_table_does_not_pool_the_bilateral_runs(fake):
    root, _ = fake
    main = {"Original": "fake-main-original", "ALSO": "fake-main-also", "INSTINCT": "fake-main-neural_ucb"}
    # the trap is real: the bilateral experiment replays the main runs' hard episodes with the same methods
    bil = {e["episode_id"] for e in episodes(root, "fake-bilateral-also-both")}
    assert len(bil) == 2 and bil <= {e["episode_id"] for e in episodes(root, "fake-main-also")}
    t = ours(root/"figures", "tab_main").dropna(subset=["method"]).set_index(["method", "split"])
    for method, tag in main.items():
        eps = episodes(root, tag)
        for split, sel in (("all", eps), ("hard", [e for e in eps if e["env_pk"] in HARD])):
            mean, se, n = by_hand(sel)
            assert n == (N_EPISODES if split == "all" else N_EPISODES // 2)
            row = t.loc[(method, split)]
            assert row.n_episodes == n and row.n == 2 * n            # planned episodes, none counted twice
            assert row.overall == pytest.approx(mean, abs=1e-12) and row.overall_se == pytest.approx(se, abs=1e-12)
    assert set(t.run_tags) == {"; ".join(sorted(f"fake-main-{m}" for m in ("original", "neural_ucb", "opro", "evoprompt_ga", "also")))}


def test_bilateral_compares_the_bilateral_runs_only(fake):
    root, _ = fake
    b = ours(root/"figures", "fig_bilateral").set_index("condition")
    assert set(b.index) == {"Original", "P1-only", "P2-only", "Bilateral"}
    for cond, what in (("Original", "original"), ("P1-only", "also-p1"), ("P2-only", "also-p2"), ("Bilateral", "also-both")):
        eps = episodes(root, f"fake-bilateral-{what}")
        mean, se, n = by_hand(eps)
        assert b.loc[cond, "n_episodes"] == n == N_EPISODES // 2 and all(e["env_pk"] in HARD for e in eps)
        assert b.loc[cond, "overall"] == pytest.approx(mean, abs=1e-12) and b.loc[cond, "overall_se"] == pytest.approx(se, abs=1e-12)
    assert "fake-main-also" not in b.run_tags.iloc[0]


def test_cross_model_heat_map_reads_original(fake):
    root, _ = fake
    c = ours(root/"figures", "fig_cross_model").set_index(["p1_model", "p2_model", "arm"])
    for i, (a, b) in enumerate((("fake-a", "fake-b"), ("fake-b", "fake-a"))):
        for arm, what in (("baseline", "original"), ("also", "also")):
            mean, se, n = by_hand(episodes(root, f"fake-cross-{i}-{what}"), agents=("p1",))
            row = c.loc[(a, b, arm)]
            assert row.n_episodes == n == N_EPISODES and row.overall == pytest.approx(mean, abs=1e-12)
            assert row.overall_se == pytest.approx(se, abs=1e-12)


def test_strategy_drift_and_case_study_read_the_main_run(fake):
    root, _ = fake
    out = root/"figures"
    for name in ("fig_strategies", "fig_reward_drift"): assert set(ours(out, name).run_tags) == {"fake-main-also"}, name
    cs = pd.read_csv(out/"case_study.csv")
    assert set(cs.method) == {"ALSO", "Original"} and cs.episode_id.nunique() == 1
    assert set(cs.tag) == {"fake-main-also", "fake-main-original"}
    assert set(cs[cs.method == "Original"].strategy) == {"(no strategy)"}
    eid = cs.episode_id.iloc[0]
    ep = next(e for e in episodes(root, "fake-main-also") if e["episode_id"] == eid)
    kind = "hard" if ep["env_pk"] in HARD else "non-hard"
    assert f"{kind} environment" in (out/"case_study.md").read_text()


def test_every_csv_and_caption_says_whose_numbers(fake):
    root, _ = fake
    out = root/"figures"
    for f in out.glob("*.csv"):
        t = ours(out, f.stem)
        assert set(PROVENANCE_COLUMNS) <= set(t.columns), f.name
        if len(t): assert set(t.reproduce_profile) == {"fake"} and t.data_warning.str.startswith("SYNTHETIC").all(), f.name
    for f in out.glob("*.tex"): assert "WARNING: SYNTHETIC test data" in f.read_text(), f.name


def test_missing_runs_write_notes_not_failures(fake):
    """No runs at all: every notebook still writes its files (with the paper's numbers)."""
    root, _ = fake
    out = root/"figures_empty"
    r = report(root/"nothing", None, out, only=["tab_main", "fig_cross_model", "case_study"], executed_dir=root/"executed_empty")
    assert all(not v["error"] and not v["missing"] for v in r.values()), r
    tm = pd.read_csv(out/"tab_main.csv")
    assert set(tm.source.str[:6]) == {"[paper", "[page]"} and "no runs" in (out/"case_study.md").read_text()
    assert "WARNING" not in (out/"tab_main.tex").read_text()


def test_unknown_tag_profile(fake):
    root, _ = fake
    with pytest.raises(AlsoError, match="no runs with profile"):
        report_cli(["--results", str(root/"results"), "--profile", "nope", "--out", str(root/"f3")])


def test_runs_made_by_hand_are_taken_by_their_configuration(tmp_path):
    """No experiment marker anywhere (`also run` by hand): Table 2 takes the both/none runs, the bilateral figure the
    P1-only/P2-only runs beside them (a hand run next to marked ones is left out: nbs/62_report.render.ipynb)."""
    from also.report.metrics import fake_run
    res = tmp_path/"results"
    fake_run(res, "orig", "original", n_episodes=3, optimize="none"); fake_run(res, "mine", "also", n_episodes=3)
    fake_run(res, "mine-p1", "also", n_episodes=3, optimize="p1")
    r = report(res, None, tmp_path/"figs", only=["tab_main", "fig_bilateral"], executed_dir=tmp_path/"exec")
    assert all(not v["error"] for v in r.values()), r
    tm = ours(tmp_path/"figs", "tab_main").dropna(subset=["method"])
    assert set(tm.split) == {"hard"}                        # these runs played Sotopia-Hard only: no Sotopia-All row of ours
    tm = tm.set_index("method")
    assert set(tm.index) == {"Original", "ALSO"} and set(tm.n_episodes) == {3} and set(tm.run_tags) == {"mine; orig"}
    bl = ours(tmp_path/"figs", "fig_bilateral").set_index("condition")
    assert set(bl.index) == {"Original", "P1-only", "Bilateral"} and set(bl.n_episodes) == {3}


def test_a_run_without_episodes_reports_nothing_and_breaks_nothing(tmp_path, monkeypatch):
    """A run folder whose episodes.jsonl is empty (a run killed before its first episode) is a run with 0 episodes: every
    table notebook writes its files (the old reader returned column-less tables: AttributeError in every notebook). The
    notebooks run while the process's cwd is elsewhere: the executed copies go to --executed, not to a settings.ini found
    from papermill's cwd (two notebooks run at once, each moving the cwd)."""
    from also.report.metrics import fake_run, load_episodes
    from also.report.render import run_table
    res = tmp_path/"results"
    d = fake_run(res, "killed", "also", n_episodes=2); (d/"episodes.jsonl").write_text("")
    runs = load_episodes(res)
    assert len(runs) == 0 and "tag" in runs.finals and "turn" in runs.turns
    assert run_table(runs).set_index("tag").loc["killed", "episodes"] == 0
    monkeypatch.chdir(tmp_path)                              # no settings.ini here: the notebooks come from the clone
    r = report(res, None, tmp_path/"figs", only=["tab_main", "fig_strategies"], executed_dir="exec")
    assert all(not v["error"] for v in r.values()), r
    assert sorted(p.name for p in (tmp_path/"exec").iterdir()) == ["fig_strategies.ipynb", "tab_main.ipynb"]


def test_no_experiment_notebooks_is_one_clear_error(tmp_path, monkeypatch):
    "Outside a clone and with the package not installed from one, also report says where the notebooks should be, once."
    import also
    from also.core import ConfigError
    from also.report.render import experiments_dir
    monkeypatch.chdir(tmp_path)
    assert experiments_dir() == (__import__("pathlib").Path(also.__file__).resolve().parents[1]/"nbs"/"experiments")   # editable install
    monkeypatch.setattr(also, "__file__", str(tmp_path/"site-packages"/"also"/"__init__.py"))
    with pytest.raises(ConfigError, match="no experiment notebooks at .*clone of the repository"):
        report(tmp_path/"results", None, tmp_path/"figs")
    assert not (tmp_path/"figs").exists() or not any((tmp_path/"figs").iterdir())
