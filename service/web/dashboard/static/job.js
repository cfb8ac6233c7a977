// The job page: live charts polled with the metrics cursor, attempts, checkpoints, summary.
"use strict";

(() => {
  const { el } = FF;
  const root = document.getElementById("job");
  const jobId = root.dataset.jobId;
  const ENDED = ["succeeded", "failed", "cancelled"];
  const FIRST_POINTS = { batch: 2000, epoch: 5000, system: 2000 };  // downsampled first load
  const MAX_KEPT = 20000;  // past this many batch points, load a fresh downsampled view
  const COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2"];
  const series = {
    batch: { rows: [], next: null, etag: null, url: null, downsampled: false },
    epoch: { rows: [], next: null, etag: null, url: null, downsampled: false },
    system: { rows: [], next: null, etag: null, url: null, downsampled: false },
  };
  let detail = null;
  let resumeSteps = [];
  let finalPolls = 2;  // after the job ends, poll metrics until they settle
  let summaryShown = false;
  let checkpointsKey = "";

  // -- metrics ----------------------------------------------------------------------

  async function pollSeries(kind) {
    const s = series[kind];
    const q = new URLSearchParams({ kind });
    if (s.next === null) {
      q.set("max_points", FIRST_POINTS[kind]);
      if (kind === "system") q.set("metric", "cpu_percent");  // the extremes kept
    } else {
      q.set("after", s.next);
    }
    const url = `/jobs/${jobId}/metrics?${q}`;
    const headers = s.etag && s.url === url ? { "If-None-Match": s.etag } : {};
    const response = await FF.api(url, { headers });
    if (response.status === 304) return false;
    if (!response.ok) throw new Error(`metrics: ${response.status}`);
    s.etag = response.headers.get("ETag");
    s.url = url;
    const body = await response.json();
    if (s.next === null) s.downsampled = !!body.downsampled;
    s.next = body.next;
    if (!body.rows.length) return false;
    s.rows.push(...body.rows);
    if (s.rows.length > MAX_KEPT) {  // start over with a downsampled view of the whole run
      Object.assign(s, { rows: [], next: null, etag: null, url: null });
      return pollSeries(kind);
    }
    return true;
  }

  function resumeShapes() {
    return resumeSteps.map((step) => ({
      type: "line", x0: step, x1: step, yref: "paper", y0: 0, y1: 1,
      line: { color: "#d62728", width: 1.5, dash: "dot" },
    }));
  }

  function resumeNotes() {
    return resumeSteps.map((step) => ({
      x: step, yref: "paper", y: 1, text: `resumed @${step}`, showarrow: false,
      font: { size: 10, color: "#d62728" }, xanchor: "left", yanchor: "top",
    }));
  }

  function chartDiv(container, id) {
    let div = document.getElementById(id);
    if (!div) {
      div = el("div", { id, class: "chart" });
      container.appendChild(div);
      // A new chart narrows the others in its grid row: each follows its cell's width.
      new ResizeObserver(() => {
        if (div._fullLayout) Plotly.Plots.resize(div).catch(() => {});
      }).observe(div);
    }
    return div;
  }

  function draw(div, title, traces) {
    // The legend sits in the top margin beside the title, never over the curves.
    const layout = {
      title: { text: title, font: { size: 14 }, x: 0.01, xanchor: "left", y: 0.97 },
      height: 300, autosize: true,
      margin: { l: 56, r: 16, t: 56, b: 44 }, xaxis: { title: { text: "step" } },
      legend: { orientation: "h", x: 1, xanchor: "right", y: 1.02, yanchor: "bottom",
                font: { size: 11 } },
      shapes: resumeShapes(),
      annotations: resumeNotes(), uirevision: div.id,
    };
    Plotly.react(div, traces, layout, { displaylogo: false, responsive: true });
    div.dataset.points = String(traces.reduce((n, t) => n + t.x.length, 0));
  }

  // The API sends NaN and +/-inf as the strings "NaN", "Infinity" and "-Infinity".
  const num = (v) => (typeof v === "string" ? Number(v) : v);

  function divergence(pts, key) {
    // Plotly leaves a gap at a non-finite value: mark each one with a red x at the last
    // finite value before it, and label the first, where the run diverged.
    const bad = [];
    let last = 0;
    for (const r of pts) {
      const v = num(r.logs[key]);
      if (Number.isFinite(v)) last = v; else bad.push([r, last]);
    }
    if (!bad.length) return [];
    return [{
      x: bad.map(([r]) => r.step), y: bad.map(([, y]) => y), name: `${key} not finite`,
      type: "scatter", mode: "markers+text", showlegend: false, hoverinfo: "text",
      marker: { symbol: "x", color: "#d62728", size: 9 },
      text: bad.map(([r], i) => (i ? "" : `diverged @${r.step}`)), textposition: "top right",
      textfont: { size: 10, color: "#d62728" },
      hovertext: bad.map(([r]) => `${key} = ${r.logs[key]} at step ${r.step}`),
    }];
  }

  function names(rows) {
    const seen = new Set();
    for (const r of rows) for (const k of Object.keys(r.logs || {})) seen.add(k);
    return [...seen].sort();
  }

  function drawBatch() { drawEach("batch", "every new batch"); }
  function drawSystem() { drawEach("system", "every new sample"); }

  // One chart per metric of a series of rows (batch rows, system samples).
  function drawEach(kind, then) {
    const rows = series[kind].rows;
    const box = document.getElementById(`${kind}-charts`);
    document.getElementById(`${kind}-note`).textContent = series[kind].downsampled
      ? `history downsampled (each bucket's extremes kept), then ${then}` : "";
    if (!rows.length) { box.dataset.empty = "1"; return; }
    names(rows).forEach((name, i) => {
      const pts = rows.filter((r) => r.logs[name] !== undefined);
      draw(chartDiv(box, `${kind}-chart-${name}`), name, [{
        x: pts.map((r) => r.step), y: pts.map((r) => num(r.logs[name])), name,
        type: "scattergl", mode: "lines", line: { color: COLORS[i % COLORS.length], width: 1 },
        text: pts.map((r) => (r.batch === null ? `epoch ${r.epoch + 1}`
          : `epoch ${r.epoch + 1}, batch ${r.batch + 1}`)),
      }, ...divergence(pts, name)]);
    });
  }

  function drawEpoch() {
    const rows = series.epoch.rows;
    const box = document.getElementById("epoch-charts");
    const all = names(rows);
    const bases = all.filter((n) => !n.startsWith("val_"));
    for (const n of all) if (n.startsWith("val_") && !bases.includes(n.slice(4))) bases.push(n.slice(4));
    bases.forEach((base) => {
      const traces = [];
      [[base, "training", COLORS[0]], [`val_${base}`, "validation", COLORS[1]]]
        .forEach(([key, label, color]) => {
          const pts = rows.filter((r) => r.logs[key] !== undefined);
          if (!pts.length) return;
          traces.push({
            x: pts.map((r) => r.step), y: pts.map((r) => num(r.logs[key])), name: `${label} ${base}`,
            type: "scatter", mode: "lines+markers", line: { color },
            text: pts.map((r) => `epoch ${r.epoch + 1}`),
          }, ...divergence(pts, key));
        });
      draw(chartDiv(box, `epoch-chart-${base}`), base, traces);
    });
  }

  async function pollMetrics() {
    if (!detail) return;
    const ended = ENDED.includes(detail.job.state);
    if (ended && finalPolls <= 0) return;
    const [b, e, y] = [await pollSeries("batch"), await pollSeries("epoch"),
      await pollSeries("system")];
    if (b) drawBatch();
    if (e) drawEpoch();
    if (y) drawSystem();
    if (ended) finalPolls -= 1;
  }

  // -- detail -----------------------------------------------------------------------

  function fact(name, value) {
    return [el("dt", { text: name }), el("dd", { text: value === undefined ? "" : String(value) })];
  }

  function showHead(d) {
    const { job, progress } = d;
    document.title = `${job.name} · fitfleet`;
    document.getElementById("job-name").textContent = job.name;
    const badge = document.getElementById("job-state");
    badge.className = `state state-${job.state}`;
    const running = job.state === "running";
    badge.textContent = job.cancel_requested && running ? "cancelling"
      : job.preempt_requested && running ? "giving way" : job.state;
    root.dataset.state = job.state;
    const waiting = document.getElementById("job-waiting");
    waiting.hidden = !job.waiting;
    waiting.textContent = job.waiting ? `Waiting: ${job.waiting}` : "";
    const pct = job.state === "succeeded" ? 100 : progress.percent || 0;
    const place = FF.position(progress.step, progress.steps_per_epoch, progress.epochs);
    document.getElementById("progress-bar").style.width = `${Math.min(100, pct)}%`;
    document.getElementById("cancel").hidden = ENDED.includes(job.state) || job.cancel_requested;
    document.getElementById("facts").replaceChildren(
      ...fact("Progress", `${pct.toFixed(1)}%`),
      ...fact("Epoch", `${place.epoch || 1} / ${progress.epochs}`),
      ...fact("Batch", progress.steps_per_epoch ? `${place.batch} / ${progress.steps_per_epoch}` : "–"),
      ...fact("Step", progress.total_steps ? `${progress.step} / ${progress.total_steps}` : progress.step),
      ...fact("Throughput", progress.steps_per_second ? `${progress.steps_per_second} steps/s` : "–"),
      ...fact("ETA", FF.duration(progress.eta_seconds)),
      ...fact("Attempts", `${job.attempts} / ${job.max_attempts}`),
      ...fact("Preempted", job.preemptions ? `${job.preemptions} ×` : "–"),
      ...fact("Worker", job.worker || "–"),
      ...fact("Queue", `${job.queue} (priority ${job.priority})`),
      ...fact("Project", job.project || "default"),
      ...fact("Created", FF.time(job.created_at)),
      ...fact("Finished", FF.time(job.finished_at) || "–"),
    );
    const error = document.getElementById("job-error");
    error.hidden = !job.error;
    error.textContent = job.error ? `${job.error.code}: ${job.error.message}` : "";
    document.getElementById("model-download").hidden = !job.model_available;
  }

  function showAttempts(attempts) {
    FF.fill(document.querySelector("#attempts-table tbody"), attempts.map((a) => el("tr", {},
      el("td", { text: a.number }), el("td", { class: "mono", text: a.worker }),
      el("td", {}, FF.stateBadge(a.state)), el("td", { text: FF.time(a.started_at) }),
      el("td", { text: FF.time(a.ended_at) }), el("td", { class: "num", text: a.resumed_from_step }),
      el("td", { class: "num", text: a.last_step }), el("td", { class: "num", text: a.steps_redone }),
      el("td", { text: a.error ? `${a.error.code}: ${a.error.message}` : "" }),
    )), "No attempt yet.", 9);
  }

  function showCheckpoints(checkpoints) {
    const key = checkpoints.map((c) => `${c.step}:${c.sha256}`).join(",");
    if (key === checkpointsKey) return;
    checkpointsKey = key;
    const p = (detail && detail.progress) || {};
    const place = (c) => FF.position(c.step, p.steps_per_epoch, p.epochs);
    FF.fill(document.querySelector("#checkpoints-table tbody"), checkpoints.slice().reverse().map((c) => {
      const files = Object.keys(c.files || {}).sort().map((name) => el("button", {
        type: "button", class: "link", text: name, "data-file": name,
        onclick: () => FF.download(`/jobs/${jobId}/checkpoints/${c.step}/${name}`, name),
      }));
      const logs = Object.entries(c.logs || {}).map(([k, v]) => `${k}=${Number(v).toPrecision(4)}`);
      return el("tr", { "data-step": c.step }, el("td", { class: "num", text: c.step }),
        el("td", { class: "num", text: place(c).epoch }),
        el("td", { class: "num", text: place(c).batch }),
        el("td", { class: "num", text: FF.bytes(c.bytes) }), el("td", { text: FF.time(c.created_at) }),
        el("td", { class: "small", text: logs.join(" ") }), el("td", {}, ...files));
    }), "No checkpoint yet.", 7);
  }

  function shape(s) {
    if (!Array.isArray(s)) return s === null || s === undefined ? "?" : String(s);
    if (s.length && Array.isArray(s[0])) return s.map(shape).join(", ");
    return `(${s.map((d) => (d === null ? "None" : d)).join(", ")}${s.length === 1 ? "," : ""})`;
  }

  function showSummary(summary) {
    if (summaryShown) return;
    summaryShown = true;
    if (!summary) {
      FF.fill(document.querySelector("#summary-table tbody"), [], "No model summary.", 3);
      return;
    }
    const n = (x) => Number(x).toLocaleString("en-US");
    FF.fill(document.querySelector("#summary-table tbody"), summary.layers.map((l) => el("tr", {},
      el("td", { text: `${l.name} (${l.class_name})` }), el("td", { class: "mono", text: shape(l.output_shape) }),
      el("td", { class: "num", text: n(l.params) }))), "No layers.", 3);
    document.querySelector("#summary-table tfoot").replaceChildren(
      ...[["Total params", summary.total_params], ["Trainable params", summary.trainable_params],
        ["Non-trainable params", summary.non_trainable_params]].map(([k, v]) =>
        el("tr", {}, el("td", { colspan: 2, text: `${k}:` }), el("td", { class: "num", text: n(v) }))));
  }

  async function pollDetail() {
    detail = await FF.json(`/jobs/${jobId}/detail`);
    document.dispatchEvent(new CustomEvent("ff:detail", { detail }));  // timeline.js
    showHead(detail);
    showAttempts(detail.attempts);
    showCheckpoints(detail.checkpoints);
    showSummary(detail.summary);
    const steps = detail.resume_steps.join(",");
    if (steps !== resumeSteps.join(",")) {
      resumeSteps = detail.resume_steps;
      drawBatch();
      drawEpoch();
      drawSystem();
    }
  }

  document.getElementById("cancel").addEventListener("click", async () => {
    if (!confirm("Cancel this job?")) return;
    await FF.json(`/jobs/${jobId}/cancel`, { method: "POST" });
    await pollDetail();
  });
  document.getElementById("download-model").addEventListener("click",
    () => FF.download(`/jobs/${jobId}/model`, `${jobId}.keras`));

  FF.every(1500, async () => { await pollDetail(); await pollMetrics(); });
})();
