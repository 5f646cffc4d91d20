/* also view: the run explorer's script (also/data/view/view.js, copied into every site by also.report.view).
   The Runs and Run pages are HTML written by Python: here they get their Plotly figures (div[data-figure]) and sortable
   tables (table.sortable). The Episode and Compare pages are drawn here from one data file per episode,
   data/<run>/<episode>.js, which calls ALSO_VIEW.loaded({key, run, episode, peers}); a script tag loads it because
   fetch() of a local file is blocked on file:// in Chromium. Every number shown keeps its stored value in data-v. */
"use strict";
const ALSO_VIEW = (() => {
  const AGENTS = ["p1", "p2"], CONFIG = {displayModeBar: false, responsive: true};
  const COLOR = {p1: "#1f77b4", p2: "#d62728"}, PLAYED = "#e6550d", OTHER = "#9ecae1";
  const store = {}, waiting = {}, jobs = [];

  // ---- DOM helpers
  function h(tag, attrs, ...kids) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) if (v !== null && v !== undefined && v !== false) e.setAttribute(k, v);
    for (const k of kids.flat(Infinity)) if (k !== null && k !== undefined && k !== false) e.append(k instanceof Node ? k : String(k));
    return e;
  }
  // a number as shown (integers as they are, others to `d` decimals), its stored value in data-v
  const fmt = (v, d = 3) => v === null || v === undefined || Number.isNaN(v) ? "—" : Number.isInteger(v) ? String(v) : Number(v).toFixed(d);
  const num = (v, d = 3) => h("span", {class: "num", "data-v": JSON.stringify(v ?? null)}, fmt(v, d));
  const A = a => a.toUpperCase();
  const agentName = (ep, a) => ep.agents?.[a]?.name || A(a);
  const armName = (ep, a, k) => k === null || k === undefined ? null : ep.arm_names?.[a]?.[k] ?? `arm ${k}`;
  const dimsOf = ep => Object.keys(ep.final?.p1 || ep.turns.find(t => t.dims)?.dims?.p1 || {}).filter(k => k !== "overall");
  const abbrev = d => d.charAt(0).toUpperCase() + d.slice(1, 4);
  const episodeHref = d => `episode.html?run=${encodeURIComponent(d.run.tag)}&ep=${encodeURIComponent(d.key)}`;
  const compareHref = (x, y) => `compare.html?a=${encodeURIComponent(x.tag + "/" + x.key)}&b=${encodeURIComponent(y.tag + "/" + y.key)}`;

  // ---- Plotly: a figure is queued while the page is built and drawn once it is in the document (so it gets its width)
  function chart(cls, data, layout) {
    const div = h("div", {class: `plot ${cls}`});
    jobs.push([div, data, {margin: {l: 45, r: 15, t: 30, b: 35}, ...layout}]);
    return div;
  }
  function draw() { for (const [div, data, layout] of jobs.splice(0)) Plotly.newPlot(div, data, layout, CONFIG); }
  function drawFigures() {
    for (const div of document.querySelectorAll("div[data-figure]")) {
      const f = JSON.parse(div.dataset.figure);
      Plotly.newPlot(div, f.data, f.layout || {}, CONFIG);
    }
  }

  // ---- sortable tables: a click on a header sorts by the cells' data-sort (numbers numerically), a second click reverses
  function sortable(table) {
    const heads = [...table.querySelectorAll("thead th")];
    heads.forEach((th, i) => th.addEventListener("click", () => {
      const body = table.tBodies[0], dir = th.dataset.dir === "asc" ? -1 : 1;
      const key = r => { const c = r.cells[i], s = c ? c.dataset.sort ?? c.textContent.trim() : "";
                         return s !== "" && isFinite(s) ? Number(s) : s; };
      const cmp = (x, y) => typeof x === typeof y ? (x < y ? -1 : x > y ? 1 : 0) : typeof x === "number" ? -1 : 1;
      const rows = [...body.rows].sort((a, b) => cmp(key(a), key(b)) * dir);
      heads.forEach(o => delete o.dataset.dir); th.dataset.dir = dir === 1 ? "asc" : "desc";
      body.append(...rows);
    }));
  }

  // ---- episode data files: ALSO_VIEW.loaded(d) is what each one calls
  function load(tag, key) {
    const id = `${tag}/${key}`;
    if (store[id]) return Promise.resolve(store[id]);
    return new Promise((resolve, reject) => {
      const src = `data/${encodeURIComponent(tag)}/${encodeURIComponent(key)}.js`, s = h("script", {src});
      waiting[id] = resolve;
      s.onerror = () => reject(new Error(`no episode data at ${src}: run ${tag}, episode ${key} is not in this site`));
      document.head.append(s);
    });
  }
  function loaded(d) { const id = `${d.run.tag}/${d.key}`; store[id] = d; if (waiting[id]) waiting[id](d); }

  // ---- pieces of the Episode and Compare pages
  // the reward the per-turn judge gave each agent (none on the last turn or without a bandit)
  const rewardTraces = (ep, prefix = "", dash = "solid") => AGENTS.map(a => ({
    type: "scatter", mode: "lines+markers", name: `${prefix}${A(a)} ${agentName(ep, a)}`, line: {color: COLOR[a], dash},
    x: ep.turns.map(t => t.turn), y: ep.turns.map(t => t.reward?.[a] ?? null)})).filter(tr => tr.y.some(y => y !== null));
  const rewardChart = traces => !traces.length ? h("p", {class: "meta"}, "No per-turn rewards: no agent has a bandit.") :
    chart("rewards", traces, {title: {text: "Per-turn reward (judge, normalized)"}, height: 300, xaxis: {title: {text: "turn"}}, yaxis: {title: {text: "reward"}}});

  // one agent's selection probabilities: arms x the turns it acted
  function probHeatmap(ep, a) {
    const acted = ep.turns.filter(t => t.probs?.[a]);
    if (!acted.length) return null;
    const K = Math.max(...acted.map(t => t.probs[a].length)), arms = [...Array(K).keys()];
    return chart("heat", [{type: "heatmap", x: acted.map(t => t.turn), y: arms.map(k => `${k} ${armName(ep, a, k)}`),
      z: arms.map(k => acted.map(t => t.probs[a][k] ?? null)), colorscale: "Blues", reversescale: true,
      hovertemplate: "turn %{x}<br>%{y}<br>p = %{z:.4f}<extra></extra>"}],
      {title: {text: `${A(a)} ${agentName(ep, a)}: selection probabilities`}, height: 340, margin: {l: 190, r: 10, t: 30, b: 35},
       xaxis: {title: {text: "turn"}}});
  }

  // the acting agent's arm probabilities at one turn (the played arm in orange) and the surrogate's predictions (diamonds)
  function probsChart(ep, t) {
    const a = t.speaker, p = t.probs?.[a];
    if (!p) return "—";
    const pred = t.predicted?.[a], played = t.arms?.[a], x = p.map((_, k) => k), names = x.map(k => armName(ep, a, k));
    const data = [{type: "bar", name: "probability", x, y: p, customdata: names, hovertemplate: "%{x} %{customdata}<br>p = %{y:.4f}<extra></extra>",
                   marker: {color: x.map(k => k === played ? PLAYED : OTHER)}}];
    if (pred) data.push({type: "scatter", mode: "markers", name: "predicted reward", x, y: pred, yaxis: "y2", customdata: names,
                         hovertemplate: "%{x} %{customdata}<br>predicted %{y:.3f}<extra></extra>", marker: {symbol: "diamond", size: 6, color: "#31a354"}});
    const div = chart("probs", data, {height: 118, width: 300, showlegend: false, bargap: 0.15, margin: {l: 34, r: pred ? 34 : 6, t: 4, b: 18},
      xaxis: {dtick: 1, tickfont: {size: 8}}, yaxis: {tickfont: {size: 8}, rangemode: "tozero"},
      yaxis2: {overlaying: "y", side: "right", showgrid: false, tickfont: {size: 8, color: "#31a354"}}});
    div.dataset.agent = a;
    return div;
  }

  function strategyCell(ep, t) {
    const a = t.speaker, name = t.strategy ? t.strategy[a] : t.probs?.[a] ? armName(ep, a, t.arms?.[a]) : null;
    const text = t.instruction?.[a];
    return [h("b", {class: "strategy-name"}, name ?? "none (no bandit)"), t.explore ? h("span", {class: "explore"}, ` forced: ${t.explore}`) : null,
            text ? h("details", {}, h("summary", {}, "injected instruction"), h("span", {class: "instruction"}, text)) : null];
  }
  const utteranceCell = t => [h("span", {class: "action"}, t.action_type ?? "?"), " ", h("span", {class: "text"}, t.argument ?? "")];

  // the per-turn judge: 7 dimensions and the normalized reward of each agent
  function judgeCell(ep, t) {
    if (!t.dims && !t.reward) return "—";
    const dims = dimsOf(ep), agents = AGENTS.filter(a => t.dims?.[a] || t.reward?.[a] !== undefined && t.reward?.[a] !== null);
    return h("table", {class: "judge"},
      h("tr", {}, h("th", {}), dims.map(d => h("th", {title: d}, abbrev(d))), h("th", {}, "reward")),
      agents.map(a => h("tr", {"data-agent": a}, h("th", {}, A(a)), dims.map(d => h("td", {class: "num dim", "data-dim": d}, num(t.dims?.[a]?.[d], 2))),
                                                  h("td", {class: "num reward"}, num(t.reward?.[a], 3)))));
  }
  // what each bandit learned this turn: the reward credited to the arm it played at `arm_turn`
  function creditCell(ep, t) {
    const c = t.credit || {}, items = AGENTS.filter(a => c[a]).map(a => h("div", {class: "credit", "data-agent": a},
      `${A(a)} ← `, num(c[a].reward, 3), ` for ${armName(ep, a, c[a].arm)} (played turn ${c[a].arm_turn}, context of turn ${c[a].context_turn})`,
      c[a].updated ? "" : " not updated"));
    return items.length ? items : "—";
  }
  const eventText = (ep, a, e) => `${A(a)} ${e.kind} arm ${e.arm}${e.parents?.length ? ` from ${e.parents.map(k => armName(ep, a, k)).join(" + ")}` : ""}: ${e.text ?? ""}`
                                  + (e.rejected?.length ? ` (${e.rejected.length} rejected)` : "");

  function transcript(ep) {
    const head = ["Turn", "Speaker", "Strategy in force", "Utterance", "Arm probabilities (bars) · predicted reward (◆)", "Per-turn judge", "Bandit credit"];
    return h("table", {class: "transcript"}, h("thead", {}, h("tr", {}, head.map(x => h("th", {}, x)))),
      h("tbody", {}, ep.turns.map(t => {
        const events = AGENTS.flatMap(a => (t.events?.[a] || []).map(e => h("div", {class: "event"}, eventText(ep, a, e))));
        return [h("tr", {class: `turn ${t.speaker}`, "data-turn": t.turn, "data-speaker": t.speaker},
                  h("td", {class: "num"}, t.turn), h("td", {class: "speaker"}, `${A(t.speaker)} ${agentName(ep, t.speaker)}`),
                  h("td", {class: "strategy"}, strategyCell(ep, t)), h("td", {class: "utterance"}, utteranceCell(t)),
                  h("td", {class: "probs"}, probsChart(ep, t)), h("td", {class: "judge"}, judgeCell(ep, t)), h("td", {class: "credit"}, creditCell(ep, t))),
                events.length ? h("tr", {class: "events", "data-turn": t.turn}, h("td", {colspan: head.length}, h("b", {}, "pool change: "), events)) : null];
      })));
  }

  // the terminal judge's scores: one column per (episode, agent)
  function finalTable(cols) {
    const dims = [...dimsOf(cols[0].ep), "overall"];
    return h("table", {class: "final"}, h("thead", {}, h("tr", {}, h("th", {}, "dimension"), cols.map(c => h("th", {}, c.label)))),
      h("tbody", {}, dims.map(d => h("tr", {"data-dim": d}, h("th", {}, d),
        cols.map(c => h("td", {class: "num", "data-agent": c.a}, num(c.ep.final?.[c.a]?.[d], 2)))))));
  }
  const finalCols = (ep, prefix = "") => AGENTS.map(a => ({label: `${prefix}${A(a)} ${agentName(ep, a)}`, ep, a}));

  function meta(d) {
    const ep = d.episode, m = ep.models || {}, led = ep.ledger || {};
    return h("p", {class: "meta"}, h("a", {href: d.run.href}, d.run.tag), ` · ${d.run.label} · episode `, h("a", {href: episodeHref(d)}, ep.episode_id), " · ",
      AGENTS.map(a => `${A(a)} ${agentName(ep, a)} (${m[`agent_${a}`] ?? "?"}) `), `· seed ${ep.seed} · ${ep.n_turns} turns, ended by ${ep.terminated_by}`,
      ` · ${led.api_calls ?? "?"} calls, ${led.cost_usd === null || led.cost_usd === undefined ? "cost unknown" : "$" + Number(led.cost_usd).toFixed(4)}`);
  }
  function nav(...crumbs) { document.querySelector("nav").append(...crumbs.flatMap(c => [" › ", c])); }

  // ---- the Episode page
  function episodePage(d) {
    const ep = d.episode, main = document.querySelector("main");
    document.title = `${ep.codename ?? ep.env_pk} · ${d.run.tag} · also view`;
    nav(h("a", {href: d.run.href}, d.run.tag), ep.episode_id);
    const heat = AGENTS.map(a => probHeatmap(ep, a)).filter(Boolean), events = ep.turns.filter(t => t.events);
    main.append(h("div", {class: "episode"}, h("h1", {}, `${ep.codename ?? ep.env_pk}: ${d.run.label}`), meta(d),
      d.run.note ? h("p", {class: "note"}, d.run.note) : null,
      d.peers.length ? h("p", {class: "chips"}, "Compare with the same scenario in: ", d.peers.map(p => h("a", {href: compareHref({tag: d.run.tag, key: d.key}, p)}, p.label))) : null,
      h("h2", {}, "Rewards and selection probabilities"), h("div", {class: "plots"}, rewardChart(rewardTraces(ep)), heat),
      h("h2", {}, "Transcript"), transcript(ep),
      events.length ? [h("h2", {}, "Pool changes (generative optimizer)"), h("ul", {class: "pool"}, events.flatMap(t => AGENTS.flatMap(a =>
        (t.events[a] || []).map(e => h("li", {}, `turn ${t.turn}: `, eventText(ep, a, e))))))] : null,
      h("h2", {}, "Terminal evaluation"), finalTable(finalCols(ep))));
    draw();
  }

  // ---- the Compare page: two episodes of one scenario, turn by turn
  function comparePage(x, y) {
    const main = document.querySelector("main"), E = [x.episode, y.episode], tags = ["A", "B"];
    document.title = `compare ${x.run.tag} / ${y.run.tag} · also view`;
    nav("compare");
    const side = (d, i) => h("td", {}, h("b", {}, `${tags[i]}: ${d.run.label}`), meta(d));
    const cell = (ep, t) => !t ? h("td", {class: "side"}) : h("td", {class: `side ${t.speaker}`, "data-turn": t.turn},
      h("b", {}, `${A(t.speaker)} ${agentName(ep, t.speaker)}`), " · ", strategyCell(ep, t)[0], h("br"), utteranceCell(t),
      t.reward?.[t.speaker] !== undefined && t.reward?.[t.speaker] !== null ? [h("br"), "reward ", num(t.reward[t.speaker], 3)] : null);
    const n = Math.max(...E.map(ep => ep.turns.length));
    main.append(h("div", {class: "compare"}, h("h1", {}, `Compare: ${E[0].codename ?? E[0].env_pk}`),
      E[0].combo_pk !== E[1].combo_pk ? h("p", {class: "note"}, "These two episodes are of different scenarios.") : null,
      [...new Set([x.run.note, y.run.note].filter(Boolean))].map(n => h("p", {class: "note"}, n)),
      h("table", {class: "compare"}, h("tr", {}, side(x, 0), side(y, 1))),
      h("div", {class: "plots"}, rewardChart([...rewardTraces(E[0], "A ", "solid"), ...rewardTraces(E[1], "B ", "dot")])),
      h("h2", {}, "Transcripts"),
      h("table", {class: "compare"}, h("thead", {}, h("tr", {}, h("th", {}, "Turn"), h("th", {}, `A: ${x.run.label}`), h("th", {}, `B: ${y.run.label}`))),
        h("tbody", {}, [...Array(n).keys()].map(i => h("tr", {"data-turn": i + 1}, h("td", {class: "num"}, i + 1), cell(E[0], E[0].turns[i]), cell(E[1], E[1].turns[i]))))),
      h("h2", {}, "Terminal evaluation"), finalTable([...finalCols(E[0], "A "), ...finalCols(E[1], "B ")])));
    draw();
  }

  function start() {
    document.querySelectorAll("table.sortable").forEach(sortable);
    drawFigures();
    const page = document.body.dataset.page, q = new URLSearchParams(location.search), main = document.querySelector("main");
    const fail = e => main.append(h("p", {class: "error"}, e.message || String(e)));
    if (page === "episode") {
      if (!q.get("run") || !q.get("ep")) return fail(new Error("open an episode from its run's page (this page needs ?run=...&ep=...)"));
      load(q.get("run"), q.get("ep")).then(episodePage, fail);
    }
    if (page === "compare") {
      const ids = ["a", "b"].map(k => (q.get(k) || "").split("/"));
      if (ids.some(i => i.length !== 2)) return fail(new Error("open a comparison from an episode's page (this page needs ?a=run/episode&b=run/episode)"));
      Promise.all(ids.map(([t, k]) => load(t, k))).then(([x, y]) => comparePage(x, y), fail);
    }
  }
  document.addEventListener("DOMContentLoaded", start);
  return {loaded, load, fmt};
})();
