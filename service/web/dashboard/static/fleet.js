// The fleet page: queue depths from the broker, each project's running share against its
// weight, and each worker's state, job and lease.
"use strict";

(() => {
  const { el } = FF;
  const showStopped = document.getElementById("show-stopped");
  let last = null;

  function render() {
    if (!last) return;
    FF.fill(document.querySelector("#queues-table tbody"), last.queues.map((q) =>
      el("tr", { "data-queue": q.name }, el("td", { class: "mono", text: q.name }),
        el("td", { class: "num", text: q.depth === null ? "?" : q.depth }),
        el("td", { class: "num", text: q.queued_jobs }), el("td", { class: "num", text: q.running_jobs }),
        el("td", { class: "num", text: q.workers }))), "No queue.", 5);
    FF.fill(document.querySelector("#projects-table tbody"), (last.projects || []).map((p) =>
      el("tr", { "data-project": p.name }, el("td", { class: "mono", text: p.name }),
        el("td", { class: "num", text: p.weight }),
        el("td", { title: `${pct(p.share)} of the running jobs; weight ${pct(p.weight_share)}` },
          el("div", { class: "progress small" },
            el("div", { class: "bar", style: `width:${Math.min(100, 100 * p.share)}%` })),
          el("span", { class: "pct", text: `${pct(p.share)} / ${pct(p.weight_share)}` })),
        el("td", { class: "num", text: p.running }), el("td", { class: "num", text: p.queued }),
        el("td", { class: "num", text: p.gpus }),
        el("td", { text: quotas(p) }),
        el("td", { text: p.oldest_wait_seconds === null ? "–" : FF.duration(p.oldest_wait_seconds) }))),
      "No project has jobs.", 8);
    const workers = last.workers.filter((w) => showStopped.checked || w.state !== "stopped");
    FF.fill(document.querySelector("#workers-table tbody"), workers.map((w) =>
      el("tr", { "data-worker": w.name, "data-state": w.state },
        el("td", { class: "mono", text: w.name }), el("td", { text: w.hostname }),
        el("td", { class: "num", text: w.pid }), el("td", {}, FF.stateBadge(w.state)),
        el("td", { class: "mono", text: w.queues.join(", ") }),
        el("td", {}, w.job_id ? el("a", { href: `/jobs/${w.job_id}`, class: "mono", text: w.job_id.slice(0, 8) }) : ""),
        el("td", { title: FF.time(w.lease_renewed_at), text: FF.ago(w.lease_renewed_at) }),
        el("td", { title: FF.time(w.heartbeat_at), text: FF.ago(w.heartbeat_at) }),
        el("td", { text: FF.time(w.started_at) }), el("td", { class: "num", text: w.gpus }))),
      "No worker has reported.", 10);
    document.getElementById("stale-note").textContent =
      `(lost when silent for more than ${last.stale_after_seconds} s)`;
  }

  function pct(x) { return `${Math.round(100 * x)}%`; }

  function quotas(p) {
    const parts = [];
    if (p.max_running !== null) parts.push(`${p.max_running} running`);
    if (p.max_gpus !== null) parts.push(`${p.max_gpus} GPUs`);
    return parts.length ? parts.join(", ") : "none";
  }

  showStopped.addEventListener("change", render);
  FF.every(2000, async () => { last = await FF.json("/fleet"); render(); });
})();
