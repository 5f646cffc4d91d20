"Results are data: every record a real (scripted) run writes matches also.report.results.SCHEMA; the parquet export round-trips."
import json
from pathlib import Path
import pandas as pd
import pytest
from also.core import Settings
from also.sotopia.agents import EpisodeConfig
from also.run.batch import RunConfig, run_batch, read_episodes
from also.llm.adapter import run_sync
from also.report.metrics import load_episodes
from also.report.results import check_run, export_results, format_doc, SCHEMA
from also.llm.scripted import register_scripted

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    "Runs of four kinds, with the run's own ledger file: ALSO with saved bandits, OPRO, Original, and one whose episodes all fail."
    d = tmp_path_factory.mktemp("res")
    (d / "settings.ini").write_text(f"[paths]\nresults = {d}/results\ncache = {d}/cache\nsotopia_store = {d}/store\n[models]\n"
                                    + "".join(f"{r} = scripted/bot\n" for r in ("agent", "turn_judge", "terminal_judge", "optimizer"))
                                    + "embedding = fake/16\n")
    settings = Settings.load(d / "settings.ini")
    prov = register_scripted()
    for run in (RunConfig("also", EpisodeConfig("also", max_turns=4), episodes=2, save_bandits=True),
                RunConfig("opro", EpisodeConfig("opro", max_turns=6), episodes=1),
                RunConfig("orig", EpisodeConfig("original", max_turns=3), episodes=2)):
        run_sync(run_batch(run, progress=False, settings=settings))
    prov.faults.inject("500", n=None)
    try: run_sync(run_batch(RunConfig("fail", EpisodeConfig("original", max_turns=2), episodes=1, retries=0), progress=False, settings=settings))
    finally: prov.faults.clear()
    return d / "results"


def test_every_record_matches_the_schema(results):
    n = {t: check_run(results / t) for t in ("also", "opro", "orig", "fail")}
    assert n["also"]["bandit"] == 4 and n["also"]["episode"] == 2 and n["also"]["turn"] == 8 and n["also"]["ledger"] > 8
    assert n["fail"]["failure"] == 1 and "episode" not in n["fail"]
    assert all({"run_config", "summary", "ledger"} <= set(v) for v in n.values())
    ep = read_episodes(results / "opro/episodes.jsonl")[0]
    assert any("events" in t for t in ep["turns"])                                   # the optional turn field was checked too


def test_export_round_trips_through_pandas(results, tmp_path):
    man = export_results(results, tmp_path / "export")
    runs = load_episodes(results)
    for t in ("finals", "turns", "episodes"):
        pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "export" / f"{t}.parquet"), getattr(runs, t))
    assert len(runs.finals) == 2 * 5 and len(runs.turns) == 2 * (2 * 4 + 6 + 2 * 3)    # agent-episodes, agent-turns
    led = pd.read_parquet(tmp_path / "export/ledger.parquet")
    assert len(led) == sum(len((results / t / "ledger.jsonl").read_text().splitlines()) for t in ("also", "opro", "orig"))   # runs with episodes
    assert set(led.purpose) >= {"agent", "turn_judge", "terminal_judge", "optimizer", "embedding"}
    arms = pd.read_parquet(tmp_path / "export/arms.parquet")
    also_turns = [t for e in read_episodes(results / "also/episodes.jsonl") for t in e["turns"]]
    assert len(arms[arms.tag == "also"]) == 13 * len(also_turns)                      # the speaker's 13 arms every turn
    played = arms[arms.played & (arms.tag == "also")].set_index(["episode_id", "turn", "agent"]).arm
    for e in read_episodes(results / "also/episodes.jsonl"):
        for t in e["turns"]: assert played[(e["episode_id"], t["turn"], t["speaker"])] == t["arms"][t["speaker"]]
    assert json.loads((tmp_path / "export/export.json").read_text())["rows"] == man["rows"]


def test_export_cli(results, tmp_path, monkeypatch):
    from also.cli import main
    monkeypatch.chdir(tmp_path)
    assert main(["export", "--results", str(results), "--tags", "also", "--out", "x"]) == 0
    assert len(pd.read_parquet(tmp_path / "x/finals.parquet")) == 4
    assert main(["export", "--results", str(tmp_path / "nothing")]) == 2


def test_episode_format_doc_is_generated_from_the_schema():
    assert (ROOT / "EPISODE-FORMAT.md").read_text() == format_doc(), "run: python -c 'from also.report.results import write_format_doc; write_format_doc()'"
    assert all(f"## {k}" in format_doc() for k in SCHEMA)
