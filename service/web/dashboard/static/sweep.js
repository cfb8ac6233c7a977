// One sweep: its trials, a parallel-coordinates plot of the parameters against the
// objective, the objective by trial number (with the best so far), and the objective's
// curves over epochs of the best few trials, from the verdicts each epoch recorded.
"use strict";

(() => {
  const { el } = FF;
  const root = document.getElementById("sweep");
  const id = root.dataset.sweepId;
  const cancel = document.getElementById("cancel-sweep");
  const BEST_CURVES = 5;
  const LAYOUT = { margin: { t: 30, r: 20, b: 40, l: 60 }, height: 320 };
  const CONFIG = { displaylogo: false, responsive: true };
  let stop = null;

  const short = (path) => path.split(".").pop();
  const show = (v) => (typeof v === "number" && !Number.isInteger(v) ? v.toPrecision(4) : String(v));

  function better(sweep) {
    const sign = sweep.objective.direction === "min" ? 1 : -1;
    return (a, b) => sign * (a.objective - b.objective) || a.number - b.number;
  }

  function header(sweep) {
    document.title = `${sweep.name} · sweep · fitfleet`;
    document.getElementById("sweep-name").textContent = sweep.name;
    document.getElementById("sweep-state").replaceChildren(FF.stateBadge(sweep.state));
    const counts = Object.entries(sweep.trial_counts).filter(([, n]) => n)
      .map(([state, n]) => `${n} ${state}`).join(", ");
    document.getElementById("sweep-facts").textContent =
      `${sweep.objective.direction} ${sweep.objective.metric} · ${sweep.sampler.name} sampler · ` +
      `${sweep.pruner.name} pruner · trials: ${counts || "none yet"} of ${sweep.max_trials}, ` +
      `${sweep.max_parallel} at a time · ${sweep.steps} steps trained · seed ${sweep.seed}`;
    const best = sweep.best;
    document.getElementById("sweep-best").replaceChildren(best
      ? el("span", { id: "best-trial", "data-number": best.number },
        `Best: trial ${best.number}, ${sweep.objective.metric} ${best.objective.toPrecision(6)} `,
        el("a", { href: `/jobs/${best.job_id}`, text: "its job" }))
      : el("span", { class: "muted", text: "No trial has finished yet." }));
    cancel.hidden = sweep.state !== "running";
  }

  function table(sweep) {
    const paths = Object.keys(sweep.space);
    document.getElementById("trials-head").replaceChildren(el("tr", {},
      ...["Trial", "State", sweep.objective.metric, "Steps", ...paths.map(short), "Job"]
        .map((h, i) => el("th", { title: i >= 4 && i < 4 + paths.length ? paths[i - 4] : null,
          text: h }))));
    const best = sweep.best ? sweep.best.number : null;
    FF.fill(document.getElementById("trials-body"), sweep.trials.map((t) =>
      el("tr", { "data-number": t.number, "data-state": t.state,
                 class: t.number === best ? "best" : null },
        el("td", { class: "num", text: String(t.number) }),
        el("td", {}, FF.stateBadge(t.state),
          t.pruned_epoch ? el("small", { text: ` at epoch ${t.pruned_epoch}` }) : null),
        el("td", { class: "num", text: t.objective === null ? "–" : t.objective.toPrecision(6) }),
        el("td", { class: "num", text: String(t.steps || 0) }),
        ...paths.map((p) => el("td", { class: "num", text: p in t.params ? show(t.params[p]) : "" })),
        el("td", {}, t.job_id ? el("a", { href: `/jobs/${t.job_id}`, text: t.job_id.slice(0, 8) })
          : el("span", { class: "muted", title: t.error || "", text: "refused" })),
      )), "No trials yet.", 5 + paths.length);
  }

  function dimension(sweep, path, trials) {
    const dim = sweep.space[path];
    if (dim.type === "categorical") {
      const labels = dim.choices.map(String);
      return { label: short(path), values: trials.map((t) => labels.indexOf(String(t.params[path]))),
        tickvals: labels.map((_, i) => i), ticktext: labels };
    }
    if (dim.log) {
      const ticks = [];
      for (let e = Math.floor(Math.log10(dim.low)); e <= Math.ceil(Math.log10(dim.high)); e++) {
        ticks.push(e);
      }
      return { label: `${short(path)} (log)`, values: trials.map((t) => Math.log10(t.params[path])),
        tickvals: ticks, ticktext: ticks.map((e) => `1e${e}`) };
    }
    return { label: short(path), values: trials.map((t) => t.params[path]),
      range: [dim.low, dim.high] };
  }

  function charts(sweep) {
    const scored = sweep.trials.filter((t) => t.objective !== null);
    const metric = sweep.objective.metric;
    const par = document.getElementById("parcoords-chart");
    Plotly.react(par, [{
      type: "parcoords",
      line: { color: scored.map((t) => t.objective), colorscale: "Viridis", showscale: true,
        reversescale: sweep.objective.direction === "min" },
      dimensions: [...Object.keys(sweep.space).map((p) => dimension(sweep, p, scored)),
        { label: metric, values: scored.map((t) => t.objective) }],
    }], LAYOUT, CONFIG);
    par.dataset.points = String(scored.length);

    const order = [...scored].sort((a, b) => a.number - b.number);
    let best = null;
    const bestSoFar = order.map((t) => {
      if (t.state === "succeeded" && (best === null || better(sweep)(t, best) < 0)) best = t;
      return best ? best.objective : null;
    });
    const obj = document.getElementById("objective-chart");
    Plotly.react(obj, [
      { x: order.map((t) => t.number), y: order.map((t) => t.objective), mode: "markers",
        name: metric, text: order.map((t) => t.state),
        marker: { size: 9, symbol: order.map((t) => (t.state === "pruned" ? "x" : "circle")) } },
      { x: order.map((t) => t.number), y: bestSoFar, mode: "lines", name: "best so far",
        line: { shape: "hv" } },
    ], Object.assign({}, LAYOUT, { xaxis: { title: { text: "trial" }, dtick: 1 },
      yaxis: { title: { text: metric } } }), CONFIG);
    obj.dataset.points = String(order.length);

    const top = scored.filter((t) => t.verdicts.length).sort(better(sweep)).slice(0, BEST_CURVES);
    const curves = document.getElementById("curves-chart");
    Plotly.react(curves, top.map((t) => ({
      x: t.verdicts.map((v) => v.epoch + 1), y: t.verdicts.map((v) => v.value),
      mode: "lines+markers", name: `trial ${t.number}${t.state === "pruned" ? " (pruned)" : ""}`,
    })), Object.assign({}, LAYOUT, { xaxis: { title: { text: "epoch" }, dtick: 1 },
      yaxis: { title: { text: metric } } }), CONFIG);
    curves.dataset.points = String(top.reduce((n, t) => n + t.verdicts.length, 0));
  }

  async function refresh() {
    const sweep = await FF.json(`/sweeps/${id}`);
    header(sweep);
    table(sweep);
    charts(sweep);
    root.dataset.state = sweep.state;
    if (sweep.state !== "running" && !sweep.trial_counts.running && stop) stop();
  }

  cancel.addEventListener("click", async () => {
    if (!confirm("Cancel this sweep? Its running trials stop and no new trial starts.")) return;
    await FF.json(`/sweeps/${id}/cancel`, { method: "POST" });
    await refresh();
  });

  stop = FF.every(2000, refresh);
})();
