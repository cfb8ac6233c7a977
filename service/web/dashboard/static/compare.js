// Compare runs: one metric of several jobs on one chart (a min-max band per bucket where the
// history is downsampled) and the JSON paths where their specs differ.
"use strict";

(() => {
  const { el } = FF;
  const COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf"];
  const MAX_POINTS = 1001;  // 500 buckets: their minimum and maximum, and the last row
  const kindBox = document.getElementById("compare-kind");
  const metricBox = document.getElementById("compare-metric");
  const filter = document.getElementById("compare-filter");
  const chart = document.getElementById("compare-chart");
  const params = new URLSearchParams(location.search);
  let selected = (params.get("jobs") || "").split(",").filter(Boolean);
  let wanted = params.get("metric") || "";
  kindBox.value = params.get("kind") || "epoch";
  let listed = [];
  const jobs = new Map();  // id -> the job (its spec included)

  const num = (v) => (typeof v === "string" ? Number(v) : v);
  const label = (id) => (jobs.has(id) ? `${jobs.get(id).name} (${id.slice(0, 8)})` : id.slice(0, 8));
  const color = (i) => COLORS[i % COLORS.length];

  function keepInUrl() {
    const p = new URLSearchParams();
    if (selected.length) p.set("jobs", selected.join(","));
    p.set("kind", kindBox.value);
    if (metricBox.value) p.set("metric", metricBox.value);
    history.replaceState(null, "", `?${p}`);
  }

  // -- spec differences ------------------------------------------------------------

  // Every leaf of a JSON value by its path (keys sorted, list items by index): a.b[2].c.
  function leaves(value, path, out) {
    if (value !== null && typeof value === "object") {
      const items = Array.isArray(value) ? value.map((v, i) => [`${path}[${i}]`, v])
        : Object.keys(value).sort().map((k) => [path ? `${path}.${k}` : k, value[k]]);
      if (!items.length) out.set(path, JSON.stringify(value));
      for (const [p, v] of items) leaves(v, p, out);
    } else {
      out.set(path, JSON.stringify(value));
    }
    return out;
  }

  function differences(specs) {
    const flat = specs.map((s) => leaves(s || {}, "", new Map()));
    const order = new Map();  // the union of paths, in the order the specs hold them
    for (const f of flat) for (const p of f.keys()) order.set(p, true);
    return [...order.keys()]
      .map((path) => ({ path, values: flat.map((f) => f.get(path)) }))
      .filter((d) => new Set(d.values).size > 1);
  }

  function showDiff() {
    const table = document.getElementById("diff-table");
    const ids = selected.filter((id) => jobs.has(id));
    table.querySelector("thead").replaceChildren(el("tr", {}, el("th", { text: "Path" }),
      ...ids.map((id, i) => el("th", { style: `color:${color(i)}`, text: label(id) }))));
    const body = table.querySelector("tbody");
    if (ids.length < 2) { FF.fill(body, [], "Select two jobs or more.", 1 + ids.length); return; }
    const diffs = differences(ids.map((id) => jobs.get(id).spec));
    FF.fill(body, diffs.map((d) => el("tr", { "data-path": d.path },
      el("td", { class: "mono", text: d.path }),
      ...d.values.map((v) => el("td", { class: "mono", text: v === undefined ? "(absent)" : v })),
    )), "The specs are the same.", 1 + ids.length);
  }

  // -- the chart -------------------------------------------------------------------

  // Per bucket of a downsampled answer: the steps of its minimum and maximum of `metric`
  // (the API's `buckets`), drawn as a band between the two values.
  function bands(body, metric) {
    const at = new Map(body.rows.map((r) => [r.step, num(r.logs[metric])]));
    return (body.buckets || []).map(([lo, hi]) => ({ x: (lo + hi) / 2, lo: at.get(lo), hi: at.get(hi) }))
      .filter((b) => Number.isFinite(b.lo) && Number.isFinite(b.hi))
      .map((b) => ({ ...b, lo: Math.min(b.lo, b.hi), hi: Math.max(b.lo, b.hi) }));
  }

  function traces(id, i, body, metric) {
    const pts = body.rows.filter((r) => r.logs[metric] !== undefined);
    const band = bands(body, metric);
    const out = [];
    if (band.length) {
      const common = { type: "scatter", mode: "lines", line: { width: 0 }, legendgroup: id,
        showlegend: false, hoverinfo: "skip", x: band.map((b) => b.x) };
      out.push({ ...common, name: `${label(id)} min`, y: band.map((b) => b.lo) },
        { ...common, name: `${label(id)} max`, y: band.map((b) => b.hi), fill: "tonexty",
          fillcolor: `${color(i)}33` });
    }
    out.push({
      x: pts.map((r) => r.step), y: pts.map((r) => num(r.logs[metric])), name: label(id),
      legendgroup: id, type: "scatter", mode: kindBox.value === "epoch" ? "lines+markers" : "lines",
      line: { color: color(i), width: band.length ? 1 : 1.5 }, opacity: band.length ? 0.7 : 1,
    });
    return { out, banded: band.length > 0, downsampled: !!body.downsampled };
  }

  async function draw() {
    const metric = metricBox.value;
    const kind = kindBox.value;
    keepInUrl();
    if (!metric || !selected.length) {
      Plotly.purge(chart);
      chart.dataset.lines = "0";
      document.getElementById("compare-note").textContent = selected.length
        ? "No metric rows of this series yet." : "Tick jobs below to compare them.";
      return;
    }
    const q = new URLSearchParams({ kind, metric, max_points: String(MAX_POINTS) });
    const bodies = await Promise.all(selected.map((id) => FF.json(`/jobs/${id}/metrics?${q}`)));
    if (metric !== metricBox.value || kind !== kindBox.value) return;  // a newer choice won
    const drawn = selected.map((id, i) => traces(id, i, bodies[i], metric));
    Plotly.react(chart, drawn.flatMap((d) => d.out), {
      title: { text: `${kind} ${metric}`, font: { size: 14 }, x: 0.01, xanchor: "left" },
      height: 420, autosize: true, margin: { l: 56, r: 16, t: 56, b: 44 },
      xaxis: { title: { text: kind === "epoch" ? "step (epoch ends)" : "step" } },
      legend: { orientation: "h", x: 1, xanchor: "right", y: 1.02, yanchor: "bottom" },
    }, { displaylogo: false, responsive: true });
    chart.dataset.lines = String(drawn.length);
    chart.dataset.bands = String(drawn.filter((d) => d.banded).length);
    chart.dataset.shown = `${selected.join(",")}|${kind}|${metric}`;
    document.getElementById("compare-note").textContent = drawn.some((d) => d.downsampled)
      ? "Long histories are downsampled: the band spans each bucket's minimum and maximum." : "";
  }

  async function loadMetrics() {
    const kind = kindBox.value;
    const probes = await Promise.all(selected.map((id) =>
      FF.json(`/jobs/${id}/metrics?kind=${kind}&max_points=3`)));
    if (kind !== kindBox.value) return;
    const names = new Set();
    for (const p of probes) for (const r of p.rows) for (const k of Object.keys(r.logs)) names.add(k);
    const sorted = [...names].sort();
    const keep = [wanted, metricBox.value, "loss", sorted[0]].find((n) => names.has(n)) || "";
    wanted = "";
    metricBox.replaceChildren(...sorted.map((n) => el("option", { value: n, text: n })));
    metricBox.value = keep;
    await draw();
  }

  // -- picking jobs ----------------------------------------------------------------

  function showPick() {
    const needle = filter.value.trim().toLowerCase();
    const extra = selected.filter((id) => !listed.some((j) => j.id === id) && jobs.has(id));
    const rows = [...extra.map((id) => jobs.get(id)), ...listed].filter((j) =>
      selected.includes(j.id) || !needle || j.name.toLowerCase().includes(needle) || j.id.includes(needle));
    FF.fill(document.querySelector("#pick-table tbody"), rows.map((j) => el("tr", { "data-job-id": j.id },
      el("td", {}, el("input", { type: "checkbox", class: "pick", "data-job-id": j.id,
        checked: selected.includes(j.id), onchange: (e) => toggle(j.id, e.target.checked) })),
      el("td", {}, el("a", { href: `/jobs/${j.id}`, text: j.name })),
      el("td", { class: "mono", text: j.id.slice(0, 8) }), el("td", { text: j.project || "" }),
      el("td", {}, FF.stateBadge(j.state)), el("td", { text: FF.time(j.created_at) }),
    )), "No jobs.", 6);
  }

  async function toggle(id, on) {
    selected = on ? [...new Set([...selected, id])] : selected.filter((x) => x !== id);
    await refresh();
  }

  async function refresh() {
    await Promise.all(selected.filter((id) => !jobs.has(id)).map(async (id) => {
      jobs.set(id, await FF.json(`/jobs/${id}`));
    }));
    showPick();
    showDiff();
    await loadMetrics();
  }

  kindBox.addEventListener("change", () => loadMetrics().catch((e) => FF.notice(e.message)));
  metricBox.addEventListener("change", () => draw().catch((e) => FF.notice(e.message)));
  filter.addEventListener("input", showPick);
  document.getElementById("compare-controls").addEventListener("submit", (e) => e.preventDefault());
  new ResizeObserver(() => { if (chart._fullLayout) Plotly.Plots.resize(chart).catch(() => {}); })
    .observe(chart);

  (async () => {
    try {
      listed = (await FF.json("/jobs?limit=200")).jobs;
      await refresh();
    } catch (e) {
      FF.notice(String(e.message || e));
    }
  })();
})();
