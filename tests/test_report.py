"Every table/figure notebook runs through papermill on a SYNTHETIC results folder (fake_results) and writes its files."
import json
import pytest
from also.report import REPORT_NOTEBOOKS, fake_results, report, report_cli
from also.core import AlsoError


@pytest.fixture(scope="module")
def fake(tmp_path_factory):
    root = tmp_path_factory.mktemp("report")
    fake_results(root/"results", n_episodes=4, max_turns=5)
    return root


def test_every_notebook_writes_its_outputs(fake):
    out = fake/"figures"
    r = report_cli(["--results", str(fake/"results"), "--out", str(out), "--executed", str(fake/"executed")])
    assert set(r) == set(REPORT_NOTEBOOKS)
    for name, (files, _) in REPORT_NOTEBOOKS.items():
        assert not r[name]["error"], r[name]["error"]
        for f in files: assert (out/f).is_file() and (out/f).stat().st_size > 0, f
        assert (fake/"executed"/f"{name}.ipynb").is_file()
    assert "SYNTHETIC" in (out/"case_study.md").read_text()
    assert "\\begin{tabular}" in (out/"tab_main.tex").read_text()


def test_missing_runs_write_notes_not_failures(fake):
    """No runs at all: every notebook still writes its files (with the paper's numbers)."""
    out = fake/"figures_empty"
    r = report(fake/"nothing", None, out, only=["tab_main", "fig_cross_model", "case_study"], executed_dir=fake/"executed_empty")
    assert all(not v["error"] and not v["missing"] for v in r.values()), r
    import pandas as pd
    tm = pd.read_csv(out/"tab_main.csv")
    assert set(tm.source.str[:6]) == {"[paper", "[page]"} and "no runs" in (out/"case_study.md").read_text()


def test_unknown_tag_profile(fake):
    with pytest.raises(AlsoError, match="no runs with profile"):
        report_cli(["--results", str(fake/"results"), "--profile", "nope", "--out", str(fake/"f3")])
