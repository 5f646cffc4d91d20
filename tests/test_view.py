"""The run explorer (`also view`) in a real browser: headless Chromium (Debian's package, driven by Playwright) opens the
site of a small planted-world run (the scripted LLM), goes Runs -> Run -> Episode -> Compare, and checks what each page
shows against episodes.jsonl: the transcript rows, the arm probabilities and predictions drawn, the per-turn judge's
scores and rewards, the bandits' credit, the final scores; no console errors; screenshots of every page.

ALSO_VIEW_RESULTS=<results folder> checks the site of existing results instead (e.g. those of `also reproduce`), and
ALSO_VIEW_SCREENSHOTS=<folder> keeps the screenshots there (the README's come from figures/screenshots)."""
import asyncio, json, math, os, re, shutil
from pathlib import Path
import pytest
from also.core import Settings
from also.report.view import write_site, episode_key
from also.report.metrics import run_tags
from also.run.batch import read_episodes

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# skipped only where no browser can be had; tools/test.sh (CI) sets ALSO_REQUIRE_BROWSER=1, so there a missing browser fails
pytestmark = pytest.mark.skipif(not Path(CHROMIUM).is_file() and not os.environ.get("ALSO_REQUIRE_BROWSER"),
                                reason="no chromium binary: `apt-get install chromium` (tools/test.sh installs it when run as root)")
# this machine refuses outside connections: without these flags Chromium stalls on its background services
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]
PLANTED = {r: "scripted/planted" for r in ("agent", "turn_judge", "terminal_judge", "optimizer")}


def _planted_results(d: Path) -> Path:
    "Original, ALSO and OPRO against the planted world: the first 2 hard scenarios, 8 turns, with their ledgers."
    from also.report.reproduce import main_runs
    from also.llm.client import LLMClient
    from also.llm.ledger import Ledger
    from also.llm.embeddings import EmbeddingClient
    from also.run.batch import run_batch
    s = Settings.load()
    s.values["paths"] = {**s.values["paths"], "cache": str(d / "cache"), "sotopia_store": str(d / "sotopia")}
    async def go():
        for r in main_runs("view", ["original", "also", "opro"], models=PLANTED, split="hard_small", episodes=2, turns=8, judge_mode="full"):
            c = LLMClient(models={**PLANTED, "embedding": "fake/16"}, retries=0, ledger=Ledger(d / "results" / r.tag / "ledger.jsonl", run=r.tag))
            out = await run_batch(r, d / "results", client=c, embedder=EmbeddingClient("fake/16", ledger=c.ledger), progress=False, settings=s)
            assert out["failed_now"] == 0, r.tag
    asyncio.run(go())
    return d / "results"


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    "(results folder, site index.html, {tag: run_config}, {tag: [episode records]})."
    tmp = tmp_path_factory.mktemp("view")
    res = Path(os.environ["ALSO_VIEW_RESULTS"]) if os.environ.get("ALSO_VIEW_RESULTS") else _planted_results(tmp)
    index = write_site(res, tmp / "site")
    tags = run_tags(res)
    cfgs = {t: json.loads((res / t / "run_config.json").read_text()) for t in tags}
    return res, index, cfgs, {t: read_episodes(res / t / "episodes.jsonl", repair=False) for t in tags}


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield b
        b.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory):
    d = Path(os.environ.get("ALSO_VIEW_SCREENSHOTS") or tmp_path_factory.mktemp("screenshots"))
    d.mkdir(parents=True, exist_ok=True)
    return d


class Page:
    "A browser tab that records console errors and uncaught exceptions."
    def __init__(self, browser):
        self.errors = []
        self.p = browser.new_page(viewport={"width": 1400, "height": 900})
        self.p.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.p.on("pageerror", lambda e: self.errors.append(f"uncaught: {e}"))

    def open(self, url: str):
        self.p.goto(url); self.settle(); return self

    def settle(self):
        self.p.wait_for_load_state("load")
        self.p.wait_for_function("() => !['episode', 'compare'].includes(document.body.dataset.page) || document.querySelector('main > div, p.error')")
        self.p.wait_for_function("() => document.querySelectorAll('.plot:not(.js-plotly-plot)').length === 0")   # every chart drawn

    def shoot(self, path: Path, max_height: int = 2200):
        h = min(self.p.evaluate("document.documentElement.scrollHeight"), max_height)
        w = self.p.evaluate("document.documentElement.scrollWidth")
        self.p.screenshot(path=str(path), full_page=True, clip={"x": 0, "y": 0, "width": w, "height": h})


def _pick(cfgs, method, experiment=None):
    "The first run of `method` (in the given experiment, when there is one)."
    tags = [t for t, c in sorted(cfgs.items()) if c.get("method") == method and experiment in (None, c.get("experiment"))]
    return tags[0] if tags else None


# ---- what the Episode page shows, read from its DOM and its charts' data

TRANSCRIPT_JS = """() => [...document.querySelectorAll("table.transcript tr.turn")].map(tr => {
  const plot = tr.querySelector(".probs .js-plotly-plot"), v = e => JSON.parse(e.dataset.v);
  return {turn: +tr.dataset.turn, speaker: tr.dataset.speaker,
    action: tr.querySelector(".utterance .action").textContent, text: tr.querySelector(".utterance .text").textContent,
    strategy: tr.querySelector(".strategy-name").textContent, instruction: tr.querySelector(".instruction")?.textContent ?? "",
    probs: plot ? plot.data[0].y : null, predicted: plot && plot.data[1] ? plot.data[1].y : null,
    played: plot ? plot.data[0].marker.color.indexOf("#e6550d") : null,
    judge: Object.fromEntries([...tr.querySelectorAll("table.judge tr[data-agent]")].map(r => [r.dataset.agent,
      {dims: Object.fromEntries([...r.querySelectorAll("td.dim")].map(td => [td.dataset.dim, v(td.querySelector(".num"))])),
       reward: v(r.querySelector("td.reward .num"))}])),
    credit: Object.fromEntries([...tr.querySelectorAll(".credit[data-agent]")].map(c => [c.dataset.agent, v(c.querySelector(".num"))]))};
})"""
FINAL_JS = """() => Object.fromEntries([...document.querySelectorAll("table.final tbody tr")].map(tr =>
  [tr.dataset.dim, [...tr.querySelectorAll("td")].map(td => JSON.parse(td.querySelector(".num").dataset.v))]))"""
COLUMN_JS = """(name) => { const i = [...document.querySelectorAll("table.sortable thead th")].findIndex(th => th.textContent === name);
  return [...document.querySelectorAll("table.sortable tbody tr")].map(tr => { const c = tr.cells[i], n = c.querySelector(".num");
    return [tr.cells[0].textContent, n ? JSON.parse(n.dataset.v) : null, c.textContent]; }); }"""
NUMBERS_JS = """() => [...document.querySelectorAll("span.num")].map(s => [s.textContent, JSON.parse(s.dataset.v)])"""


def episode_mismatches(shown: list, final: dict, ep: dict) -> list[str]:
    "What the Episode page shows that differs from the stored episode (empty: all of it equals the record)."
    bad, turns = [], ep["turns"]
    if [r["turn"] for r in shown] != [t["turn"] for t in turns]: return [f"rows {[r['turn'] for r in shown]} != turns {[t['turn'] for t in turns]}"]
    for r, t in zip(shown, turns):
        a = t["speaker"]
        want = {"speaker": a, "action": t["action_type"], "text": t["argument"], "instruction": t["instruction"][a] or "",
                "strategy": t["strategy"][a] or "none (no bandit)", "probs": t["probs"][a], "predicted": t["predicted"][a],
                "played": t["arms"][a] if t["probs"][a] else None,
                "judge": {x: {"dims": (t["dims"] or {}).get(x), "reward": (t["reward"] or {}).get(x)} for x in ("p1", "p2")
                          if (t["dims"] or {}).get(x) or (t["reward"] or {}).get(x) is not None},
                "credit": {x: c["reward"] for x, c in (t.get("credit") or {}).items()}}
        bad += [f"turn {t['turn']} {k}: shown {r[k]!r}, stored {w!r}" for k, w in want.items() if r[k] != w]
    for d, vals in final.items():
        if vals != [ep["final"][a][d] for a in ("p1", "p2")]: bad.append(f"final {d}: shown {vals}, stored {[ep['final'][a][d] for a in ('p1', 'p2')]}")
    if set(final) != set(ep["final"]["p1"]): bad.append(f"final dimensions shown {sorted(final)}")
    return bad


def text_mismatches(numbers: list) -> list:
    "Numbers whose text is not their stored value: integers as they are, others rounded to the 2 or 3 decimals shown."
    def ok(text, v):
        if v is None: return text == "—"
        if float(v).is_integer(): return text == str(int(v))
        m = re.fullmatch(r"-?\d+\.(\d{2,3})", text)
        return bool(m) and text == f"{v:.{len(m[1])}f}"
    return [(t, v) for t, v in numbers if not ok(t, v)]


# ---- the walk: Runs -> Run -> Episode -> Compare

def test_runs_page(site, browser, shots):
    res, index, cfgs, eps = site
    pg = Page(browser).open(index.as_uri())
    rows = pg.p.evaluate(COLUMN_JS, "Overall ± SE")
    assert sorted(t for t, _, _ in rows) == sorted(cfgs)
    for tag, shown, _ in rows:                              # mean Overall over agents and episodes, from the records by hand
        vals = [e["final"][a]["overall"] for e in eps[tag] for a in ("p1", "p2")]
        assert shown == pytest.approx(sum(vals) / len(vals), abs=1e-12), tag
    truth = {t: text for t, _, text in pg.p.evaluate(COLUMN_JS, "Planted truth")}
    if any("planted" in c["models"]["terminal_judge"] for c in cfgs.values()):
        assert re.match(r"\d\.\d{3} (in|outside) CI", truth[_pick(cfgs, "original")]), truth
        assert truth[_pick(cfgs, "also")].startswith("learns: uniform")
    pg.p.click("th:text('Overall ± SE')")                  # sorting: ascending by the stored mean, then descending
    means = [v for _, v, _ in pg.p.evaluate(COLUMN_JS, "Overall ± SE")]
    assert means == sorted(means)
    pg.p.click("th:text('Overall ± SE')")
    assert [v for _, v, _ in pg.p.evaluate(COLUMN_JS, "Overall ± SE")] == sorted(means, reverse=True)
    assert pg.p.evaluate("document.querySelectorAll('.js-plotly-plot').length") == 1 and not text_mismatches(pg.p.evaluate(NUMBERS_JS))
    pg.shoot(shots / "runs.png")
    assert pg.errors == []


def test_run_episode_compare(site, browser, shots):
    res, index, cfgs, eps = site
    also = _pick(cfgs, "also", "main") or _pick(cfgs, "also")
    pg = Page(browser).open(index.as_uri())
    pg.p.click(f"a:text-is('{also}')"); pg.settle()        # Runs -> Run
    assert pg.p.url.endswith(f"runs/{also}.html")
    assert pg.p.evaluate("document.querySelectorAll('.js-plotly-plot').length") == 3          # reward per turn, P1 and P2 arm probabilities
    ids = pg.p.evaluate("""() => [...document.querySelectorAll("table.sortable tbody tr td:first-child a")].map(a => a.textContent)""")
    assert sorted(ids) == sorted(e["episode_id"] for e in eps[also])
    pg.shoot(shots / "run.png")

    ep = sorted(eps[also], key=lambda e: (str(e.get("codename")), e["episode_id"]))[0]       # the Run page's first row
    pg.p.click(f"a:text-is('{ep['episode_id']}')"); pg.settle()                               # Run -> Episode
    shown, final = pg.p.evaluate(TRANSCRIPT_JS), pg.p.evaluate(FINAL_JS)
    assert len(shown) == ep["n_turns"] and any(r["probs"] for r in shown) and any(r["predicted"] for r in shown)
    assert any(r["credit"] for r in shown) and any(r["judge"] for r in shown)
    assert episode_mismatches(shown, final, ep) == []
    assert text_mismatches(pg.p.evaluate(NUMBERS_JS)) == []
    pg.shoot(shots / "episode.png", max_height=2600)

    orig = next(t for t in cfgs if cfgs[t]["method"] == "original" and cfgs[t].get("experiment") == cfgs[also].get("experiment"))
    pg.p.click(f".chips a:text-is('{orig}')"); pg.settle()                                   # Episode -> Compare (ALSO vs Original)
    twin = next(e for e in eps[orig] if (e["combo_pk"], e.get("rep")) == (ep["combo_pk"], ep.get("rep")))
    sides = pg.p.evaluate("""() => [...document.querySelectorAll("table.compare tbody tr")].map(tr =>
        [...tr.querySelectorAll("td.side")].map(td => td.querySelector(".text")?.textContent ?? null))""")
    n = max(ep["n_turns"], twin["n_turns"])
    assert len(sides) == n and all(len(s) == 2 for s in sides)
    assert [s[0] for s in sides[:ep["n_turns"]]] == [t["argument"] for t in ep["turns"]]
    assert [s[1] for s in sides[:twin["n_turns"]]] == [t["argument"] for t in twin["turns"]]
    final = pg.p.evaluate(FINAL_JS)
    for d, vals in final.items(): assert vals == [ep["final"]["p1"][d], ep["final"]["p2"][d], twin["final"]["p1"][d], twin["final"]["p2"][d]], d
    pg.shoot(shots / "compare.png")
    assert pg.errors == []


def test_generative_optimizer_pool_changes(site, browser, shots):
    res, index, cfgs, eps = site
    tag = _pick(cfgs, "opro", "main") or _pick(cfgs, "opro")
    if tag is None: pytest.skip("these results hold no OPRO run")
    ep = max(eps[tag], key=lambda e: sum(len(v) for t in e["turns"] for v in (t.get("events") or {}).values()))
    pg = Page(browser).open(f"{index.parent.as_uri()}/episode.html?run={tag}&ep={episode_key(ep['episode_id'])}")
    events = [(t["turn"], a, e["arm"]) for t in ep["turns"] for a, es in (t.get("events") or {}).items() for e in es]
    shown = pg.p.evaluate("""() => [...document.querySelectorAll("tr.events")].map(tr => [+tr.dataset.turn, tr.querySelectorAll(".event").length])""")
    assert events and sum(n for _, n in shown) == len(events) and {t for t, _ in shown} == {t for t, _, _ in events}
    assert episode_mismatches(pg.p.evaluate(TRANSCRIPT_JS), pg.p.evaluate(FINAL_JS), ep) == []     # pools of 14+ arms drawn as stored
    pg.shoot(shots / "episode_opro.png", max_height=2600)
    assert pg.errors == []


def test_the_checks_can_fail(site, browser, tmp_path):
    "A site whose data file disagrees with episodes.jsonl is caught, and so is a console error."
    res, index, cfgs, eps = site
    also = _pick(cfgs, "also", "main") or _pick(cfgs, "also")
    ep = eps[also][0]
    bad = tmp_path / "site"; shutil.copytree(index.parent, bad)
    f = bad / "data" / also / f"{episode_key(ep['episode_id'])}.js"
    d = json.loads(f.read_text().removeprefix("ALSO_VIEW.loaded(").removesuffix(");\n"))
    t = next(t for t in d["episode"]["turns"] if t["probs"][t["speaker"]])
    t["probs"][t["speaker"]][0] += 0.01                                    # one probability off by 0.01
    t["argument"] += " (edited)"
    f.write_text(f"ALSO_VIEW.loaded({json.dumps(d)});\n")
    pg = Page(browser).open(f"{bad.as_uri()}/episode.html?run={also}&ep={episode_key(ep['episode_id'])}")
    bad_rows = episode_mismatches(pg.p.evaluate(TRANSCRIPT_JS), pg.p.evaluate(FINAL_JS), ep)
    assert any(" probs:" in b for b in bad_rows) and any(" text:" in b for b in bad_rows), bad_rows
    assert text_mismatches([["0.658", 0.6571428]]) and text_mismatches([["2", 2.5]]) and text_mismatches([["0.6571", 0.6571428]])
    assert not text_mismatches([["0.657", 0.6571428], ["0.66", 0.6571428], ["7", 7.0], ["—", None]])
    pg.p.goto(f"{bad.as_uri()}/episode.html?run={also}&ep=no-such-episode"); pg.p.wait_for_selector("p.error")
    assert pg.errors and "no episode data" in pg.p.text_content("p.error")
